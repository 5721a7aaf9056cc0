"""Numba kernels for separable filtering, with the plain-numpy references they are tested against.

The kernels take an image already padded by ``r`` pixels on every side and two 1-D kernels of
the same length ``2r + 1``; they return the "valid" part, of the unpadded size. Both passes are
correlations (no kernel flip): ``out[y, x] = sum_k kernel[k] * padded[y, x + k]``.
"""

from __future__ import annotations

import numpy as np

from .jit import kernel, next_chunk, parallel_for


def _separable_valid(padded, kernel_x, kernel_y):
    """``(H, W)`` float32 correlation of ``padded`` (``(H + 2r, W + 2r)`` float32) with the
    separable kernel: every padded row along x, then the columns along y; rows on threads."""
    n = kernel_x.shape[0]
    r = n // 2
    height = padded.shape[0] - 2 * r
    width = padded.shape[1] - 2 * r
    rows = np.empty((padded.shape[0], width), np.float32)
    parallel_for(_correlate_rows, padded.shape[0], padded, kernel_x, rows, grain=32)
    out = np.empty((height, width), np.float32)
    parallel_for(_correlate_columns, height, rows, kernel_y, out, grain=32)
    return out


@kernel(fastmath=True)
def _correlate_rows(job, padded, kernel_x, rows):
    """``rows[i, j] = sum_k kernel_x[k] padded[i, j + k]`` for ``start <= i < stop``."""
    n = kernel_x.shape[0]
    width = rows.shape[1]
    start, stop = next_chunk(job)
    while start < stop:
        for i in range(start, stop):
            src = padded[i]
            dst = rows[i]
            w0 = kernel_x[0]
            for j in range(width):
                dst[j] = w0 * src[j]
            for k in range(1, n):
                w = kernel_x[k]
                if w != 0.0:
                    for j in range(width):
                        dst[j] += w * src[j + k]
        start, stop = next_chunk(job)


@kernel(fastmath=True)
def _correlate_columns(job, rows, kernel_y, out):
    """``out[i, j] = sum_k kernel_y[k] rows[i + k, j]`` for ``start <= i < stop``."""
    n = kernel_y.shape[0]
    width = out.shape[1]
    start, stop = next_chunk(job)
    while start < stop:
        for i in range(start, stop):
            dst = out[i]
            w0 = kernel_y[0]
            src = rows[i]
            for j in range(width):
                dst[j] = w0 * src[j]
            for k in range(1, n):
                w = kernel_y[k]
                if w != 0.0:
                    src = rows[i + k]
                    for j in range(width):
                        dst[j] += w * src[j]
        start, stop = next_chunk(job)


def _separable_valid_reference(padded, kernel_x, kernel_y):
    """Plain-numpy twin of :func:`_separable_valid` (float64 accumulation)."""
    n = kernel_x.shape[0]
    r = n // 2
    height = padded.shape[0] - 2 * r
    width = padded.shape[1] - 2 * r
    padded = padded.astype(np.float64)
    rows = sum(kernel_x[k] * padded[:, k:k + width] for k in range(n))
    out = sum(kernel_y[k] * rows[k:k + height, :] for k in range(n))
    return out.astype(np.float32)
