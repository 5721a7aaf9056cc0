"""A uniform descriptor sample drawn on the workers: a seeded reservoir per partition, merged.

Each descriptor gets a key uniform in [0, 1) from a generator seeded by ``(seed, partition
index)``; a partition keeps the ``k`` descriptors with the smallest keys (:func:`reservoir`, the
reservoir of Efraimidis & Spirakis with equal weights), and the client keeps the ``k`` smallest
keys over all the partitions' reservoirs (:func:`merge_reservoirs`). The result is a uniform
sample of ``k`` descriptors without replacement from all of them, the same for any number of
workers and any order in which the partitions finish, and it is computed from ``k`` keys per
partition: the client never sees the other descriptors. Rows come sorted by key, so the sample
(and the k-means seeded from it) is reproducible.

References
----------
P. Efraimidis, P. Spirakis, "Weighted random sampling with a reservoir", Information Processing
Letters 97(5), 2006. J. Vitter, "Random sampling with a reservoir", ACM TOMS 11(1), 1985.
"""

from __future__ import annotations

import numpy as np

__all__ = ["merge_reservoirs", "reservoir", "reservoir_keys"]


def reservoir_keys(n: int, seed: int, partition: int) -> np.ndarray:
    """``(n,)`` float64 keys in [0, 1) of the ``n`` descriptors of partition ``partition``."""
    return np.random.default_rng([int(seed), int(partition)]).random(int(n))


def reservoir(n: int, k: int, seed: int, partition: int) -> tuple[np.ndarray, np.ndarray]:
    """The reservoir of a partition of ``n`` descriptors: its ``min(k, n)`` smallest keys.

    Returns ``(keys (m,) float64 sorted ascending, index (m,) int64 rows of the partition's
    descriptors)``.

    >>> keys, index = reservoir(10, 3, seed=0, partition=0)
    >>> index.shape, bool(np.all(np.diff(keys) > 0)), bool(np.all(keys == reservoir_keys(10, 0, 0)[index]))
    ((3,), True, True)
    """
    keys = reservoir_keys(n, seed, partition)
    k = min(int(k), len(keys))
    take = np.argpartition(keys, k - 1)[:k] if 0 < k < len(keys) else np.arange(k)
    take = take[np.argsort(keys[take], kind="stable")]
    return keys[take], take.astype(np.int64)


def merge_reservoirs(reservoirs, k: int) -> np.ndarray:
    """The ``k`` rows with the smallest keys among ``(keys, rows)`` pairs (any iterable), sorted by key.

    Pairs are buffered and merged with the best ``k`` so far each time the buffer reaches ``k``
    rows, so memory stays at about ``2 k`` rows however many reservoirs stream in, and the work is
    one sort per ``k`` rows seen (not one per reservoir: with thousands of partitions that
    re-sorting dominated). Ties keep the order of arrival. Returns ``(m, D)`` float32,
    ``m = min(k, total rows)``.
    """
    k = int(k)
    best_keys, best_rows = np.zeros(0), None
    pending_keys, pending_rows, pending = [], [], 0

    def merged(keys, rows):
        keys, rows = np.concatenate([keys, *pending_keys]), np.concatenate([rows, *pending_rows])
        order = np.argsort(keys, kind="stable")[:k]
        return keys[order], rows[order]

    for keys, rows in reservoirs:
        if len(keys) == 0:
            continue
        rows = np.asarray(rows, np.float32)
        if best_rows is None:
            best_rows = np.zeros((0, rows.shape[1]), np.float32)
        pending_keys.append(np.asarray(keys))
        pending_rows.append(rows)
        pending += len(keys)
        if pending >= k:
            best_keys, best_rows = merged(best_keys, best_rows)
            pending_keys, pending_rows, pending = [], [], 0
    if best_rows is None:
        return np.zeros((0, 0), np.float32)
    if pending:
        best_keys, best_rows = merged(best_keys, best_rows)
    return best_rows
