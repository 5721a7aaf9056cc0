"""Numba kernels for dense SIFT (one fused pass per image), with the plain-numpy references they
are tested against.

The Gaussian pre-smoothing of the sparse and dense descriptors (symmetric border ``dcba|abcd``)
is the package's one blur, :func:`classicvision._kernels.blur._blur`.

:func:`_dense_raw` goes from the smoothed image to the normalized descriptors of every grid point
in one sweep down the image, grid row by grid row, so that nothing bigger than a few image rows
is ever written:

1. the orientation planes of the image rows that the grid row's support covers, as for
   :func:`classicvision._kernels.gradient._orientation_field` (central
   differences, symmetric border, magnitude split linearly between the 2 nearest orientation
   bins), in a ring buffer of ``T = 2 r + 1`` rows (the rows shared with the previous grid row
   are not recomputed). A row is stored *polyphase*: plane ``o`` at column ``x = q step + p``
   is entry ``(p n_q + q) O + o``, so that the pixels at offset ``t`` from every grid column
   (``x = step k + t``), all orientations, form one contiguous run over ``(k, o)``;
2. the y-pass: for each of the ``n`` cells along y, the weighted sum of its nonzero taps of those
   rows, elementwise over the whole row (SIMD);
3. the x-pass: for each cell ``(j, i)``, the weighted sum of cell ``i``'s taps, four runs per
   sweep, SIMD over the grid columns and orientations.
4. normalization of each grid column's descriptor as
   :func:`classicvision._kernels.sift._normalize_rows` (L2, clip, L2, RootSIFT).

The gradient and its bin are the sparse descriptor's, row by row
(:func:`classicvision._kernels.gradient._gradient_of_rows`, float32). :func:`_dense_raw_parallel` splits the
rows into bands on threads (:func:`~classicvision._kernels.jit.parallel_for`).

:func:`_dense_fused` fuses the smoothing in: each band of grid rows blurs the image rows its
planes read (:func:`_fused_band`; the rows two bands share are blurred by both, so bands share no
memory and need no barrier), and the bands run on a team of compiled worker threads
(:mod:`classicvision._kernels.team`, one entry :func:`_dense_team`), one hand-off per image.

The kernel weights ``kernel[i, t]`` (``(n, T)``) are the triangle of cell ``i`` times the
Gaussian window, the same for every grid point (module docstring of
:mod:`classicvision.features.dense_sift`).
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit

from . import atomics, team
from .blur import REFLECT, _x_first_rows
from .gradient import _gradient_of_rows
from .jit import backing_off, idle_spins, join_spins, kernel, next_chunk, note_join, parallel_for
from .sift import _normalize_rows_reference


@njit(cache=True, error_model="numpy", fastmath=True)
def _plane_row(smoothed, y_off, height, y, n_ori, magnitude, bins, dst, step, n_q, n_x, at, lower, upper):
    """Orientation planes of image row ``y``, columns ``x < n_x``, into ``dst`` in the polyphase
    layout: entry ``at[x] O + o``, ``at[x] = (x % step) n_q + x // step``, is plane ``o`` at
    column ``x``; the rest of ``dst`` is zero. ``smoothed[i]`` is row ``y_off + i`` of the
    smoothed image of ``height`` rows. The gradient and its bin are those of the sparse
    descriptor's field (:func:`classicvision._kernels.gradient._gradient_row`). ``magnitude``,
    ``bins``, ``lower`` and ``upper`` are scratch rows."""
    up = (y - 1 if y > 0 else 0) - y_off
    down = (y + 1 if y < height - 1 else height - 1) - y_off
    _gradient_of_rows(smoothed[up], smoothed[y - y_off], smoothed[down], n_ori, magnitude, bins)
    # The two bins of each pixel and its two parts, branch-free (SIMD), then the scatter.
    n = np.uint64(n_ori)
    top = np.uint64(n_ori - 1)
    for x in range(n_x):
        t = bins[x]
        b0 = np.uint64(t)
        b1 = b0 + np.uint64(1) if b0 < top else np.uint64(0)
        part = magnitude[x] * (t - np.float32(b0))
        lower[x] = at[x] * n + b0
        upper[x] = at[x] * n + b1
        bins[x] = part
        magnitude[x] -= part
    for e in range(dst.shape[0]):
        dst[e] = 0.0
    for x in range(n_x):
        dst[upper[x]] = bins[x]
        dst[lower[x]] = magnitude[x]


@njit(cache=True, error_model="numpy", fastmath=True)
def _normalize_into(hist, dst, clip, rootsift):
    """:func:`classicvision._kernels.sift._normalize_rows` of one row, ``hist`` -> ``dst``, in
    float32 (128 terms: the sums lose ~1e-7 relative, far below the tests' 1e-5)."""
    dim = hist.shape[0]
    clip32 = np.float32(clip)
    total = np.float32(0.0)
    for d in range(dim):
        total += hist[d] * hist[d]
    if total <= np.float32(1e-24):
        for d in range(dim):
            dst[d] = 0.0
        return
    inv = np.float32(1.0) / np.sqrt(total)
    total = np.float32(0.0)
    for d in range(dim):
        value = min(hist[d] * inv, clip32)
        dst[d] = value
        total += value * value
    inv2 = np.float32(1.0) / np.sqrt(total)
    if rootsift:
        l1 = np.float32(0.0)
        for d in range(dim):
            l1 += dst[d]
        scale = np.float32(1.0) / l1              # the sum of the clipped values: (l1 inv2) / inv2
        for d in range(dim):
            dst[d] = np.sqrt(dst[d] * scale)
    else:
        for d in range(dim):
            dst[d] = dst[d] * inv2


@njit(cache=True)
def _padded_columns(n_cols):
    return (n_cols + 15) // 16 * 16


@njit(cache=True)
def _band_scratch_size(step, n_cols, taps, n_cells, n_ori):
    """float32 scratch of one band of :func:`_band`: its ring of ``taps`` polyphase rows and the
    ``n_cells`` y-pass rows."""
    return (taps + n_cells) * n_ori * step * ((taps - 1) // step + _padded_columns(n_cols))


@njit(cache=True, error_model="numpy", fastmath=True)
def _band(smoothed, y_off, height, kernel, t_lo, t_hi, step, m_begin, m_end, n_cols, n_ori, clip, rootsift,
          normalize, out, scratch):
    """Grid rows ``m_begin <= m < m_end`` of :func:`_dense_raw` into ``out``; ``smoothed[i]`` is
    row ``y_off + i`` of the smoothed image of ``height`` rows (it holds the rows the band's
    planes read); the ring buffer and the y-pass rows in ``scratch`` (:func:`_band_scratch_size`
    float32)."""
    width = smoothed.shape[1]
    n_cells, taps = kernel.shape
    dim = n_cells * n_cells * n_ori
    n_x = step * (n_cols - 1) + taps                # the columns that some grid point reads
    n_k = _padded_columns(n_cols)                   # grid columns, padded to whole SIMD sweeps
    n_q = (taps - 1) // step + n_k                  # polyphase columns per (orientation, phase)
    length = n_ori * step * n_q
    # Each cell's nonzero taps, four per x-pass sweep (the last group padded with weight 0):
    # tap t is the block of O orientations at offsets[i, g] O in a polyphase row.
    n_group = 0
    for i in range(n_cells):
        n_group = max(n_group, (t_hi[i] - t_lo[i] + 3) // 4 * 4)
    offsets = np.empty((n_cells, n_group), np.int64)
    weights = np.zeros((n_cells, n_group), np.float32)
    for i in range(n_cells):
        for g in range(n_group):
            t = t_lo[i] + g
            if t < t_hi[i]:
                weights[i, g] = kernel[i, t]
            else:
                t = t_lo[i]
            offsets[i, g] = (t % step) * n_q + t // step
    ring = scratch[:taps * length].reshape((taps, length))
    magnitude = np.empty(width, np.float32)
    bins = np.empty(width, np.float32)
    at = np.empty(n_x, np.uint64)                   # polyphase position of column x
    for q in range((n_x + step - 1) // step):
        for p in range(min(step, n_x - q * step)):
            at[q * step + p] = p * n_q + q
    lower = np.empty(n_x, np.uint64)
    upper = np.empty(n_x, np.uint64)
    pooled = scratch[taps * length:(taps + n_cells) * length].reshape((n_cells, length))
    cells = np.empty((n_cells * n_cells, n_k * n_ori), np.float32)  # x-pass output: (cell, (column, o))
    hist = np.empty(dim, np.float32)
    next_row = step * m_begin
    for m in range(m_begin, m_end):
        y0 = step * m
        next_row = max(next_row, y0)
        while next_row < y0 + taps:
            _plane_row(smoothed, y_off, height, next_row, n_ori, magnitude, bins, ring[next_row % taps], step,
                       n_q, n_x, at, lower, upper)
            next_row += 1
        # y-pass: cell j of every column, over its nonzero taps.
        for j in range(n_cells):
            acc = pooled[j]
            first = ring[(y0 + t_lo[j]) % taps]
            w = kernel[j, t_lo[j]]
            for e in range(length):
                acc[e] = w * first[e]
            for t in range(t_lo[j] + 1, t_hi[j]):
                w = kernel[j, t]
                row = ring[(y0 + t) % taps]
                for e in range(length):
                    acc[e] += w * row[e]
        # x-pass, all grid columns at once: in the polyphase layout, tap t of grid column k is
        # the k-th block of O orientations of one contiguous run, so every sweep is SIMD over
        # (grid column, orientation).
        run = n_k * n_ori
        for j in range(n_cells):
            src = pooled[j]
            for i in range(n_cells):
                dst = cells[j * n_cells + i]
                for g in range(0, n_group, 4):
                    s0 = offsets[i, g] * n_ori
                    s1 = offsets[i, g + 1] * n_ori
                    s2 = offsets[i, g + 2] * n_ori
                    s3 = offsets[i, g + 3] * n_ori
                    a = src[s0:s0 + run]
                    b = src[s1:s1 + run]
                    c = src[s2:s2 + run]
                    d = src[s3:s3 + run]
                    w0 = weights[i, g]
                    w1 = weights[i, g + 1]
                    w2 = weights[i, g + 2]
                    w3 = weights[i, g + 3]
                    if g == 0:
                        for e in range(run):
                            dst[e] = w0 * a[e] + w1 * b[e] + w2 * c[e] + w3 * d[e]
                    else:
                        for e in range(run):
                            dst[e] += w0 * a[e] + w1 * b[e] + w2 * c[e] + w3 * d[e]
        # Each grid column's descriptor, then normalization.
        for k in range(n_cols):
            for c in range(n_cells * n_cells):
                block = cells[c, k * n_ori:(k + 1) * n_ori]
                for o in range(n_ori):
                    hist[c * n_ori + o] = block[o]
            if normalize:
                _normalize_into(hist, out[m * n_cols + k], clip, rootsift)
            else:
                row = out[m * n_cols + k]
                for d in range(dim):           # a loop: an array assigned to a slice compiles numba's
                    row[d] = hist[d]           # shape-mismatch message, 2.6 s on a first run


@njit(cache=True, nogil=True, error_model="numpy", fastmath=True)
def _dense_raw(smoothed, kernel, t_lo, t_hi, step, n_rows, n_cols, n_ori, clip, rootsift, normalize,
               scratch=None):
    """Dense descriptors ``(n_rows * n_cols, n**2 * n_ori)`` float32 of the grid whose point
    ``(m, k)`` has its support's top-left pixel at ``(step k, step m)``, in one thread.

    ``kernel`` ``(n, T)``: each cell's 1-D weights over the ``T`` pixels of the support, nonzero
    only on ``t_lo[i] <= t < t_hi[i]``. With ``normalize`` the rows are normalized (L2, clip
    at ``clip``, L2, then RootSIFT if ``rootsift``), else raw. ``scratch`` (1-D float32 of
    :func:`_band_scratch_size`) may be given to reuse memory."""
    n_cells, taps = kernel.shape
    out = np.empty((n_rows * n_cols, n_cells * n_cells * n_ori), np.float32)
    if scratch is None:
        work = np.empty(_band_scratch_size(step, n_cols, taps, n_cells, n_ori), np.float32)
    else:
        work = scratch
    _band(smoothed, 0, smoothed.shape[0], kernel, t_lo, t_hi, step, 0, n_rows, n_cols, n_ori, clip, rootsift,
          normalize, out, work)
    return out


def _dense_raw_parallel(smoothed, kernel, t_lo, t_hi, step, n_rows, n_cols, n_ori, clip, rootsift,
                        normalize, n_bands, scratch):
    """:func:`_dense_raw` with the grid rows split into ``n_bands`` bands on threads
    (:func:`~classicvision._kernels.jit.parallel_for`), each with its own ring buffer (the plane
    rows two bands share are computed by both) in ``scratch`` (1-D float32, ``n_bands`` times
    :func:`_band_scratch_size`)."""
    n_cells, taps = kernel.shape
    out = np.empty((n_rows * n_cols, n_cells * n_cells * n_ori), np.float32)
    per_band = _band_scratch_size(step, n_cols, taps, n_cells, n_ori)
    parallel_for(_dense_bands, n_bands, smoothed, kernel, t_lo, t_hi, step, n_rows, n_cols, n_ori, clip, rootsift,
                 normalize, n_bands, per_band, scratch, out)
    return out


@kernel(error_model="numpy", fastmath=True)
def _dense_bands(job, smoothed, kernel, t_lo, t_hi, step, n_rows, n_cols, n_ori, clip, rootsift,
                 normalize, n_bands, per_band, scratch, out):
    """Bands ``b_start <= b < b_stop`` of :func:`_dense_raw_parallel`."""
    b_start, b_stop = next_chunk(job)
    while b_start < b_stop:
        for b in range(b_start, b_stop):
            _band(smoothed, 0, smoothed.shape[0], kernel, t_lo, t_hi, step, n_rows * b // n_bands,
                  n_rows * (b + 1) // n_bands,
                  n_cols, n_ori, clip, rootsift, normalize, out, scratch[b * per_band:(b + 1) * per_band])
        b_start, b_stop = next_chunk(job)


@njit(cache=True)
def _fused_scratch_size(width, radius, step, band_rows, n_cols, taps, n_cells, n_ori):
    """float32 scratch of one band of :func:`_fused_band` of at most ``band_rows`` grid rows: a
    padded input row, the band's x-passed rows, its smoothed rows, then :func:`_band`'s."""
    n_smoothed = step * (band_rows - 1) + taps + 2
    return (width + 2 * radius) + (n_smoothed + 2 * radius) * width + n_smoothed * width \
        + _band_scratch_size(step, n_cols, taps, n_cells, n_ori)


@njit(cache=True, error_model="numpy", fastmath=True, inline="always")
def _fused_band(image8, image32, use8, half, scale, kernel, t_lo, t_hi, step, m_begin, m_end, n_cols, n_ori,
                clip, rootsift, out, scratch):
    """Grid rows ``m_begin <= m < m_end`` of the normalized descriptors of the image ``image8``
    (uint8, when ``use8``) or ``image32`` (float32), read as ``float32(pixel) * scale``: first the
    band's own smoothed rows, the rows its planes read (``step m_begin - 1`` to ``step (m_end - 1)
    + T``, within the image), blurred as :func:`classicvision._kernels.blur._blur_bands_x_first`
    does with border ``'reflect'`` and the taps ``half`` (so the same values), then :func:`_band`.
    Bands share no memory: a band blurs the few rows it shares with its neighbours itself.
    ``scratch``: :func:`_fused_scratch_size` float32."""
    if use8:
        height, width = image8.shape
    else:
        height, width = image32.shape
    taps = kernel.shape[1]
    radius = half.shape[0] - 1
    y_begin = max(step * m_begin - 1, 0)
    y_end = min(step * (m_end - 1) + taps + 1, height)
    n_smoothed = y_end - y_begin
    n_x = n_smoothed + 2 * radius
    padded = scratch[:width + 2 * radius]
    at = width + 2 * radius
    x_rows = scratch[at:at + n_x * width]
    at += n_x * width
    smoothed = scratch[at:at + n_smoothed * width].reshape((n_smoothed, width))
    at += n_smoothed * width
    s = np.float32(scale)
    if use8:
        _x_first_rows(image8, half, s, REFLECT, y_begin, y_end, padded, x_rows, smoothed)
    else:
        _x_first_rows(image32, half, s, REFLECT, y_begin, y_end, padded, x_rows, smoothed)
    _band(smoothed, y_begin, height, kernel, t_lo, t_hi, step, m_begin, m_end, n_cols, n_ori, clip, rootsift, True,
          out, scratch[at:])


# The frame of a :func:`_team_bands` call (int64 fields; ``values`` holds ``scale`` and ``clip``):
(F_IMAGE, F_HEIGHT, F_WIDTH, F_UINT8, F_HALF, F_RADIUS, F_KERNEL, F_CELLS, F_TAPS, F_T_LO, F_T_HI, F_STEP,
 F_ROWS, F_COLS, F_ORI, F_ROOTSIFT, F_PER_BAND, F_SCRATCH, F_OUT) = range(19)
FRAME_FIELDS = 19


@njit(cache=True, error_model="numpy", fastmath=True, inline="always")
def _team_bands(control, frame, values):
    """Claim bands of the posted call (:mod:`classicvision._kernels.team`) until none is left:
    band ``b`` of ``n`` is grid rows ``rows b // n`` to ``rows (b + 1) // n`` of
    :func:`_fused_band`, its arrays read from ``frame``."""
    while True:
        band, n = team.claim(control)
        if band < 0:
            return
        height = frame[F_HEIGHT]
        width = frame[F_WIDTH]
        n_cells = frame[F_CELLS]
        taps = frame[F_TAPS]
        n_rows = frame[F_ROWS]
        n_cols = frame[F_COLS]
        n_ori = frame[F_ORI]
        per_band = frame[F_PER_BAND]
        image8 = team.array_at(frame[F_IMAGE], (height, width), np.uint8)
        image32 = team.array_at(frame[F_IMAGE], (height, width), np.float32)
        half = team.array_at(frame[F_HALF], (frame[F_RADIUS] + 1,), np.float32)
        weights = team.array_at(frame[F_KERNEL], (n_cells, taps), np.float32)
        t_lo = team.array_at(frame[F_T_LO], (n_cells,), np.int64)
        t_hi = team.array_at(frame[F_T_HI], (n_cells,), np.int64)
        scratch = team.array_at(frame[F_SCRATCH] + 4 * band * per_band, (per_band,), np.float32)
        out = team.array_at(frame[F_OUT], (n_rows * n_cols, n_cells * n_cells * n_ori), np.float32)
        _fused_band(image8, image32, frame[F_UINT8] != 0, half, values[0], weights, t_lo, t_hi, frame[F_STEP],
                    n_rows * band // n, n_rows * (band + 1) // n, n_cols, n_ori, values[1], frame[F_ROOTSIFT] != 0,
                    out, scratch)
        team.finish(control, n)


@kernel
def _dense_team(control, frame, values, worker):
    """The one compiled entry of the dense SIFT team (:mod:`classicvision._kernels.team`): for a
    caller (``worker`` False) the bands it can claim of the posted call; for a team thread
    (``worker`` True) its whole life: idle, then the bands of each posted call, until ``STOP``.
    (One entry, so that :func:`_team_bands` is compiled and optimized once.)"""
    if not worker:
        _team_bands(control, frame, values)
        return
    seen = atomics.atomic_load(control, team.EPOCH)
    while atomics.atomic_load(control, team.STOP) == 0:
        seen = team.idle(control, seen)
        if atomics.atomic_load(control, team.STOP) != 0:
            return
        _team_bands(control, frame, values)


_team = None
_team_lock = threading.Lock()


def _get_team(workers: int) -> team.Team:
    global _team
    with _team_lock:
        if _team is None or _team.workers < workers:
            if _team is not None:
                _team.stop()
            _team = team.Team(_dense_team, FRAME_FIELDS, 2, workers, idle_spins())
        return _team


_PLAN_ADDRESSES: dict = {}     # id(array) -> (array, its data address); holding the array keeps the id its own


def _plan_address(array: np.ndarray) -> int:
    """``array.ctypes.data`` (1-2 us in Python, the cost of the rest of a call's set-up), remembered
    for the read-only plan arrays that callers take from their caches (taps, pooling kernels, tap
    ranges): an array's data never moves while it is referenced. At most 256 are kept."""
    entry = _PLAN_ADDRESSES.get(id(array))
    if entry is None:
        if len(_PLAN_ADDRESSES) >= 256:
            _PLAN_ADDRESSES.clear()
        entry = _PLAN_ADDRESSES[id(array)] = (array, array.ctypes.data)
    return entry[1]


def _dense_fused(image, half, scale, kernel, t_lo, t_hi, step, n_rows, n_cols, n_ori, clip, rootsift, n_bands,
                 scratch):
    """Normalized dense descriptors ``(n_rows * n_cols, n**2 * n_ori)`` float32 of ``image``
    (``(H, W)`` C-contiguous uint8 or float32, read as ``float32(pixel) * scale``) smoothed by the
    taps ``half`` (``'reflect'`` border, ``r <= min(H, W)``): :func:`_fused_band` over ``n_bands``
    bands, on the dense SIFT team (:mod:`classicvision._kernels.team`; ``n_bands - 1`` workers)
    when ``n_bands > 1`` and not backing off (:func:`~classicvision._kernels.jit.backing_off`),
    else in the calling thread. ``scratch``: 1-D float32, ``n_bands`` times
    :func:`_fused_scratch_size`. Every array must stay alive and unchanged during the call."""
    n_cells, taps = kernel.shape
    out = np.empty((n_rows * n_cols, n_cells * n_cells * n_ori), np.float32)
    threaded = n_bands > 1 and team.AVAILABLE and not backing_off()
    squad = _get_team(n_bands - 1) if threaded else None
    frame = squad.frame if threaded else np.empty(FRAME_FIELDS, np.int64)
    values = squad.values if threaded else np.empty(2, np.float64)
    frame[:] = (image.ctypes.data, image.shape[0], image.shape[1], image.dtype == np.uint8, _plan_address(half),
                half.shape[0] - 1, _plan_address(kernel), n_cells, taps, _plan_address(t_lo), _plan_address(t_hi),
                step, n_rows, n_cols, n_ori, bool(rootsift), scratch.shape[0] // n_bands, scratch.ctypes.data,
                out.ctypes.data)                                  # the F_* fields, in order
    values[0], values[1] = scale, clip
    if not threaded:
        team.run_alone(_dense_team, frame, values, n_bands)
        return out
    start, own, end, asleep = squad.run(n_bands, idle_spins(), join_spins())
    if not asleep:
        note_join(own - start, end - own)
    return out


# --------------------------------------------------------------------------------------------
# Plain-numpy references (tests only): padding by numpy, libm arctan2, planes from the cyclic
# distance to every bin, pooling as band-matrix products (BLAS), normalization in float64.



def _dense_raw_reference(smoothed, kernel, step, n_rows, n_cols, n_ori, clip, rootsift, normalize):
    """Twin of :func:`_dense_raw`."""
    p = np.pad(smoothed.astype(np.float64), 1, mode="edge")
    gx = 0.5 * (p[1:-1, 2:] - p[1:-1, :-2])
    gy = 0.5 * (p[2:, 1:-1] - p[:-2, 1:-1])
    bins = np.mod(np.arctan2(gy, gx) * (n_ori / (2 * np.pi)), n_ori)
    dist = np.abs(bins[None] - np.arange(n_ori)[:, None, None])
    dist = np.minimum(dist, n_ori - dist)
    planes = np.hypot(gx, gy)[None] * np.maximum(0.0, 1.0 - dist)          # (O, H, W)
    height, width = smoothed.shape
    n_cells, taps = kernel.shape
    ky = np.zeros((n_rows, n_cells, height))
    kx = np.zeros((n_cols, n_cells, width))
    for m in range(n_rows):
        ky[m, :, step * m:step * m + taps] = kernel
    for k in range(n_cols):
        kx[k, :, step * k:step * k + taps] = kernel
    pooled = np.stack([ky.reshape(-1, height) @ plane @ kx.reshape(-1, width).T for plane in planes])
    raw = pooled.reshape(n_ori, n_rows, n_cells, n_cols, n_cells).transpose(1, 3, 2, 4, 0)
    raw = raw.reshape(n_rows * n_cols, -1)
    if not normalize:
        return raw.astype(np.float32)
    return _normalize_rows_reference(raw, clip, rootsift)
