"""Dense SIFT on a regular grid, computed by pooling orientation planes (VLFeat ``dsift``/``phow``).

Algorithm
---------
1. Gradient and orientation binning exactly as :func:`classicvision.features.sift.sift_descriptors`
   (Gaussian pre-smoothing ``sigma``, central differences), split into ``n_orientations``
   **orientation planes**: each pixel's magnitude goes linearly to its 2 nearest bins,
   ``plane_b[y, x] = |g| * (1 - |t - b|)`` for the bin coordinate ``t`` of its orientation.
2. For a grid point ``(cx, cy)`` the descriptor entry of (bin ``b``, cell ``i`` along x,
   cell ``j`` along y) is::

       sum_{y, x} plane_b[y, x] * k_i(x - cx) * k_j(y - cy),
       k_i(d) = tri((d - c_i) / w) * exp(-d**2 / (2 (s/2)**2)),   c_i = (i - n/2 + 1/2) w

   (``tri(t) = max(0, 1 - |t|)``: bilinear binning; the Gaussian window of sigma ``s/2`` is
   separable, so it splits into the two 1-D kernels). Grid points are whole pixels, so the
   kernels are the same for every point: a 1-D correlation along y with ``n`` kernels sampled at
   the grid rows, then along x sampled at the grid columns, each over its cell's nonzero taps
   only. This is the same sum as the sparse descriptor's upright pixel sampling, so the two agree
   to float rounding at the grid points.
   One fused numba sweep (:mod:`classicvision._kernels.dense_sift`) goes down the image grid row
   by grid row: the orientation planes of the ``T = 2 r + 1`` rows under the grid row (a ring
   buffer, rows shared with the grid row above not recomputed; stored polyphase, so that the
   x-pass runs over all grid columns at once), the y-pass, the x-pass and the normalization, so
   nothing bigger than a few image rows is written. Cost
   ``O(n_orientations * n * T * (rows * W + rows * cols))``; no grid point is described on its own.
   Called from the main thread of the main process, the sweep is split into bands of grid rows
   on :func:`~classicvision._kernels.jit.num_threads` threads (as OpenCV uses its threads). For
   one size (on Linux) each band also smooths the image rows it reads, so that a call is a single
   hand-off to a team of compiled worker threads (:mod:`classicvision._kernels.team`: no Python
   and no GIL between calls, which a 0.3 ms call cannot afford); for several sizes the image is
   smoothed once, then each size's sweep runs on the kernel pool. From any other thread or process
   (``DenseSIFT(n_jobs=...)`` already parallelizes over images) everything runs in the calling
   thread without the GIL. The values are the same either way.
3. Normalization as the sparse descriptor: L2, clip at ``clip``, L2, optionally RootSIFT.

Grid
----
A sample at integer offset ``d`` weighs something when ``|d| < s/2 + w/2`` (``w = s / n``), so
the support reaches ``r = ceil(s/2 + w/2) - 1`` pixels each side (``r = 9`` for ``s = 16``).
Centres are the pixels whose whole support lies inside the image: the first at ``(r, r)``,
then every ``step`` px, ``cols = (W - 1 - 2 r) // step + 1`` of them along x (and likewise
rows along y), ``M = rows * cols``, ordered row by row (y outer, x inner). An image narrower
than ``2 r + 1`` gives ``M = 0``.

References
----------
A. Vedaldi and B. Fulkerson, VLFeat ``vl/dsift.c`` and ``vl_phow``, 2008.
A. Bosch, A. Zisserman and X. Munoz, "Image classification using random forests and ferns",
ICCV 2007 (PHOW: dense SIFT at several sizes).
D. G. Lowe, IJCV 60(2), 2004, section 6.1.
"""

from __future__ import annotations

import functools
import math
import numbers
import threading

import numpy as np

from .. import _limits
from .._kernels.blur import _blur, _blur_fits, _blur_scratch_size
from .._kernels import team
from .._kernels.dense_sift import (_band_scratch_size, _dense_fused, _dense_raw, _dense_raw_parallel,
                                   _fused_scratch_size)
from .._kernels.jit import num_threads
from .._validation import (check_descriptor_options, check_image, check_pixel_limit, check_scalar,
                           resolve_max_pixels)
from ._gaussian import cached_gaussian_kernel1d, smooth_symmetric

__all__ = ["dense_sift", "dense_sift_multi", "dense_grid"]


def _reach(size: float, n_cells: int) -> int:
    """Largest integer offset with a nonzero weight: ``ceil(s/2 + w/2) - 1``."""
    return int(math.ceil(0.5 * size + 0.5 * size / n_cells)) - 1


def _grid_counts(shape, step: int, size: float, n_cells: int) -> tuple[int, int, int]:
    r = _reach(size, n_cells)
    height, width = shape
    n_rows = (height - 1 - 2 * r) // step + 1 if height - 1 - 2 * r >= 0 else 0
    n_cols = (width - 1 - 2 * r) // step + 1 if width - 1 - 2 * r >= 0 else 0
    return r, n_rows, n_cols


@functools.lru_cache(maxsize=64)
def _grid_cached(shape, step: int, size: float, n_cells: int) -> np.ndarray:
    r, n_rows, n_cols = _grid_counts(shape, step, size, n_cells)
    ys, xs = np.meshgrid(r + step * np.arange(n_rows), r + step * np.arange(n_cols), indexing="ij")
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)
    grid.flags.writeable = False
    return grid


def _grid(shape, step: int, size: float, n_cells: int) -> np.ndarray:
    """The grid of :func:`dense_grid` (a fresh array; the shapes of a data set repeat, so the
    computation is cached)."""
    return _grid_cached(tuple(shape), step, size, n_cells).copy()


def _check_grid_args(step, size) -> None:
    check_scalar(step, "step", kind=numbers.Integral, low=1)
    check_scalar(size, "size", low=0, low_inclusive=False)


def dense_grid(shape, *, step: int = 8, size: float = 16, n_cells: int = 4) -> np.ndarray:
    """Centres of the dense SIFT grid for an image of ``shape`` (see the module docstring).

    Parameters
    ----------
    shape : (int, int)
        ``(height, width)`` of the image.
    step : int
        Grid spacing in px.
    size : float
        Support side in px.
    n_cells : int
        Cells per side.

    Returns
    -------
    points : (M, 2) float32 array of (x, y)
        Row by row; the first is ``(r, r)`` with ``r = ceil(size/2 + size/(2 n_cells)) - 1``.

    Examples
    --------
    >>> dense_grid((32, 40), step=8, size=16)[:3].tolist()
    [[9.0, 9.0], [17.0, 9.0], [25.0, 9.0]]
    """
    _check_grid_args(step, size)
    check_scalar(n_cells, "n_cells", kind=numbers.Integral, low=1)
    if len(shape) != 2:
        raise ValueError(f"shape must be (height, width), got {shape!r}")
    return _grid(tuple(int(v) for v in shape), int(step), float(size), int(n_cells))




def _n_bands(n_rows: int, threads: int) -> int:
    """Bands of at least 4 rows (grid rows, or groups of 8 image rows), one per thread at most."""
    return 1 if n_rows < 8 else min(threads, n_rows // 4)


def _pooling_kernels(size: float, n_cells: int, r: int) -> np.ndarray:
    """``(n_cells, 2 r + 1)`` float32: triangle around each cell centre times the Gaussian window."""
    w = size / n_cells
    d = np.arange(-r, r + 1, dtype=np.float64)
    centres = (np.arange(n_cells) - n_cells / 2 + 0.5) * w
    tri = np.maximum(0.0, 1.0 - np.abs(d[None, :] - centres[:, None]) / w)
    return (tri * np.exp(-d * d / (2 * (size / 2) ** 2))[None, :]).astype(np.float32)


_PARALLEL_PIXELS = 1 << 15
_WORKSPACE = threading.local()
_WORKSPACE_CAP = 1 << 20          # float32 elements (4 MiB) per buffer kept; larger ones are not


def _workspace(name: str, size: int) -> np.ndarray:
    """A 1-D float32 buffer of at least ``size`` elements, kept per thread between calls.

    The kernels' temporaries (the smoothed image, ring buffers) are a few hundred KiB, which
    malloc would map, fault in and unmap on every call; they are kept instead. Buffers above
    ``_WORKSPACE_CAP`` are not kept, so a huge image does not pin its memory."""
    buffer = getattr(_WORKSPACE, name, None)
    if buffer is not None and buffer.size >= size:
        return buffer
    buffer = np.empty(size, np.float32)
    if size <= _WORKSPACE_CAP:
        setattr(_WORKSPACE, name, buffer)
    return buffer


def _smoothed(image: np.ndarray, sigma: float, scale: float = 1.0, threads: int = 1) -> np.ndarray:
    """:func:`classicvision.features._gaussian.smooth_symmetric` (the sparse descriptor's smoothing:
    the same kernel, border and pass order, so the same values) in bands over ``threads`` and
    without a padded copy; ``image`` float32, or uint8 with ``scale = 1 / 255`` (read as
    :func:`check_image` converts it). The result lives in this thread's workspace: it is valid
    until the next call."""
    g = cached_gaussian_kernel1d(sigma) if sigma > 0 else None
    if image.dtype == np.uint8 and (g is None or g.size // 2 > min(image.shape)):
        image = check_image(image, check_range=True)
    if g is None:
        return image
    if g.size // 2 > min(image.shape):
        return smooth_symmetric(image, sigma)
    n_bands = _n_bands(image.shape[0] // 8, threads)
    height, width = image.shape
    out = _workspace("smoothed", height * width)[:height * width].reshape(height, width)
    scratch = _workspace("smoothing", _blur_scratch_size(image.shape, g.size // 2, n_bands))
    return _blur(image, g, "reflect", scale=scale, x_first=True, n_bands=n_bands, out=out, scratch=scratch)


@functools.lru_cache(maxsize=64)
def _pooling_plan(size: float, n_cells: int, r: int):
    """:func:`_pooling_kernels` and each cell's nonzero taps ``[t_lo, t_hi)`` (read-only, cached)."""
    kernel = _pooling_kernels(size, n_cells, r)
    nonzero = kernel != 0
    t_lo = nonzero.argmax(axis=1).astype(np.int64)
    t_hi = (kernel.shape[1] - nonzero[:, ::-1].argmax(axis=1)).astype(np.int64)
    for array in (kernel, t_lo, t_hi):
        array.flags.writeable = False
    return kernel, t_lo, t_hi


def _describe_grid(smoothed: np.ndarray, step: int, size: float, n_cells: int, n_orientations: int,
                   clip: float, rootsift: bool, threads: int = 1) -> np.ndarray:
    """Normalized descriptors ``(M, n_cells**2 * n_orientations)`` float32 of the grid of ``size``."""
    r, n_rows, n_cols = _grid_counts(smoothed.shape, step, size, n_cells)
    if n_rows == 0 or n_cols == 0:
        return np.zeros((0, n_cells * n_cells * n_orientations), np.float32)
    kernel, t_lo, t_hi = _pooling_plan(size, n_cells, r)
    n_bands = _n_bands(n_rows, threads)
    scratch = _workspace("grid", n_bands * _band_scratch_size(step, n_cols, kernel.shape[1], n_cells, n_orientations))
    if n_bands == 1:
        return _dense_raw(smoothed, kernel, t_lo, t_hi, step, n_rows, n_cols, n_orientations, clip,
                          rootsift, True, scratch)
    return _dense_raw_parallel(smoothed, kernel, t_lo, t_hi, step, n_rows, n_cols, n_orientations, clip,
                               rootsift, True, n_bands, scratch)


def _fused(image: np.ndarray, sigma: float) -> bool:
    """Whether one size of ``image`` goes through the fused sweep (:func:`_describe_fused`):
    uint8 or float32, C-contiguous, smoothed by a kernel no wider than the image, on Linux."""
    if not team.AVAILABLE or sigma <= 0 or image.dtype not in (np.uint8, np.float32) \
            or not image.flags.c_contiguous:
        return False
    return _blur_fits(image.shape, cached_gaussian_kernel1d(sigma).size // 2, "reflect")


@functools.lru_cache(maxsize=64)
def _half_taps(sigma: float) -> np.ndarray:
    """The centre tap and one side of :func:`cached_gaussian_kernel1d` ``(sigma)`` (cached: one
    object per ``sigma``)."""
    g = cached_gaussian_kernel1d(sigma)
    return g[g.size // 2:]


class _FusedPlan:
    """Everything :func:`_describe_fused` derives from its arguments but the image (grid counts,
    pooling kernels and taps, smoothing taps, bands, scratch size), for images of one ``shape``;
    :meth:`describe` runs the hand-off. Kept per checked call of :func:`dense_sift_multi`
    (:data:`_PLANS`), so that a repeated call (a data set's images share a few shapes) runs no
    Python but the hand-off."""

    def __init__(self, shape, scale, sigma, step, size, n_cells, n_orientations, clip, rootsift, threads):
        r, self.n_rows, self.n_cols = _grid_counts(shape, step, size, n_cells)
        self.dim = n_cells * n_cells * n_orientations
        self.scale, self.step, self.n_orientations, self.clip, self.rootsift = (scale, step, n_orientations, clip,
                                                                                 rootsift)
        if self.n_rows == 0 or self.n_cols == 0:
            return
        self.kernel, self.t_lo, self.t_hi = _pooling_plan(size, n_cells, r)
        self.half = _half_taps(sigma)
        self.n_bands = _n_bands(self.n_rows, threads)
        self.per_band = _fused_scratch_size(shape[1], self.half.size - 1, step, -(-self.n_rows // self.n_bands),
                                            self.n_cols, self.kernel.shape[1], n_cells, n_orientations)

    def describe(self, image: np.ndarray) -> np.ndarray:
        """The descriptors of ``image`` (of the plan's shape), as :func:`_describe_fused`."""
        if self.n_rows == 0 or self.n_cols == 0:
            return np.zeros((0, self.dim), np.float32)
        n = self.n_bands * self.per_band
        return _dense_fused(image, self.half, self.scale, self.kernel, self.t_lo, self.t_hi, self.step, self.n_rows,
                            self.n_cols, self.n_orientations, self.clip, self.rootsift, self.n_bands,
                            _workspace("fused", n)[:n])


def _describe_fused(image: np.ndarray, scale: float, sigma: float, step: int, size: float, n_cells: int,
                    n_orientations: int, clip: float, rootsift: bool, threads: int) -> np.ndarray:
    """:func:`_describe_grid` of :func:`_smoothed` ``image``, the two fused: each band of grid
    rows smooths the image rows it reads, so that a call is one hand-off to the threads
    (:func:`classicvision._kernels.dense_sift._dense_fused`; the same values)."""
    return _FusedPlan(image.shape, scale, sigma, step, size, n_cells, n_orientations, clip, rootsift,
                      threads).describe(image)


_PLANS: dict = {}        # _plan_key -> (grid, _FusedPlan) of a checked call
_MAX_PLANS = 64
_EXACT = frozenset((int, float, bool))


def _plan_key(shape, step, sizes, rootsift, clip, n_cells, n_orientations, sigma, threads):
    """The key of a :class:`_FusedPlan`, or None for arguments it does not cover: the arguments
    with their exact types (``8`` and ``8.0`` or ``True`` are checked apart), the threads, every
    limit (:func:`classicvision._limits.settings`) and the pixel limit, read now."""
    if type(sizes) is not tuple or len(sizes) != 1:
        return None
    size = sizes[0]
    types = (type(step), type(size), type(rootsift), type(clip), type(n_cells), type(n_orientations), type(sigma))
    if not _EXACT.issuperset(types):
        return None
    return (shape, step, size, rootsift, clip, n_cells, n_orientations, sigma, types, threads, _limits.settings(),
            resolve_max_pixels(None))


def _check_dense_costs(shape, step: int, sizes, n_cells: int, n_orientations: int, threads: int) -> None:
    """Refuse a result or a per-size scratch (on ``threads`` threads) above
    :data:`classicvision._limits.MAX_ARRAY_BYTES`."""
    dim = n_cells * n_cells * n_orientations
    total = 0
    for size in sizes:
        r, n_rows, n_cols = _grid_counts(shape, step, float(size), n_cells)
        if n_rows == 0 or n_cols == 0:
            continue
        total += n_rows * n_cols
        n_bands = _n_bands(n_rows, threads)
        scratch = 4.0 * n_bands * _band_scratch_size(step, n_cols, 2 * r + 1, n_cells, n_orientations)
        _limits.check_array_bytes(scratch, f"the scratch of dense SIFT at size={size!r} on a {shape[0]}x{shape[1]} "
                                  f"image", "pass a smaller size, step or n_orientations")
    _limits.check_array_bytes(4.0 * total * dim, f"{total} dense descriptors of {dim} values",
                              "pass a larger step, fewer sizes or a smaller image")


def dense_sift(image, *, step: int = 8, size: float = 16, rootsift: bool = False, clip: float = 0.2,
               n_cells: int = 4, n_orientations: int = 8,
               sigma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Upright SIFT descriptors on a regular grid, by filtering orientation planes.

    Parameters
    ----------
    image : (H, W) array (uint8, uint16 or float in [0, 1])
    step : int
        Grid spacing in px; a step longer than the image gives one point per axis (as the
        image's larger side would), and costs no more.
    size : float
        Side in px of the square support covered by the ``n_cells x n_cells`` cells; a support
        wider than the image gives no point.
    rootsift : bool
        Apply RootSIFT after clipping (Arandjelovic & Zisserman 2012).
    clip : float
        Clipping threshold after the first L2 normalization (0.2).
    n_cells, n_orientations : int
        Cells per side (4) and orientation bins (8).
    sigma : float
        Gaussian pre-smoothing before central differences, px (0: none); as the sparse one.

    Returns
    -------
    points : (M, 2) float32 array of (x, y)
        Grid centres (module docstring), row by row.
    descriptors : (M, n_cells**2 * n_orientations) float32 array
        Unit L2 rows (all zeros on a patch without gradient), equal to
        ``sift_descriptors(image, points, size=size)`` up to float rounding.

    Raises
    ------
    ValueError, TypeError
        Naming the argument, for values out of range, and for costs past the limits of
        :mod:`classicvision._limits`: descriptors longer than ``MAX_DESCRIPTOR_DIM`` (4096), more
        than ``MAX_SIZES`` sizes, a ``sigma`` wider than twice the image, a result or a scratch
        above ``MAX_ARRAY_BYTES``.

    References
    ----------
    VLFeat ``dsift``; Lowe 2004, section 6.1; Bosch et al. 2007.

    Examples
    --------
    >>> image = np.zeros((40, 40), np.float32)
    >>> image[:, 20:] = 1.0
    >>> points, descriptors = dense_sift(image, step=8, size=16)
    >>> points.shape, descriptors.shape, descriptors.dtype
    ((9, 2), (9, 128), dtype('float32'))
    >>> points[0].tolist()
    [9.0, 9.0]
    """
    return dense_sift_multi(image, step=step, sizes=(size,), rootsift=rootsift, clip=clip,
                            n_cells=n_cells, n_orientations=n_orientations, sigma=sigma)


def dense_sift_multi(image, *, step: int = 8, sizes=(16, 24, 32), rootsift: bool = False,
                     clip: float = 0.2, n_cells: int = 4, n_orientations: int = 8,
                     sigma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Dense SIFT at several support sizes (PHOW style), rows concatenated size by size.

    The gradient and orientation planes are computed once (one ``sigma`` for every size,
    unlike VLFeat's ``phow``, which smooths per size); each size has its own grid
    (:func:`dense_grid`), so the rows of ``sizes[k]`` are the ``len(dense_grid(shape,
    step=step, size=sizes[k]))`` rows after those of the sizes before it.

    Parameters
    ----------
    image : (H, W) array
    step : int
    sizes : sequence of float
        Support sides in px, each > 0.
    rootsift, clip, n_cells, n_orientations, sigma
        As in :func:`dense_sift`.

    Returns
    -------
    points : (M, 2) float32 array of (x, y)
    descriptors : (M, n_cells**2 * n_orientations) float32 array

    Examples
    --------
    >>> points, descriptors = dense_sift_multi(np.random.default_rng(0).random((64, 64)), sizes=(16, 24))
    >>> len(points) == len(dense_grid((64, 64), size=16)) + len(dense_grid((64, 64), size=24))
    True
    """
    key = None
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 2 and image.size \
            and image.flags.c_contiguous:
        if type(image) is np.ndarray:       # a repeated call skips the checks it passed (_FusedPlan)
            threads = num_threads() if image.shape[0] * image.shape[1] >= _PARALLEL_PIXELS else 1
            key = _plan_key(image.shape, step, sizes, rootsift, clip, n_cells, n_orientations, sigma, threads)
            entry = _PLANS.get(key) if key is not None else None
            if entry is not None:
                return entry[0].copy(), entry[1].describe(image)
        scale = 1.0 / 255.0                 # check_image's conversion, fused into the smoothing
        check_pixel_limit(image.shape, "image")
    else:
        image, scale = check_image(image, check_range=True), 1.0
    check_descriptor_options(n_cells, n_orientations, clip, rootsift, sigma)
    dim = _limits.check_descriptor_dim(n_cells, n_orientations)
    if isinstance(sizes, numbers.Real):
        sizes = (sizes,)
    if hasattr(sizes, "__len__"):
        _limits.check_limit(len(sizes), "MAX_SIZES", f"sizes holds {len(sizes)} sizes", "pass fewer")
    sizes = tuple(sizes)
    if len(sizes) == 0:
        raise ValueError("sizes must hold at least one size, got an empty sequence")
    _limits.check_limit(len(sizes), "MAX_SIZES", f"sizes holds {len(sizes)} sizes", "pass fewer")
    for size in sizes:
        _check_grid_args(step, size)
    _limits.check_blur(sigma, image.shape, "sigma")
    n_cells = int(n_cells)
    n_orientations = int(n_orientations)
    step = min(int(step), max(image.shape))     # a longer step gives the same grid (one point per axis)
    # Threads pay from about 181 x 181 pixels (a 15-Scene image is 256 x 256): below, handing bands
    # to a pool thread costs about as much as their work.
    threads = num_threads() if image.shape[0] * image.shape[1] >= _PARALLEL_PIXELS else 1
    _check_dense_costs(image.shape, step, sizes, n_cells, n_orientations, threads)
    grids = [_grid(image.shape, int(step), float(size), n_cells) for size in sizes]
    if sum(len(g) for g in grids) == 0:
        return np.zeros((0, 2), np.float32), np.zeros((0, dim), np.float32)
    if len(sizes) == 1 and _fused(image, float(sigma)):
        plan = _FusedPlan(image.shape, scale, float(sigma), int(step), float(sizes[0]), n_cells, n_orientations,
                          float(clip), bool(rootsift), threads)
        if key is not None:             # every check passed: the next call of this key skips them
            if len(_PLANS) >= _MAX_PLANS:
                _PLANS.clear()
            _PLANS[key] = (grids[0].copy(), plan)
        return grids[0], plan.describe(image)
    smoothed = _smoothed(image, float(sigma), scale, threads)
    descriptors = [_describe_grid(smoothed, int(step), float(size), n_cells, n_orientations, float(clip),
                                  bool(rootsift), threads) for size in sizes]
    descriptors = descriptors[0] if len(descriptors) == 1 else np.concatenate(descriptors, axis=0)
    return np.concatenate(grids, axis=0), descriptors
