"""Scoring matches against ground truth: sparse clicked correspondences, a homography, a disparity map.

Every criterion has a ``*_correct`` function that returns one boolean per match, and an
``*_accuracy`` function that returns the fraction correct. Matches are ``(M, 2)`` integer index
pairs ``(i, j)`` into ``points1`` and ``points2``, sorted most confident first; points are
``(N, 2)`` arrays of ``(x, y)`` (x = column, y = row, origin at the top-left pixel centre).

Empty case: when no match is scored, every ``*_accuracy`` returns ``0.0`` (a matcher that finds
nothing has found nothing correct), never NaN; callers that need to tell "no matches" apart look
at the number of matches, or at the ``known`` mask of :func:`disparity_check`.

Criteria
--------
* :func:`ground_truth_correct`: the customary criterion of the "local feature matching" course
  exercise (``/work/shared/data/pairs/SOURCE.md``): map a match ``(xa, ya) -> (xb, yb)`` to full
  resolution (divide by ``scale``), find the ground-truth point ``(x1, y1)`` nearest to
  ``(xa, ya)`` in image 1; the match is correct when that point is within ``radius`` (150 px) and
  the offsets ``(xa - xb, ya - yb)`` and ``(x1 - x2, y1 - y2)`` differ by at most ``tolerance``
  (40 px in the course's MATLAB evaluation, 25 px in its Python port). Both bounds inclusive,
  as the MATLAB code (``dist > 150 || match_dist > 40`` is bad).
* :func:`homography_correct`: ``|H(p1) - p2| < tolerance`` (reprojection error, strict).
* :func:`disparity_correct` / :func:`disparity_check`: rectified stereo, the left point
  ``(x, y)`` should match ``(x - disparity[y, x], y)``; correct when the Euclidean error is at most
  ``tolerance`` (Middlebury's "bad 2.0" counts errors above 2 px as bad). Unknown truth
  (non-finite disparity, or a left point outside the map) is excluded from the accuracy.

References
----------
J. Hays, CS 143 / CS 6476 project 2 "Local feature matching", ``evaluate_correspondence.m``.
D. Scharstein and R. Szeliski, "A taxonomy and evaluation of dense two-frame stereo
correspondence algorithms", IJCV 47, 2002, section 5.1 (bad-pixel percentage).
R. Szeliski, *Computer Vision: Algorithms and Applications*, 2nd ed., 2022, section 7.1.3.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._validation import check_matches, check_points, check_scalar

__all__ = [
    "warp_points",
    "ground_truth_correct",
    "ground_truth_accuracy",
    "homography_correct",
    "homography_accuracy",
    "disparity_check",
    "disparity_correct",
    "disparity_accuracy",
]

_CHUNK_VALUES = 1 << 20  # distances held at once by ground_truth_correct (16 MiB of float64 pairs)


def _check_homography(H) -> np.ndarray:
    H = np.asarray(H)
    if H.dtype.kind not in "uif":
        raise TypeError(f"H must be numeric, got dtype {H.dtype}")
    if H.shape != (3, 3):
        raise ValueError(f"H must have shape (3, 3), got shape {H.shape}")
    H = H.astype(np.float64)
    if not np.isfinite(H).all():
        raise ValueError("H contains NaN or infinite values")
    return H


def _check_top(top):
    if top is not None:
        check_scalar(top, "top", kind=numbers.Integral, low=1)
    return top


def _fraction(correct: np.ndarray, top) -> float:
    correct = correct if top is None else correct[:top]
    return float(correct.mean()) if correct.size else 0.0


def _matched(points1, points2, matches):
    points1 = check_points(points1, "points1")
    points2 = check_points(points2, "points2")
    matches = check_matches(matches, len(points1), len(points2))
    return points1[matches[:, 0]].astype(np.float64), points2[matches[:, 1]].astype(np.float64)


def warp_points(points, H) -> np.ndarray:
    """Map ``(x, y)`` points through a homography, with the homogeneous divide.

    Parameters
    ----------
    points : (N, 2) array of (x, y)
    H : (3, 3) array
        Maps image-1 ``(x, y, 1)`` to image-2 homogeneous coordinates.

    Returns
    -------
    warped : (N, 2) float32 array of (x, y)
        Computed in float64; points sent to infinity (``w == 0``) come back as inf/NaN.

    References
    ----------
    R. Hartley and A. Zisserman, *Multiple View Geometry*, 2nd ed., 2004, section 2.3.

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[2.0, 0, 1], [0, 2.0, 0], [0, 0, 1]])
    >>> warp_points(np.array([[1.0, 1.0], [0.0, 3.0]]), H)
    array([[3., 2.],
           [1., 6.]], dtype=float32)
    """
    points = check_points(points, "points").astype(np.float64)
    H = _check_homography(H)
    projected = points @ H[:, :2].T + H[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        warped = projected[:, :2] / projected[:, 2:3]
    return warped.astype(np.float32)


def ground_truth_correct(points1, points2, matches, ground_truth, *, scale: float = 1.0,
                         radius: float = 150.0, tolerance: float = 40.0) -> np.ndarray:
    """Which matches agree with hand-clicked correspondences (the course's customary criterion).

    Parameters
    ----------
    points1, points2 : (N1, 2), (N2, 2) arrays of (x, y)
        Points in the images as matched, i.e. resized by ``scale``.
    matches : (M, 2) int array
        Index pairs into ``points1`` and ``points2``.
    ground_truth : (K, 4) array
        Columns ``x1, y1, x2, y2`` in full-resolution pixels (:func:`classicvision.datasets.load_pair`).
    scale : float
        Factor the images were resized by before matching; points are divided by it.
    radius : float
        A match farther than this (full-resolution px) from every ground-truth point is wrong.
    tolerance : float
        Largest accepted difference (px) between the match's offset and the nearest ground-truth
        point's offset: 40 (MATLAB evaluation) or 25 (Python port).

    Returns
    -------
    correct : (M,) bool array

    Notes
    -----
    For a match ``(xa, ya) -> (xb, yb)`` (after dividing by ``scale``) let ``g`` be the ground-truth
    row whose ``(x1, y1)`` is nearest to ``(xa, ya)`` (first row on ties). Correct iff
    ``|(xa, ya) - (x1, y1)| <= radius`` and
    ``|(xa - xb, ya - yb) - (x1 - x2, y1 - y2)| <= tolerance``.

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.array([[100, 100, 150, 90]], np.float32)      # offset (-50, 10)
    >>> p1 = np.array([[110, 100], [400, 100]], np.float32)
    >>> p2 = np.array([[160, 90], [450, 90]], np.float32)
    >>> ground_truth_correct(p1, p2, [[0, 0], [1, 1]], truth)    # second is 300 px from the truth
    array([ True, False])
    """
    check_scalar(scale, "scale", low=0.0, low_inclusive=False)
    check_scalar(radius, "radius", low=0.0)
    check_scalar(tolerance, "tolerance", low=0.0)
    ground_truth = np.asarray(ground_truth)
    if ground_truth.dtype.kind not in "uif":
        raise TypeError(f"ground_truth must be numeric, got dtype {ground_truth.dtype}")
    if ground_truth.ndim != 2 or ground_truth.shape[1] != 4:
        raise ValueError(f"ground_truth must have shape (K, 4) of x1, y1, x2, y2, got shape {ground_truth.shape}")
    if not np.isfinite(ground_truth).all():
        raise ValueError("ground_truth contains NaN or infinite values")
    a, b = _matched(points1, points2, matches)
    if len(a) == 0 or len(ground_truth) == 0:
        return np.zeros(len(a), bool)
    a /= scale
    b /= scale
    truth = ground_truth.astype(np.float64)
    nearest = np.empty(len(a), np.int64)
    near = np.empty(len(a), bool)
    chunk = max(1, _CHUNK_VALUES // len(truth))  # (chunk, K) distances at a time: bounded memory
    for start in range(0, len(a), chunk):
        block = a[start:start + chunk]
        d2 = ((block[:, None, :] - truth[None, :, :2]) ** 2).sum(axis=2)
        nearest[start:start + chunk] = np.argmin(d2, axis=1)
        near[start:start + chunk] = np.sqrt(d2[np.arange(len(block)), nearest[start:start + chunk]]) <= radius
    offset_truth = truth[nearest, :2] - truth[nearest, 2:]
    error = np.hypot(*((a - b) - offset_truth).T)
    return near & (error <= tolerance)


def ground_truth_accuracy(points1, points2, matches, ground_truth, *, scale: float = 1.0, top: int | None = 100,
                          radius: float = 150.0, tolerance: float = 40.0) -> float:
    """Fraction of the ``top`` most confident matches that :func:`ground_truth_correct` accepts.

    The denominator is ``min(top, M)`` (all ``M`` when ``top`` is None); ``0.0`` when there is no
    match. ``matches`` must be sorted most confident first, as :func:`match_descriptors` returns.

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.array([[100, 100, 150, 90]], np.float32)
    >>> p1 = np.array([[110, 100], [400, 100]], np.float32)
    >>> p2 = np.array([[160, 90], [450, 90]], np.float32)
    >>> ground_truth_accuracy(p1, p2, [[0, 0], [1, 1]], truth)
    0.5
    """
    top = _check_top(top)
    correct = ground_truth_correct(points1, points2, matches, ground_truth, scale=scale,
                                   radius=radius, tolerance=tolerance)
    return _fraction(correct, top)


def homography_correct(points1, points2, matches, H, *, tolerance: float = 3.0) -> np.ndarray:
    """Which matches land within ``tolerance`` pixels of where ``H`` sends their first point.

    Parameters
    ----------
    points1, points2 : (N1, 2), (N2, 2) arrays of (x, y)
    matches : (M, 2) int array
    H : (3, 3) array mapping image-1 (x, y) to image-2 (x, y)
    tolerance : float
        Correct iff the reprojection error ``|H(p1) - p2|`` is strictly below it (px).

    Returns
    -------
    correct : (M,) bool array

    Examples
    --------
    >>> import numpy as np
    >>> H = np.array([[1.0, 0, 10], [0, 1.0, 0], [0, 0, 1]])
    >>> p1 = np.array([[0, 0], [5, 5]], np.float32)
    >>> p2 = np.array([[11, 1], [20, 5]], np.float32)
    >>> homography_correct(p1, p2, [[0, 0], [1, 1]], H)
    array([ True, False])
    """
    check_scalar(tolerance, "tolerance", low=0.0)
    H = _check_homography(H)
    a, b = _matched(points1, points2, matches)
    projected = a @ H[:, :2].T + H[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.hypot(*(projected[:, :2] / projected[:, 2:3] - b).T)
    return np.nan_to_num(error, nan=np.inf) < tolerance


def homography_accuracy(points1, points2, matches, H, *, tolerance: float = 3.0, top: int | None = None) -> float:
    """Fraction of the first ``top`` matches (all when None) that :func:`homography_correct` accepts; 0.0 if none."""
    top = _check_top(top)
    return _fraction(homography_correct(points1, points2, matches, H, tolerance=tolerance), top)


def disparity_check(points1, points2, matches, disparity, *, tolerance: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Score matches on a rectified stereo pair: ``(correct, known)`` masks.

    Parameters
    ----------
    points1, points2 : (N1, 2), (N2, 2) arrays of (x, y) in the left and right images
    matches : (M, 2) int array
    disparity : (H, W) array
        Left-image disparity: left ``(x, y)`` shows the point seen at right ``(x - disparity[y, x], y)``
        (:func:`classicvision.datasets.stereo_pair`); non-finite where unknown.
    tolerance : float
        Correct iff the Euclidean error to the expected right point is at most ``tolerance`` px.

    Returns
    -------
    correct : (M,) bool array
        Known and within tolerance.
    known : (M,) bool array
        The left point rounds to a pixel inside the map (``floor(x + 0.5)``, ``floor(y + 0.5)``)
        whose disparity is finite. Unknown matches are neither correct nor counted by
        :func:`disparity_accuracy`.

    Examples
    --------
    >>> import numpy as np
    >>> disparity = np.full((4, 6), 2.0, np.float32); disparity[0, 0] = np.inf
    >>> left = np.array([[3, 1], [4, 2], [0, 0]], np.float32)
    >>> right = np.array([[1, 1], [5, 2], [0, 0]], np.float32)
    >>> disparity_check(left, right, [[0, 0], [1, 1], [2, 2]], disparity)
    (array([ True, False, False]), array([ True,  True, False]))
    """
    check_scalar(tolerance, "tolerance", low=0.0)
    disparity = np.asarray(disparity)
    if disparity.dtype.kind not in "uif":
        raise TypeError(f"disparity must be numeric, got dtype {disparity.dtype}")
    if disparity.ndim != 2:
        raise ValueError(f"disparity must be 2-D, got shape {disparity.shape}")
    a, b = _matched(points1, points2, matches)
    height, width = disparity.shape
    col = np.floor(a[:, 0] + 0.5).astype(np.int64)
    row = np.floor(a[:, 1] + 0.5).astype(np.int64)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    d = np.full(len(a), np.nan)
    d[inside] = disparity[row[inside], col[inside]]
    known = np.isfinite(d)
    error = np.hypot(a[:, 0] - d - b[:, 0], a[:, 1] - b[:, 1])
    correct = known & (np.nan_to_num(error, nan=np.inf) <= tolerance)
    return correct, known


def disparity_correct(points1, points2, matches, disparity, *, tolerance: float = 2.0) -> np.ndarray:
    """``(M,)`` bool: known and within ``tolerance`` (unknown truth reads False); see :func:`disparity_check`."""
    return disparity_check(points1, points2, matches, disparity, tolerance=tolerance)[0]


def disparity_accuracy(points1, points2, matches, disparity, *, tolerance: float = 2.0,
                       top: int | None = None) -> float:
    """Fraction correct among the first ``top`` matches whose truth is known (unknown excluded).

    ``0.0`` when none of them has a known disparity. Use :func:`disparity_check` for the counts.

    Examples
    --------
    >>> import numpy as np
    >>> disparity = np.full((4, 6), 2.0, np.float32); disparity[0, 0] = np.inf
    >>> left = np.array([[3, 1], [4, 2], [0, 0]], np.float32)
    >>> right = np.array([[1, 1], [5, 2], [0, 0]], np.float32)
    >>> disparity_accuracy(left, right, [[0, 0], [1, 1], [2, 2]], disparity)
    0.5
    """
    top = _check_top(top)
    correct, known = disparity_check(points1, points2, matches, disparity, tolerance=tolerance)
    if top is not None:
        correct, known = correct[:top], known[:top]
    n_known = int(known.sum())
    return float(correct.sum() / n_known) if n_known else 0.0
