"""Plain functions behind the chapters' interactive widgets.

Each chapter's ``ipywidgets.interact`` cell wraps one function from a module here; the same
function is called directly by the tests and by an ordinary cell that draws the default figure,
so the static book shows a figure even without a live kernel.
"""
