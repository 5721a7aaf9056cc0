"""The certified nearest-neighbour engine (:func:`nearest_two`) and its numba kernel, the ``k``
smallest entries of each row.

``_smallest_k`` replaces ``np.argpartition`` on the float32 distance block: one pass over each
row keeping a small sorted buffer, rows in parallel. ``_smallest_k_reference`` is the plain
numpy version it is tested against (tests/test_matching.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def _smallest_k(values, k):  # pragma: no cover - compiled
    """Indices (rows, k) int64 of the k smallest values of each row, ascending, ties by lower index.

    ``values`` is (rows, n) float32 with ``1 <= k <= n``. NaN is never smaller than anything, so a
    NaN entry is only picked when fewer than ``k`` entries are non-NaN; the caller treats rows
    holding NaN separately (their verification fails).
    """
    rows, n = values.shape
    out = np.empty((rows, k), np.int64)
    for r in prange(rows):
        best_v = np.empty(k, np.float32)
        best_i = np.empty(k, np.int64)
        # seed with the first k entries, insertion-sorted (stable: equal values keep index order)
        filled = 0
        for j in range(k):
            v = values[r, j]
            pos = filled
            while pos > 0 and (v < best_v[pos - 1] or (best_v[pos - 1] != best_v[pos - 1] and v == v)):
                best_v[pos] = best_v[pos - 1]
                best_i[pos] = best_i[pos - 1]
                pos -= 1
            best_v[pos] = v
            best_i[pos] = j
            filled += 1
        worst = best_v[k - 1]
        for j in range(k, n):
            v = values[r, j]
            if v < worst or (worst != worst and v == v):
                pos = k - 1
                while pos > 0 and (v < best_v[pos - 1] or (best_v[pos - 1] != best_v[pos - 1])):
                    best_v[pos] = best_v[pos - 1]
                    best_i[pos] = best_i[pos - 1]
                    pos -= 1
                best_v[pos] = v
                best_i[pos] = j
                worst = best_v[k - 1]
        for t in range(k):
            out[r, t] = best_i[t]
    return out


def _smallest_k_reference(values: np.ndarray, k: int) -> np.ndarray:
    """Plain-numpy twin of :func:`_smallest_k` (stable sort of every row; NaN sorts last)."""
    order = np.argsort(values, axis=1, kind="stable")
    return np.ascontiguousarray(order[:, :k], dtype=np.int64)



# Candidates recomputed exactly per row; the (k+1)-th screened value proves the rest are farther.
_N_CANDIDATES = 6
# Float64 rows x N2 x D elements per block of the exact fallback (about 32 MB).
_FALLBACK_ELEMENTS = 4_000_000


def exact_rows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest two (indices int64, squared distances float64) of each row of a, by brute force."""
    n1, n2 = a.shape[0], b.shape[0]
    indices = np.full((n1, 2), -1, np.int64)
    sq = np.full((n1, 2), np.inf, np.float64)
    b64 = b.astype(np.float64)
    step = max(1, _FALLBACK_ELEMENTS // max(1, n2 * max(1, b.shape[1])))
    arange = np.arange(n2)
    for start in range(0, n1, step):
        block = a[start:start + step].astype(np.float64)
        dist = ((block[:, None, :] - b64[None, :, :]) ** 2).sum(axis=2)
        for r in range(dist.shape[0]):
            order = np.lexsort((arange, dist[r]))[:2]
            indices[start + r, :order.size] = order
            sq[start + r, :order.size] = dist[r, order]
    return indices, sq


def nearest_two(a: np.ndarray, b: np.ndarray, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (N1, 2) int64 and exact squared distances (N1, 2) float64 of the nearest two rows of
    ``b`` for each row of ``a`` (float32, same width, finite; unchecked), equal to a float64 brute
    force: see :mod:`classicvision.matching.nearest` for the certificate."""
    n1, n2 = a.shape[0], b.shape[0]
    dim = a.shape[1]
    if n1 == 0 or n2 == 0:
        return np.full((n1, 2), -1, np.int64), np.full((n1, 2), np.inf, np.float64)
    k = min(_N_CANDIDATES, n2)
    if n2 <= k + 1 or dim == 0:
        return exact_rows(a, b)
    a64_sq = np.einsum("ij,ij->i", a, a, dtype=np.float64)
    b_sq = np.einsum("ij,ij->i", b, b, dtype=np.float64)
    b_sq32 = b_sq.astype(np.float32)
    bound_factor = 2.0 * (dim + 4) * 2.0 ** -24
    b_sq_max = float(b_sq.max())
    bt = np.ascontiguousarray(b.T)
    indices = np.empty((n1, 2), np.int64)
    sq = np.empty((n1, 2), np.float64)
    failed = []
    rows_arange = np.arange(min(chunk_size, n1))[:, None]
    for start in range(0, n1, chunk_size):
        stop = min(start + chunk_size, n1)
        block = a[start:stop]
        screen = (block * np.float32(-2.0)) @ bt          # exact scaling by -2, then one GEMM
        screen += b_sq32
        picked = _smallest_k(screen, k + 1)                # (rows, k+1), ascending screened value
        rows = rows_arange[:stop - start]
        candidates = picked[:, :k]
        diff = block[:, None, :].astype(np.float64) - b[candidates].astype(np.float64)
        exact = np.einsum("rkd,rkd->rk", diff, diff)
        # rank candidates by (exact distance, index): sort by index first, then stable by distance
        by_index = np.argsort(candidates, axis=1, kind="stable")
        candidates = np.take_along_axis(candidates, by_index, axis=1)
        exact = np.take_along_axis(exact, by_index, axis=1)
        order = np.argsort(exact, axis=1, kind="stable")[:, :2]
        best = np.take_along_axis(candidates, order, axis=1)
        best_sq = np.take_along_axis(exact, order, axis=1)
        excluded = screen[rows[:, 0], picked[:, k]].astype(np.float64) + a64_sq[start:stop]
        slack = bound_factor * (a64_sq[start:stop] + b_sq_max)
        ok = (excluded - slack) > best_sq[:, 1]            # NaN/inf trouble gives False: redo exactly
        indices[start:stop] = best
        sq[start:stop] = best_sq
        if not ok.all():
            failed.append(start + np.flatnonzero(~ok))
    if failed:
        redo = np.concatenate(failed)
        indices[redo], sq[redo] = exact_rows(a[redo], b)
    return indices, sq


