"""Hessian-Laplace and Harris-Laplace points, affine shape adaptation and normalised patches.

Algorithm
---------
1. **Scales.** ``sigma_n = sigma0 * xi**n`` (``sigma0 = 1.6``, ``xi = 2**(1/3)``) up to
   ``MAX_SCALE = 16`` px, while ``8 sigma_n`` fits in the image. At each scale the image is blurred by ``sigma_n`` and its
   second derivatives taken by central differences (Mikolajczyk & Schmid 2004, section 3).
2. **Responses, scale-normalised** (Lindeberg 1998): the Hessian determinant
   ``sigma**4 (Lxx Lyy - Lxy**2)`` (Hessian-Laplace), or Harris
   ``sigma_D**4 (det mu - 0.04 trace(mu)**2)`` of the second-moment matrix ``mu`` of gradients
   at ``sigma_D = 0.7 sigma`` integrated by a Gaussian of ``sigma`` (Harris-Laplace).
3. **Points**: 3x3 spatial maxima of the response above ``threshold``, refined to sub-pixel by a
   quadratic fit, kept when the scale-normalised Laplacian ``sigma**2 |Lxx + Lyy|`` at the point
   is larger than at the two neighbouring scales: ``sigma_n`` is the characteristic scale
   (section 3.2).
4. **Affine shape adaptation** (Lindeberg & Garding 1997; Baumberg 2000; Mikolajczyk & Schmid
   2004, section 4): a shape ``S`` (2x2, ``det S = 1``; the image region is ``x + s S p`` for
   patch coordinates ``p``, ``s = sigma / PATCH_SIGMA``) starts at the identity. Each step
   samples the patch (bilinear, from the image halved ``o`` times so the patch never
   undersamples by more than 2), smooths it by ``0.7 PATCH_SIGMA``, forms the second-moment
   matrix ``mu`` of its gradients under a Gaussian window of ``PATCH_SIGMA`` and sets
   ``S <- (S mu**-1/2 (S mu**-1/2)^T)**1/2`` (the ellipse ``S S^T`` updated, renormalised to
   ``det = 1``). It stops when ``lambda_min(mu) / lambda_max(mu) >= 1 - tolerance``, and a point
   whose ``S`` becomes more anisotropic than ``max_anisotropy`` or does not converge in
   ``max_iter`` steps is dropped. Location and scale stay the detector's (the shape-only
   iteration of Baumberg 2000, not the full re-detection of Mikolajczyk & Schmid). The patch is
   read from a halving whose own blur (``b``, about 1 px) is isotropic in the image, which biases
   ``S S^T`` towards the identity by about ``(b / sigma)**2`` (measured: under 1% on a blob of
   axes 8 x 4 px, 7% on the short axis of 9 x 3 px).
5. **Normalised patch and descriptor**: each adapted point is resampled through ``S`` onto a
   ``(2 PATCH_RADIUS + 1)``-pixel tile of isotropic scale ``PATCH_SIGMA``; all tiles go in one
   mosaic, whose one-octave Gaussian pyramid gives the dominant orientations
   (:func:`~classicvision.features.orientation.dominant_orientations`) and the SIFT descriptors
   (:func:`~classicvision.features.sift.sift_descriptors`) of the tile centres in one call each.
   The orientation is mapped back into the image through ``S``.

References
----------
K. Mikolajczyk and C. Schmid, "Scale & affine invariant interest point detectors", IJCV 60(1),
2004, sections 3-4.
T. Lindeberg and J. Garding, "Shape-adapted smoothing in estimation of 3-D shape cues from affine
deformations of local 2-D brightness structure", Image and Vision Computing 15(6), 1997.
A. Baumberg, "Reliable feature matching across widely separated views", CVPR 2000.
T. Lindeberg, "Feature detection with automatic scale selection", IJCV 30(2), 1998.
"""

from __future__ import annotations

import math
import numbers
import time

import cv2
import numpy as np

from .._validation import check_choice, check_image, check_scalar
from ._gaussian import cached_gaussian_kernel1d
from .keypoints import Keypoints, check_keypoints, wrap_angle
from .orientation import dominant_orientations
from .scale_space import gaussian_pyramid
from .sift import sift_descriptors

__all__ = ["AFFINE_DETECTORS", "PATCH_SIGMA", "PATCH_RADIUS", "hessian_laplace", "harris_laplace",
           "adapt_affine_shape", "normalized_patches", "detect_and_describe_affine"]

AFFINE_DETECTORS = ("hessian-affine", "harris-affine")
#: Scale in pixels of a point on its normalised patch.
PATCH_SIGMA = 2.0
#: Half side of a normalised patch: the SIFT support (12 PATCH_SIGMA, reaching 15 PATCH_SIGMA / 2 with
#: its half cell) turned by any angle stays on its own tile (21.2 px < 22).
PATCH_RADIUS = 22
#: Largest detection scale (sigma, px): beyond it the blurs cost more than the few points they add.
MAX_SCALE = 16.0
_XI = 2.0 ** (1.0 / 3.0)
_SIGMA0 = 1.6
_ADAPT_RADIUS = 8            # patch half side during adaptation: 3 PATCH_SIGMA + the derivative blur
_DIFFERENTIATION = 0.7       # sigma_D / sigma_I (Mikolajczyk & Schmid 2004: 0.5 to 0.75)
#: Default thresholds on the scale-normalised responses (images in [0, 1]; chosen on the embedded
#: camera image: about 1500 Hessian points, as many as DoG; Harris-Laplace keeps far fewer, about 300,
#: because few corners have a Laplacian extremum over scale).
THRESHOLDS = {"hessian": 5e-4, "harris": 1e-8}


def _blur(image, sigma):
    g = cached_gaussian_kernel1d(float(sigma))
    return cv2.sepFilter2D(image, cv2.CV_32F, g, g, borderType=cv2.BORDER_REFLECT_101)


def _second_derivatives(blurred):
    p = np.pad(blurred, 1, mode="reflect")
    lxx = p[1:-1, 2:] - 2 * p[1:-1, 1:-1] + p[1:-1, :-2]
    lyy = p[2:, 1:-1] - 2 * p[1:-1, 1:-1] + p[:-2, 1:-1]
    lxy = 0.25 * (p[2:, 2:] - p[2:, :-2] - p[:-2, 2:] + p[:-2, :-2])
    return lxx, lyy, lxy


def _response(image, sigma, kind):
    """(response, normalised Laplacian) maps at ``sigma``."""
    lxx, lyy, lxy = _second_derivatives(_blur(image, sigma))
    laplacian = np.abs(lxx + lyy) * np.float32(sigma ** 2)
    if kind == "hessian":
        return (lxx * lyy - lxy * lxy) * np.float32(sigma ** 4), laplacian
    sd = _DIFFERENTIATION * sigma
    smooth = _blur(image, sd)
    gy, gx = np.gradient(smooth)
    a, b, c = (_blur(v, sigma) for v in (gx * gx, gx * gy, gy * gy))
    return (a * c - b * b - 0.04 * (a + c) ** 2) * np.float32(sd ** 4), laplacian


def _laplace_points(image, kind, threshold, max_points):
    height, width = image.shape
    top = min(MAX_SCALE, min(height, width) / 8)
    n_scales = max(3, int(math.floor(math.log(top / _SIGMA0) / math.log(_XI) + 1e-9)) + 1)
    sigmas = _SIGMA0 * _XI ** np.arange(n_scales)
    maps = [_response(image, s, kind) for s in sigmas]
    found = []
    for n in range(1, n_scales - 1):
        r, lap = maps[n]
        peak = (r > threshold) & (r == cv2.dilate(r, np.ones((3, 3), np.uint8)))
        peak[:2], peak[-2:], peak[:, :2], peak[:, -2:] = False, False, False, False
        peak &= (lap > maps[n - 1][1]) & (lap > maps[n + 1][1])
        y, x = np.nonzero(peak)
        if not len(x):
            continue
        # quadratic sub-pixel fit of the response along x and y
        dx = 0.5 * (r[y, x + 1] - r[y, x - 1])
        dy = 0.5 * (r[y + 1, x] - r[y - 1, x])
        dxx = r[y, x + 1] - 2 * r[y, x] + r[y, x - 1]
        dyy = r[y + 1, x] - 2 * r[y, x] + r[y - 1, x]
        ox = np.clip(-dx / np.where(dxx < 0, dxx, -np.inf), -0.5, 0.5)
        oy = np.clip(-dy / np.where(dyy < 0, dyy, -np.inf), -0.5, 0.5)
        found.append(np.stack([x + ox, y + oy, np.full(len(x), sigmas[n]), r[y, x]], axis=1))
    if not found:
        return Keypoints.empty()
    rows = np.concatenate(found).astype(np.float32)
    return Keypoints(rows[:, :2].copy(), rows[:, 2].copy(), np.zeros(len(rows), np.float32),
                     rows[:, 3].copy()).strongest(max_points)


def _check_detector_args(threshold, max_points):
    check_scalar(threshold, "threshold", low=0)
    if max_points is not None:
        check_scalar(max_points, "max_points", kind=numbers.Integral, low=1)


def hessian_laplace(image, *, threshold: float = THRESHOLDS["hessian"], max_points: int | None = None) -> Keypoints:
    """Hessian-Laplace points: Hessian-determinant maxima at their Laplacian scale (module steps 1-3).

    Parameters
    ----------
    image : (H, W) array (uint8, uint16 or float in [0, 1])
    threshold : float
        Smallest scale-normalised determinant ``sigma**4 det H`` (intensities in [0, 1]).
    max_points : int or None
        Keep the strongest.

    Returns
    -------
    Keypoints
        ``points`` (x, y) in input pixels, ``scale`` the characteristic sigma, orientation 0,
        ``response`` the normalised determinant; strongest first.

    References
    ----------
    Mikolajczyk & Schmid 2004, section 3; Lindeberg 1998.

    Examples
    --------
    >>> yy, xx = np.mgrid[:64, :64]
    >>> blob = np.exp(-((xx - 30.0) ** 2 + (yy - 33.0) ** 2) / (2 * 4.0 ** 2)).astype(np.float32)
    >>> kp = hessian_laplace(blob)
    >>> np.round(kp.points[0]).tolist(), bool(3.0 < kp.scale[0] < 5.5)
    ([30.0, 33.0], True)
    """
    image = check_image(image, check_range=True, min_size=16)
    _check_detector_args(threshold, max_points)
    return _laplace_points(image, "hessian", float(threshold), max_points)


def harris_laplace(image, *, threshold: float = THRESHOLDS["harris"], max_points: int | None = None) -> Keypoints:
    """Harris-Laplace points: multi-scale Harris maxima at their Laplacian scale (module steps 1-3).

    Parameters and Returns as :func:`hessian_laplace`; ``threshold`` applies to the normalised
    Harris response ``sigma_D**4 (det mu - 0.04 trace(mu)**2)``.

    Notes
    -----
    An ideal corner has no characteristic scale (its Laplacian decreases with scale), so the
    points kept are corners of structures of some size, and blob centres.

    Examples
    --------
    >>> yy, xx = np.mgrid[:64, :64]
    >>> blob = np.exp(-((xx - 30.0) ** 2 + (yy - 33.0) ** 2) / (2 * 4.0 ** 2)).astype(np.float32)
    >>> kp = harris_laplace(blob)
    >>> np.round(kp.points[0]).tolist(), bool(3.0 < kp.scale[0] < 5.5)
    ([30.0, 33.0], True)
    """
    image = check_image(image, check_range=True, min_size=16)
    _check_detector_args(threshold, max_points)
    return _laplace_points(image, "harris", float(threshold), max_points)


def _halvings(image, n):
    """The image and ``n`` successive halvings (blur 0.8, then 2x2 box average)."""
    levels = [image]
    for _ in range(n):
        previous = levels[-1]
        if min(previous.shape) < 4:
            break
        levels.append(cv2.resize(_blur(previous, 0.8), (previous.shape[1] // 2, previous.shape[0] // 2),
                                 interpolation=cv2.INTER_AREA))
    return levels


def _sample(levels, centers, steps, shapes, radius):
    """Patches ``(N, 2r+1, 2r+1)``: ``patch[i][v, u] = image(centers[i] + steps[i] shapes[i] (u, v))``,
    read bilinearly from the halving of the image that undersamples it by 2 to 4 along the most
    stretched axis (the less blurred, the less biased ``mu``; the patch is smoothed afterwards)."""
    side = 2 * radius + 1
    grid = np.arange(-radius, radius + 1, dtype=np.float64)
    u, v = np.meshgrid(grid, grid)
    n = len(centers)
    patches = np.zeros((n, side, side), np.float32)
    if not n:
        return patches
    stretch = steps * np.linalg.norm(shapes, ord=2, axis=(1, 2))
    octave = np.clip(np.floor(np.log2(np.maximum(stretch, 1.0))) - 1, 0, len(levels) - 1).astype(int)
    M = shapes * steps[:, None, None]
    x = centers[:, 0, None, None] + M[:, 0, 0, None, None] * u + M[:, 0, 1, None, None] * v
    y = centers[:, 1, None, None] + M[:, 1, 0, None, None] * u + M[:, 1, 1, None, None] * v
    for o in np.unique(octave):
        rows = np.flatnonzero(octave == o)
        f = 2.0 ** o
        map_x = ((x[rows] + 0.5) / f - 0.5).astype(np.float32).reshape(-1, side)
        map_y = ((y[rows] + 0.5) / f - 0.5).astype(np.float32).reshape(-1, side)
        patches[rows] = cv2.remap(levels[o], map_x, map_y, cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT_101).reshape(len(rows), side, side)
    return patches


def _sqrtm_sym(a, b, c, power):
    """``[[a, b], [b, c]] ** power`` of symmetric positive 2x2 matrices, batched; (N, 2, 2)."""
    mean, diff = 0.5 * (a + c), np.sqrt(0.25 * (a - c) ** 2 + b * b)
    l1, l2 = mean + diff, np.maximum(mean - diff, 1e-300)
    theta = 0.5 * np.arctan2(2 * b, a - c)
    cos, sin = np.cos(theta), np.sin(theta)
    p1, p2 = l1 ** power, l2 ** power
    return np.stack([np.stack([p1 * cos ** 2 + p2 * sin ** 2, (p1 - p2) * cos * sin], -1),
                     np.stack([(p1 - p2) * cos * sin, p1 * sin ** 2 + p2 * cos ** 2], -1)], -2)


def _smoothing_matrix(side: int, sigma: float) -> np.ndarray:
    """``K`` (side, side) such that ``K @ row`` is the Gaussian smoothing of a row (reflect-101
    border, as ``cv2.sepFilter2D``), so that ``K @ P @ K.T`` smooths a batch of patches at once."""
    g = cached_gaussian_kernel1d(float(sigma)).astype(np.float64)
    half = g.size // 2
    K = np.zeros((side, side))
    for i in range(side):
        for k, w in enumerate(g):
            j = i + k - half
            j = -j if j < 0 else (2 * (side - 1) - j if j >= side else j)
            K[i, min(max(j, 0), side - 1)] += w
    return K


def _second_moment(patches):
    """``(a, b, c)`` of the Gaussian-weighted second-moment matrix of each patch's gradients:
    the patch smoothed by ``0.7 PATCH_SIGMA``, central differences, a window of ``PATCH_SIGMA``."""
    side = patches.shape[1]
    K = _smoothing_matrix(side, _DIFFERENTIATION * PATCH_SIGMA)
    smooth = K @ patches.astype(np.float64) @ K.T
    gy, gx = np.gradient(smooth, axis=(1, 2))
    grid = np.arange(side, dtype=np.float64) - side // 2
    w1 = np.exp(-grid ** 2 / (2 * PATCH_SIGMA ** 2))
    w = (w1[:, None] * w1[None, :])[None]
    return (w * gx * gx).sum((1, 2)), (w * gx * gy).sum((1, 2)), (w * gy * gy).sum((1, 2))


def _adapt(image, keypoints, max_iter, max_anisotropy, tolerance):
    n = len(keypoints)
    shapes = np.repeat(np.eye(2)[None], n, axis=0)
    active = np.arange(n)
    done = np.zeros(n, bool)
    centers = keypoints.points.astype(np.float64)
    steps = keypoints.scale.astype(np.float64) / PATCH_SIGMA
    levels = _halvings(image, 8)
    for _ in range(max_iter):
        if not len(active):
            break
        a, b, c = _second_moment(_sample(levels, centers[active], steps[active], shapes[active], _ADAPT_RADIUS))
        mean, diff = 0.5 * (a + c), np.sqrt(0.25 * (a - c) ** 2 + b * b)
        valid = mean - diff > 1e-12
        ratio = np.where(valid, (mean - diff) / np.maximum(mean + diff, 1e-300), 0.0)
        converged = valid & (ratio >= 1.0 - tolerance)
        done[active[converged]] = True
        move = valid & ~converged
        rows = active[move]
        root = _sqrtm_sym(a[move], b[move], c[move], -0.5)
        S = shapes[rows] @ root
        E = S @ np.transpose(S, (0, 2, 1))
        E /= np.sqrt(np.linalg.det(E))[:, None, None]
        shapes[rows] = _sqrtm_sym(E[:, 0, 0], E[:, 0, 1], E[:, 1, 1], 0.5)
        singular = np.linalg.svd(shapes[rows], compute_uv=False)
        fine = singular[:, 0] / singular[:, 1] <= max_anisotropy
        active = rows[fine]
    return np.flatnonzero(done), shapes


def adapt_affine_shape(image, keypoints, *, max_iter: int = 16, max_anisotropy: float = 8.0,
                       tolerance: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Affine shapes of ``keypoints`` by the second-moment iteration (module step 4).

    Parameters
    ----------
    image : (H, W) array (uint8, uint16 or float in [0, 1])
    keypoints : Keypoints
        Points (x, y) and scales (sigma, input pixels), e.g. of :func:`hessian_laplace`.
    max_iter : int
        Steps before a point is given up.
    max_anisotropy : float
        Largest ratio of the singular values of ``S`` (Mikolajczyk & Schmid reject beyond
        about 6-10; a tilt beyond it is left to view synthesis).
    tolerance : float
        Converged when ``lambda_min / lambda_max >= 1 - tolerance`` (0.05, their 0.95).

    Returns
    -------
    index : (K,) int64 array
        Rows of ``keypoints`` that converged, increasing.
    shapes : (K, 2, 2) float32 array
        Their ``S``: symmetric positive, ``det S = 1``; the normalised patch is
        ``image(x + (sigma / PATCH_SIGMA) S p)``.

    References
    ----------
    Mikolajczyk & Schmid 2004, section 4; Baumberg 2000; Lindeberg & Garding 1997.

    Examples
    --------
    >>> yy, xx = np.mgrid[:96, :96] - 48.0
    >>> blob = np.exp(-(xx ** 2 / (2 * 8.0 ** 2) + yy ** 2 / (2 * 4.0 ** 2))).astype(np.float32)
    >>> index, S = adapt_affine_shape(blob, Keypoints.from_points([[48.0, 48.0]], scale=5.0))
    >>> E = S[0] @ S[0].T                                      # the ellipse: axes ratio 2 = 8 / 4
    >>> index.tolist(), np.round(np.diag(E), 1).tolist(), bool(abs(E[0, 1]) < 1e-3)
    ([0], [2.0, 0.5], True)
    """
    image = check_image(image, check_range=True)
    keypoints = check_keypoints(keypoints)
    check_scalar(max_iter, "max_iter", kind=numbers.Integral, low=1)
    check_scalar(max_anisotropy, "max_anisotropy", low=1.0)
    check_scalar(tolerance, "tolerance", low=0, high=1, low_inclusive=False)
    index, shapes = _adapt(image, keypoints, int(max_iter), float(max_anisotropy), float(tolerance))
    return index.astype(np.int64), shapes[index].astype(np.float32)


def normalized_patches(image, keypoints, shapes, *, radius: int = PATCH_RADIUS) -> np.ndarray:
    """Patches ``(N, 2 radius + 1, 2 radius + 1)`` float32 of each point through its shape ``S``:
    ``patch[v, u] = image(x + (sigma / PATCH_SIGMA) S (u, v))``, the point at the centre with scale
    :data:`PATCH_SIGMA` (module step 5). ``shapes``: (N, 2, 2) as :func:`adapt_affine_shape` returns."""
    image = check_image(image, check_range=True)
    keypoints = check_keypoints(keypoints)
    shapes = np.asarray(shapes, np.float64)
    if shapes.shape != (len(keypoints), 2, 2) or not np.isfinite(shapes).all():
        raise ValueError(f"shapes must be a finite ({len(keypoints)}, 2, 2) array, got shape {shapes.shape}")
    check_scalar(radius, "radius", kind=numbers.Integral, low=1, high=512)
    return _sample(_halvings(image, 8), keypoints.points.astype(np.float64),
                   keypoints.scale.astype(np.float64) / PATCH_SIGMA, shapes, int(radius))


def detect_and_describe_affine(image, *, detector: str = "hessian-affine", descriptor: str = "rootsift",
                               max_points: int | None = None, upright: bool | None = None,
                               seconds: dict | None = None, name: str = "image") -> tuple[Keypoints, np.ndarray]:
    """Hessian-Affine (or Harris-Affine) keypoints and their SIFT descriptors on normalised patches.

    Parameters
    ----------
    image : (H, W) array (uint8, uint16 or float in [0, 1])
    detector : {'hessian-affine', 'harris-affine'}
    descriptor : {'rootsift', 'sift'}
    max_points : int or None
        Strongest detector points kept before adaptation.
    upright : bool or None
        Skip the orientation (0 on the normalised patch). None: False.
    seconds : dict or None
        ``detect`` (with adaptation), ``orient``, ``describe`` times are added to it.
    name : str
        The argument's name in error messages.

    Returns
    -------
    keypoints : Keypoints
        Adapted points (x, y) in input pixels, ``scale`` the detector's sigma, ``orientation``
        the patch orientation mapped into the image; one row per dominant orientation.
    descriptors : (N, 128) float32 array

    References
    ----------
    Mikolajczyk & Schmid 2004; Mikolajczyk et al., "A comparison of affine region detectors",
    IJCV 65, 2005 (Hessian-Affine); Arandjelovic & Zisserman 2012 (RootSIFT).

    Examples
    --------
    >>> from skimage import data
    >>> kp, d = detect_and_describe_affine(data.camera()[::2, ::2], max_points=100)
    >>> len(kp) > 50, d.shape[1]
    (True, 128)
    """
    image = check_image(image, name, check_range=True, min_size=16)
    check_choice(detector, "detector", AFFINE_DETECTORS)
    check_choice(descriptor, "descriptor", ("rootsift", "sift"))
    if max_points is not None:
        check_scalar(max_points, "max_points", kind=numbers.Integral, low=1)
    start = time.perf_counter()
    kind = detector.split("-")[0]
    points = _laplace_points(image, kind, THRESHOLDS[kind], max_points)
    index, shapes = _adapt(image, points, 16, 8.0, 0.05)
    points, shapes = points[index], shapes[index]
    side = 2 * PATCH_RADIUS + 1
    patches = _sample(_halvings(image, 8), points.points.astype(np.float64),
                      points.scale.astype(np.float64) / PATCH_SIGMA, shapes, PATCH_RADIUS)
    n = len(points)
    cols = max(1, int(math.ceil(math.sqrt(n))))
    rows = max(1, int(math.ceil(n / cols)))
    tiles = np.zeros((rows * cols, side, side), np.float32)
    tiles[:n] = patches
    mosaic = np.ascontiguousarray(tiles.reshape(rows, cols, side, side).transpose(0, 2, 1, 3)
                                  .reshape(rows * side, cols * side))
    cell = np.arange(n)
    centres = np.stack([(cell % cols) * side + PATCH_RADIUS, (cell // cols) * side + PATCH_RADIUS],
                       1).astype(np.float32)
    on_patch = Keypoints(centres, np.full(n, PATCH_SIGMA, np.float32), np.zeros(n, np.float32), points.response)
    pyramid = gaussian_pyramid(mosaic, upsample=False, n_octaves=1)
    if seconds is not None:
        seconds["detect"] = seconds.get("detect", 0.0) + time.perf_counter() - start
    start = time.perf_counter()
    if not upright and n:
        which, theta = dominant_orientations(pyramid, on_patch.points, on_patch.scale)
        on_patch = Keypoints(centres[which], on_patch.scale[which], theta, on_patch.response[which])
    else:
        which = np.arange(n)
    if seconds is not None:
        seconds["orient"] = seconds.get("orient", 0.0) + time.perf_counter() - start
    start = time.perf_counter()
    descriptors = sift_descriptors(pyramid, on_patch, rootsift=descriptor == "rootsift")
    if seconds is not None:
        seconds["describe"] = seconds.get("describe", 0.0) + time.perf_counter() - start
    theta = on_patch.orientation.astype(np.float64)
    direction = np.einsum("nij,nj->ni", shapes[which], np.stack([np.cos(theta), np.sin(theta)], 1))
    orientation = wrap_angle(np.arctan2(direction[:, 1], direction[:, 0]).astype(np.float32))
    chosen = points[which]
    return Keypoints(chosen.points, chosen.scale, orientation, chosen.response), descriptors
