# The course's two commands are `make book` and `make test`; everything else is a helper.
# Every target creates the virtual environment first when it is missing or out of date.

PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard chapters/*.ipynb))

.PHONY: help venv book test unit nbval notebooks-clean book-check strip lab clean bench
.PHONY: assignments grade test-site colab-cells pdf

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s "$$(printf '\t')"

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (course venv)" >/dev/null
	touch $(STAMP)

venv: $(STAMP)  ## create .venv and install requirements.txt and collapse_lib

book: $(STAMP)  ## build the HTML book into _build/html (notebooks executed, warnings are errors)
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "Open _build/html/index.html in a browser."

test: $(STAMP)  ## unit tests, notebooks through nbval, output check, and the book build
	$(BIN)/python tools/colab_setup_cell.py --check
	$(BIN)/python -m pytest tests
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider $(NOTEBOOKS)
	$(MAKE) book

unit: $(STAMP)  ## only the unit tests
	$(BIN)/python -m pytest tests

nbval: $(STAMP)  ## only run the chapter notebooks through nbval
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider $(NOTEBOOKS)

strip: $(STAMP)  ## remove outputs and execution counts from the committed notebooks
	$(BIN)/nbstripout $(NOTEBOOKS)

lab: $(STAMP)  ## open the chapters in JupyterLab
	$(BIN)/jupyter lab chapters/

bench: $(STAMP)  ## run the performance benchmarks (prints side-by-side ratios)
	$(BIN)/python benchmarks/bench_simulate.py --quick

clean:  ## remove the built book (keeps .venv)
	rm -rf _build

test-site: $(STAMP)  ## the built book in headless Chromium (run `make book` first; needs apt chromium chromium-driver)
	COURSE_SITE_TESTS=1 $(BIN)/python -m pytest tests/site -p no:cacheprovider

assignments: $(STAMP)  ## student and instructor notebooks of every chapter's exercises -> assignments/ (nbgrader layout)
	$(BIN)/python -m collapse_lib.assignments --out assignments
	$(BIN)/python -m collapse_lib.assignments --update-page instructors.md

grade: $(STAMP)  ## autograde a submission: make grade NB=path/to/submission.ipynb [GRADE_ARGS="--json --timeout 60"]
	@test -n "$(NB)" || { echo "usage: make grade NB=path/to/submission.ipynb"; exit 2; }
	$(BIN)/python -m collapse_lib.grade "$(NB)" $(GRADE_ARGS)

colab-cells: $(STAMP)  ## insert/refresh the hidden Colab/Binder set-up cell in every chapter (from _config.yml repository)
	$(BIN)/python tools/colab_setup_cell.py

pdf: $(STAMP)  ## the whole book on one page (_build/singlehtml) and as a PDF (_build/pdf/book.pdf), via headless Chromium
	$(BIN)/jupyter-book build . --builder singlehtml -W -n --keep-going
	$(BIN)/python tools/print_pdf.py
