"""Scale- and rotation-invariant features end to end: DoG points, orientations, SIFT, matches.

Pipeline (Lowe 2004, sections 3-7):

1. :func:`classicvision.scale_space.gaussian_pyramid` and
   :func:`~classicvision.scale_space.dog_extrema`: DoG keypoints with their scale ``sigma``; the
   ``max_points`` of largest ``|D(x^)|`` are kept.
2. :func:`classicvision.orientation.dominant_orientations` on the same pyramid (or 0 for every
   point with ``upright=True``); a point with several dominant orientations gives several rows.
3. :func:`classicvision.sift.sift_descriptors` on the Gaussian image of the pyramid whose blur
   matches the point's scale (:func:`~classicvision.scale_space.level_of_scale`), with the point
   and its support converted to that level's pixels and the frame rotated by the orientation.
   The support side is ``4 cells x 3 sigma`` (Lowe's magnification factor 3 per cell, so
   ``12 sigma``; OpenCV's ``SIFT_DESCR_SCL_FCTR``), which makes the descriptor scale invariant.
   The level is already blurred to the point's scale, so no extra smoothing is applied
   (``sigma=0``), as in Lowe's and OpenCV's implementations.
4. :func:`classicvision.matching.match_descriptors` (ratio test) and, optionally,
   :func:`classicvision.geometry.verify_matches`.

References
----------
D. G. Lowe, "Distinctive image features from scale-invariant keypoints", IJCV 60(2), 2004.
K. Mikolajczyk and C. Schmid, "Scale & affine invariant interest point detectors", IJCV 60(1),
2004 (scale selection, repeatability under rotation and scale).
"""

from __future__ import annotations

import numbers
import time
from typing import NamedTuple

import numpy as np

from ._sift_kernels import _describe as _describe_kernel
from ._sift_kernels import _orientation_field
from ._validation import check_choice, check_image, check_scalar
from .geometry import verify_matches
from .matching import match_descriptors
from .orientation import dominant_orientations
from .scale_space import _strongest, dog_extrema, gaussian_pyramid, level_of_scale
from .sift import _normalize

__all__ = ["DESCRIPTOR_MAGNIFICATION", "InvariantMatches", "detect_and_describe_invariant",
           "match_images_invariant"]

DESCRIPTOR_MAGNIFICATION = 3.0  # cell side in units of sigma (Lowe 2004, section 6.1; OpenCV)
_N_CELLS = 4


class InvariantMatches(NamedTuple):
    """The result of :func:`match_images_invariant`: :class:`classicvision.pipeline.PairMatches`'s
    fields, then the verification and the points' frames.

    Attributes
    ----------
    points1, points2 : (N1, 2), (N2, 2) float32 arrays of (x, y)
        One row per (point, orientation), strongest ``|DoG|`` first.
    matches : (M, 2) int64 array
        Index pairs into ``points1`` and ``points2``, most confident first.
    confidence : (M,) float32 array
        ``1 - d1 / d2`` of the ratio test, non-increasing.
    seconds : dict of str to float
        Wall time of ``detect``, ``orient``, ``describe`` (both images), ``match``, ``verify``, ``total``.
    inliers : (M,) bool array or None
        Matches consistent with the verified model; None when ``verify`` is None.
    matrix : (3, 3) float64 array or None
        The fitted homography or fundamental matrix; None when not verified or not found.
    scales1, scales2 : (N1,), (N2,) float32 arrays
        Sigma of each point in input pixels.
    orientations1, orientations2 : (N1,), (N2,) float32 arrays
        Radians, ``arctan2(gy, gx)`` with y down.
    """

    points1: np.ndarray
    points2: np.ndarray
    matches: np.ndarray
    confidence: np.ndarray
    seconds: dict
    inliers: np.ndarray | None
    matrix: np.ndarray | None
    scales1: np.ndarray
    scales2: np.ndarray
    orientations1: np.ndarray
    orientations2: np.ndarray


def _add(seconds, key, start):
    now = time.perf_counter()
    if seconds is not None:
        seconds[key] = seconds.get(key, 0.0) + now - start
    return now


def _describe(pyramid, points, scales, orientations, rootsift):
    """SIFT descriptors (as :func:`classicvision.sift.sift_descriptors` with ``sigma=0``): one
    gradient field and one kernel call per pyramid level that holds points, one normalization."""
    raw = np.zeros((len(points), _N_CELLS * _N_CELLS * 8), np.float32)
    octaves, levels = level_of_scale(pyramid, scales)
    key = octaves * (pyramid.n_scales + 3) + levels
    for k in np.unique(key):
        rows = np.flatnonzero(key == k)
        o, level = divmod(int(k), pyramid.n_scales + 3)
        factor = np.float32(pyramid.octave_factor(o))
        magnitude, bins = _orientation_field(pyramid.octaves[o][level], 8)
        xy = (points[rows] / factor).astype(np.float64)
        size = ((_N_CELLS * DESCRIPTOR_MAGNIFICATION) * scales[rows] / factor).astype(np.float32)
        raw[rows] = _describe_kernel(magnitude, bins, xy[:, 0], xy[:, 1], size.astype(np.float64),
                                     orientations[rows].astype(np.float64), _N_CELLS, 8)
    return _normalize(raw, 0.2, rootsift)


def detect_and_describe_invariant(image, *, max_points: int | None = None, upright: bool = False,
                                  rootsift: bool = False, contrast_threshold: float = 0.03,
                                  edge_threshold: float = 10.0, upsample: bool = True,
                                  seconds: dict | None = None):
    """DoG keypoints, their dominant orientations and SIFT descriptors (Lowe 2004).

    Parameters
    ----------
    image : (H, W) array (uint8, uint16 or float)
    max_points : int or None
        Keypoints kept (largest ``|DoG|``) before orientation assignment; a point with several
        orientations then gives several rows. None keeps all.
    upright : bool
        Skip orientation assignment (every orientation 0): more distinctive when the images are
        known not to rotate, not rotation invariant.
    rootsift : bool
        RootSIFT descriptors (Arandjelovic & Zisserman 2012).
    contrast_threshold, edge_threshold, upsample
        As in :func:`classicvision.scale_space.dog_keypoints`.
    seconds : dict or None
        When given, wall times of ``detect``, ``orient`` and ``describe`` are added to it.

    Returns
    -------
    points : (N, 2) float32 array of (x, y) in input pixels
    scales : (N,) float32 array, sigma in input pixels
    orientations : (N,) float32 array, radians
    descriptors : (N, 128) float32 array

    Examples
    --------
    >>> from skimage import data
    >>> points, scales, theta, d = detect_and_describe_invariant(data.camera()[::2, ::2], max_points=50)
    >>> points.shape[1], d.shape[1], len(points) >= 50, points.dtype == d.dtype == np.float32
    (2, 128, True, True)
    """
    image = check_image(image)
    if max_points is not None:
        check_scalar(max_points, "max_points", kind=numbers.Integral, low=1)
    start = time.perf_counter()
    pyramid = gaussian_pyramid(image, upsample=upsample)
    found = dog_extrema(pyramid, contrast_threshold=contrast_threshold, edge_threshold=edge_threshold)
    keep = _strongest(found.responses, max_points)
    points, scales = found.points[keep], found.scales[keep]
    start = _add(seconds, "detect", start)
    if upright:
        index, orientations = np.arange(len(points)), np.zeros(len(points), np.float32)
    else:
        index, orientations = dominant_orientations(pyramid, points, scales)
    points, scales = points[index], scales[index]
    start = _add(seconds, "orient", start)
    descriptors = _describe(pyramid, points, scales, orientations, rootsift)
    _add(seconds, "describe", start)
    return points, scales, orientations, descriptors


def match_images_invariant(image1, image2, *, max_points: int | None = None, max_ratio: float = 0.8,
                           cross_check: bool = False, upright: bool = False, rootsift: bool = False,
                           upsample: bool = True,
                           verify: str | None = None, threshold: float = 3.0,
                           random_state: int | None = 0) -> InvariantMatches:
    """Match two images with DoG points, dominant orientations, SIFT and the ratio test.

    Parameters
    ----------
    image1, image2 : (H, W) arrays (uint8, uint16 or float)
    max_points, upright, rootsift, upsample
        As in :func:`detect_and_describe_invariant`.
    max_ratio : float
        Ratio-test threshold (Lowe 2004, section 7.1: 0.8).
    cross_check : bool
        Keep only mutual nearest neighbours.
    verify : {None, 'homography', 'fundamental'}
        Fit this model to the matches with :func:`classicvision.geometry.verify_matches`.
    threshold : float
        Inlier bound in pixels for ``verify``.
    random_state : int or None
        Seed of the robust estimator.

    Returns
    -------
    InvariantMatches
    """
    image1 = check_image(image1, "image1")
    image2 = check_image(image2, "image2")
    if verify is not None:
        check_choice(verify, "verify", ("homography", "fundamental"))
    seconds: dict = {}
    start = time.perf_counter()
    options = dict(max_points=max_points, upright=upright, rootsift=rootsift, upsample=upsample, seconds=seconds)
    points1, scales1, theta1, descriptors1 = detect_and_describe_invariant(image1, **options)
    points2, scales2, theta2, descriptors2 = detect_and_describe_invariant(image2, **options)
    middle = time.perf_counter()
    matches, confidence = match_descriptors(descriptors1, descriptors2, max_ratio=max_ratio,
                                            cross_check=cross_check)
    middle = _add(seconds, "match", middle)
    inliers = matrix = None
    if verify is not None:
        inliers, matrix = verify_matches(points1, points2, matches, model=verify, threshold=threshold,
                                         random_state=random_state)
        _add(seconds, "verify", middle)
    seconds["total"] = time.perf_counter() - start
    return InvariantMatches(points1, points2, matches, confidence, seconds, inliers, matrix,
                            scales1, scales2, theta1, theta2)
