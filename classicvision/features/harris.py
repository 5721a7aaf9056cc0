"""Harris interest points: the corner response, then the choice of points.

Algorithm (Harris & Stephens 1988; Szeliski 2022, section 7.1.1, eqs. 7.8-7.9):

1. Gradients ``gx, gy``: Sobel (``sigma_d=None``; :func:`classicvision.features.filters.sobel`, i.e.
   ``cv2.Sobel / 8``, true per-pixel derivatives) or derivative of Gaussian at ``sigma_d``.
2. The structure tensor (second-moment matrix) smoothed by a Gaussian window ``w`` of
   standard deviation ``sigma`` (radius ``int(4 sigma + 0.5)``, as scipy.ndimage)::

       M = w * [[gx**2,  gx*gy],
                [gx*gy,  gy**2]]  =  [[a, b], [b, c]]

3. The response ``R = det(M) - k trace(M)**2 = a c - b**2 - k (a + c)**2``: large positive at
   corners (two large eigenvalues), negative along edges, about zero in flat regions.
4. Selection (:func:`harris`): non-maximum suppression in a ``(2 min_distance + 1)**2``
   window, thresholds, border exclusion, then the ``max_points`` strongest points or, with
   ``anms=True``, the ``max_points`` points of largest suppression radius (adaptive
   non-maximal suppression, Brown, Szeliski & Winder 2005, with ``c_robust = 0.9``), and an
   optional sub-pixel refinement by a quadratic fit to the 3x3 response neighbourhood.

Every stage applies the border ``mode`` to its own input (gradients to the image, the window
to the products), as chaining ``scipy.ndimage.sobel`` and ``gaussian_filter`` would. The work
is done by a fused numba kernel (:mod:`classicvision._kernels.harris`), parallel over blocks
of rows: each block forms gradients, products and their horizontal smoothing in buffers that
stay in cache, then the vertical smoothing and the response, so no full-size gradient or
tensor image is stored.

``k = 0.04`` is the default of OpenCV and kornia; scikit-image's ``corner_harris`` uses 0.05.
Scale: with Sobel gradients and intensities in [0, 1], a unit step corner gives ``R`` of order
``1e-2``; OpenCV's ``cornerHarris`` differs by a constant factor (its derivative and box-window
scaling) and its box window, scikit-image's by ``8**4`` (unnormalized Sobel).
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import _limits
from .._kernels import harris as _hk
from .._validation import check_choice, check_image, check_scalar
from .filters import BORDER_MODES, gaussian_gradient, gaussian_kernel1d
from .keypoints import Keypoints

__all__ = ["harris_response", "harris"]

_C_ROBUST = 0.9  # Brown, Szeliski & Winder 2005, section 3
_BLOCK_BYTES = 2**19  # about this much of block-local tensor rows per parallel task (fits in L2)


def _empty():
    return Keypoints.empty()


def _check_response_args(k, sigma, sigma_d, mode, shape):
    check_scalar(k, "k", low=0.0, high=0.25, high_inclusive=False)
    check_scalar(sigma, "sigma", low=0.0, low_inclusive=False)
    _limits.check_blur(sigma, shape, "sigma")
    if sigma_d is not None:
        check_scalar(sigma_d, "sigma_d", low=0.0, low_inclusive=False)
        _limits.check_blur(sigma_d, shape, "sigma_d")
    check_choice(mode, "mode", BORDER_MODES)


def _response(image, k, sigma, sigma_d, mode):
    """Unchecked response of a valid float32 image."""
    height, width = image.shape
    if height == 0 or width == 0:
        return np.zeros((height, width), np.float32)
    window = gaussian_kernel1d(sigma)
    r = window.size // 2
    rows_r = _hk._border_index(height, r, mode)
    cols_r = _hk._border_index(width, r, mode)
    if sigma_d is None:
        rows1 = _hk._border_index(height, 1, mode)
        cols1 = _hk._border_index(width, 1, mode)
        gx = gy = image
    else:
        rows1 = cols1 = rows_r  # unused
        gx, gy = gaussian_gradient(image, sigma_d, mode=mode)
    return _hk._harris_kernel(gx, gy, sigma_d is None, window, rows1, cols1, rows_r, cols_r,
                              np.float32(k), max(16, min(64, _BLOCK_BYTES // (12 * width))))


def harris_response(image, *, k: float = 0.04, sigma: float = 1.0, sigma_d: float | None = None,
                    mode: str = "reflect") -> np.ndarray:
    """Harris corner response ``R = det(M) - k trace(M)**2`` at every pixel.

    Parameters
    ----------
    image : (H, W) array of uint8, uint16 or float
        Gray image; integers are scaled to [0, 1] by their dtype's maximum.
    k : float
        Harris sensitivity in ``[0, 0.25)``; 0.04 as OpenCV and kornia (scikit-image: 0.05).
    sigma : float
        Standard deviation in pixels of the Gaussian window (integration scale), > 0.
    sigma_d : float or None
        Differentiation scale: ``None`` for Sobel gradients (scaled to per-pixel
        derivatives), else derivative of Gaussian at ``sigma_d`` pixels.
    mode : {'reflect', 'mirror', 'nearest', 'constant', 'wrap'}
        Border handling (scipy.ndimage names, see :mod:`classicvision.features.filters`).

    Returns
    -------
    response : (H, W) float32 array
        ``a c - b**2 - k (a + c)**2`` with ``[[a, b], [b, c]]`` the smoothed structure tensor
        (module docstring). Zero on a constant image (exactly with Sobel gradients; below
        1e-30 with ``sigma_d``, whose float32 derivative kernel sums to about 1e-9).

    Raises
    ------
    ValueError, TypeError
        For an image that is not 2-D or holds NaN/inf, or parameters out of range, among them a
        window (``4 sigma``, or ``4 sigma_d``) wider than twice the image's larger side (at least
        128 px; :data:`classicvision._limits.KERNEL_RADIUS_RELATIVE`).

    References
    ----------
    C. Harris and M. Stephens, "A combined corner and edge detector", Alvey Vision
    Conference, 1988. R. Szeliski, *Computer Vision: Algorithms and Applications*, 2nd ed.,
    2022, section 7.1.1, eqs. 7.8-7.9.

    Examples
    --------
    >>> image = np.zeros((50, 50), np.float32)
    >>> image[:25, :25] = 1
    >>> R = harris_response(image)
    >>> R.shape, R.dtype, [int(i) for i in np.unravel_index(R.argmax(), R.shape)]
    ((50, 50), dtype('float32'), [24, 24])
    >>> float(np.abs(harris_response(np.ones((8, 8)))).max())
    0.0
    """
    image = check_image(image, min_size=0)
    _check_response_args(k, sigma, sigma_d, mode, image.shape)
    return _response(image, k, sigma, sigma_d, mode)


def _subpixel(response, xy):
    """Offsets in [-0.5, 0.5] of the maximum of a quadratic least-squares fit to the 3x3
    neighbourhood of each integer point (clipped indices at the border); zero where the fit
    has no maximum."""
    height, width = response.shape
    x = xy[:, 0].astype(np.int64)
    y = xy[:, 1].astype(np.int64)
    t = np.array([-1, 0, 1])
    ys = np.clip(y[:, None, None] + t[None, :, None], 0, height - 1)
    xs = np.clip(x[:, None, None] + t[None, None, :], 0, width - 1)
    f = response[ys, xs].astype(np.float64)  # (N, 3, 3) indexed [dy, dx]
    u = t[None, :].astype(np.float64)  # dx along axis 2
    v = t[:, None].astype(np.float64)  # dy along axis 1
    # f ~ p0 + bx dx + by dy + dxx dx**2 + dxy dx dy + dyy dy**2 (orthogonal basis on the 3x3 grid)
    bx = (f * u).sum((1, 2)) / 6.0
    by = (f * v).sum((1, 2)) / 6.0
    dxy = (f * u * v).sum((1, 2)) / 4.0
    dxx = (f * (u * u - 2.0 / 3.0)).sum((1, 2)) / 2.0
    dyy = (f * (v * v - 2.0 / 3.0)).sum((1, 2)) / 2.0
    # Stationary point: [[2 dxx, dxy], [dxy, 2 dyy]] [ox, oy] = -[bx, by].
    h11, h12, h22 = 2.0 * dxx, dxy, 2.0 * dyy
    det = h11 * h22 - h12 * h12
    is_max = (h11 < 0) & (det > 0)
    safe = np.where(is_max, det, 1.0)
    ox = np.where(is_max, (-h22 * bx + h12 * by) / safe, 0.0)
    oy = np.where(is_max, (h12 * bx - h11 * by) / safe, 0.0)
    return np.clip(np.stack([ox, oy], axis=1), -0.5, 0.5)


def harris(image, *, k: float = 0.04, sigma: float = 1.0, sigma_d: float | None = None,
           min_distance: int = 3, threshold_rel: float = 0.01, threshold_abs: float | None = None,
           exclude_border: int = 8, max_points: int | None = None, anms: bool = False,
           subpixel: bool = False) -> Keypoints:
    """Harris interest points: local maxima of :func:`harris_response`, strongest first.

    Parameters
    ----------
    image : (H, W) array of uint8, uint16 or float
    k, sigma, sigma_d
        As in :func:`harris_response`.
    min_distance : int
        Non-maximum suppression radius, >= 0: a point is the largest response of its
        ``(2 min_distance + 1)**2`` window (clipped to the image, so a ``min_distance`` above the
        image's larger side acts as that side). Among equal responses the
        first in raster order wins, so kept points are more than ``min_distance`` apart
        (Chebyshev distance).
    threshold_rel : float
        In [0, 1]; keep responses ``>= threshold_rel * R.max()``.
    threshold_abs : float or None
        If given, also keep only responses ``>= threshold_abs``. Only positive responses are
        ever points.
    exclude_border : int
        Points closer than this many pixels to an image edge are dropped, >= 0.
    max_points : int or None
        Keep at most this many points: the strongest, or with ``anms=True`` those with the
        largest suppression radius.
    anms : bool
        Adaptive non-maximal suppression (Brown et al. 2005, ``c_robust = 0.9``): the radius
        of a point is its distance to the nearest point whose response exceeds its own by
        ``1 / c_robust``; the ``max_points`` largest radii give spatially spread points. Only
        acts when ``max_points`` is given.
    subpixel : bool
        Refine each point by the maximum of a quadratic fitted (least squares) to its 3x3
        response neighbourhood, moving it by at most half a pixel on each axis.

    Returns
    -------
    keypoints : Keypoints
        ``points`` ``(N, 2)`` float32 of (x, y), x = column, y = row, integers unless
        ``subpixel``; ``scale`` the integration scale ``sigma`` for every point (single-scale
        Harris has no characteristic scale); ``orientation`` 0 (upright: assign dominant
        orientations with :func:`~classicvision.features.orientation.assign_orientations`);
        ``response`` the Harris response at each point's pixel, sorted descending (ties by
        raster order). Empty (``len 0``) when nothing passes (flat, tiny or empty images).

    References
    ----------
    Harris & Stephens 1988. M. Brown, R. Szeliski and S. Winder, "Multi-image matching using
    multi-scale oriented patches", CVPR 2005, section 3 (ANMS). Szeliski 2022, section 7.1.1.

    Examples
    --------
    >>> image = np.zeros((50, 50), np.float32)
    >>> image[:25, :25] = 1
    >>> keypoints = harris(image)
    >>> keypoints.points.tolist(), keypoints.response.dtype
    ([[24.0, 24.0]], dtype('float32'))
    >>> harris(np.zeros((10, 10))).points.shape
    (0, 2)
    """
    image = check_image(image, min_size=0, check_range=True)
    _check_response_args(k, sigma, sigma_d, "reflect", image.shape)
    check_scalar(min_distance, "min_distance", kind=numbers.Integral, low=0)
    check_scalar(threshold_rel, "threshold_rel", low=0.0, high=1.0)
    if threshold_abs is not None:
        check_scalar(threshold_abs, "threshold_abs")
    check_scalar(exclude_border, "exclude_border", kind=numbers.Integral, low=0)
    if max_points is not None:
        check_scalar(max_points, "max_points", kind=numbers.Integral, low=0)
    for name, flag in (("anms", anms), ("subpixel", subpixel)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {flag!r} ({type(flag).__name__})")

    height, width = image.shape
    if height <= 2 * exclude_border or width <= 2 * exclude_border or max_points == 0:
        return _empty()
    min_distance = min(int(min_distance), max(height, width))  # a wider window is the whole image
    response = _response(image, k, sigma, sigma_d, "reflect")
    peak = float(response.max())
    if not peak > 0.0:
        return _empty()
    threshold = threshold_rel * peak
    if threshold_abs is not None:
        threshold = max(threshold, float(threshold_abs))
    mask = _hk._nms_mask(response, int(min_distance), int(exclude_border), np.float32(threshold))
    flat = np.flatnonzero(mask)
    if flat.size == 0:
        return _empty()
    values = response.ravel()[flat]
    order = np.argsort(-values, kind="stable")  # raster order among ties
    flat, values = flat[order], values[order]
    y, x = np.divmod(flat, width)
    points = np.stack([x, y], axis=1).astype(np.float32)
    if max_points is not None and len(points) > max_points:
        if anms:
            radii = _hk._anms_radii(points, values, _C_ROBUST)
            keep = np.sort(np.argsort(-radii, kind="stable")[:max_points])  # back to response order
        else:
            keep = slice(0, max_points)
        points, values = points[keep], values[keep]
    if subpixel:
        points = (points + _subpixel(response, points)).astype(np.float32)
    n = len(points)
    return Keypoints(np.ascontiguousarray(points), np.full(n, sigma, np.float32), np.zeros(n, np.float32),
                     np.ascontiguousarray(values, dtype=np.float32))
