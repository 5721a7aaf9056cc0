"""Cost limits of the public functions: the one place where they are defined, and their checks.

Every public function of :mod:`classicvision.features` and :mod:`classicvision.matching` refuses,
up front and with a one-line ``ValueError``, a request whose cost would pass one of the limits
below (as Pillow's ``Image.MAX_IMAGE_PIXELS`` does for decompression bombs). The message names the
argument, the value received, the limit and how to raise it. The limits are read when a function
is called, so a program that really needs more sets the constant first::

    import classicvision._limits
    classicvision._limits.MAX_SUPPORT_PIXELS = 2**34      # or None: no limit

Where the answer does not depend on the parameter past some point, the parameter is clipped
instead of refused, and the function's docstring says so (a dense-grid ``step`` longer than the
image, a Harris ``min_distance`` wider than it, a ``chunk_size`` above what fits in
:data:`MAX_ARRAY_BYTES`).

Limits
------
MAX_KERNEL_RADIUS
    Largest radius ``int(truncate * sigma + 0.5)`` of a sampled Gaussian kernel, in taps
    (:func:`~classicvision.features.filters.gaussian_kernel1d`): ``2**20``.
KERNEL_RADIUS_RELATIVE, KERNEL_RADIUS_FLOOR
    A filter applied to an image (Gaussian, derivative of Gaussian, Harris window, descriptor
    pre-smoothing, pyramid blur, a user's separable kernel) may have a radius of at most
    ``KERNEL_RADIUS_RELATIVE * max(H, W, KERNEL_RADIUS_FLOOR)`` pixels (2 and 64): a wider kernel
    reaches far past the whole image (its result is the image's mean up to the border mode) and
    costs ``H W r``.
MAX_SUPPORT_PIXELS
    Pixels visited by one call of the sparse descriptors or orientation histograms, summed over
    the points (each support's bounding square): ``2**31``, a few seconds of work. The cost of a
    point grows as its ``size**2``.
MAX_DESCRIPTOR_DIM
    Length of one descriptor (``n_cells**2 * n_orientations``) or orientation histogram
    (``n_bins``): 4096 (SIFT has 128).
MAX_ARRAY_BYTES
    Largest single array a call may allocate, result or scratch: ``2**32`` (4 GiB).
MAX_SCALES_PER_OCTAVE
    ``n_scales`` of a Gaussian pyramid: 64 (Lowe uses 3).
MAX_SIZES
    Support sizes of one :func:`~classicvision.features.dense_sift.dense_sift_multi` call: 256.
MAX_ITERATIONS
    Samples of the robust estimator (``verify_matches(max_iters=)``): ``10**6``.
MAX_COORDINATE
    Largest ``|x|`` or ``|y|`` of a point that is described or oriented: ``2**24`` px, beyond which
    float32 no longer holds every whole pixel position.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MAX_KERNEL_RADIUS", "KERNEL_RADIUS_RELATIVE", "KERNEL_RADIUS_FLOOR", "MAX_SUPPORT_PIXELS",
    "MAX_DESCRIPTOR_DIM", "MAX_ARRAY_BYTES", "MAX_SCALES_PER_OCTAVE", "MAX_SIZES", "MAX_ITERATIONS",
    "MAX_COORDINATE", "check_limit", "check_kernel_radius", "check_array_bytes", "check_coordinates",
    "capped_chunk", "support_pixels", "check_blur", "check_descriptor_dim", "settings",
]

MAX_KERNEL_RADIUS = 2**20
KERNEL_RADIUS_RELATIVE = 2.0
KERNEL_RADIUS_FLOOR = 64
MAX_SUPPORT_PIXELS = 2**31
MAX_DESCRIPTOR_DIM = 4096
MAX_ARRAY_BYTES = 2**32
MAX_SCALES_PER_OCTAVE = 64
MAX_SIZES = 256
MAX_ITERATIONS = 10**6
MAX_COORDINATE = 2.0**24


def settings() -> tuple:
    """The current value of every limit above, in the order of ``__all__``: part of the key of a
    cache of checks that passed, so that a limit changed later is checked again."""
    return (MAX_KERNEL_RADIUS, KERNEL_RADIUS_RELATIVE, KERNEL_RADIUS_FLOOR, MAX_SUPPORT_PIXELS, MAX_DESCRIPTOR_DIM,
            MAX_ARRAY_BYTES, MAX_SCALES_PER_OCTAVE, MAX_SIZES, MAX_ITERATIONS, MAX_COORDINATE)


def _limit(limit_name: str):
    return globals()[limit_name]


def _raise_hint(limit_name: str) -> str:
    return f"raise classicvision._limits.{limit_name} (None: no limit) if you really need more"


def check_limit(cost, limit_name: str, what: str, hint: str = "") -> None:
    """Raise ``ValueError("<what> ... above <limit_name> = <limit>; <hint>, or raise ...")`` when
    ``cost`` passes the limit named ``limit_name`` (read now, so that it can be changed)."""
    limit = _limit(limit_name)
    if limit is not None and cost > limit:
        advice = f"{hint}, or {_raise_hint(limit_name)}" if hint else _raise_hint(limit_name)
        raise ValueError(f"{what}, above {limit_name} = {limit:g}; {advice}")


def check_kernel_radius(radius: float, shape, what: str, hint: str) -> None:
    """Refuse a filter of ``radius`` px on an image of ``shape`` wider than the relative limit."""
    relative = KERNEL_RADIUS_RELATIVE
    if relative is None:
        return
    height, width = shape
    limit = relative * max(height, width, KERNEL_RADIUS_FLOOR)
    if radius > limit:
        raise ValueError(f"{what} gives a kernel radius of {radius:.4g} px on a {height}x{width} image, above "
                         f"KERNEL_RADIUS_RELATIVE * max(H, W, KERNEL_RADIUS_FLOOR) = {relative:g} * "
                         f"{max(height, width, KERNEL_RADIUS_FLOOR)} px (a kernel this wide smooths the image to "
                         f"its mean); {hint}, or {_raise_hint('KERNEL_RADIUS_RELATIVE')}")


def check_array_bytes(nbytes: float, what: str, hint: str) -> None:
    """Refuse an array of ``nbytes`` above :data:`MAX_ARRAY_BYTES`."""
    check_limit(nbytes, "MAX_ARRAY_BYTES", f"{what} would take {nbytes / 2**30:.3g} GiB", hint)


def check_coordinates(points: np.ndarray, name: str) -> None:
    """Refuse ``(N, 2)`` finite points with a coordinate beyond :data:`MAX_COORDINATE`."""
    if points.size == 0 or MAX_COORDINATE is None:
        return
    largest = float(np.abs(points).max())
    if largest > MAX_COORDINATE:
        raise ValueError(f"{name} must have |x| and |y| <= MAX_COORDINATE = {MAX_COORDINATE:g} px (float32 "
                         f"holds every whole pixel position up to there), got a coordinate of magnitude "
                         f"{largest:.4g}; {_raise_hint('MAX_COORDINATE')}")


def capped_chunk(chunk_size: int, n_rows: int, row_bytes: int) -> int:
    """``chunk_size`` clipped to ``n_rows`` and to what keeps a ``(chunk, row)`` block within
    :data:`MAX_ARRAY_BYTES` (at least 1): the block size changes the memory, not the answer."""
    chunk = max(1, min(int(chunk_size), int(n_rows)))
    if MAX_ARRAY_BYTES is not None and row_bytes > 0:
        chunk = max(1, min(chunk, int(MAX_ARRAY_BYTES // row_bytes)))
    return chunk


def support_pixels(sizes: np.ndarray, n_cells: int, thetas: np.ndarray | None = None) -> float:
    """Pixels visited by the sparse SIFT descriptor, summed over supports of side ``sizes`` (float64):
    the bounding square of the rotated reach ``s/2 + s/(2 n)`` (``sift`` kernel), ``+ 3`` for rounding."""
    reach = 0.5 * sizes * (1.0 + 1.0 / n_cells)
    spread = 1.0 if thetas is None else np.abs(np.cos(thetas)) + np.abs(np.sin(thetas))
    side = 2.0 * reach * spread + 3.0
    return float(np.sum(side * side)) if side.size else 0.0


def check_descriptor_dim(n_cells: int, n_orientations: int) -> int:
    """``n_cells**2 * n_orientations`` (already checked integers >= 1), or raise above
    :data:`MAX_DESCRIPTOR_DIM`."""
    dim = int(n_cells) ** 2 * int(n_orientations)
    check_limit(dim, "MAX_DESCRIPTOR_DIM",
                f"n_cells={n_cells!r} and n_orientations={n_orientations!r} give descriptors of "
                f"n_cells**2 * n_orientations = {dim} values", "pass fewer cells or orientations (SIFT: 4 and 8)")
    return dim


def check_blur(sigma: float, shape, name: str = "sigma", truncate: float = 4.0) -> None:
    """Refuse a Gaussian of ``sigma`` (already checked finite, >= 0) whose radius ``truncate * sigma``
    passes :func:`check_kernel_radius` on an image of ``shape``."""
    what = f"{name}={sigma!r}" + ("" if truncate == 4.0 else f" with truncate={truncate!r}")
    check_kernel_radius(truncate * float(sigma), shape, what, f"pass a smaller {name}")
