"""The certified k-nearest-neighbour engine (:func:`k_nearest`) and its numba kernels.

One engine serves ratio matching (:mod:`classicvision.matching`), word assignment and the
k-means Lloyd steps (:mod:`classicvision.recognition.codebook`). The algorithm and its error
bound (the certificate) are documented once, in :mod:`classicvision.matching.nearest`.

Kernels, each with the plain-numpy reference it is tested against (tests/test_nearest.py):

* ``_smallest_k(values, offset, k)``: indices of the ``k`` smallest ``values[r, j] + offset[j]``
  of each row (a vectorized pass of block minima, then a sorted buffer over the few blocks that
  can matter; the offset is added on the fly, so the screen ``|b|^2 - 2 a.b`` makes no second
  pass over the GEMM block). Twin: ``_smallest_k_reference``.
* ``_rank_candidates(a, b, candidates, k)``: float64 squared distances of the candidate rows,
  ranked by (distance, index), the ``k`` best kept. Twin: ``_rank_candidates_reference``.
* ``_all_squared(a, b)``: every float64 squared distance (the exact fallback). Twin:
  ``_all_squared_reference``.

The kernels are serial: they run between multi-threaded GEMMs, and waking a numba thread pool
there cost more than the work (measured ~6 ms per chunk on 2 cores, OpenBLAS and OpenMP threads
spinning against each other). Both float64 kernels sum ``(a_d - b_d)^2`` with the same four interleaved accumulators
(``_squared``), so a candidate and a fallback row compute a distance identically.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .jit import kernel, num_threads, parallel_for

__all__ = ["k_nearest", "exact_rows", "default_candidates", "screen_bound_factor"]

# Candidates recomputed exactly per row beyond the k wanted; the next screened value proves the
# rest are farther. k = 2 (ratio matching) gives the 6 of the former nearest-two engine.
_EXTRA_CANDIDATES = 4
# Float64 distances per block of the exact fallback (rows x N2, about 32 MB).
_FALLBACK_ELEMENTS = 4_000_000
_CHUNKS_PER_THREAD = 2        # query chunks per pool thread in k_nearest (measured in benchmarks/bench_load.py)


def default_candidates(k: int) -> int:
    """Rows recomputed exactly per query by default: ``k + 4``, but 1 for a single neighbour.

    A lone nearest neighbour (word assignment) is certified by the gap between the second
    screened value and the exact first distance, so one candidate keeps the float64 work at ``D``
    per row; ``k >= 2`` (ratio matching) keeps four spares, which absorb the near-duplicates of
    real descriptor sets without falling back to brute force.
    """
    return 1 if k == 1 else k + _EXTRA_CANDIDATES


def screen_bound_factor(dim: int) -> float:
    """``c = 2 (D + 4) 2^-24``: the float32 screen errs by at most ``c (|a|^2 + max_j |b_j|^2)``
    (plus ``_UNDERFLOW_SLACK * D`` for subnormal products)."""
    return 2.0 * (dim + 4) * 2.0 ** -24


# Absolute error per coordinate from float32 underflow (products below 2^-126 round to 2^-149).
_UNDERFLOW_SLACK = 2.0 ** -146
# Rows with |a|^2 + max |b|^2 above this could overflow the float32 screen: computed exactly.
_OVERFLOW_LIMIT = 2.0 ** 124


# Row entries per block of the selection's first pass (one vectorized minimum per block).
_BLOCK = 16


@njit(cache=True, fastmath=True)
def _block_minima(values, offset, r, out):  # pragma: no cover - compiled
    """``out[blk] = min over the block of values[r, j] + offset[j]`` (finite values: fastmath
    only lets the minimum vectorize; each sum is still one correctly rounded addition)."""
    n = values.shape[1]
    row = values[r]
    for blk in range(out.shape[0]):
        lo = blk * _BLOCK
        hi = lo + _BLOCK if lo + _BLOCK < n else n
        m = row[lo] + offset[lo]
        for j in range(lo + 1, hi):
            v = row[j] + offset[j]
            m = v if v < m else m
        out[blk] = m


def _smallest_k(values, offset, k):
    """Indices (rows, k) int64 of the k smallest ``values[r, j] + offset[j]`` of each row
    (:func:`_smallest_k_into`, :func:`_smallest_two` for ``k <= 2``), into new arrays."""
    rows, n = values.shape
    out = np.empty((rows, k), np.int64)
    if k <= 2:
        _smallest_two(values, offset, k, out)
        return out
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    kb = min(k, n_blocks)
    _smallest_k_into(values, offset, k, out, np.empty(n_blocks, values.dtype), np.empty(kb, values.dtype),
                     np.empty(k, values.dtype), np.empty(k, np.int64))
    return out


@kernel
def _smallest_k_into(values, offset, k, out, minima, top, best_v, best_i):  # pragma: no cover - compiled
    """Indices (rows, k) int64 of the k smallest ``values[r, j] + offset[j]`` of each row,
    ascending, ties by lower index.

    ``values`` is (rows, n) and ``offset`` (n,), finite, of the same float dtype, ``1 <= k <= n``;
    each sum is rounded in that dtype. Two passes per row: the minimum of every block of
    ``_BLOCK`` entries (vectorized), then an insertion into a sorted buffer of ``k`` over the
    blocks whose minimum is at most the ``k``-th smallest block minimum (at least ``k`` entries
    lie at or below it, so no other block can hold one of the ``k`` smallest). Into ``out``
    (rows, k); ``minima`` (one per block), ``top`` (``min(k, blocks)``), ``best_v`` and ``best_i``
    (k) are working memory. Serial and GIL-free: :func:`k_nearest` runs it on the pool's
    threads, one query chunk each.
    """
    rows, n = values.shape
    n_blocks = minima.shape[0]
    kb = top.shape[0]
    for r in range(rows):
        _block_minima(values, offset, r, minima)
        for blk in range(n_blocks):           # the kb smallest block minima, sorted
            v = minima[blk]
            if blk < kb:
                pos = blk
            elif v < top[kb - 1]:
                pos = kb - 1
            else:
                continue
            while pos > 0 and v < top[pos - 1]:
                top[pos] = top[pos - 1]
                pos -= 1
            top[pos] = v
        threshold = top[kb - 1]
        filled = 0
        for blk in range(n_blocks):
            if kb == k and minima[blk] > threshold:
                continue
            lo = blk * _BLOCK
            hi = lo + _BLOCK if lo + _BLOCK < n else n
            for j in range(lo, hi):
                v = values[r, j] + offset[j]
                if filled < k:
                    pos = filled
                    filled += 1
                elif v < best_v[k - 1]:
                    pos = k - 1
                else:
                    continue
                while pos > 0 and v < best_v[pos - 1]:  # strict: equal values keep index order
                    best_v[pos] = best_v[pos - 1]
                    best_i[pos] = best_i[pos - 1]
                    pos -= 1
                best_v[pos] = v
                best_i[pos] = j
        for t in range(k):
            out[r, t] = best_i[t]


@kernel
def _smallest_two(values, offset, k, out):  # pragma: no cover - compiled
    """:func:`_smallest_k` for ``k`` of 1 or 2 into ``out`` (rows, k): one pass per row keeping
    the two smallest (the first of equal values wins, as there)."""
    rows, n = values.shape
    for r in range(rows):
        row = values[r]
        v1 = row[0] + offset[0]
        i1 = 0
        v2 = np.inf
        i2 = 0
        for j in range(1, n):
            v = row[j] + offset[j]
            if v < v2:
                if v < v1:
                    v2, i2 = v1, i1
                    v1, i1 = v, j
                else:
                    v2, i2 = v, j
        out[r, 0] = i1
        if k == 2:
            out[r, 1] = i2


def _smallest_k_reference(values: np.ndarray, offset: np.ndarray, k: int) -> np.ndarray:
    """Plain-numpy twin of :func:`_smallest_k` (stable sort of every row)."""
    order = np.argsort(values + offset[None, :], axis=1, kind="stable")
    return np.ascontiguousarray(order[:, :k], dtype=np.int64)


@njit(cache=True)
def _squared(a, r, b, j):  # pragma: no cover - compiled
    """float64 ``sum_d (a[r, d] - b[j, d])^2``, four interleaved accumulators (fixed order)."""
    dim = a.shape[1]
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    d = 0
    while d + 4 <= dim:
        x0 = np.float64(a[r, d]) - np.float64(b[j, d])
        x1 = np.float64(a[r, d + 1]) - np.float64(b[j, d + 1])
        x2 = np.float64(a[r, d + 2]) - np.float64(b[j, d + 2])
        x3 = np.float64(a[r, d + 3]) - np.float64(b[j, d + 3])
        s0 += x0 * x0
        s1 += x1 * x1
        s2 += x2 * x2
        s3 += x3 * x3
        d += 4
    while d < dim:
        x0 = np.float64(a[r, d]) - np.float64(b[j, d])
        s0 += x0 * x0
        d += 1
    return (s0 + s1) + (s2 + s3)


def _rank_candidates(a, b, candidates, k):
    """Best ``k`` of the candidate rows of ``b`` for each row of ``a`` by exact float64 distance.

    ``candidates`` is (rows, c) int64 with ``k <= c``, row ``r`` belonging to ``a[r]``. Returns
    indices (rows, k) int64 and squared distances (rows, k) float64, ranked by (distance, index)
    (:func:`_rank_candidates_into`).
    """
    rows, c = candidates.shape
    out_i = np.empty((rows, k), np.int64)
    out_v = np.empty((rows, k), np.float64)
    _rank_candidates_into(a, b, candidates, out_i, out_v, np.empty(c, np.float64), np.empty(c, np.int64))
    return out_i, out_v


@kernel
def _rank_candidates_into(a, b, candidates, out_i, out_v, best_v, best_i):  # pragma: no cover - compiled
    """:func:`_rank_candidates` into ``out_i``, ``out_v`` (rows, k); ``best_v``, ``best_i`` (c,)
    are working memory."""
    rows, c = candidates.shape
    k = out_i.shape[1]
    for r in range(rows):
        for t in range(c):
            j = candidates[r, t]
            v = _squared(a, r, b, j)
            pos = t
            while pos > 0 and (v < best_v[pos - 1] or (v == best_v[pos - 1] and j < best_i[pos - 1])):
                best_v[pos] = best_v[pos - 1]
                best_i[pos] = best_i[pos - 1]
                pos -= 1
            best_v[pos] = v
            best_i[pos] = j
        for t in range(k):
            out_i[r, t] = best_i[t]
            out_v[r, t] = best_v[t]


def _rank_candidates_reference(a, b, candidates, k):
    """Plain-numpy twin of :func:`_rank_candidates` (einsum distances, lexsort by (distance, index))."""
    diff = a[:, None, :].astype(np.float64) - b[candidates].astype(np.float64)
    sq = np.einsum("rcd,rcd->rc", diff, diff)
    order = np.lexsort((candidates, sq), axis=1)[:, :k]
    return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(sq, order, axis=1)


@kernel
def _all_squared(a, b):  # pragma: no cover - compiled
    """(rows, N2) float64 squared distances of every row of ``a`` to every row of ``b``."""
    rows, n2 = a.shape[0], b.shape[0]
    out = np.empty((rows, n2), np.float64)
    for r in range(rows):
        for j in range(n2):
            out[r, j] = _squared(a, r, b, j)
    return out


def _all_squared_reference(a, b):
    """Plain-numpy twin of :func:`_all_squared`."""
    diff = a[:, None, :].astype(np.float64) - b[None, :, :].astype(np.float64)
    return np.einsum("rjd,rjd->rj", diff, diff)


def _padded(n1: int, k: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n1, k), -1, np.int64), np.full((n1, k), np.inf, dtype)


def exact_rows(a: np.ndarray, b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest ``k`` (indices (N1, k) int64, squared distances (N1, k) float64) of each
    row of ``a`` among the rows of ``b``, by float64 brute force; ties to the lower index, ``-1``
    and ``inf`` past ``N2``."""
    n1, n2 = a.shape[0], b.shape[0]
    indices, sq = _padded(n1, k, np.float64)
    width = min(k, n2)
    if n1 == 0 or width == 0:
        return indices, sq
    zeros = np.zeros(n2, np.float64)
    step = max(1, _FALLBACK_ELEMENTS // n2)
    for start in range(0, n1, step):
        dist = _all_squared(a[start:start + step], b)
        best = _smallest_k(dist, zeros, width)
        indices[start:start + len(best), :width] = best
        sq[start:start + len(best), :width] = np.take_along_axis(dist, best, axis=1)
    return indices, sq


def k_nearest(a: np.ndarray, b: np.ndarray, k: int, chunk_size: int, certify: bool = True,
              a_sq: np.ndarray | None = None,
              candidates: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``b`` for each row of ``a`` (float32, same width, finite;
    unchecked), nearest first.

    Returns indices (N1, k) int64 (``-1`` past ``N2``) and squared distances (N1, k): with
    ``certify`` float64 and equal to a float64 brute force (ties to the lower index); without,
    the float32 screen's answer and distances, within the bound of
    :mod:`classicvision.matching.nearest`. ``a_sq`` may pass the precomputed float64
    ``|a_i|^2``; ``candidates`` (> k) overrides :func:`default_candidates`.
    """
    n1, n2 = a.shape[0], b.shape[0]
    dim = a.shape[1]
    dtype = np.float64 if certify else np.float32
    if n1 == 0 or n2 == 0:
        return _padded(n1, k, dtype)
    width = min(k, n2)
    spare = min(candidates if candidates is not None else default_candidates(k), n2 - 1)
    if certify and (spare < width or dim == 0):        # every row of b is a candidate anyway
        return exact_rows(a, b, k)
    if a_sq is None:
        a_sq = np.einsum("ij,ij->i", a, a, dtype=np.float64)
    b_sq = np.einsum("ij,ij->i", b, b, dtype=np.float64)
    b_sq32 = np.minimum(b_sq, np.finfo(np.float32).max).astype(np.float32)
    bt = np.ascontiguousarray(b.T) * np.float32(-2.0)  # exact scaling: screen = |b|^2 - 2 a.b
    slack_factor = screen_bound_factor(dim)
    b_sq_max = float(b_sq.max())
    if b_sq_max > _OVERFLOW_LIMIT:                     # the screen could overflow: exact for all
        if certify:
            return exact_rows(a, b, k)
        indices, sq = exact_rows(a, b, k)
        return indices, sq.astype(np.float32)
    huge = np.flatnonzero(a_sq + b_sq_max > _OVERFLOW_LIMIT)
    indices, sq = _padded(n1, k, dtype)
    threads = num_threads()
    # Chunks of query rows on the pool, each GEMM on one BLAS thread: BLAS's own threads split each
    # product statically (a busy core stalls it) and spin against the pool's. Two chunks per thread:
    # a chunk is Python between its GEMM and kernels, so each more costs GIL hand-offs, and beside a
    # CPU hog a thread preempted while it holds the GIL stops the others.
    per_task = -(-n1 // (_CHUNKS_PER_THREAD * threads)) if threads > 1 else n1
    chunk = max(min(64, n1), min(chunk_size, n1, per_task))   # at least 64 rows per GEMM
    n_chunks = -(-n1 // chunk)
    failed = [None] * n_chunks
    context = (a, b, bt, a_sq, b_sq32, b_sq_max, slack_factor, width, spare, certify, chunk, indices, sq, failed)
    with _single_threaded_blas():
        parallel_for(_screen_chunks, n_chunks, context, threads=threads)
    failed = [rows for rows in failed if rows is not None and rows.size]
    if huge.size:
        failed.append(huge)
    if failed:
        redo = np.unique(np.concatenate(failed))
        exact_i, exact_sq = exact_rows(a[redo], b, k)
        indices[redo], sq[redo] = exact_i, exact_sq.astype(dtype)
    return indices, sq


def _screen_chunks(c_start, c_stop, context) -> None:
    """Query chunks ``c_start <= c < c_stop`` of :func:`k_nearest`: screen by one float32 GEMM,
    the candidates, their exact distances and the certificate; rows that fail go to ``failed[c]``."""
    a, b, bt, a_sq, b_sq32, b_sq_max, slack_factor, width, spare, certify, chunk, indices, sq, failed = context
    n1, dim = a.shape
    for c in range(c_start, c_stop):
        start, stop = c * chunk, min((c + 1) * chunk, n1)
        block = a[start:stop]
        screen = block @ bt                               # |b|^2 is added inside _smallest_k
        if not certify:
            picked = _smallest_k(screen, b_sq32, width)
            value = np.take_along_axis(screen, picked, axis=1) + b_sq32[picked]
            value += a_sq[start:stop, None].astype(np.float32)
            indices[start:stop, :width] = picked
            sq[start:stop, :width] = np.maximum(value, np.float32(0.0))
            continue
        picked = _smallest_k(screen, b_sq32, spare + 1)   # ascending screened value
        best, best_sq = _rank_candidates(block, b, picked[:, :spare], width)
        beyond = picked[:, spare]
        excluded = (np.take_along_axis(screen, beyond[:, None], axis=1)[:, 0]
                    + b_sq32[beyond]).astype(np.float64) + a_sq[start:stop]
        slack = slack_factor * (a_sq[start:stop] + b_sq_max) + _UNDERFLOW_SLACK * dim
        ok = (excluded - slack) > best_sq[:, width - 1]  # NaN/inf trouble gives False: redo exactly
        indices[start:stop, :width] = best
        sq[start:stop, :width] = best_sq
        if not ok.all():
            failed[c] = start + np.flatnonzero(~ok)


_BLAS = None


def _single_threaded_blas():
    """A context limiting BLAS to one thread (threadpoolctl; the controller is built once)."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController().select(user_api="blas")
    return _BLAS.limit(limits=1)


def k_nearest_reference(a: np.ndarray, b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain-numpy twin of :func:`k_nearest` (float64 brute force, stable sort, ``-1``/``inf`` pad)."""
    indices, sq = _padded(a.shape[0], k, np.float64)
    width = min(k, b.shape[0])
    if a.shape[0] and width:
        dist = _all_squared_reference(a, b)
        order = np.argsort(dist, axis=1, kind="stable")[:, :width]
        indices[:, :width] = order
        sq[:, :width] = np.take_along_axis(dist, order, axis=1)
    return indices, sq
