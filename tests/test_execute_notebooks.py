"""`make execute` fills the book's cache with the outputs the book build would make: kernel-free
widgets included (their cells only draw them when COURSE_KERNEL_FREE=1, as in the book build)."""

import nbformat

from course_tools import execute_notebooks


def test_executed_outputs_are_the_books(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_KERNEL_FREE", "0")  # restored after the test (_execute sets it to 1)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os\nprint(os.environ.get('COURSE_KERNEL_FREE'))")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, str(path))
    _, executed, _, error = execute_notebooks._execute(str(path), 60)
    assert error is None
    assert executed.cells[0].outputs[0]["text"].strip() == "1"
