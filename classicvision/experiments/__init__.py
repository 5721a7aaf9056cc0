"""15-Scene experiments: the benchmark runners behind ``classicvision bench``, their reports and
the features cache. Not part of the core API: the runners compose the public estimators."""

from .._lazy import attach

NAMES = {
    "scene": ["run_bovw", "run_tiny_knn"],
    "fisher": ["run_fisher"],
    "cnn": ["run_cnn"],
    "compare": ["run_compare"],
    "significance": ["binomial_se", "paired_se", "paired_class_mean_se", "winner_margin", "winner_sentence"],
    "cache": ["CachedFeatures"],
    "reports": ["scores", "write_report"],
}
__getattr__, __dir__, __all__ = attach(__name__, NAMES, tuple(NAMES))
