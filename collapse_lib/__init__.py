"""collapse_lib: the small shared library of the model-collapse course.

Modules
-------
distributions  initial next-token distributions (Zipf-like, uniform, Dirichlet) and validation
simulate       the recursive training loop, vectorised over independent runs
metrics        per-distribution quantities: sigma_m, ||p||_inf, L1 drift, collapse time
theory         closed forms and bounds of Seddik et al. (2024), plus population-genetics results
plotting       shared figure helpers
gpt            character-level GPT experiments on Shakespeare
"""

__version__ = "0.1.0"
