"""Dominant gradient orientations of scale-space points (Lowe 2004, section 5).

Algorithm, for a point ``(x, y)`` of scale ``sigma`` (input pixels):

1. Pick the Gaussian image of the pyramid whose blur is nearest to ``sigma``
   (:func:`classicvision.features.scale_space.level_of_scale`) and move the point and its scale into that
   octave's pixels, so the gradients are sampled at the point's own scale.
2. Around the rounded position, every pixel within ``round(3 * window * sigma)`` (a square;
   ``window = 1.5``) contributes its central-difference gradient magnitude weighted by a Gaussian
   of standard deviation ``window * sigma`` to a 36-bin histogram of ``arctan2(gy, gx)``
   (linear interpolation between the two nearest bins; bin ``k`` is centred on ``10 k`` degrees).
3. The circular histogram is smoothed with ``[1, 4, 6, 4, 1] / 16`` (as OpenCV).
4. Every local maximum within ``peak_ratio = 0.8`` of the highest bin gives an orientation,
   refined by the parabola through the peak and its two neighbours; so one point may get
   several orientations (about 15% of points in Lowe's experiments). A point whose histogram is
   empty (a flat patch) keeps a single orientation 0.

Angles are radians in ``[-pi, pi)`` from ``arctan2(gy, gx)`` with y pointing down the rows
(clockwise on screen), the convention of :mod:`classicvision.features.filters` and
:func:`classicvision.features.sift.sift_descriptors`. OpenCV's ``KeyPoint.angle`` is the same angle in
degrees, ``degrees(theta) % 360`` (its histogram flips both the y axis and the sign).

The histograms are built by a numba kernel whose loop over points is inside
(:func:`classicvision._kernels.orientation._orientation_histograms`), and their peaks found by
another (:func:`classicvision._kernels.orientation._peaks`), each with a numpy reference.

References
----------
D. G. Lowe, "Distinctive image features from scale-invariant keypoints", IJCV 60(2), 2004,
section 5 (orientation assignment).
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import _limits
from .._kernels import orientation as _k
from .._validation import check_image, check_points, check_scalar
from .keypoints import Keypoints, check_keypoints
from .scale_space import GaussianPyramid, gaussian_pyramid, level_of_scale

__all__ = ["orientation_histograms", "dominant_orientations", "assign_orientations"]

_RADIUS_FACTOR = 3.0  # window radius in standard deviations of the Gaussian weight (OpenCV's 3 * 1.5)
_SMOOTH = np.array([1.0, 4.0, 6.0, 4.0, 1.0], np.float32) / 16.0


def _check_scales(scales, n: int) -> np.ndarray:
    scales = np.asarray(scales)
    if scales.ndim == 0:
        scales = np.full(n, scales)
    if scales.dtype.kind not in "uif":
        raise TypeError(f"scales must be numeric, got dtype {scales.dtype}")
    if scales.shape != (n,):
        raise ValueError(f"scales must have shape ({n},) to match points, got shape {scales.shape}")
    scales = scales.astype(np.float32)
    if n and not (np.isfinite(scales).all() and (scales > 0).all()):
        raise ValueError("scales must be finite and > 0")
    return scales


def _check_costs(pyramid: GaussianPyramid, points, scales, n_bins: int, window: float) -> None:
    """Refuse histograms past the limits of :mod:`classicvision._limits`: ``n_bins`` (the histogram
    length), the result's bytes, huge coordinates, a window far wider than the image, and the
    pixels visited in all (each window clipped to its octave image)."""
    _limits.check_limit(n_bins, "MAX_DESCRIPTOR_DIM", f"n_bins={n_bins!r} bins per histogram",
                        "pass fewer (Lowe: 36)")
    _limits.check_array_bytes(4.0 * len(points) * n_bins, f"{len(points)} histograms of n_bins={n_bins!r}",
                              "pass fewer points or bins")
    _limits.check_coordinates(points, "points")
    if not len(points) or not pyramid.octaves:
        return
    factor0 = float(pyramid.octave_factor(0))
    shape = tuple(int(round(n * factor0)) for n in pyramid.octaves[0].shape[1:])
    radius = _RADIUS_FACTOR * float(window) * scales.astype(np.float64)
    _limits.check_kernel_radius(float(radius.max()), shape,
                                f"window={window!r} with scales up to {float(scales.max()):.4g}",
                                "pass a smaller window or smaller scales")
    octaves, _ = level_of_scale(pyramid, scales)
    factor = pyramid.octave_factor(octaves)
    sides = np.array([stack.shape[1:] for stack in pyramid.octaves], np.float64)[octaves]
    across = 2.0 * np.round(radius / factor) + 1.0
    visited = float(np.sum(np.minimum(across, sides[:, 0]) * np.minimum(across, sides[:, 1])))
    _limits.check_limit(visited, "MAX_SUPPORT_PIXELS",
                        f"the orientation windows of {len(points)} points cover {visited:.4g} pixels",
                        "pass fewer points, smaller scales or a smaller window")


def _as_pyramid(image_or_pyramid) -> GaussianPyramid:
    if isinstance(image_or_pyramid, GaussianPyramid):
        return image_or_pyramid
    return gaussian_pyramid(check_image(image_or_pyramid, "image_or_pyramid", check_range=True))


def orientation_histograms(image_or_pyramid, points, scales, *, n_bins: int = 36,
                           window: float = 1.5) -> np.ndarray:
    """Gaussian-weighted histograms of gradient orientation at each point's scale (unsmoothed).

    Parameters
    ----------
    image_or_pyramid : (H, W) array or GaussianPyramid
        An image (a default :func:`~classicvision.features.scale_space.gaussian_pyramid` is built) or the
        pyramid the points were detected in.
    points : (N, 2) array of (x, y) in input pixels
    scales : (N,) array or float
        Sigma of each point in input pixels.
    n_bins : int
        Bins over ``[0, 2 pi)``; bin ``k`` is centred on ``2 pi k / n_bins``.
    window : float
        The Gaussian weight has standard deviation ``window * sigma`` (Lowe: 1.5).

    Returns
    -------
    histograms : (N, n_bins) float32 array

    Raises
    ------
    ValueError, TypeError
        Naming the argument, for bad shapes or values, and for costs past the limits of
        :mod:`classicvision._limits`: ``n_bins`` above ``MAX_DESCRIPTOR_DIM``, a coordinate above
        ``MAX_COORDINATE``, a window radius ``3 * window * scale`` above twice the image's larger
        side (``KERNEL_RADIUS_RELATIVE``), windows covering more than ``MAX_SUPPORT_PIXELS`` in all.
        A point whose window misses the image gets an all-zero histogram.
    """
    pyramid = _as_pyramid(image_or_pyramid)
    points = check_points(points)
    scales = _check_scales(scales, len(points))
    check_scalar(n_bins, "n_bins", kind=numbers.Integral, low=4)
    check_scalar(window, "window", low=0, low_inclusive=False)
    _check_costs(pyramid, points, scales, int(n_bins), float(window))
    hist = np.zeros((len(points), int(n_bins)), np.float32)
    if not len(points):
        return hist
    octaves, levels = level_of_scale(pyramid, scales)
    for o in np.unique(octaves):
        rows = np.flatnonzero(octaves == o)
        factor = np.float32(pyramid.octave_factor(o))
        hist[rows] = _k._orientation_histograms(
            pyramid.octaves[o], levels[rows], points[rows, 0] / factor, points[rows, 1] / factor,
            scales[rows] / factor, int(n_bins), float(window), _RADIUS_FACTOR)
    return hist


def dominant_orientations(image_or_pyramid, points, scales, *, n_bins: int = 36, window: float = 1.5,
                          peak_ratio: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Dominant gradient orientations of scale-space points (Lowe 2004, section 5).

    Parameters
    ----------
    image_or_pyramid : (H, W) array or GaussianPyramid
        An image, or (better, and faster) the pyramid the points were detected in.
    points : (N, 2) array of (x, y) in input pixels
    scales : (N,) array or float
        Sigma of each point in input pixels (as returned by
        :func:`~classicvision.features.scale_space.dog_keypoints`).
    n_bins : int
        Histogram bins over the full circle (Lowe: 36).
    window : float
        Standard deviation of the Gaussian weight in units of the point's scale (Lowe: 1.5).
    peak_ratio : float
        Peaks within this fraction of the highest give extra orientations (Lowe: 0.8).

    Returns
    -------
    index : (K,) int64 array
        Row of ``points`` each orientation belongs to, ascending; ``K >= N``, every point
        appears at least once, its strongest orientation first.
    orientation : (K,) float32 array
        Radians in ``[-pi, pi)``, ``arctan2(gy, gx)`` with y down.

    References
    ----------
    Lowe 2004, section 5.

    Examples
    --------
    >>> ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))  # brighter to the right
    >>> index, theta = dominant_orientations(ramp, [[32.0, 32.0]], [2.0])
    >>> index.tolist(), round(float(theta[0]), 3)
    ([0], 0.0)
    """
    check_scalar(peak_ratio, "peak_ratio", low=0, high=1)
    hist = orientation_histograms(image_or_pyramid, points, scales, n_bins=n_bins, window=window)
    return _k._peaks(hist, float(peak_ratio), _SMOOTH)


def assign_orientations(image_or_pyramid, keypoints, *, n_bins: int = 36, window: float = 1.5,
                        peak_ratio: float = 0.8) -> Keypoints:
    """``keypoints`` with their dominant orientations (Lowe 2004, section 5), one row per orientation.

    Parameters
    ----------
    image_or_pyramid : (H, W) array or GaussianPyramid
        As in :func:`dominant_orientations`; the pyramid the points were detected in is faster.
    keypoints : Keypoints
        Their ``scale`` sets the window; their ``orientation`` is replaced.
    n_bins, window, peak_ratio
        As in :func:`dominant_orientations`.

    Returns
    -------
    Keypoints
        ``K >= N`` rows: each keypoint repeated once per dominant orientation (strongest first),
        in input order; a point on a flat patch keeps orientation 0.

    Examples
    --------
    >>> from classicvision.features.keypoints import Keypoints
    >>> ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    >>> kp = assign_orientations(ramp, Keypoints.from_points([[32.0, 32.0]], scale=2.0))
    >>> len(kp), round(float(kp.orientation[0]), 3)
    (1, 0.0)
    """
    keypoints = check_keypoints(keypoints)
    index, theta = dominant_orientations(image_or_pyramid, keypoints.points, keypoints.scale, n_bins=n_bins,
                                         window=window, peak_ratio=peak_ratio)
    chosen = keypoints[index]
    return Keypoints(chosen.points, chosen.scale, theta, chosen.response)
