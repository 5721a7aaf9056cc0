"""SIFT descriptors at given points (Lowe 2004, section 6.1), upright or oriented, with RootSIFT.

Algorithm
---------
1. **Gradient, once per image.** The image is smoothed by a Gaussian of standard deviation
   ``sigma`` (default 1.0 px; 0 skips it) and differentiated by central differences,
   ``gx = (I[y, x+1] - I[y, x-1]) / 2``, ``gy = (I[y+1, x] - I[y-1, x]) / 2``, both with the
   symmetric border (``dcba|abcd``). Orientation is ``arctan2(gy, gx)``, y down.
2. **Support.** A point with ``size`` ``s`` is described on an ``n x n`` grid of cells
   (``n = n_cells``, default 4) covering the square of side ``s`` centred on it; cell width
   ``w = s / n``. In the descriptor's frame (rotated by ``orientation``), cell centres lie at
   offsets ``(i - n/2 + 1/2) w``::

        u -> (x in the frame)         s = 16, n = 4, w = 4
        +----+----+----+----+         cell centres at -6, -2, 2, 6
        | 0  | 1  | 2  | 3  |         a sample at u = 3 gives 3/4 to cell 2 and 1/4 to cell 3;
        +----+----+----+----+         one at u = 9 gives 1/4 to cell 3 only: samples reach
        | 4  | 5  | ...     |         to |u| < s/2 + w/2 (one half cell outside the square)
        +----+----+----+----+
3. **Samples.** Every pixel centre whose offset ``(dx, dy)`` from the point, rotated into the
   frame (``u = dx cos t + dy sin t``, ``v = -dx sin t + dy cos t``), lies in reach is a
   sample, with the gradient exactly as computed (no interpolation, as OpenCV and VLFeat) and
   its orientation measured relative to the frame (``phi - t``). Upright (``t = 0``), this is
   the sum that :func:`dense_sift <classicvision.dense_sift.dense_sift>` computes by
   filtering, so the two agree. Pixels outside the image read the symmetric extension
   (reflected coordinates; a mirrored pixel's orientation is mirrored too), so every point gets
   a descriptor, in input order. The cost per point grows as ``size**2`` (no pyramid).
4. **Weights and binning.** Each sample adds ``|g| * exp(-(u^2 + v^2) / (2 (s/2)^2))``
   (Gaussian window with sigma = half the support width, as Lowe) trilinearly: bilinearly to
   the 2x2 nearest cell centres, linearly to the 2 nearest of ``n_orientations`` bins (bin
   ``b`` centred at ``2 pi b / n_orientations``).
5. **Normalization.** Unit L2 norm, values clipped at ``clip`` (0.2), unit L2 norm again;
   with ``rootsift``, then L1-normalized and square-rooted (still unit L2). A support without
   any gradient gives an all-zero row.

Layout: orientation fastest, then x cell, then y cell (VLFeat, OpenCV):
``index = (cell_y * n_cells + cell_x) * n_orientations + bin``.

OpenCV correspondence: ``cv2.SIFT.compute`` describes a ``KeyPoint`` of diameter ``d`` with
cells of ``1.5 d`` px (``SIFT_DESCR_SCL_FCTR = 3`` times the radius), so our ``size = s``
corresponds to ``KeyPoint(x, y, s / 6)`` (see :func:`to_cv2_keypoints`); OpenCV counts
orientations counter-clockwise with y up, so its bin ``b`` is our bin ``-b mod 8``.

References
----------
D. G. Lowe, "Distinctive image features from scale-invariant keypoints", IJCV 60(2), 2004,
section 6.1.
R. Arandjelovic and A. Zisserman, "Three things everyone should know to improve object
retrieval", CVPR 2012 (RootSIFT).
A. Vedaldi and B. Fulkerson, VLFeat ``vl/sift.c`` (descriptor geometry), 2008.
"""

from __future__ import annotations

import numbers

import numpy as np

from ._dense_sift_kernels import _smooth_symmetric
from ._filter_kernels import _separable_valid
from ._sift_kernels import _describe, _normalize_rows, _orientation_field
from ._validation import check_image, check_points, check_scalar
from .filters import _cached_gaussian_kernel1d

__all__ = ["sift_descriptors", "to_cv2_keypoints", "CV2_SIZE_FACTOR"]

#: ``cv2.KeyPoint.size`` = our ``size`` / ``CV2_SIZE_FACTOR`` (4 cells of 1.5 diameters each).
CV2_SIZE_FACTOR = 6.0


def _smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing, symmetric border (``dcba|abcd``), of a float32 image; the padded
    separable filter when the kernel is wider than the image."""
    if sigma <= 0:
        return image
    g = _cached_gaussian_kernel1d(sigma)
    if g.size // 2 <= min(image.shape):
        return _smooth_symmetric(np.ascontiguousarray(image, np.float32), g)
    return _separable_valid(np.pad(image, g.size // 2, mode="symmetric"), g, g)


def _gradient_field(image: np.ndarray, sigma: float, n_orientations: int):
    """Gradient magnitude and orientation in bin units (``(H, W)`` float32 each), shared by the
    sparse and dense descriptors so that both bin identically."""
    return _orientation_field(_smooth(image, sigma), int(n_orientations))


def _normalize(raw: np.ndarray, clip: float, rootsift: bool) -> np.ndarray:
    """L2-normalize rows, clip at ``clip``, renormalize (then RootSIFT); zero rows stay zero."""
    return _normalize_rows(np.ascontiguousarray(raw, np.float32), float(clip), bool(rootsift))


def _check_common(n_cells, n_orientations, clip, rootsift, sigma) -> None:
    check_scalar(n_cells, "n_cells", kind=numbers.Integral, low=1)
    check_scalar(n_orientations, "n_orientations", kind=numbers.Integral, low=2)
    check_scalar(clip, "clip", low=0, low_inclusive=False)
    check_scalar(sigma, "sigma", low=0)
    if not isinstance(rootsift, (bool, np.bool_)):
        raise TypeError(f"rootsift must be a bool, got {rootsift!r} ({type(rootsift).__name__})")


def _per_point(value, name: str, n_points: int, *, positive: bool) -> np.ndarray:
    """Broadcast a scalar or check an ``(N,)`` array; float64."""
    array = np.asarray(value)
    if array.dtype.kind not in "uif":
        raise TypeError(f"{name} must be a number or an (N,) array of numbers, got dtype {array.dtype}")
    if array.ndim == 0:
        array = np.full(n_points, float(array))
    elif array.ndim != 1 or array.shape[0] != n_points:
        raise ValueError(f"{name} must be a number or have shape ({n_points},) like points, "
                         f"got shape {array.shape}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if positive and (array <= 0).any():
        raise ValueError(f"{name} must be > 0, got minimum {array.min()!r}")
    return array


def sift_descriptors(image, points, *, size=16.0, orientation=None, n_cells: int = 4,
                     n_orientations: int = 8, clip: float = 0.2, rootsift: bool = False,
                     sigma: float = 1.0) -> np.ndarray:
    """SIFT descriptors of ``image`` at ``points`` (Lowe 2004, section 6.1).

    Parameters
    ----------
    image : (H, W) array (uint8, uint16 or float in [0, 1])
    points : (N, 2) array of (x, y)
        Centres, x = column, y = row, origin at the top-left pixel centre. Points near or outside
        the border are described on the symmetric extension of the image.
    size : float or (N,) array of float
        Side in pixels of the square support covered by the cell grid (16: 4x4 cells of 4 px).
    orientation : None, float or (N,) array of float
        None for upright descriptors; else radians from ``arctan2(gy, gx)`` (y down): the
        descriptor is computed in the frame rotated by this angle.
    n_cells : int
        Cells per side (4).
    n_orientations : int
        Orientation bins per cell (8).
    clip : float
        Clipping threshold after the first normalization (0.2, Lowe).
    rootsift : bool
        Apply RootSIFT (L1 normalization then square root) after clipping.
    sigma : float
        Gaussian pre-smoothing of the image before central differences, in px (0: none).

    Returns
    -------
    descriptors : (N, n_cells**2 * n_orientations) float32 array
        One row per point, in input order; unit L2 norm, or all zeros where the support has no
        gradient. Index ``(cell_y * n_cells + cell_x) * n_orientations + bin``.

    Raises
    ------
    TypeError, ValueError
        Naming the argument: wrong shapes, NaN, ``size <= 0``, a length mismatch.

    Notes
    -----
    See the module docstring for the sampling, weighting and binning. Every pixel centre of the
    (rotated) support is a sample, so the cost per point grows as ``size**2``; a 90 degree
    rotation of the image with ``orientation = pi / 2`` reproduces the upright descriptor.

    References
    ----------
    Lowe 2004, section 6.1; Arandjelovic & Zisserman 2012 (RootSIFT).

    Examples
    --------
    >>> image = np.zeros((32, 32), np.float32)
    >>> image[:, 16:] = 1.0                      # vertical step edge: gradient along +x
    >>> d = sift_descriptors(image, [[16.0, 16.0]])
    >>> d.shape, d.dtype, round(float(np.linalg.norm(d)), 5)
    ((1, 128), dtype('float32'), 1.0)
    >>> bool(np.all(d.reshape(16, 8)[:, 1:] == 0))   # all energy in bin 0
    True
    """
    image = check_image(image)
    points = check_points(points)
    _check_common(n_cells, n_orientations, clip, rootsift, sigma)
    n_points = points.shape[0]
    sizes = _per_point(size, "size", n_points, positive=True)
    thetas = None if orientation is None else _per_point(orientation, "orientation", n_points,
                                                         positive=False)
    dim = n_cells * n_cells * n_orientations
    if n_points == 0:
        return np.zeros((0, dim), np.float32)
    if thetas is None:
        thetas = np.zeros(n_points)
    magnitude, bins = _gradient_field(image, sigma, n_orientations)
    raw = _describe(magnitude, bins, points[:, 0].astype(np.float64), points[:, 1].astype(np.float64),
                    sizes, thetas, int(n_cells), int(n_orientations))
    return _normalize(raw, float(clip), bool(rootsift))


def to_cv2_keypoints(points, *, size=16.0, orientation=None) -> list:
    """OpenCV ``KeyPoint`` objects describing the same supports as :func:`sift_descriptors`.

    ``cv2.SIFT`` uses cells of ``1.5 * KeyPoint.size`` px, so ``KeyPoint.size = size / 6``;
    ``KeyPoint.angle = degrees(orientation) mod 360`` (checked against ``cv2.SIFT.compute``).
    Only the location, size and frame match: OpenCV smooths its octave-0 image by 1.52 px
    (``sigma=1.52`` here reproduces its descriptors to a cosine of about 0.9999).

    Parameters
    ----------
    points : (N, 2) array of (x, y)
    size : float or (N,) array
    orientation : None, float or (N,) array of radians

    Returns
    -------
    keypoints : list of cv2.KeyPoint, length N

    Examples
    --------
    >>> kp = to_cv2_keypoints([[3.0, 4.0]], size=12.0)
    >>> kp[0].pt, kp[0].size
    ((3.0, 4.0), 2.0)
    """
    import cv2

    points = check_points(points)
    sizes = _per_point(size, "size", points.shape[0], positive=True) / CV2_SIZE_FACTOR
    if orientation is None:
        angles = np.zeros(points.shape[0])
    else:
        angles = np.mod(np.degrees(_per_point(orientation, "orientation", points.shape[0],
                                              positive=False)), 360.0)
    return [cv2.KeyPoint(float(x), float(y), float(s), float(a))
            for (x, y), s, a in zip(points, sizes, angles)]
