"""collapse_lib: the small shared library of the model-collapse course.

Modules
-------
distributions  initial next-token distributions (Zipf-like, uniform, Dirichlet) and validation
simulate       the recursive training loop, vectorised over independent runs
metrics        per-distribution quantities: sigma_m, ||p||_inf, L1 drift, collapse time
theory         closed forms and bounds of Seddik et al. (2024), plus population-genetics results
decoding       temperature, top-k and top-p transforms (biased decoding)
functional     linear softmax model on context embeddings: the functional approximation error
plotting       shared figure helpers; widgets: the functions behind each interactive figure
gpt            character-level GPT experiments on Shakespeare and the counting n-gram bridge
"""

__version__ = "0.1.0"
