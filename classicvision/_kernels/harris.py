"""Numba kernels for the Harris detector, each with the plain-numpy reference it is tested against.

* :func:`_harris_kernel`: the fused Harris response, parallel over blocks of rows. For each
  block it computes the gradients of the rows it needs (Sobel, through radius-1 border maps,
  or given), the three products ``gx*gx, gx*gy, gy*gy``, pads them along x by the border map
  and smooths them along x into block-local buffers, then smooths along y, reading rows
  through the border map, and forms ``det - k trace**2``. Every stage applies the border mode
  to its own input, exactly as ``scipy.ndimage`` would when the stages are chained (so the
  result agrees with the scipy build at every pixel, border included). Reference:
  :func:`_sobel_reference` + :func:`_response_reference`.
* :func:`_nms_mask`: non-maximum suppression in a square window with a deterministic
  tie-break (reference :func:`_nms_mask_reference`).
* :func:`_anms_radii`: suppression radii of adaptive non-maximal suppression (reference
  :func:`_anms_radii_reference`).

Border maps (:func:`_border_index`) send an index of the padded axis to the index it copies
in the unpadded axis, or to ``-1`` for zeros (``mode='constant'``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .jit import claim_slot, kernel, next_chunk, parallel_for, row_stride, slot_count

# scipy.ndimage name -> numpy.pad name (the same table as filters._PAD_MODES)
_NP_MODES = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "wrap": "wrap"}


def _border_index(n: int, radius: int, mode: str) -> np.ndarray:
    """``(n + 2 radius,)`` int64 map from padded to unpadded index; ``-1`` means zero."""
    index = np.arange(n, dtype=np.int64)
    if mode == "constant":
        return np.pad(index, radius, mode="constant", constant_values=-1)
    return np.pad(index, radius, mode=_NP_MODES[mode])


# --------------------------------------------------------------------------- response
@njit(cache=True)
def _smooth_row(buf, kernel, col_index, r, width, out):
    """Fill the ends of ``buf`` (row data at ``buf[r:r + width]``) by the border map, then
    ``out[x] = sum_k kernel[k] buf[x + k]``."""
    for j in range(r):
        s = col_index[j]
        buf[j] = buf[r + s] if s >= 0 else 0.0
        s = col_index[r + width + j]
        buf[r + width + j] = buf[r + s] if s >= 0 else 0.0
    w0 = kernel[0]
    for x in range(width):
        out[x] = w0 * buf[x]
    for k in range(1, kernel.shape[0]):
        w = kernel[k]
        for x in range(width):
            out[x] += w * buf[x + k]


@njit(cache=True)
def _sobel_row(image, zeros, s, rows1, cols1, smooth, diff, gx, gy):
    """Sobel ``gx, gy`` (scaled by 1/8) of image row ``s``; ``rows1``/``cols1`` are the
    radius-1 border maps, ``zeros`` a zero row."""
    width = image.shape[1]
    q0 = rows1[s]
    q2 = rows1[s + 2]
    r0 = image[q0] if q0 >= 0 else zeros
    r1 = image[s]
    r2 = image[q2] if q2 >= 0 else zeros
    for x in range(width):
        smooth[x + 1] = r0[x] + 2.0 * r1[x] + r2[x]
        diff[x + 1] = r2[x] - r0[x]
    for j in (0, width + 1):
        c = cols1[j]
        if c >= 0:
            smooth[j] = r0[c] + 2.0 * r1[c] + r2[c]
            diff[j] = r2[c] - r0[c]
        else:
            smooth[j] = 0.0
            diff[j] = 0.0
    for x in range(width):
        gx[x] = (smooth[x + 2] - smooth[x]) * 0.125
        gy[x] = (diff[x] + 2.0 * diff[x + 1] + diff[x + 2]) * 0.125


def _harris_kernel(source_x, source_y, use_sobel, kernel, rows1, cols1, rows_r, cols_r, k_harris, block):
    """Fused Harris response (:func:`_harris_blocks`), blocks of ``block`` rows on threads.
    Returns ``(height, width)`` float32."""
    height, width = source_x.shape
    out = np.empty((height, width), np.float32)
    r = kernel.shape[0] // 2
    n_blocks = (height + block - 1) // block
    slots = slot_count(n_blocks)
    planes = np.empty((slots, 3, block + 2 * r, width), np.float32)
    lines = np.zeros((slots, 8, row_stride(width + 2 * r + 2)), np.float32)   # line 0 stays zero
    valid = np.empty((slots, row_stride(block + 2 * r, 1)), np.bool_)        # row_stride: no line shared
    parallel_for(_harris_blocks, n_blocks, source_x, source_y, bool(use_sobel), kernel, rows1,
                 cols1, rows_r, cols_r, np.float32(k_harris), int(block), out, planes, lines, valid)
    return out


@kernel(fastmath=True)
def _harris_blocks(job, source_x, source_y, use_sobel, kernel, rows1, cols1, rows_r, cols_r, k_harris,
                   block, out, planes, lines, valid_rows):
    """Fused Harris response of the row blocks ``b_start <= b < b_stop`` into ``out``.

    With ``use_sobel`` the gradients are the Sobel gradients of ``source_x`` (the image;
    ``rows1``/``cols1`` its radius-1 border maps), else ``source_x, source_y`` are ``gx, gy``.
    ``kernel`` is the (2r + 1,) window and ``rows_r``/``cols_r`` the radius-r border maps of
    the products. Each block of ``block`` output rows smooths its ``block + 2r`` product rows
    along x into buffers local to the thread (cache-resident), then along y, and forms
    ``a c - b**2 - k (a + c)**2``.

    Working memory, a row per participant (:func:`~classicvision._kernels.jit.claim_slot`):
    ``planes`` ``(slots, 3, block + 2r, W)`` and ``lines`` ``(slots, 8, >= W + 2r + 2)``
    float32 (line 0 zero), ``valid_rows`` ``(slots, >= block + 2r)`` bool.
    """
    height, width = source_x.shape
    n = kernel.shape[0]
    r = n // 2
    slot = claim_slot(job, planes.shape[0])
    if slot < 0:
        return
    hxx = planes[slot, 0]
    hxy = planes[slot, 1]
    hyy = planes[slot, 2]
    valid = valid_rows[slot]
    zeros = lines[slot, 0, :width]
    smooth = lines[slot, 1, :width + 2]
    diff = lines[slot, 2, :width + 2]
    gx = lines[slot, 3, :width]
    gy = lines[slot, 4, :width]
    bxx = lines[slot, 5, :width + 2 * r]
    bxy = lines[slot, 6, :width + 2 * r]
    byy = lines[slot, 7, :width + 2 * r]
    b_start, b_stop = next_chunk(job)
    while b_start < b_stop:
        for b in range(b_start, b_stop):
            y0 = b * block
            y1 = y0 + block if y0 + block < height else height
            n_rows = y1 - y0 + 2 * r
            for t in range(n_rows):
                s = rows_r[y0 + t]
                valid[t] = s >= 0
                if s < 0:
                    continue
                if use_sobel:
                    _sobel_row(source_x, zeros, s, rows1, cols1, smooth, diff, gx, gy)
                    rx = gx
                    ry = gy
                else:
                    rx = source_x[s]
                    ry = source_y[s]
                for x in range(width):
                    bxx[r + x] = rx[x] * rx[x]
                    bxy[r + x] = rx[x] * ry[x]
                    byy[r + x] = ry[x] * ry[x]
                _smooth_row(bxx, kernel, cols_r, r, width, hxx[t])
                _smooth_row(bxy, kernel, cols_r, r, width, hxy[t])
                _smooth_row(byy, kernel, cols_r, r, width, hyy[t])
            a = bxx[:width]  # reuse the row buffers as accumulators
            bb = bxy[:width]
            c = byy[:width]
            for y in range(y0, y1):
                a[:] = 0.0
                bb[:] = 0.0
                c[:] = 0.0
                for t in range(n):
                    row = y - y0 + t
                    if not valid[row]:
                        continue
                    w = kernel[t]
                    ra = hxx[row]
                    rb = hxy[row]
                    rc = hyy[row]
                    for x in range(width):
                        a[x] += w * ra[x]
                        bb[x] += w * rb[x]
                        c[x] += w * rc[x]
                o = out[y]
                for x in range(width):
                    tr = a[x] + c[x]
                    o[x] = a[x] * c[x] - bb[x] * bb[x] - k_harris * tr * tr
        b_start, b_stop = next_chunk(job)


def _smooth_reference(plane, kernel, mode):
    """Separable correlation of ``plane`` with ``kernel`` (both axes), float64, via slices."""
    r = kernel.size // 2
    height, width = plane.shape
    if mode == "constant":
        padded = np.pad(plane, r)
    else:
        padded = plane[np.ix_(_border_index(height, r, mode), _border_index(width, r, mode))]
    rows = sum(kernel[t] * padded[:, t:t + width] for t in range(kernel.size))
    return sum(kernel[t] * rows[t:t + height, :] for t in range(kernel.size))


def _response_reference(gx, gy, kernel, k_harris, mode):
    """Plain-numpy twin of the response kernels, from gradients, with float64 accumulation."""
    gx = gx.astype(np.float64)
    gy = gy.astype(np.float64)
    kernel = kernel.astype(np.float64)
    a = _smooth_reference(gx * gx, kernel, mode)
    b = _smooth_reference(gx * gy, kernel, mode)
    c = _smooth_reference(gy * gy, kernel, mode)
    return (a * c - b * b - k_harris * (a + c) ** 2).astype(np.float32)


def _sobel_reference(padded):
    """Sobel gradients (scaled by 1/8) of an image padded by one pixel, by slices."""
    p = padded.astype(np.float64)
    height, width = p.shape[0] - 2, p.shape[1] - 2
    smooth = p[:-2] + 2.0 * p[1:-1] + p[2:]
    diff = p[2:] - p[:-2]
    gx = (smooth[:, 2:] - smooth[:, :-2]) / 8.0
    gy = (diff[:, :-2] + 2.0 * diff[:, 1:-1] + diff[:, 2:]) / 8.0
    return gx[:height, :width], gy[:height, :width]


# --------------------------------------------------------------------------- non-maximum suppression
def _nms_mask(response, radius, border, threshold):
    """``(H, W)`` uint8 mask of :func:`_nms_rows`, rows on threads."""
    height, width = response.shape
    mask = np.zeros((height, width), np.uint8)
    parallel_for(_nms_rows, max(0, height - 2 * border), response, int(radius), int(border),
                 np.float32(threshold), mask, grain=16)
    return mask


@kernel
def _nms_rows(job, response, radius, border, threshold, mask):
    """Rows ``border + start <= y < border + stop``: ``mask[y, x] = 1`` where ``response[y, x] >= threshold`` (and > 0) and it beats every
    other pixel of its ``(2 radius + 1)**2`` window (clipped to the image): ``R[q] < R[p]``,
    or ``R[q] == R[p]`` with ``q`` after ``p`` in raster order (the first of a tie wins).
    Pixels closer than ``border`` to an edge are never peaks."""
    height, width = response.shape
    start, stop = next_chunk(job)
    while start < stop:
        for y in range(border + start, border + stop):
            row = response[y]
            y0 = y - radius if y > radius else 0
            y1 = y + radius + 1 if y + radius + 1 < height else height
            for x in range(border, width - border):
                v = row[x]
                if not (v >= threshold and v > 0.0):
                    continue
                x0 = x - radius if x > radius else 0
                x1 = x + radius + 1 if x + radius + 1 < width else width
                peak = True
                for yy in range(y0, y1):
                    other = response[yy]
                    for xx in range(x0, x1):
                        w = other[xx]
                        if w > v or (w == v and (yy < y or (yy == y and xx < x))):
                            peak = False
                            break
                    if not peak:
                        break
                if peak:
                    mask[y, x] = 1
        start, stop = next_chunk(job)


def _nms_mask_reference(response, radius, border, threshold):
    """Plain-numpy twin of :func:`_nms_mask` (a loop over window offsets)."""
    height, width = response.shape
    neg = np.full((height + 2 * radius, width + 2 * radius), -np.inf)
    neg[radius:radius + height, radius:radius + width] = response
    peak = (response >= threshold) & (response > 0)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy == 0 and dx == 0:
                continue
            other = neg[radius + dy:radius + dy + height, radius + dx:radius + dx + width]
            earlier = dy < 0 or (dy == 0 and dx < 0)
            peak &= (other < response) | ((other == response) & (not earlier))
    inner = np.zeros_like(peak)
    inner[border:height - border, border:width - border] = True
    return (peak & inner).astype(np.uint8)


# --------------------------------------------------------------------------- ANMS
@njit(cache=True)
def _anms_grid(xy, cell):
    """Bucket points into square cells of side ``cell``: CSR ``(start, members)`` keeping the
    input order inside each cell, plus the grid's origin and size."""
    n = xy.shape[0]
    x0 = xy[:, 0].min()
    y0 = xy[:, 1].min()
    ncx = int((xy[:, 0].max() - x0) / cell) + 1
    ncy = int((xy[:, 1].max() - y0) / cell) + 1
    cell_of = np.empty(n, np.int64)
    count = np.zeros(ncx * ncy + 1, np.int64)
    for i in range(n):
        c = int((xy[i, 1] - y0) / cell) * ncx + int((xy[i, 0] - x0) / cell)
        cell_of[i] = c
        count[c + 1] += 1
    start = np.cumsum(count)
    fill = start[:-1].copy()
    members = np.empty(n, np.int64)
    for i in range(n):
        members[fill[cell_of[i]]] = i
        fill[cell_of[i]] += 1
    return start, members, x0, y0, ncx, ncy


@njit(cache=True)
def _anms_radii(xy, response, c_robust):
    """Squared suppression radius of each point; points sorted by ``response`` descending.

    ``r2[i] = min ||xy[i] - xy[j]||**2`` over the ``j`` with ``response[i] < c_robust *
    response[j]`` (a prefix ``j < limit[i]`` of the sorted list), ``inf`` when there is none.
    The search visits grid cells in rings of growing Chebyshev distance around the point and
    stops once no unvisited cell can hold a closer point, so it is exact; within a cell the
    members are in rank order, so the scan of a cell stops at the first too-weak member.
    """
    n = xy.shape[0]
    r2 = np.full(n, np.inf)
    if n == 0:
        return r2
    limit = np.empty(n, np.int64)
    j = 0
    for i in range(n):
        ri = np.float64(response[i])
        while j < n and ri < c_robust * np.float64(response[j]):
            j += 1
        limit[i] = j
    span = max(np.float64(xy[:, 0].max() - xy[:, 0].min()), np.float64(xy[:, 1].max() - xy[:, 1].min()))
    cell = max(1.0, (span + 1.0) / np.sqrt(np.float64(n)))
    start, members, x0, y0, ncx, ncy = _anms_grid(xy, cell)
    for i in range(n):  # serial: a few ms for 10^4 points, no thread start-up under load
        if limit[i] == 0:
            continue
        xi = np.float64(xy[i, 0])
        yi = np.float64(xy[i, 1])
        cx = int((xy[i, 0] - x0) / cell)
        cy = int((xy[i, 1] - y0) / cell)
        best = np.inf
        for d in range(max(ncx, ncy) + 1):
            if d >= 1 and ((d - 1) * cell) ** 2 >= best:
                break
            for gy in range(cy - d, cy + d + 1):
                if gy < 0 or gy >= ncy:
                    continue
                on_edge_row = gy == cy - d or gy == cy + d
                step = 1 if on_edge_row else 2 * d
                gx = cx - d
                while gx <= cx + d:
                    if 0 <= gx < ncx:
                        c = gy * ncx + gx
                        for t in range(start[c], start[c + 1]):
                            m = members[t]
                            if m >= limit[i]:
                                break
                            dx = np.float64(xy[m, 0]) - xi
                            dy = np.float64(xy[m, 1]) - yi
                            dd = dx * dx + dy * dy
                            if dd < best:
                                best = dd
                    gx += step
        r2[i] = best
    return r2


def _anms_radii_reference(xy, response, c_robust):
    """Plain-numpy twin of :func:`_anms_radii` (full distance matrix; any order of points)."""
    xy = xy.astype(np.float64)
    response = response.astype(np.float64)
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    stronger = response[:, None] < c_robust * response[None, :]
    return np.where(stronger, d2, np.inf).min(axis=1) if len(xy) else np.zeros(0)
