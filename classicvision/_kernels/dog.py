"""Numba kernels for the DoG detector, with numpy references.

* :func:`_extrema`: 3x3x3 extrema of a stack of DoG images (reference
  :func:`_extrema_mask_reference`).
* :func:`_gather_candidates`: the extrema as ``(layer, y, x)`` rows (reference
  :func:`_gather_candidates_reference`).
* :func:`_refine`: Lowe's quadratic fit of each candidate in ``(x, y, scale)`` with the contrast
  and edge tests (reference :func:`_refine_reference`, the same arithmetic in plain Python).

Every kernel loops over points or rows *inside*; the extrema search runs bands of rows on
threads (:func:`~classicvision._kernels.jit.parallel_for`) on large octaves. Nothing here checks
input.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .jit import claim_slot, kernel, next_chunk, parallel_for, row_stride, slot_count


# --------------------------------------------------------------------------- extrema
def _extrema_rows(gauss, threshold, border, band):
    """``(columns (T, W) int32, counts (T,) int64)`` of :func:`_extrema_bands` for every band of
    ``band`` rows, the bands on threads (:func:`~classicvision._kernels.jit.parallel_for`)."""
    n_dog, height, width = gauss.shape[0] - 1, gauss.shape[1], gauss.shape[2]
    rows_per_layer = max(0, height - 2 * border)
    n_tasks = (n_dog - 2) * rows_per_layer
    columns = np.empty((n_tasks, max(0, width)), np.int32)
    counts = np.zeros(n_tasks, np.int64)
    n_bands = (rows_per_layer + band - 1) // band
    grain = n_bands if height * width < _PARALLEL_PIXELS else 1   # small octaves: one call
    slots = slot_count(n_bands, grain)
    rings = np.empty((slots, 11, n_dog, row_stride(width)), np.float32)    # row_stride: no line shared
    flags = np.zeros((slots, row_stride((width + 7) // 8 * 8, 1)), np.uint8)   # the tail past W stays 0
    parallel_for(_extrema_bands, n_bands, gauss, np.float32(threshold), int(border), int(band), columns, counts,
                 rings, flags, flags.view(np.uint64), grain=grain)
    return columns, counts


@kernel
def _extrema_bands(job, gauss, threshold, border, band, columns, counts, rings, flag_rows, word_rows):
    """Bands ``b_start <= b < b_stop`` of rows. The DoG ``dog[l] = gauss[l + 1] - gauss[l]`` is formed on the fly (no DoG stack is stored).

    For each row ``y`` and DoG layer ``1 <= layer <= L - 2``, at least ``border >= 1`` pixels
    from the edges: the columns ``x`` where ``dog[layer, y, x]`` is a max (> threshold) or a min
    (< -threshold) of its 26 neighbours (ties allowed), i.e. equals the max (min) of its 3x3x3
    block. Returns ``(columns (T, W) int32, counts (T,) int64)``; row task ``t`` is layer
    ``1 + t // (H - 2 border)``, row ``border + t % (H - 2 border)``.

    Tasks are bands of ``band`` rows. Each keeps, in a ring of three rows, every layer's DoG row
    and its horizontal 3-max and 3-min, so that each DoG row is formed once per band; the 3x3x3
    max and min are then maxima of those. Every loop runs over whole rows from 0, so that LLVM
    vectorizes it: an index that may be negative (``range(border, ...)``) makes numba wrap it
    around, which keeps LLVM from vectorizing. Only the rare candidates are
    visited one by one, eight flags at a time.

    Working memory, a row per participant (:func:`~classicvision._kernels.jit.claim_slot`):
    ``rings`` ``(slots, 11, L - 1, >= W)`` float32 (the three rings of DoG rows, their 3-max and
    3-min, then the 3x3 max and min), ``flag_rows`` ``(slots, P)`` uint8 with ``P`` at least the
    width rounded up to 8, a multiple of 8, zero past ``W``, and ``word_rows`` the same memory as uint64.
    """
    n_dog = gauss.shape[0] - 1
    height = gauss.shape[1]
    width = gauss.shape[2]
    rows_per_layer = height - 2 * border
    slot = claim_slot(job, rings.shape[0])
    if slot < 0:
        return
    ring = rings[slot]
    dogs = ring[0:3]          # ring: DoG rows y - 1, y, y + 1
    row_max = ring[3:6]       # their horizontal 3-max
    row_min = ring[6:9]
    high = ring[9]            # 3x3 max of each layer at the centre row
    low = ring[10]
    flags = flag_rows[slot]
    words = word_rows[slot]
    b_start, b_stop = next_chunk(job)
    while b_start < b_stop:
        for b in range(b_start, b_stop):
            y0 = border + b * band
            y1 = y0 + band
            if y1 > height - border:
                y1 = height - border
            for y in range(y0 - 1, y1 + 1):
                k = (y - y0 + 1) % 3
                for layer in range(n_dog):
                    upper = gauss[layer + 1, y]
                    lower = gauss[layer, y]
                    dog = dogs[k, layer]
                    most = row_max[k, layer]
                    least = row_min[k, layer]
                    for x in range(width):
                        dog[x] = upper[x] - lower[x]
                    for x in range(1, width - 1):
                        a = dog[x - 1]
                        c = dog[x + 1]
                        v = dog[x]
                        m = a if a > c else c
                        most[x] = m if m > v else v
                        m = a if a < c else c
                        least[x] = m if m < v else v
                if y <= y0:
                    continue
                centre = y - 1                    # its rows above and below are now in the ring
                kc = (centre - y0 + 1) % 3
                k0 = (kc + 2) % 3
                k2 = (kc + 1) % 3
                for layer in range(n_dog):
                    a, b_, c = row_max[k0, layer], row_max[kc, layer], row_max[k2, layer]
                    d, e, f = row_min[k0, layer], row_min[kc, layer], row_min[k2, layer]
                    most = high[layer]
                    least = low[layer]
                    for x in range(width):
                        m = a[x] if a[x] > b_[x] else b_[x]
                        most[x] = m if m > c[x] else c[x]
                        m = d[x] if d[x] < e[x] else e[x]
                        least[x] = m if m < f[x] else f[x]
                for layer in range(1, n_dog - 1):
                    h0, h1, h2 = high[layer - 1], high[layer], high[layer + 1]
                    l0, l1, l2 = low[layer - 1], low[layer], low[layer + 1]
                    v = dogs[kc, layer]
                    for x in range(width):
                        m = h0[x] if h0[x] > h1[x] else h1[x]
                        m = m if m > h2[x] else h2[x]
                        n = l0[x] if l0[x] < l1[x] else l1[x]
                        n = n if n < l2[x] else l2[x]
                        flags[x] = ((v[x] > threshold) & (v[x] >= m)) | ((v[x] < -threshold) & (v[x] <= n))
                    flags[:border] = 0
                    flags[width - border:width] = 0
                    task = (layer - 1) * rows_per_layer + centre - border
                    found = 0
                    for w in range(words.shape[0]):
                        if words[w] != 0:
                            for x in range(8 * w, 8 * w + 8):
                                if flags[x]:
                                    columns[task, found] = x
                                    found += 1
                    counts[task] = found
        b_start, b_stop = next_chunk(job)


_PARALLEL_PIXELS = 1 << 15  # octaves of 181 x 181 pixels and up run on threads
_BAND = 32  # rows per extrema task


def _gather_candidates(columns, counts, rows_per_layer, border):
    """``(K, 3)`` int64 ``(layer, y, x)`` of the columns found by :func:`_extrema_bands`, task by
    task (:func:`_gather_into`; reference :func:`_gather_candidates_reference`)."""
    out = np.empty((int(counts.sum()), 3), np.int64)
    _gather_into(columns, counts, int(rows_per_layer), int(border), out)
    return out


@njit(cache=True)
def _gather_into(columns, counts, rows_per_layer, border, out):
    """Rows of ``out`` ``(sum(counts), 3)`` int64: for each task ``t`` in turn, its
    ``counts[t]`` columns ``columns[t, :counts[t]]`` as ``(1 + t // rows_per_layer,
    border + t % rows_per_layer, x)``. A compiled loop rather than numpy, whose eight calls of
    fixed cost per octave add up over a pyramid's small octaves (``benchmarks/README.md``)."""
    k = 0
    for task in range(counts.shape[0]):
        layer = 1 + task // rows_per_layer
        y = border + task % rows_per_layer
        for j in range(counts[task]):
            out[k, 0] = layer
            out[k, 1] = y
            out[k, 2] = columns[task, j]
            k += 1


def _gather_candidates_reference(columns, counts, rows_per_layer, border):
    """Plain-numpy twin of :func:`_gather_candidates`."""
    task = np.repeat(np.arange(counts.shape[0]), counts)
    j = np.arange(task.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.stack([1 + task // rows_per_layer, border + task % rows_per_layer,
                     columns[task, j].astype(np.int64)], axis=1)


def _extrema(gauss, threshold, border):
    """``(K, 3)`` int64 ``(layer, y, x)`` of the 3x3x3 extrema of the DoG of the Gaussian stack
    ``gauss``, in raster order per layer (reference:
    ``np.argwhere(_extrema_mask_reference(np.diff(gauss, axis=0), ...))``)."""
    n_layers, height, width = gauss.shape
    n_layers -= 1
    if n_layers < 3 or height - 2 * border <= 0 or width - 2 * border <= 0:
        return np.zeros((0, 3), np.int64)
    if border < 1:
        raise ValueError(f"border must be at least 1, got {border}")
    columns, counts = _extrema_rows(gauss, threshold, border, _BAND)
    return _gather_candidates(columns, counts, height - 2 * border, border)


def _extrema_mask_reference(dog, threshold, border):
    """Plain-numpy twin of :func:`_extrema` as a mask (maximum/minimum over shifted copies)."""
    n_layers, height, width = dog.shape
    mask = np.zeros(dog.shape, np.uint8)
    if n_layers < 3 or height - 2 * border <= 0 or width - 2 * border <= 0:
        return mask
    core = (slice(1, n_layers - 1), slice(border, height - border), slice(border, width - border))
    centre = dog[core]
    high = np.full(centre.shape, -np.inf, np.float32)
    low = np.full(centre.shape, np.inf, np.float32)
    for dl in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                shifted = dog[1 + dl:n_layers - 1 + dl, border + dy:height - border + dy,
                              border + dx:width - border + dx]
                high = np.maximum(high, shifted)
                low = np.minimum(low, shifted)
    keep = ((centre > threshold) & (centre >= high)) | ((centre < -threshold) & (centre <= low))
    mask[core] = keep
    return mask


# --------------------------------------------------------------------------- refinement
@njit(cache=True)
def _refine_into(gauss, candidates, n_scales, contrast, edge, border, max_iter, keep, values, layers):
    """Refine ``(K, 3)`` int candidates ``(layer, y, x)`` of the DoG of the Gaussian stack
    ``gauss`` (``D[l] = gauss[l + 1] - gauss[l]``, formed on the fly, in float32) into ``keep (K,)
    bool``, ``values (K, 4) float32`` of x, y, layer, response and ``layers (K,) int64``, the final
    integer layer (all zero-initialized by the caller; a rejected candidate is left so).

    Per candidate, at most ``max_iter`` steps of Lowe's (2004, eq. 3) quadratic fit: the gradient
    ``g`` and Hessian ``H`` of ``D`` by central differences at the integer sample, the offset
    ``o = -H^-1 g`` (symmetric 3x3 inverse by cofactors); converged when ``|o| < 0.5`` in every
    coordinate, else the sample moves by ``round(o)`` (rejected when it leaves the layers
    ``1..n_scales`` or comes within ``border`` of an edge, or ``H`` is singular). A converged point is
    kept when ``|D(x + o)| n_scales >= contrast`` (``D(x + o) = D + g.o / 2``) and the 2-D Hessian
    passes the edge test ``tr^2 edge < (edge + 1)^2 det`` (Lowe 2004, eq. 4).

    One function with no jitted helpers: a jitted helper is typed, lowered and optimized on its
    own, and optimized again inside its caller. A few thousand points: a serial loop beats a
    parallel launch.
    """
    height = gauss.shape[1]
    width = gauss.shape[2]
    for i in range(candidates.shape[0]):
        layer = candidates[i, 0]
        y = candidates[i, 1]
        x = candidates[i, 2]
        ox = oy = os_ = 0.0
        gx = gy = gs = dxx = dyy = dxy = 0.0
        centre = np.float32(0.0)
        status = 0                          # 1: converged, -1: rejected
        for _ in range(max_iter):
            g0 = gauss[layer - 1]
            g1 = gauss[layer]
            g2 = gauss[layer + 1]
            g3 = gauss[layer + 2]
            centre = g2[y, x] - g1[y, x]    # the DoG samples D(layer + ds, y + dy, x + dx), float32
            x_next = g2[y, x + 1] - g1[y, x + 1]
            x_prev = g2[y, x - 1] - g1[y, x - 1]
            y_next = g2[y + 1, x] - g1[y + 1, x]
            y_prev = g2[y - 1, x] - g1[y - 1, x]
            s_next = g3[y, x] - g2[y, x]
            s_prev = g1[y, x] - g0[y, x]
            v2 = 2.0 * centre
            gx = 0.5 * (x_next - x_prev)
            gy = 0.5 * (y_next - y_prev)
            gs = 0.5 * (s_next - s_prev)
            dxx = x_next + x_prev - v2
            dyy = y_next + y_prev - v2
            dss = s_next + s_prev - v2
            dxy = 0.25 * ((g2[y + 1, x + 1] - g1[y + 1, x + 1]) - (g2[y + 1, x - 1] - g1[y + 1, x - 1])
                          - (g2[y - 1, x + 1] - g1[y - 1, x + 1]) + (g2[y - 1, x - 1] - g1[y - 1, x - 1]))
            dxs = 0.25 * ((g3[y, x + 1] - g2[y, x + 1]) - (g3[y, x - 1] - g2[y, x - 1])
                          - (g1[y, x + 1] - g0[y, x + 1]) + (g1[y, x - 1] - g0[y, x - 1]))
            dys = 0.25 * ((g3[y + 1, x] - g2[y + 1, x]) - (g3[y - 1, x] - g2[y - 1, x])
                          - (g1[y + 1, x] - g0[y + 1, x]) + (g1[y - 1, x] - g0[y - 1, x]))
            c00 = dyy * dss - dys * dys     # cofactors of the symmetric Hessian
            c01 = dxs * dys - dxy * dss
            c02 = dxy * dys - dxs * dyy
            c11 = dxx * dss - dxs * dxs
            c12 = dxy * dxs - dxx * dys
            c22 = dxx * dyy - dxy * dxy
            det = dxx * c00 + dxy * c01 + dxs * c02
            if det == 0.0 or not math.isfinite(det):
                status = -1
                break
            ox = -(c00 * gx + c01 * gy + c02 * gs) / det
            oy = -(c01 * gx + c11 * gy + c12 * gs) / det
            os_ = -(c02 * gx + c12 * gy + c22 * gs) / det
            if abs(ox) < 0.5 and abs(oy) < 0.5 and abs(os_) < 0.5:
                status = 1
                break
            if abs(ox) > 1e6 or abs(oy) > 1e6 or abs(os_) > 1e6:
                status = -1
                break
            x += round(ox)
            y += round(oy)
            layer += round(os_)
            if (layer < 1 or layer > n_scales or x < border or x >= width - border
                    or y < border or y >= height - border):
                status = -1
                break
        if status != 1:
            continue
        response = centre + 0.5 * (gx * ox + gy * oy + gs * os_)
        if abs(response) * n_scales < contrast:
            continue
        trace = dxx + dyy
        det = dxx * dyy - dxy * dxy
        if det <= 0.0 or trace * trace * edge >= (edge + 1.0) ** 2 * det:
            continue
        keep[i] = True
        values[i, 0] = x + ox
        values[i, 1] = y + oy
        values[i, 2] = layer + os_
        values[i, 3] = response
        layers[i] = layer


def _refine(gauss, candidates, n_scales, contrast, edge, border, max_iter):
    """``(keep (K,) bool, values (K, 4) float32 of x, y, layer, response, layers (K,) int64)``
    of :func:`_refine_into`."""
    n = candidates.shape[0]
    keep = np.zeros(n, np.bool_)
    values = np.zeros((n, 4), np.float32)
    layers = np.zeros(n, np.int64)
    _refine_into(gauss, np.ascontiguousarray(candidates, np.int64), int(n_scales), float(contrast), float(edge),
                 int(border), int(max_iter), keep, values, layers)
    return keep, values, layers


def _refine_reference(dog, candidates, n_scales, contrast, edge, border, max_iter):
    """Plain-numpy twin of :func:`_refine`: one ``np.linalg.solve`` per candidate and step."""
    dog = dog.astype(np.float64)
    n_layers, height, width = dog.shape
    n = len(candidates)
    keep = np.zeros(n, bool)
    values = np.zeros((n, 4), np.float32)
    layers = np.zeros(n, np.int64)
    for i, (layer, y, x) in enumerate(np.asarray(candidates, np.int64)):
        converged = False
        for _ in range(max_iter):
            cube = dog[layer - 1:layer + 2, y - 1:y + 2, x - 1:x + 2]
            g = 0.5 * np.array([cube[1, 1, 2] - cube[1, 1, 0], cube[1, 2, 1] - cube[1, 0, 1],
                                cube[2, 1, 1] - cube[0, 1, 1]])
            centre = cube[1, 1, 1]
            dxx = cube[1, 1, 2] + cube[1, 1, 0] - 2 * centre
            dyy = cube[1, 2, 1] + cube[1, 0, 1] - 2 * centre
            dss = cube[2, 1, 1] + cube[0, 1, 1] - 2 * centre
            dxy = 0.25 * (cube[1, 2, 2] - cube[1, 2, 0] - cube[1, 0, 2] + cube[1, 0, 0])
            dxs = 0.25 * (cube[2, 1, 2] - cube[2, 1, 0] - cube[0, 1, 2] + cube[0, 1, 0])
            dys = 0.25 * (cube[2, 2, 1] - cube[2, 0, 1] - cube[0, 2, 1] + cube[0, 0, 1])
            hessian = np.array([[dxx, dxy, dxs], [dxy, dyy, dys], [dxs, dys, dss]])
            try:
                offset = -np.linalg.solve(hessian, g)
            except np.linalg.LinAlgError:
                break
            if np.all(np.abs(offset) < 0.5):
                converged = True
                break
            x, y, layer = x + int(round(offset[0])), y + int(round(offset[1])), layer + int(round(offset[2]))
            if not (1 <= layer <= n_scales and border <= x < width - border and border <= y < height - border):
                break
        if not converged:
            continue
        response = centre + 0.5 * g @ offset
        trace, det = dxx + dyy, dxx * dyy - dxy * dxy
        if abs(response) * n_scales < contrast or det <= 0 or trace ** 2 * edge >= (edge + 1) ** 2 * det:
            continue
        keep[i] = True
        values[i] = (x + offset[0], y + offset[1], layer + offset[2], response)
        layers[i] = layer
    return keep, values, layers


