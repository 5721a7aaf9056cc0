"""Numba kernels for Gaussian blurs and the pyramid's doubling, with the plain-numpy references
they are tested against.

:func:`_blur` is the one blur of the package: the correlation of an image with a symmetric kernel
``g`` (odd length ``2 r + 1``, ``g[r - k] == g[r + k]``) along x and along y, with a border mode
(scipy.ndimage's names)::

    'mirror'   dcb|abcd|cba   OpenCV BORDER_REFLECT_101, numpy 'reflect'   needs r < n
    'reflect'  dcba|abcd|dcba OpenCV BORDER_REFLECT,     numpy 'symmetric' needs r <= n
    'nearest'  aaa|abcd|ddd   OpenCV BORDER_REPLICATE,   numpy 'edge'      any r
    'wrap'     bcd|abcd|abc   OpenCV BORDER_WRAP,        numpy 'wrap'      needs r <= n

(``n`` the height and the width). It serves the Gaussian pyramid
(:func:`classicvision.features.scale_space._blur`, ``'mirror'``), the descriptors' smoothing
(:func:`classicvision.features._gaussian.smooth_symmetric` and the dense SIFT,
``'reflect'``) and :func:`classicvision.features.filters.gaussian`.

Both passes fold the symmetric taps, ``g[k] (a + b)``, two pairs per sweep over a row (when ``r``
is odd, tap 1 joins tap 0 in the first sweep), and every sweep runs over whole rows from index
0, so that it is SIMD (numba wraps possibly negative indices, which stops LLVM from vectorizing).
The rows are split into bands (run on threads by :func:`~classicvision._kernels.jit.parallel_for`;
the same values for any number of bands). Two pass orders, which round differently:

* ``x_first=False``: per output row, the y-pass of the rows it reads into a row buffer with
  ``r`` spare pixels each side, the border written into them, then the x-pass from it into
  ``out``. One buffer row per band.
* ``x_first=True``: per band, the x-pass of the band's rows and the ``2 r`` border rows it reads
  into ``scratch`` (each input pixel read once, as ``float32(image) * scale``: a uint8 image is
  converted on the fly), then the y-pass from ``scratch`` into ``out``.

With ``x_first=False`` a ``scale`` multiplies the y-pass rows before the x-pass.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .jit import claim_slot, kernel, next_chunk, num_threads, parallel_for, row_stride, slot_count

MIRROR, REFLECT, NEAREST, WRAP = 0, 1, 2, 3
BORDERS = {"mirror": MIRROR, "reflect": REFLECT, "nearest": NEAREST, "wrap": WRAP}
_NUMPY_PAD = {"mirror": "reflect", "reflect": "symmetric", "nearest": "edge", "wrap": "wrap"}
_PARALLEL_PIXELS = 1 << 15   # from 181 x 181 pixels: below, handing work to a thread costs more than it saves
_BANDS = (64, 16)   # bands of the y-first and x-first passes: a band of the x-first one redoes 2 r rows


@njit(cache=True)
def _border_index(i, n, border):
    """Index of ``i`` in the extension of ``range(n)`` by ``border`` (``i`` within the radius the
    mode allows, see the module docstring)."""
    if 0 <= i < n:
        return i
    if border == MIRROR:
        return -i if i < 0 else 2 * (n - 1) - i
    if border == REFLECT:
        return -i - 1 if i < 0 else 2 * n - 1 - i
    if border == NEAREST:
        return 0 if i < 0 else n - 1
    return i + n if i < 0 else i - n              # no modulo: it costs a division check per row


@njit(cache=True)
def _fill_border(padded, r, width, border):
    """Write the ``r`` spare pixels each side of the row ``padded[r:r + width]`` by ``border``."""
    for k in range(1, r + 1):
        padded[r - k] = padded[r + _border_index(-k, width, border)]
        padded[r + width - 1 + k] = padded[r + _border_index(width - 1 + k, width, border)]


@njit(cache=True, fastmath=True)
def _fold_row(padded, half, dst):
    """x-pass: ``dst[x] = sum_k half[|k|] padded[r + x + k]`` for ``|k| <= r`` (``padded`` holds the
    row with ``r`` border pixels each side): the taps folded, ``half[k] (a + b)``, two pairs per
    sweep; when ``r`` is odd tap 1 joins tap 0 in the first sweep."""
    width = dst.shape[0]
    r = half.shape[0] - 1
    odd = r % 2
    w1 = half[1] if odd else np.float32(0.0)
    centre = padded[r:r + width]
    left = padded[r - odd:r - odd + width]
    right = padded[r + odd:r + odd + width]
    for x in range(width):
        dst[x] = half[0] * centre[x] + w1 * (left[x] + right[x])
    for k in range(1 + odd, r + 1, 2):
        a = padded[r - k:r - k + width]
        c = padded[r + k:r + k + width]
        e = padded[r - k - 1:r - k - 1 + width]
        f = padded[r + k + 1:r + k + 1 + width]
        wa = half[k]
        we = half[k + 1]
        for x in range(width):
            dst[x] += wa * (a[x] + c[x]) + we * (e[x] + f[x])


@njit(cache=True, fastmath=True)
def _fold_rows(rows, i, half, border, dst):
    """y-pass: ``dst = sum_k half[|k|] rows[i + k]`` for ``|k| <= r``, row indices extended by
    ``border``; folded as :func:`_fold_row`."""
    n = rows.shape[0]
    width = dst.shape[0]
    r = half.shape[0] - 1
    odd = r % 2
    w0 = half[0]
    w1 = half[1] if odd else np.float32(0.0)
    centre = rows[i]
    above = rows[_border_index(i - odd, n, border)]
    below = rows[_border_index(i + odd, n, border)]
    for x in range(width):
        dst[x] = w0 * centre[x] + w1 * (above[x] + below[x])
    for k in range(1 + odd, r + 1, 2):
        a = rows[_border_index(i - k, n, border)]
        c = rows[_border_index(i + k, n, border)]
        e = rows[_border_index(i - k - 1, n, border)]
        f = rows[_border_index(i + k + 1, n, border)]
        wa = half[k]
        we = half[k + 1]
        for x in range(width):
            dst[x] += wa * (a[x] + c[x]) + we * (e[x] + f[x])


@kernel(fastmath=True)
def _blur_bands(job, image, half, scale, border, n_bands, out, rows):
    """Bands ``b_start <= b < b_stop`` of ``out = image`` blurred by the symmetric kernel whose
    taps ``k = 0..r`` are ``half[k]``, y-pass first (module docstring): ``border`` a code of
    :data:`BORDERS`, the rows split into ``n_bands`` bands. ``image`` and ``out`` ``(H, W)``
    float32, distinct; ``rows`` ``(slots, >= W + 2 r)`` float32, a row buffer per participant."""
    height, width = image.shape
    r = half.shape[0] - 1
    s = np.float32(scale)
    slot = claim_slot(job, rows.shape[0])
    if slot < 0:
        return
    padded = rows[slot]                              # one row with r border pixels each side
    centre = padded[r:r + width]
    b_start, b_stop = next_chunk(job)
    while b_start < b_stop:
        for y in range(height * b_start // n_bands, height * b_stop // n_bands):
            _fold_rows(image, y, half, border, centre)
            if s != 1:
                for x in range(width):
                    centre[x] *= s
            _fill_border(padded, r, width, border)
            _fold_row(padded, half, out[y])
        b_start, b_stop = next_chunk(job)


@kernel(fastmath=True)
def _blur_bands_x_first(job, image, half, scale, border, n_bands, out, scratch, rows):
    """:func:`_blur_bands` with the x-pass first: ``image`` ``(H, W)`` float32 or uint8 (read as
    ``float32(image) * scale``); each band's x-passed rows (with ``r`` rows of margin) go to
    its part of ``scratch``, 1-D float32 of at least :func:`_blur_scratch_size`."""
    height, width = image.shape
    r = half.shape[0] - 1
    s = np.float32(scale)
    per_band = ((height + n_bands - 1) // n_bands + 2 * r) * width
    slot = claim_slot(job, rows.shape[0])
    if slot < 0:
        return
    padded = rows[slot]
    b_start, b_stop = next_chunk(job)
    while b_start < b_stop:
        for b in range(b_start, b_stop):
            y_begin = height * b // n_bands
            y_end = height * (b + 1) // n_bands
            _x_first_rows(image, half, s, border, y_begin, y_end, padded, scratch[b * per_band:], out[y_begin:y_end])
        b_start, b_stop = next_chunk(job)


@njit(cache=True, fastmath=True, inline="always")   # the body of its two callers, compiled with them
def _x_first_rows(image, half, s, border, y_begin, y_end, padded, scratch, out):
    """Rows ``y_begin <= y < y_end`` of the x-first blur (:func:`_blur_bands_x_first`) into
    ``out[y - y_begin]``: the x-pass of the rows they read (``r`` rows of margin each side,
    indexed by ``border``) into the head of ``scratch`` (1-D float32, ``(y_end - y_begin + 2 r) W``),
    through ``padded`` (``W + 2 r``), then the y-pass. Also the dense SIFT bands' own smoothing
    (:func:`classicvision._kernels.dense_sift._fused_band`)."""
    height, width = image.shape
    r = half.shape[0] - 1
    n_rows = y_end - y_begin + 2 * r
    rows = scratch[:n_rows * width].reshape((n_rows, width))
    centre = padded[r:r + width]
    for yy in range(n_rows):
        src = image[_border_index(y_begin + yy - r, height, border)]
        for x in range(width):
            centre[x] = np.float32(src[x]) * s
        _fill_border(padded, r, width, border)
        _fold_row(padded, half, rows[yy])
    for y in range(y_end - y_begin):
        _fold_rows(rows, y + r, half, border, out[y])


def _blur_scratch_size(shape, radius, n_bands):
    """float32 elements of ``scratch`` that :func:`_blur` with ``x_first`` needs for ``n_bands``."""
    height, width = shape
    return n_bands * ((height + n_bands - 1) // n_bands + 2 * radius) * width


def _blur_fits(shape, radius, border):
    """Whether :func:`_blur` takes a kernel of ``radius`` on an image of ``shape`` with ``border``."""
    side = min(shape)
    if border == "mirror":
        return radius < side
    if border == "nearest":
        return True
    return radius <= side


def _blur(image, kernel, border="mirror", *, scale=1.0, x_first=False, n_bands=None, out=None, scratch=None):
    """Blur ``image`` by the symmetric odd-length float32 ``kernel`` (module docstring).

    ``image`` ``(H, W)`` C-contiguous float32 (or uint8 with ``x_first``, read as
    ``float32(image) * scale``); ``border`` a key of :data:`BORDERS`; ``n_bands`` bands of rows
    (``None``: one below ``_PARALLEL_PIXELS`` pixels, else ``min(64, H)`` y-first and
    ``min(16, H)`` x-first, whose bands each redo ``2 r`` rows; more than one runs on threads); ``out`` ``(H, W)`` float32 and ``scratch`` (see :func:`_blur_scratch_size`)
    may be given to reuse memory. Returns ``out``, or ``None`` when the kernel does not fit
    (:func:`_blur_fits`; the caller pads)."""
    height, width = image.shape
    r = kernel.shape[0] // 2
    if not _blur_fits(image.shape, r, border):
        return None
    if n_bands is None:
        n_bands = min(_BANDS[bool(x_first)], height) if height * width >= _PARALLEL_PIXELS else 1
    if out is None:
        out = np.empty((height, width), np.float32)
    threads = num_threads()
    rows = np.empty((slot_count(n_bands, threads=threads), row_stride(width + 2 * r, page=True)), np.float32)
    if not x_first:
        parallel_for(_blur_bands, n_bands, image, kernel[r:], float(scale), BORDERS[border], int(n_bands), out,
                     rows, threads=threads)
        return out
    if scratch is None:
        scratch = np.empty(_blur_scratch_size(image.shape, r, n_bands), np.float32)
    parallel_for(_blur_bands_x_first, n_bands, image, kernel[r:], float(scale), BORDERS[border], int(n_bands),
                 out, scratch, rows, threads=threads)
    return out


def _upsample2(image):
    """``(2 H, 2 W)`` float32 linear interpolation of ``image`` on its own grid:
    ``out[2 i, 2 j] = image[i, j]``, odd rows and columns the mean of their two neighbours, the
    last row and column repeated (:func:`_upsample2_reference`; exactly equal to it)."""
    height, width = image.shape
    out = np.empty((2 * height, 2 * width), np.float32)
    parallel_for(_upsample2_rows, height, image, out, grain=64)
    return out


@kernel
def _upsample2_rows(job, image, out):
    """Output rows ``2 i`` and ``2 i + 1`` of :func:`_upsample2` for ``start <= i < stop``."""
    height, width = image.shape
    half = np.float32(0.5)
    start, stop = next_chunk(job)
    while start < stop:
        for i in range(start, stop):
            a = image[i]
            b = image[i + 1] if i + 1 < height else a
            top = out[2 * i]
            bottom = out[2 * i + 1]
            for j in range(width - 1):
                top[2 * j] = a[j]
                top[2 * j + 1] = half * (a[j] + a[j + 1])
                left = half * (a[j] + b[j])
                right = half * (a[j + 1] + b[j + 1])
                bottom[2 * j] = left
                bottom[2 * j + 1] = half * (left + right)
            last = half * (a[width - 1] + b[width - 1])
            top[2 * width - 2] = a[width - 1]
            top[2 * width - 1] = a[width - 1]
            bottom[2 * width - 2] = last
            bottom[2 * width - 1] = last
        start, stop = next_chunk(job)
    return out


def _blur_reference(image, kernel, border="mirror", scale=1.0):
    """Plain-numpy twin of :func:`_blur` (float64 sums of shifted copies of the padded image)."""
    r = kernel.shape[0] // 2
    p = np.pad(image.astype(np.float64) * scale, r, mode=_NUMPY_PAD[border])
    height, width = image.shape
    rows = sum(float(kernel[k]) * p[k:k + height, :] for k in range(2 * r + 1))
    out = sum(float(kernel[k]) * rows[:, k:k + width] for k in range(2 * r + 1))
    return out.astype(np.float32)


def _upsample2_reference(image):
    """Plain-numpy twin of :func:`_upsample2`."""
    height, width = image.shape
    rows = np.empty((2 * height, width), np.float32)
    rows[0::2] = image
    rows[1:-1:2] = 0.5 * (image[:-1] + image[1:])
    rows[-1] = image[-1]
    out = np.empty((2 * height, 2 * width), np.float32)
    out[:, 0::2] = rows
    out[:, 1:-1:2] = 0.5 * (rows[:, :-1] + rows[:, 1:])
    out[:, -1] = rows[:, -1]
    return out
