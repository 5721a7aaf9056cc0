"""numba kernel for :mod:`classicvision.matching`: the ``k`` smallest entries of each row.

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
