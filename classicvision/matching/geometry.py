"""Geometric verification of matches: a robust homography or fundamental matrix and its inliers.

A ratio-test match list still holds outliers; the matches that agree with one geometric model
are far more likely right (Lowe 2004, section 7.3-7.4 uses a Hough transform then an affine
fit; today a robust sampler is the rule). :func:`verify_matches` fits

* ``model="homography"``: ``p2 ~ H p1``, a plane or a camera that only rotates (4 matches per
  sample); inliers have a reprojection error ``|H(p1) - p2|`` below ``threshold`` pixels;
* ``model="fundamental"``: ``p2^T F p1 = 0``, any rigid scene seen by two pinhole cameras
  (7/8 matches per sample); inliers are within ``threshold`` pixels of their epipolar line
  (Sampson distance).

The estimator is OpenCV's USAC with MAGSAC++ scoring (Barath et al. 2020), which marginalizes
over the noise scale so that ``threshold`` is an upper bound rather than a hard cut and the
result depends little on it, with local optimization and a final iteratively reweighted least
squares polish. Its random generator is seeded from ``random_state`` (``UsacParams``), so the
result is reproducible. ``method="ransac"`` selects OpenCV's classic RANSAC instead; its own
generator has a fixed seed, so ``random_state`` acts there by shuffling the order of the matches
(and the mask is returned in the input order).

Too few matches to fit the model (fewer than 4 for a homography, 8 for a fundamental matrix)
is an answer, not an error: every match is an outlier and the matrix is ``None``. So is a model
OpenCV could not find (degenerate configurations).

References
----------
M. A. Fischler and R. C. Bolles, "Random sample consensus", CACM 24(6), 1981.
D. Barath, J. Noskova, M. Ivashechkin and J. Matas, "MAGSAC++, a fast, reliable and accurate
robust estimator", CVPR 2020.
R. Hartley and A. Zisserman, *Multiple View Geometry*, 2nd ed., 2004, sections 4.7 and 11.6.
"""

from __future__ import annotations

import numbers

import cv2
import numpy as np

from .. import _limits
from .._validation import check_choice, check_matches, check_points, check_scalar

__all__ = ["MIN_MATCHES", "verify_matches"]

MIN_MATCHES = {"homography": 4, "fundamental": 8}
_METHODS = ("magsac", "ransac")


def _usac_params(model: str, threshold: float, confidence: float, max_iters: int, seed: int):
    params = cv2.UsacParams()
    params.threshold = float(threshold)
    params.confidence = float(confidence)
    params.maxIterations = int(max_iters)
    params.randomGeneratorState = int(seed)
    params.isParallel = False
    params.loMethod = cv2.LOCAL_OPTIM_SIGMA
    params.loIterations = 10
    params.loSampleSize = 7 * MIN_MATCHES[model] if model == "homography" else 7 * 8
    params.score = cv2.SCORE_METHOD_MAGSAC
    params.sampler = cv2.SAMPLING_UNIFORM
    params.final_polisher = cv2.MAGSAC
    params.final_polisher_iterations = 10
    params.neighborsSearch = cv2.NEIGH_GRID
    return params


def verify_matches(points1, points2, matches, *, model: str = "homography", threshold: float = 3.0,
                   confidence: float = 0.999, max_iters: int = 2000, random_state: int | None = 0,
                   method: str = "magsac") -> tuple[np.ndarray, np.ndarray | None]:
    """Inliers of a robustly fitted homography or fundamental matrix.

    Parameters
    ----------
    points1, points2 : (N1, 2), (N2, 2) arrays of (x, y)
        Points in image 1 and image 2.
    matches : (M, 2) int array
        Index pairs into ``points1`` and ``points2``.
    model : {'homography', 'fundamental'}
        The geometric relation to fit (module docstring).
    threshold : float
        Inlier bound in pixels: reprojection error (homography) or distance to the epipolar
        line (fundamental).
    confidence : float
        Probability of having drawn one outlier-free sample when the sampler stops, in (0, 1).
    max_iters : int
        Most samples drawn, at most :data:`classicvision._limits.MAX_ITERATIONS` (``10**6``).
    random_state : int or None
        Seed of the sampler; None means 0 (the result is always reproducible).
    method : {'magsac', 'ransac'}
        OpenCV's USAC with MAGSAC++ scoring (default) or classic RANSAC.

    Returns
    -------
    inliers : (M,) bool array
        Aligned with ``matches``; all False when the model could not be fitted.
    matrix : (3, 3) float64 array or None
        ``H`` (maps image-1 ``(x, y, 1)`` to image 2) or ``F`` (``p2^T F p1 = 0``); None when
        there are fewer than :data:`MIN_MATCHES` ``[model]`` matches or no model was found.

    References
    ----------
    Fischler & Bolles 1981; Barath et al. 2020 (MAGSAC++); Hartley & Zisserman 2004, 4.7, 11.6.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p1 = rng.uniform(0, 100, (30, 2)).astype(np.float32)
    >>> p2 = p1 + np.float32([5, -3])  # a pure translation
    >>> p2[:5] = rng.uniform(0, 100, (5, 2))  # five outliers
    >>> m = np.stack([np.arange(30), np.arange(30)], axis=1)
    >>> inliers, H = verify_matches(p1, p2, m)
    >>> int(inliers.sum()), bool(inliers[:5].any()), np.allclose(H, [[1, 0, 5], [0, 1, -3], [0, 0, 1]], atol=1e-3)
    (25, False, True)
    """
    check_choice(model, "model", tuple(MIN_MATCHES))
    check_choice(method, "method", _METHODS)
    check_scalar(threshold, "threshold", low=0, low_inclusive=False)
    check_scalar(confidence, "confidence", low=0, high=1, low_inclusive=False, high_inclusive=False)
    check_scalar(max_iters, "max_iters", kind=numbers.Integral, low=1)
    _limits.check_limit(max_iters, "MAX_ITERATIONS", f"max_iters={max_iters!r} samples",
                        "pass fewer (OpenCV's default is 2000)")
    if random_state is not None:
        check_scalar(random_state, "random_state", kind=numbers.Integral, low=0)
    points1 = check_points(points1, "points1")
    points2 = check_points(points2, "points2")
    matches = check_matches(matches, len(points1), len(points2))
    inliers = np.zeros(len(matches), bool)
    if len(matches) < MIN_MATCHES[model]:
        return inliers, None
    src = np.ascontiguousarray(points1[matches[:, 0]], np.float64)
    dst = np.ascontiguousarray(points2[matches[:, 1]], np.float64)
    seed = 0 if random_state is None else int(random_state)
    try:
        if method == "magsac":
            params = _usac_params(model, threshold, confidence, max_iters, seed)
            if model == "homography":
                matrix, mask = cv2.findHomography(src, dst, params)
            else:
                matrix, mask = cv2.findFundamentalMat(src, dst, params)
        else:
            # OpenCV's classic RANSAC draws from a generator of its own with a fixed seed
            # (cv2.setRNGSeed does not reach it, and would change global state): the seed acts
            # through the order of the matches instead, undone on the mask.
            order = np.random.RandomState(seed).permutation(len(matches))
            src, dst = src[order], dst[order]
            if model == "homography":
                matrix, mask = cv2.findHomography(src, dst, cv2.RANSAC, float(threshold), maxIters=int(max_iters),
                                                  confidence=float(confidence))
            else:
                matrix, mask = cv2.findFundamentalMat(src, dst, cv2.FM_RANSAC, float(threshold),
                                                      float(confidence), int(max_iters))
            if mask is not None:
                unpermuted = np.empty_like(mask.ravel())
                unpermuted[order] = mask.ravel()
                mask = unpermuted
    except cv2.error:
        return inliers, None
    if matrix is None or mask is None or matrix.shape != (3, 3) or not np.isfinite(matrix).all():
        return inliers, None
    return mask.ravel().astype(bool), np.asarray(matrix, np.float64)
