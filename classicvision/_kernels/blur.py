"""Numba kernels for the Gaussian pyramid (the blurs of each octave and the doubled first image),
with the plain-numpy references they are tested against.

:func:`_mirror_blur` correlates an image with a symmetric kernel ``g`` (odd length ``2 r + 1``,
``g[r - k] == g[r + k]``) along y, then along x, with the mirror border of OpenCV's
``BORDER_REFLECT_101`` (``dcb|abcd|cba``): the blur of :func:`classicvision.scale_space._blur`.

Why not ``cv2.sepFilter2D``, which computes the same sums: per output row the kernel forms the
y-pass in a row buffer that stays in the L1 cache, mirrors its ends in place, and runs the x-pass
from it, and it folds the symmetric taps, ``g[k] (a + b)``, two pairs per sweep. Every loop runs
over whole rows from index 0 (numba wraps possibly negative indices, which stops LLVM from
vectorizing), so each sweep is SIMD. Whole pyramids built with it against the same blurs by
``sepFilter2D``, two threads each: 1.1-1.8x faster (``benchmarks/bench_local_features.py``,
rows "Gaussian pyramid"; the spread is this shared machine's).
"""

from __future__ import annotations

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .jit import build


@njit(cache=True, inline="always")
def _reflect101(i, n):
    """Index ``i`` in ``[0, 2 n - 1)`` mirrored into ``range(n)`` without repeating the edge."""
    return 2 * (n - 1) - i if i >= n else i


@njit(cache=True, inline="always", fastmath=True)
def _fold_row(padded, half, dst):
    """``dst[x] = sum_k half[|k|] padded[r + x + k]`` for ``|k| <= r`` (``padded`` holds the row
    with ``r`` mirrored pixels each side): the taps folded, ``half[k] (a + b)``, two pairs per
    sweep; when ``r`` is odd tap 1 joins tap 0 in the first sweep. Every sweep is SIMD."""
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


def _mirror_blur_impl(image, half, out, n_bands):
    """``out = image`` blurred by the symmetric kernel whose taps ``k = 0..r`` are ``half[k]``.

    ``image`` and ``out`` are ``(H, W)`` float32 (distinct), ``r < min(H, W)``. The rows are
    split into ``n_bands`` bands (threads in the parallel build). Taps are taken two at a time;
    when ``r`` is odd, tap 1 joins tap 0 in the first sweep (else that sweep adds ``0 * 2 src``).
    """
    height, width = image.shape
    r = half.shape[0] - 1
    odd = r % 2
    first = 1 + odd                              # first tap of the pairs
    w0 = half[0]
    w1 = half[1] if odd else np.float32(0.0)
    for b in prange(n_bands):
        padded = np.empty(width + 2 * r, np.float32)  # the y-pass of one row, mirrored r px
        acc = padded[r:r + width]
        for y in range(height * b // n_bands, height * (b + 1) // n_bands):
            # y-pass into acc: tap 0 (and tap 1 when r is odd), then pairs of taps.
            src = image[y]
            above = image[abs(y - odd)]
            below = image[_reflect101(y + odd, height)]
            for x in range(width):
                acc[x] = w0 * src[x] + w1 * (above[x] + below[x])
            for k in range(first, r + 1, 2):
                a = image[abs(y - k)]
                c = image[_reflect101(y + k, height)]
                e = image[abs(y - k - 1)]
                f = image[_reflect101(y + k + 1, height)]
                wa = half[k]
                we = half[k + 1]
                for x in range(width):
                    acc[x] += wa * (a[x] + c[x]) + we * (e[x] + f[x])
            for k in range(1, r + 1):
                padded[r - k] = padded[r + k]
                padded[r + width - 1 + k] = padded[r + width - 1 - k]
            _fold_row(padded, half, out[y])       # x-pass from the mirrored row into out
    return out


_mirror_blur_parallel = build(_mirror_blur_impl, "_parallel", parallel=True, fastmath=True)
_mirror_blur_serial = build(_mirror_blur_impl, "_serial", fastmath=True)
_PARALLEL_PIXELS = 1 << 16                       # a 256 x 256 level is worth two threads
_BANDS = 16


def _mirror_blur(image, kernel, out=None):
    """Blur ``(H, W)`` float32 ``image`` by the symmetric odd-length ``kernel``, mirror border
    (``BORDER_REFLECT_101``); ``None`` when the kernel radius is not below ``min(H, W)`` (the
    caller then uses OpenCV, which reflects more than once)."""
    height, width = image.shape
    r = kernel.shape[0] // 2
    if r >= min(height, width) or r < 1:
        return None
    half = np.ascontiguousarray(kernel[r:], np.float32)
    if out is None:
        out = np.empty((height, width), np.float32)
    big = height * width >= _PARALLEL_PIXELS
    kernel_fn = _mirror_blur_parallel if big else _mirror_blur_serial
    return kernel_fn(image, half, out, min(_BANDS, height) if big else 1)


@njit(cache=True, parallel=True)
def _upsample2(image):
    """``(2 H, 2 W)`` float32 linear interpolation of ``image`` on its own grid:
    ``out[2 i, 2 j] = image[i, j]``, odd rows and columns the mean of their two neighbours, the
    last row and column repeated (:func:`_upsample2_reference`; exactly equal to it)."""
    height, width = image.shape
    out = np.empty((2 * height, 2 * width), np.float32)
    half = np.float32(0.5)
    for i in prange(height):
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
    return out



# ------------------------------------------------------------------------------------------
# Symmetric-border (``dcba|abcd``) smoothing of the descriptors

@njit(cache=True, inline="always")
def _mirror(i, n):
    """Index of ``i`` (in ``[-n, 2n)``) in the symmetric extension of ``range(n)``."""
    if i < 0:
        return -i - 1
    if i >= n:
        return 2 * n - 1 - i
    return i


@njit(cache=True, inline="always", error_model="numpy", fastmath=True)
def _smooth_band(image, g, scale, y_begin, y_end, out, scratch):
    """Rows ``y_begin <= y < y_end`` of :func:`_smooth_symmetric` into ``out``: the x-pass of the
    ``y_end - y_begin + 2 R`` (mirrored) rows they read, then the y-pass. Pixels are read as
    ``float32(image) * scale`` (``scale = 1 / 255`` for uint8: :func:`classicvision._validation.
    check_image`'s conversion, fused). ``scratch`` holds at least ``(y_end - y_begin + 2 R) W``
    float32. ``g`` is symmetric: its taps are folded,
    ``g[R + k] (a + b)``, two pairs per sweep over a row
    (:func:`classicvision._blur_kernels._fold_row` for the x-pass), which halves the sweeps of
    the unfolded filter."""
    height, width = image.shape
    r = g.shape[0] // 2
    half = g[r:]                                   # taps 0..R from the centre
    odd = r % 2
    first = 1 + odd                                # the first tap of the pairs of pairs
    w0 = g[r]
    w1 = g[r + 1] if odd else np.float32(0.0)      # tap 1 joins tap 0 when r is odd
    padded = np.empty(width + 2 * r, np.float32)
    n_rows = y_end - y_begin + 2 * r                # the x-passed rows, in scratch
    rows = scratch[:n_rows * width].reshape((n_rows, width))
    for yy in range(n_rows):
        src = image[_mirror(y_begin + yy - r, height)]
        for q in range(r):
            padded[q] = np.float32(src[r - 1 - q]) * scale
            padded[width + r + q] = np.float32(src[width - 1 - q]) * scale
        for q in range(width):
            padded[r + q] = np.float32(src[q]) * scale
        _fold_row(padded, half, rows[yy])
    for y in range(y_begin, y_end):
        dst = out[y]
        i = y - y_begin + r                         # the row of ``rows`` centred on y
        centre = rows[i]
        above = rows[i - odd]
        below = rows[i + odd]
        for j in range(width):
            dst[j] = w0 * centre[j] + w1 * (above[j] + below[j])
        for k in range(first, r + 1, 2):
            a = rows[i - k]
            b = rows[i + k]
            c = rows[i - k - 1]
            d = rows[i + k + 1]
            wa = g[r + k]
            wc = g[r + k + 1]
            for j in range(width):
                dst[j] += wa * (a[j] + b[j]) + wc * (c[j] + d[j])


def _smooth_scratch_size(shape, radius, n_bands):
    """float32 scratch that :func:`_smooth_symmetric_parallel` needs for ``n_bands`` bands."""
    height, width = shape
    return n_bands * ((height + n_bands - 1) // n_bands + 2 * radius) * width


@njit(cache=True, nogil=True, error_model="numpy", fastmath=True)
def _smooth_symmetric(image, g, scale=1.0, out=None, scratch=None):
    """Correlation with the symmetric ``g`` (odd length ``2 R + 1``) along x then y, symmetric
    border; float32. The smoothing of both the sparse (:func:`classicvision.sift._smooth`) and the
    dense descriptors, so that they see the same image.

    Requires ``R <= min(H, W)`` (else the caller pads). ``image`` float32, or uint8 with
    ``scale = 1 / 255``. ``out`` (``(H, W)`` float32) and ``scratch`` (1-D float32 of
    :func:`_smooth_scratch_size` with one band) may be given to reuse memory. One thread, without
    the GIL."""
    height, width = image.shape
    r = g.shape[0] // 2
    if out is None:
        result = np.empty((height, width), np.float32)
    else:
        result = out
    if scratch is None:
        work = np.empty((height + 2 * r) * width, np.float32)
    else:
        work = scratch
    _smooth_band(image, g, np.float32(scale), 0, height, result, work)
    return result


@njit(cache=True, parallel=True, error_model="numpy", fastmath=True)
def _smooth_symmetric_parallel(image, g, scale, n_bands, out, scratch):
    """:func:`_smooth_symmetric` with the rows split into ``n_bands`` bands (numba threads) into
    ``out``; the same values (each band repeats the x-pass of the ``2 R`` rows it shares).
    ``scratch``: 1-D float32 of at least :func:`_smooth_scratch_size`."""
    height, width = image.shape
    per_band = ((height + n_bands - 1) // n_bands + 2 * (g.shape[0] // 2)) * width
    for b in prange(n_bands):
        _smooth_band(image, g, np.float32(scale), height * b // n_bands, height * (b + 1) // n_bands, out,
                     scratch[b * per_band:(b + 1) * per_band])
    return out



def _mirror_blur_reference(image, kernel):
    """Plain-numpy twin of :func:`_mirror_blur` (float64 sums over the padded image)."""
    r = kernel.shape[0] // 2
    p = np.pad(image.astype(np.float64), r, mode="reflect")   # numpy's 'reflect' is REFLECT_101
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


def _smooth_symmetric_reference(image, g):
    """Twin of :func:`_smooth_symmetric` (scipy-free: padded image, shifted sums in float64)."""
    r = g.shape[0] // 2
    p = np.pad(image.astype(np.float64), r, mode="symmetric")
    height, width = image.shape
    rows = sum(float(g[k]) * p[:, k:k + width] for k in range(g.shape[0]))
    return sum(float(g[k]) * rows[k:k + height] for k in range(g.shape[0])).astype(np.float32)


