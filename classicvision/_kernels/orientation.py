"""Numba kernels for the orientations of scale-space points, with their numpy references.

:func:`_orientation_histograms`: Gaussian-weighted histograms of gradient orientation around each
point on its Gaussian level (reference :func:`_orientation_histograms_reference`). The loop over
points is inside, the points on threads (:func:`~classicvision._kernels.jit.parallel_for`).

:func:`_peaks`: the refined peaks of the smoothed circular histograms (reference
:func:`_peaks_reference`). Nothing here checks input.
"""

from __future__ import annotations

import math

import numpy as np

from .gradient import _bin_of32
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
    n_bins_32 = np.float32(n_bins)
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
                    weights[j] = np.sqrt(gx * gx + gy * gy) * wy * table_x[j]
                    bins[j] = _bin_of32(gx, gy, bin_per_radian, n_bins_32)
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


def _peaks(hist, peak_ratio, weights):
    """``(rows (K,) int64, angles (K,) float32)``: the peaks of the ``(N, n_bins)`` float32
    circular histograms ``hist`` smoothed with the 5 float32 ``weights`` (:func:`_peaks_into`),
    rows ascending, each row's strongest peak first; a row without a peak gets one angle 0."""
    n, n_bins = hist.shape
    counts = np.empty(n, np.int64)
    angles = np.empty((n, max(n_bins // 2, 1)), np.float32)   # peaks are never adjacent
    _peaks_into(np.ascontiguousarray(hist, np.float32), np.ascontiguousarray(weights, np.float32),
                float(peak_ratio), counts, angles, np.empty((3, n_bins + 4), np.float32))
    rows = np.repeat(np.arange(n, dtype=np.int64), counts)
    return rows, angles[np.arange(angles.shape[1]) < counts[:, None]]


@kernel
def _peaks_into(hist, weights, peak_ratio, counts, angles, scratch):
    """For each row ``i`` of ``hist``: ``counts[i]`` peaks into ``angles[i, :counts[i]]``;
    ``scratch`` ``(3, n_bins + 4)`` float32 (the row and the smoothed row with their circular
    neighbours, the heights of its peaks).

    The row is smoothed circularly, ``s[b] = sum_k weights[k] hist[b + k - 2]``; bin ``b`` is a
    peak when ``s[b-1] < s[b] >= s[b+1]`` (a plateau of two counts once, at its left bin),
    ``s[b] >= peak_ratio * max(s)`` and ``max(s) > 0``. Its angle is
    ``2 pi (b + offset) / n_bins`` wrapped to ``[-pi, pi)``, with the parabola's offset
    ``0.5 (l - r) / (l - 2 c + r)`` (0 when the denominator is 0). Peaks are sorted by height,
    highest first, ties in bin order. float32 arithmetic in the reference's order, so that the
    two agree to the bit."""
    n_bins = hist.shape[1]
    padded = scratch[0]     # the row with two circular neighbours each side
    smooth = scratch[1]     # the smoothed row with one each side
    heights = scratch[2]
    ratio = np.float32(peak_ratio)
    two = np.float32(2.0)
    half = np.float32(0.5)
    zero = np.float32(0.0)
    two_pi = 2.0 * math.pi
    for i in range(hist.shape[0]):
        row = hist[i]
        for b in range(n_bins):
            padded[b + 2] = row[b]
        for b in range(2):
            padded[b] = row[(b - 2) % n_bins]
            padded[n_bins + 2 + b] = row[b % n_bins]
        top = np.float32(-np.inf)
        for b in range(n_bins):
            s = weights[0] * padded[b]
            s += weights[1] * padded[b + 1]
            s += weights[2] * padded[b + 2]
            s += weights[3] * padded[b + 3]
            s += weights[4] * padded[b + 4]
            smooth[b + 1] = s
            if s > top:
                top = s
        smooth[0] = smooth[n_bins]
        smooth[n_bins + 1] = smooth[1]
        threshold = ratio * top
        k = 0
        if top > zero:
            for b in range(n_bins):
                c = smooth[b + 1]
                left = smooth[b]
                right = smooth[b + 2]
                if c > left and c >= right and c >= threshold:
                    denominator = left - two * c + right
                    offset = half * (left - right) / denominator if denominator != zero else zero
                    angle = two_pi * (b + np.float64(offset)) / n_bins + math.pi   # in (0, 4 pi)
                    if angle >= two_pi:          # the reference's modulo, exactly (Sterbenz)
                        angle -= two_pi
                    angle -= math.pi
                    j = k          # insertion, stable: after the peaks at least as high
                    while j > 0 and heights[j - 1] < c:
                        heights[j] = heights[j - 1]
                        angles[i, j] = angles[i, j - 1]
                        j -= 1
                    heights[j] = c
                    angles[i, j] = angle
                    k += 1
        if k == 0:
            angles[i, 0] = 0.0
            k = 1
        counts[i] = k


def _peaks_reference(hist, peak_ratio, weights):
    """Plain-numpy twin of :func:`_peaks`."""
    n_bins = hist.shape[1]
    smooth = sum(w * np.roll(hist, shift, axis=1) for w, shift in zip(weights, range(2, -3, -1)))
    left = np.roll(smooth, 1, axis=1)
    right = np.roll(smooth, -1, axis=1)
    top = smooth.max(axis=1, keepdims=True)
    is_peak = (smooth > left) & (smooth >= right) & (smooth >= peak_ratio * top) & (top > 0)
    rows, bins = np.nonzero(is_peak)
    l, c, r = left[rows, bins], smooth[rows, bins], right[rows, bins]
    denominator = l - 2 * c + r
    offset = np.where(denominator != 0, 0.5 * (l - r) / np.where(denominator != 0, denominator, 1), 0)
    angle = 2 * np.pi * (bins + offset) / n_bins
    angle = np.mod(angle + np.pi, 2 * np.pi) - np.pi
    empty = np.setdiff1d(np.arange(len(hist)), rows)
    rows = np.concatenate([rows, empty])
    angle = np.concatenate([angle, np.zeros(len(empty))])
    height = np.concatenate([c, np.zeros(len(empty))])
    order = np.lexsort((-height, rows))
    return rows[order].astype(np.int64), angle[order].astype(np.float32)
