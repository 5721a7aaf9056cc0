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

import numpy as np
from numba import njit, prange

from ._scale_space_kernels import _build


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


_mirror_blur_parallel = _build(_mirror_blur_impl, "_parallel", parallel=True, fastmath=True)
_mirror_blur_serial = _build(_mirror_blur_impl, "_serial", fastmath=True)
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
