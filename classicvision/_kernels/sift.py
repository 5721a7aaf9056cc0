"""Numba kernels for SIFT (sparse and dense), with the plain-numpy references they are tested against.

Geometry shared by every function here (``s`` = support side, ``n`` = ``n_cells``):

* cell width ``w = s / n``; cell centres at offsets ``c_i = (i - n/2 + 1/2) w`` from the point;
* a pixel at frame offset ``(u, v)`` has spatial weight ``tri(u/w + n/2 - 1/2 - i) *
  tri(v/w + n/2 - 1/2 - j)`` for cell ``(i, j)``, ``tri(t) = max(0, 1 - |t|)`` (bilinear
  binning); only pixels with ``|u|, |v| < s/2 + w/2`` weigh anything;
* Gaussian window ``exp(-(u**2 + v**2) / (2 sigma**2))``, ``sigma = s / 2``;
* orientation, in bin units ``t = phi * n_ori / (2 pi)`` in ``[0, n_ori)``, split linearly
  between bins ``floor(t)`` and ``floor(t) + 1`` (cyclically).

Pixels outside the image read the symmetric extension (``dcba|abcd``): a pixel mirrored across
a vertical border has orientation ``pi - phi`` (bin units ``n/2 - t``), across a horizontal
one ``-phi`` (``-t``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .jit import claim_slot, kernel, next_chunk, parallel_for, row_stride, slot_count

from .gradient import _TWO_PI, _wrap


@njit(cache=True, error_model="numpy")
def _reflect(i, n):
    """Index of ``i`` in the symmetric extension of ``range(n)``, and whether it is mirrored."""
    m = i % (2 * n)
    if m >= n:
        return 2 * n - 1 - m, True
    return m, False


_GRAIN = 16   # points per chunk: threads from 32 points up


@njit(cache=True, error_model="numpy")
def _narrow(lo, hi, a, b):
    """``(max(lo, min(a, b)), min(hi, max(a, b)))`` for floats that are not NaN."""
    if b < a:
        a, b = b, a
    return (a if a > lo else lo), (b if b < hi else hi)


def _describe(magnitude, bins, xs, ys, sizes, thetas, n_cells, n_ori):
    """Raw descriptors ``(N, n_cells**2 * n_ori)`` float32 of the points (:func:`_describe_points`),
    the points on threads (:func:`~classicvision._kernels.jit.parallel_for`)."""
    out = np.zeros((xs.shape[0], n_cells * n_cells * n_ori), np.float32)
    sizes = np.ascontiguousarray(sizes, np.float64)
    # The support's widest row: 2 extent + 3 pixels, extent = reach (|cos| + |sin|) <= reach sqrt(2).
    reach = 0.5 * sizes.max(initial=0.0) * (1.0 + 1.0 / n_cells)
    span = int(math.ceil(2.0 * math.sqrt(2.0) * reach)) + 5
    slots = slot_count(xs.shape[0], _GRAIN)
    rows = np.empty((slots, 5, row_stride(span, 8)), np.float64)        # row_stride: no line shared
    hist = np.empty((slots, row_stride((n_cells + 2) ** 2 * n_ori, 8, page=True)), np.float64)
    parallel_for(_describe_points, xs.shape[0], magnitude, bins, np.ascontiguousarray(xs, np.float64),
                 np.ascontiguousarray(ys, np.float64), sizes, np.ascontiguousarray(thetas, np.float64),
                 int(n_cells), int(n_ori), out, rows, hist, grain=_GRAIN)
    return out


@kernel(error_model="numpy", fastmath=True)
def _describe_points(job, magnitude, bins, xs, ys, sizes, thetas, n_cells, n_ori, out, rows, hists):
    """Rows ``start <= k < stop`` of :func:`_describe` into ``out``; ``rows`` ``(slots, 5, S)``
    and ``hists`` ``(slots, >= (n + 2)**2 n_ori)`` float64 are a participant's working memory
    (``S`` at least the widest support row).

    Raw descriptors ``(N, n**2 * n_ori)`` float32 (layout ``(cell_y n + cell_x) n_ori + bin``).

    Every pixel centre whose offset ``(dx, dy)`` from the point falls in the support, rotated
    into the frame ``u = dx cos + dy sin``, ``v = -dx sin + dy cos``, adds its magnitude with its
    orientation taken relative to the frame. For ``thetas = 0`` this is the upright descriptor
    and equals the dense pooling at whole-pixel points.

    Each row of the support is done in two passes: the frame coordinates, relative orientation and
    weight of its pixels into row buffers (branch-free inside the image, read through slices
    indexed from 0 so that LLVM can vectorize it; support rows of about 30 px leave much of it in
    the scalar remainder), then the trilinear votes.
    """
    height, width = magnitude.shape
    padded = n_cells + 2                        # one empty cell on each side: no bound checks
    stride_y = padded * n_ori
    half_n = 0.5 * n_cells - 0.5
    half_ori = 0.5 * n_ori
    slot = claim_slot(job, rows.shape[0])
    if slot < 0:
        return
    gauss_x = rows[slot, 0]
    row_t = rows[slot, 1]
    row_w = rows[slot, 2]
    row_x = rows[slot, 3]
    row_y = rows[slot, 4]
    hist = hists[slot]
    start, stop = next_chunk(job)
    while start < stop:
        for k in range(start, stop):
            cx = float(xs[k])
            cy = float(ys[k])
            s = float(sizes[k])
            c = math.cos(thetas[k])
            sn = math.sin(thetas[k])
            if abs(sn) < 1e-12:
                sn = 0.0
            if abs(c) < 1e-12:
                c = 0.0
            t_theta = _wrap(float(thetas[k]) * (n_ori / _TWO_PI), n_ori)
            inv_w = n_cells / s
            step_x = c * inv_w
            step_y = sn * inv_w
            inv_2var = 2.0 / (s * s)                # 1 / (2 sigma^2), sigma = s / 2
            reach = 0.5 * s + 0.5 * s / n_cells
            extent = reach * (abs(c) + abs(sn))
            x_lo = math.floor(cx - extent)
            x_hi = math.ceil(cx + extent)
            y_lo = math.floor(cy - extent)
            y_hi = math.ceil(cy + extent)
            span = x_hi - x_lo + 1
            for j in range(span):
                d = x_lo + j - cx
                gauss_x[j] = math.exp(-d * d * inv_2var)
            hist[:] = 0.0
            for py in range(y_lo, y_hi + 1):
                dy = py - cy
                # Interval of dx with |u| < reach and |v| < reach on this row.
                lo = -extent - 1.0
                hi = extent + 1.0
                if c != 0.0:
                    a = (-reach - dy * sn) / c
                    b = (reach - dy * sn) / c
                    lo, hi = _narrow(lo, hi, a, b)
                elif abs(dy * sn) >= reach:
                    continue
                if sn != 0.0:
                    a = (dy * c - reach) / sn
                    b = (dy * c + reach) / sn
                    lo, hi = _narrow(lo, hi, a, b)
                elif abs(dy * c) >= reach:
                    continue
                px_lo = math.floor(cx + lo)
                px_hi = math.ceil(cx + hi)
                px_lo = px_lo if px_lo > x_lo else x_lo
                px_hi = px_hi if px_hi < x_hi else x_hi
                if px_hi < px_lo:
                    continue
                n_px = px_hi - px_lo + 1
                ry, flip_y = _reflect(py, height)
                gy_w = math.exp(-dy * dy * inv_2var)
                dx0 = px_lo - cx
                tx0 = (dx0 * c + dy * sn) * inv_w + half_n
                ty0 = (dy * c - dx0 * sn) * inv_w + half_n
                g0 = px_lo - x_lo
                if not flip_y and px_lo >= 0 and px_hi < width:
                    # Slices, indexed from 0: an index like px_lo + j may be negative as far as
                    # LLVM knows, numba then wraps it around, and the loop does not vectorize.
                    mrow = magnitude[ry, px_lo:px_lo + n_px]
                    brow = bins[ry, px_lo:px_lo + n_px]
                    grow = gauss_x[g0:g0 + n_px]
                    for j in range(n_px):
                        tx = tx0 + j * step_x
                        ty = ty0 - j * step_y
                        inside = (tx > -1.0) & (tx < n_cells) & (ty > -1.0) & (ty < n_cells)
                        t = float(brow[j]) - t_theta
                        row_t[j] = t + n_ori if t < 0.0 else t
                        row_w[j] = float(mrow[j]) * gy_w * grow[j] if inside else 0.0
                        row_x[j] = tx
                        row_y[j] = ty
                else:
                    for j in range(n_px):
                        tx = tx0 + j * step_x
                        ty = ty0 - j * step_y
                        inside = (tx > -1.0) & (tx < n_cells) & (ty > -1.0) & (ty < n_cells)
                        rx, flip_x = _reflect(px_lo + j, width)
                        t = float(bins[ry, rx])
                        if flip_x:
                            t = half_ori - t
                        if flip_y:
                            t = -t
                        row_t[j] = _wrap(t - t_theta, n_ori)
                        row_w[j] = float(magnitude[ry, rx]) * gy_w * gauss_x[g0 + j] if inside else 0.0
                        row_x[j] = tx
                        row_y[j] = ty
                for j in range(n_px):
                    weight = row_w[j]
                    if weight == 0.0:
                        continue
                    t = row_t[j]
                    b0 = np.int64(t)
                    if b0 >= n_ori:                 # t rounded up to n_ori
                        b0 = 0
                        t = 0.0
                    fo = t - b0
                    b1 = b0 + 1 if b0 + 1 < n_ori else 0
                    tx = row_x[j]
                    ty = row_y[j]
                    ix = math.floor(tx)
                    iy = math.floor(ty)
                    fx = tx - ix
                    fy = ty - iy
                    m1 = weight * fo
                    m0 = weight - m1
                    base = (iy + 1) * stride_y + (ix + 1) * n_ori
                    a = (1.0 - fy) * (1.0 - fx)
                    hist[base + b0] += a * m0
                    hist[base + b1] += a * m1
                    a = (1.0 - fy) * fx
                    hist[base + n_ori + b0] += a * m0
                    hist[base + n_ori + b1] += a * m1
                    a = fy * (1.0 - fx)
                    hist[base + stride_y + b0] += a * m0
                    hist[base + stride_y + b1] += a * m1
                    a = fy * fx
                    hist[base + stride_y + n_ori + b0] += a * m0
                    hist[base + stride_y + n_ori + b1] += a * m1
            d = 0
            for iy in range(1, n_cells + 1):
                for ix in range(1, n_cells + 1):
                    base = iy * stride_y + ix * n_ori
                    for o in range(n_ori):
                        out[k, d] = hist[base + o]
                        d += 1
        start, stop = next_chunk(job)


def _normalize_rows(raw, clip, rootsift):
    """``(N, D)`` float32: :func:`_normalize_rows_into` of ``raw`` (rows on threads).

    L2-normalize, clip at ``clip``, L2-normalize again, then optionally RootSIFT; float64 sums.
    Rows of norm <= 1e-12 (no gradient) become zeros."""
    out = np.zeros(raw.shape, np.float32)
    parallel_for(_normalize_rows_into, raw.shape[0], raw, float(clip), bool(rootsift), out, grain=256)
    return out


@kernel(error_model="numpy", fastmath=True)
def _normalize_rows_into(job, raw, clip, rootsift, out):
    """Rows ``start <= k < stop``: L2-normalize, clip at ``clip``, L2-normalize again, then
    optionally RootSIFT; float64 sums. Rows of norm <= 1e-12 (no gradient) become zeros."""
    dim = raw.shape[1]
    start, stop = next_chunk(job)
    while start < stop:
        for k in range(start, stop):
            total = 0.0
            for d in range(dim):
                total += float(raw[k, d]) ** 2
            if total <= 1e-24:
                continue
            inv = 1.0 / math.sqrt(total)
            total = 0.0
            for d in range(dim):
                v = raw[k, d] * inv
                total += (v if v < clip else clip) ** 2
            inv2 = 1.0 / math.sqrt(total)
            scale = 1.0
            if rootsift:
                l1 = 0.0
                for d in range(dim):
                    v = raw[k, d] * inv
                    l1 += (v if v < clip else clip) * inv2
                scale = 1.0 / l1
            for d in range(dim):
                v = raw[k, d] * inv
                value = (v if v < clip else clip) * inv2
                out[k, d] = math.sqrt(value * scale) if rootsift else value
        start, stop = next_chunk(job)


# --------------------------------------------------------------------------------------------
# Plain-numpy references (tests only), written differently on purpose: libm arctan2, gradients
# of the padded image, every sample's weight on every cell and bin as a product of explicit
# triangle functions summed with einsum.



def _describe_reference(smoothed, xs, ys, sizes, thetas, n_cells, n_ori):
    """Twin of :func:`_describe`, from the smoothed image (gradients of its symmetric padding)."""
    rows = []
    for cx, cy, s, theta in zip(xs, ys, sizes, thetas):
        cx, cy, s, theta = float(cx), float(cy), float(s), float(theta)
        r = int(np.ceil(s)) + 2
        pad = r + int(max(abs(cx - smoothed.shape[1] / 2), abs(cy - smoothed.shape[0] / 2))) + 2
        big = np.pad(smoothed.astype(np.float64), pad, mode="symmetric")
        gx = 0.5 * (big[1:-1, 2:] - big[1:-1, :-2])
        gy = 0.5 * (big[2:, 1:-1] - big[:-2, 1:-1])
        py, px = np.mgrid[int(np.floor(cy)) - r:int(np.floor(cy)) + r + 1,
                          int(np.floor(cx)) - r:int(np.floor(cx)) + r + 1]
        gxv = gx[py + pad - 1, px + pad - 1].ravel()
        gyv = gy[py + pad - 1, px + pad - 1].ravel()
        dx = px.ravel() - cx
        dy = py.ravel() - cy
        u = dx * np.cos(theta) + dy * np.sin(theta)
        v = -dx * np.sin(theta) + dy * np.cos(theta)
        w = s / n_cells
        centres = (np.arange(n_cells) - n_cells / 2 + 0.5) * w
        tri_x = np.maximum(0.0, 1.0 - np.abs(u[:, None] - centres[None, :]) / w)
        tri_y = np.maximum(0.0, 1.0 - np.abs(v[:, None] - centres[None, :]) / w)
        phi = np.arctan2(gyv, gxv) - theta
        centres_o = np.arange(n_ori) * (2 * np.pi / n_ori)
        dist = np.abs(np.angle(np.exp(1j * (phi[:, None] - centres_o[None, :]))))  # circular
        tri_o = np.maximum(0.0, 1.0 - dist / (2 * np.pi / n_ori))
        weight = np.hypot(gxv, gyv) * np.exp(-(dx * dx + dy * dy) / (2 * (s / 2) ** 2))
        rows.append(np.einsum("s,sj,si,so->jio", weight, tri_y, tri_x, tri_o).ravel())
    return np.array(rows, np.float32).reshape(len(xs), n_cells * n_cells * n_ori)


def _normalize_rows_reference(raw, clip, rootsift):
    """Twin of :func:`_normalize_rows`."""
    d = raw.astype(np.float64)
    norm = np.linalg.norm(d, axis=1, keepdims=True)
    keep = norm > 1e-12
    d = np.minimum(np.divide(d, norm, out=np.zeros_like(d), where=keep), clip)
    d = np.divide(d, np.linalg.norm(d, axis=1, keepdims=True), out=np.zeros_like(d), where=keep)
    if rootsift:
        d = np.sqrt(np.divide(d, d.sum(axis=1, keepdims=True), out=np.zeros_like(d), where=keep))
    return d.astype(np.float32)
