"""classicvision: classical computer-vision features.

Gradients, Harris and DoG keypoints, SIFT descriptors (sparse and dense), ratio-test matching with
verification and ground-truth evaluation, and bag-of-visual-words scene classification. Images are
2-D float32 arrays in [0, 1]; points are (N, 2) float32 arrays of (x, y).

The package is organized by stage (:mod:`classicvision.features`, :mod:`classicvision.matching`,
:mod:`classicvision.recognition`, :mod:`classicvision.experiments`); the public names of each are
re-exported here and loaded lazily, so ``import classicvision`` imports numpy only.
"""

from ._lazy import attach

__version__ = "0.2.0"

_NAMES = {
    "io": ["ImageReadError", "ImageTooLargeError", "as_float_image", "read_image"],
    "datasets": ["data_dir", "embedded_pair", "load_image_folder", "load_pair", "read_images", "stereo_pair"],
}
for _package in ("features", "matching", "recognition"):
    _module = __import__(f"{__name__}.{_package}", fromlist=["NAMES"])
    _NAMES.update({f"{_package}.{module}": names for module, names in _module.NAMES.items()})
__getattr__, __dir__, __all__ = attach(
    __name__, _NAMES, ("datasets", "experiments", "features", "io", "matching", "recognition", "viz"))
__all__ = [name for name in __all__ if name not in ("datasets", "experiments", "features", "io", "matching",
                                                    "recognition", "viz")]
del _package, _module
