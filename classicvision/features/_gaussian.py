"""The Gaussian smoothing that the SIFT descriptors share (sparse and dense see the same image),
and the sampled kernels of the few sigmas the scale space and the descriptors ask for on every
image."""

from __future__ import annotations

import functools

import numpy as np

from .._kernels.blur import _blur
from .._kernels.separable import _separable_valid
from .filters import gaussian_kernel1d

__all__ = ["cached_gaussian_kernel1d", "smooth_symmetric"]


@functools.lru_cache(maxsize=64)
def cached_gaussian_kernel1d(sigma: float) -> np.ndarray:
    """:func:`gaussian_kernel1d` (default truncation) computed once per ``sigma``, read-only: the
    scale space and the descriptors ask for the same few sigmas on every image."""
    g = gaussian_kernel1d(sigma)
    g.flags.writeable = False
    return g


def smooth_symmetric(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing, symmetric border (``dcba|abcd``), of a float32 image: the blur of
    :mod:`classicvision._kernels.blur` (``'reflect'``, x-pass first, one thread), or the padded
    separable filter when the kernel is wider than the image. The dense SIFT's smoothing is the
    same (:func:`classicvision.features.dense_sift._smoothed`)."""
    if sigma <= 0:
        return image
    g = cached_gaussian_kernel1d(sigma)
    blurred = _blur(np.ascontiguousarray(image, np.float32), g, "reflect", x_first=True, n_bands=1)
    if blurred is None:
        blurred = _separable_valid(np.pad(image, g.size // 2, mode="symmetric"), g, g)
    return blurred
