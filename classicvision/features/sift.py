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
   the sum that :func:`dense_sift <classicvision.features.dense_sift.dense_sift>` computes by
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
corresponds to ``KeyPoint(x, y, s / 6)`` (see
:func:`~classicvision.features.keypoints.to_cv2_keypoints`); OpenCV counts
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


import numpy as np

from .. import _limits
from .._kernels.gradient import _orientation_field
from .._kernels.jit import parallel_for
from .._kernels.sift import _describe, _normalize_rows
from .._validation import check_descriptor_options, check_image, check_points, check_scalar
from ._gaussian import smooth_symmetric
from .keypoints import Keypoints, check_keypoints, wrap_angle
from .scale_space import GaussianPyramid, level_of_scale

__all__ = ["sift_descriptors", "DESCRIPTOR_MAGNIFICATION"]

#: Cell side in units of the keypoint's sigma (Lowe 2004, section 6.1; OpenCV's SIFT_DESCR_SCL_FCTR).
DESCRIPTOR_MAGNIFICATION = 3.0
#: Support side in pixels of bare points given without ``size``: 4 cells of 4 px.
DEFAULT_SIZE = 16.0


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


def _check_support(image, scales, sizes, thetas, n_cells, on_pyramid) -> None:
    """Refuse supports that visit more than :data:`classicvision._limits.MAX_SUPPORT_PIXELS` in
    all: on an image ``sizes`` px each, on a pyramid ``sizes`` divided by the octave's factor."""
    if not len(sizes):
        return
    if on_pyramid:
        octaves, _ = level_of_scale(image, scales)
        sizes = sizes / image.octave_factor(octaves)
    visited = _limits.support_pixels(sizes, n_cells, thetas)
    _limits.check_limit(visited, "MAX_SUPPORT_PIXELS",
                        f"the supports of {len(sizes)} keypoints (size up to {float(sizes.max()):.4g} px) cover "
                        f"{visited:.4g} pixels", "pass a smaller size or magnification, or fewer keypoints")


def _describe_image(image, points, sizes, thetas, n_cells, n_orientations, sigma):
    """Raw descriptors of ``points`` on one float32 image smoothed by ``sigma``."""
    magnitude, bins = _orientation_field(smooth_symmetric(image, sigma), n_orientations)
    return _describe(magnitude, bins, points[:, 0].astype(np.float64), points[:, 1].astype(np.float64),
                     sizes, thetas, n_cells, n_orientations)


def _describe_pyramid(pyramid: GaussianPyramid, points, scales, sizes, thetas, n_cells, n_orientations):
    """Raw descriptors, each point on the Gaussian level nearest its scale, in that octave's
    pixels: one gradient field and one kernel call per level that holds points, the levels as
    tasks on threads (one hand-off for the whole pyramid instead of two per level)."""
    raw = np.zeros((len(points), n_cells * n_cells * n_orientations), np.float32)
    octaves, levels = level_of_scale(pyramid, scales)
    key = octaves * (pyramid.n_scales + 3) + levels
    keys = np.unique(key)
    parallel_for(_describe_levels, len(keys), pyramid, points, sizes, thetas, n_cells, n_orientations, key, keys, raw,
                 uniform=False)   # levels of very different sizes
    return raw


def _describe_levels(start, stop, pyramid, points, sizes, thetas, n_cells, n_orientations, key, keys, raw):
    """Levels ``keys[start:stop]`` of :func:`_describe_pyramid` (a task: its kernels run inline)."""
    for k in keys[start:stop]:
        rows = np.flatnonzero(key == k)
        o, level = divmod(int(k), pyramid.n_scales + 3)
        factor = float(pyramid.octave_factor(o))
        magnitude, bins = _orientation_field(pyramid.octaves[o][level], n_orientations)
        xy = (points[rows] / np.float32(factor)).astype(np.float64)
        level_sizes = (sizes[rows].astype(np.float32) / np.float32(factor)).astype(np.float64)
        raw[rows] = _describe(magnitude, bins, xy[:, 0], xy[:, 1], level_sizes, thetas[rows], n_cells,
                              n_orientations)


def sift_descriptors(image, keypoints, *, size=None, orientation=None,
                     magnification: float = DESCRIPTOR_MAGNIFICATION, n_cells: int = 4,
                     n_orientations: int = 8, clip: float = 0.2, rootsift: bool = False,
                     sigma: float = 1.0) -> np.ndarray:
    """SIFT descriptors of ``keypoints`` at their scale and orientation (Lowe 2004, section 6.1).

    Parameters
    ----------
    image : (H, W) array (uint8, uint16 or float in [0, 1]) or GaussianPyramid
        The image, or the pyramid the keypoints were detected in
        (:func:`~classicvision.features.scale_space.gaussian_pyramid`). With a pyramid, each
        keypoint is described on the Gaussian level whose blur is nearest its scale
        (:func:`~classicvision.features.scale_space.level_of_scale`), in that octave's pixels,
        with no further smoothing (``sigma`` is not used), as Lowe and OpenCV do: this makes the
        descriptor scale invariant. With an image, one smoothing ``sigma`` serves every point.
    keypoints : Keypoints or (N, 2) array of (x, y)
        Centres, x = column, y = row, origin at the top-left pixel centre, in input pixels; a
        :class:`~classicvision.features.keypoints.Keypoints` also brings each point's scale and
        orientation. Points near or outside the border are described on the symmetric extension
        of the image.
    size : None, float or (N,) array of float
        Side in input pixels of the square support covered by the cell grid. None: for Keypoints
        ``n_cells * magnification * scale`` (``12 sigma`` with Lowe's defaults), for bare points
        16 (4 cells of 4 px).
    orientation : None, float or (N,) array of float
        Radians from ``arctan2(gy, gx)`` (y down): the descriptor is computed in the frame rotated
        by this angle. None: the keypoints' orientation, or 0 (upright) for bare points.
    magnification : float
        Cell side in units of the keypoint's sigma (Lowe: 3), used when ``size`` is None.
    n_cells : int
        Cells per side (4).
    n_orientations : int
        Orientation bins per cell (8).
    clip : float
        Clipping threshold after the first normalization (0.2, Lowe).
    rootsift : bool
        Apply RootSIFT (L1 normalization then square root) after clipping.
    sigma : float
        Gaussian pre-smoothing of an image before central differences, in px (0: none).

    Returns
    -------
    descriptors : (N, n_cells**2 * n_orientations) float32 array
        One row per keypoint, in input order; unit L2 norm, or all zeros where the support has no
        gradient. Index ``(cell_y * n_cells + cell_x) * n_orientations + bin``.

    Raises
    ------
    TypeError, ValueError
        Naming the argument: wrong shapes, NaN, ``size <= 0``, a length mismatch, bare points
        on a pyramid (their scale is needed to pick the level); and costs past the limits of
        :mod:`classicvision._limits`: supports covering more than ``MAX_SUPPORT_PIXELS`` pixels in
        all (``2**31``; the cost of a point grows as ``size**2``), descriptors longer than
        ``MAX_DESCRIPTOR_DIM`` (4096), a result above ``MAX_ARRAY_BYTES``, a coordinate above
        ``MAX_COORDINATE`` (``2**24``), a ``sigma`` wider than twice the image.

    Notes
    -----
    See the module docstring for the sampling, weighting and binning. Every pixel centre of the
    (rotated) support is a sample, so the cost per point grows as ``size**2`` on an image, and
    stays bounded on a pyramid (a point's support is about ``12 * 1.6`` octave pixels at most
    twice over); a 90 degree rotation of the image with ``orientation = pi / 2`` reproduces the
    upright descriptor.

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
    on_pyramid = isinstance(image, GaussianPyramid)
    if not on_pyramid:
        image = check_image(image, check_range=True)
    if isinstance(keypoints, Keypoints):
        keypoints = check_keypoints(keypoints)
        points, scales = keypoints.points, keypoints.scale
    else:
        points, scales = check_points(keypoints, "keypoints"), None
        if on_pyramid:
            raise ValueError("describing on a GaussianPyramid needs Keypoints (their scale picks the level), "
                             "got bare points")
    check_descriptor_options(n_cells, n_orientations, clip, rootsift, sigma)
    check_scalar(magnification, "magnification", low=0, low_inclusive=False)
    dim = _limits.check_descriptor_dim(n_cells, n_orientations)
    _limits.check_array_bytes(4.0 * points.shape[0] * dim, f"{points.shape[0]} descriptors of {dim} values",
                              "pass fewer keypoints")
    _limits.check_coordinates(points, "keypoints")
    if not on_pyramid:
        _limits.check_blur(sigma, image.shape, "sigma")
    n_points, n_cells, n_orientations = points.shape[0], int(n_cells), int(n_orientations)
    if size is not None:
        sizes = _per_point(size, "size", n_points, positive=True)
    elif scales is not None:
        sizes = n_cells * float(magnification) * scales.astype(np.float64)
    else:
        sizes = np.full(n_points, DEFAULT_SIZE)
    if orientation is not None:
        thetas = wrap_angle(_per_point(orientation, "orientation", n_points, positive=False))
    elif isinstance(keypoints, Keypoints):
        thetas = keypoints.orientation.astype(np.float64)
    else:
        thetas = np.zeros(n_points)
    _check_support(image, scales, sizes, thetas, n_cells, on_pyramid)
    if n_points == 0:
        return np.zeros((0, n_cells * n_cells * n_orientations), np.float32)
    if on_pyramid:
        raw = _describe_pyramid(image, points, scales, sizes, thetas, n_cells, n_orientations)
    else:
        raw = _describe_image(image, points, sizes, thetas, n_cells, n_orientations, float(sigma))
    return _normalize_rows(np.ascontiguousarray(raw, np.float32), float(clip), bool(rootsift))
