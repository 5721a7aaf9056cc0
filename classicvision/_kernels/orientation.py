"""Numba kernel for the orientation histograms of scale-space points, with its numpy reference.

:func:`_orientation_histograms`: Gaussian-weighted histograms of gradient orientation around each
point on its Gaussian level (reference :func:`_orientation_histograms_reference`). The loop over
points is inside, the points on threads (:func:`~classicvision._kernels.jit.parallel_for`). Nothing
here checks input.
"""

from __future__ import annotations

import math

import numpy as np

from .gradient import _bin_of
from .jit import claim_slot, kernel, next_chunk, parallel_for, row_stride, slot_count


_GRAIN = 16   # points per chunk: threads from 32 points up


@kernel(fastmath=True)
def _orientation_histograms_points(job, levels, level, xs, ys, sigmas, n_bins, window, radius_factor,
                                   hist, scratch):
    """Rows ``start <= i < stop`` of the ``(N, n_bins)`` float32 histograms of gradient
    orientation, into ``hist`` (zeros); ``scratch`` ``(slots, 3, >= 2 R + 1)`` float32, a row per
    participant, ``R`` at least every point's radius.

    For point ``i`` on Gaussian image ``levels[level[i]]`` at ``(xs[i], ys[i])`` rounded, every
    pixel within ``round(radius_factor * window * sigmas[i])`` (square, and not on the image's
    outermost ring) votes ``|g| exp(-d**2 / (2 (window sigmas[i])**2))`` into the two bins
    around ``arctan2(gy, gx)`` (linear interpolation; bin ``k`` is centred on ``2 pi k / n_bins``),
    with central-difference gradients ``gx = I[y, x+1] - I[y, x-1]``, ``gy = I[y+1, x] - I[y-1, x]``.
    """
    height = levels.shape[1]
    width = levels.shape[2]
    bin_per_radian = np.float32(n_bins / (2.0 * math.pi))
    slot = claim_slot(job, scratch.shape[0])
    if slot < 0:
        return
    buffers = scratch[slot]
    start, stop = next_chunk(job)
    while start < stop:
        for i in range(start, stop):
            image = levels[level[i]]
            cx = round(xs[i])
            cy = round(ys[i])
            sigma_w = window * sigmas[i]
            radius = round(radius_factor * sigma_w)
            scale = -0.5 / (sigma_w * sigma_w)
            # The Gaussian weight is separable: one table of exp(-d**2 / (2 sigma_w**2)).
            table = buffers[0]
            for d in range(-radius, radius + 1):
                table[d + radius] = math.exp(d * d * scale)
            row = hist[i]
            y0 = cy - radius if cy - radius > 1 else 1
            y1 = cy + radius if cy + radius < height - 2 else height - 2
            x0 = cx - radius if cx - radius > 1 else 1
            x1 = cx + radius if cx + radius < width - 2 else width - 2
            span = x1 - x0 + 1 if x1 >= x0 else 0
            weights = buffers[1]
            bins = buffers[2]
            table_x = table[x0 - cx + radius:x0 - cx + radius + span]
            for y in range(y0, y1 + 1):
                wy = table[y - cy + radius]
                # Slices indexed from 0, so that numba need not wrap possibly negative indices
                # and the first pass vectorizes.
                above = image[y - 1, x0:x0 + span]
                left = image[y, x0 - 1:x0 - 1 + span]
                right = image[y, x0 + 1:x0 + 1 + span]
                below = image[y + 1, x0:x0 + span]
                # Two passes over the row: weights and bins without branches, then the votes.
                for j in range(span):
                    gx = right[j] - left[j]
                    gy = below[j] - above[j]
                    weights[j] = math.sqrt(gx * gx + gy * gy) * wy * table_x[j]
                    bins[j] = _bin_of(gx, gy, bin_per_radian, n_bins)
                for j in range(span):
                    f = bins[j]
                    b0 = np.int64(f)
                    t = f - b0
                    b1 = b0 + 1 if b0 + 1 < n_bins else 0
                    row[b0] += weights[j] * (1.0 - t)
                    row[b1] += weights[j] * t
        start, stop = next_chunk(job)


def _orientation_histograms(levels, level, xs, ys, sigmas, n_bins, window, radius_factor):
    """``(N, n_bins)`` float32 histograms (:func:`_orientation_histograms_points`), threads from
    32 points up."""
    hist = np.zeros((len(xs), int(n_bins)), np.float32)
    sigmas = np.ascontiguousarray(sigmas, np.float32)
    radius = int(np.rint(float(radius_factor) * (float(window) * sigmas.astype(np.float64))).max(initial=0)) + 1
    scratch = np.empty((slot_count(len(xs), _GRAIN), 3, row_stride(2 * radius + 1)), np.float32)
    parallel_for(_orientation_histograms_points, len(xs), levels, np.ascontiguousarray(level, np.int64),
                 np.ascontiguousarray(xs, np.float32), np.ascontiguousarray(ys, np.float32),
                 sigmas, int(n_bins), float(window), float(radius_factor), hist, scratch, grain=_GRAIN)
    return hist


def _orientation_histograms_reference(levels, level, xs, ys, sigmas, n_bins, window, radius_factor):
    """Plain-numpy twin of :func:`_orientation_histograms` (one ``np.add.at`` per point)."""
    n = len(xs)
    height, width = levels.shape[1:]
    hist = np.zeros((n, n_bins), np.float64)
    for i in range(n):
        image = levels[level[i]].astype(np.float64)
        cx, cy = int(round(float(xs[i]))), int(round(float(ys[i])))
        sigma_w = window * float(sigmas[i])
        radius = int(round(radius_factor * sigma_w))
        yy, xx = np.mgrid[max(1, cy - radius):min(height - 2, cy + radius) + 1,
                          max(1, cx - radius):min(width - 2, cx + radius) + 1]
        gx = image[yy, xx + 1] - image[yy, xx - 1]
        gy = image[yy + 1, xx] - image[yy - 1, xx]
        weight = np.hypot(gx, gy) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma_w ** 2))
        f = np.mod(np.arctan2(gy, gx) * n_bins / (2 * np.pi), n_bins)
        b0 = np.floor(f).astype(np.int64)
        t = f - b0
        np.add.at(hist[i], (b0 % n_bins).ravel(), (weight * (1 - t)).ravel())
        np.add.at(hist[i], ((b0 + 1) % n_bins).ravel(), (weight * t).ravel())
    return hist.astype(np.float32)
