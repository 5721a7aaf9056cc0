"""Descriptor matching: exact nearest-two search and the nearest-neighbour distance ratio test.

Algorithm (:func:`nearest_two`), for query rows ``a`` (descriptors1) and reference rows ``b``
(descriptors2), in chunks of ``chunk_size`` query rows:

1. Screen with BLAS in float32: ``s_ij = |b_j|^2 - 2 a_i . b_j`` (the squared distance less the
   row constant ``|a_i|^2``), one GEMM per chunk; memory ``chunk_size * N2 * 4`` bytes.
2. Keep the ``k + 1`` smallest screened values of each row (a parallel numba pass,
   ``_matching_kernels._smallest_k``) and recompute the ``k`` best candidates' squared distances
   exactly, as float64 sums of squared differences; rank them by (distance, index).
3. Verify: a float32 dot product of length ``D`` errs by at most ``gamma_D |a| |b|``
   (Higham 2002, section 3.1), so every excluded row ``j`` satisfies
   ``|a_i - b_j|^2 >= |a_i|^2 + s_(k+1) - c (|a_i|^2 + max_j |b_j|^2)`` with
   ``c = 2 (D + 4) 2^-24``. When that bound is strictly above the exact second distance, the two
   candidates are the true nearest two. Rows that fail (exact or near ties beyond the candidates,
   duplicates, overflow) are redone exactly against all of ``b`` in float64.

So the answer equals a float64 brute force (``scipy.spatial.distance.cdist``) with ties broken
towards the lower index, and float32 cancellation in ``|a|^2 + |b|^2 - 2 a.b`` cannot swap
neighbours.

:func:`match_descriptors` applies Lowe's ratio test to that answer, optionally with a mutual
(cross) check. Confidence is ``1 - d1 / d2``.

References
----------
D. G. Lowe, "Distinctive image features from scale-invariant keypoints", IJCV 60(2), 2004,
section 7.1 (ratio of closest to second-closest neighbour, threshold 0.8).
R. Szeliski, *Computer Vision: Algorithms and Applications*, 2nd ed., 2022, section 7.1.3,
eq. (7.18) (nearest neighbour distance ratio, NNDR).
N. J. Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., 2002, section 3.1.
"""

from __future__ import annotations

import numbers

import numpy as np

from ._matching_kernels import _smallest_k
from ._validation import check_descriptors, check_scalar

__all__ = ["nearest_two", "match_descriptors"]

# Candidates recomputed exactly per row; the (k+1)-th screened value proves the rest are farther.
_N_CANDIDATES = 6
# Float64 rows x N2 x D elements per block of the exact fallback (about 32 MB).
_FALLBACK_ELEMENTS = 4_000_000


def _check_pair(descriptors1, descriptors2):
    descriptors1 = check_descriptors(descriptors1, "descriptors1")
    descriptors2 = check_descriptors(descriptors2, "descriptors2")
    d1, d2 = descriptors1.shape[1], descriptors2.shape[1]
    if d1 != d2 and descriptors1.shape[0] and descriptors2.shape[0]:
        raise ValueError(
            f"descriptors1 and descriptors2 must have the same length D, got {d1} and {d2}")
    return descriptors1, descriptors2


def _exact_rows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _nearest_two(a: np.ndarray, b: np.ndarray, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (N1, 2) int64 and exact squared distances (N1, 2) float64; see the module docstring."""
    n1, n2 = a.shape[0], b.shape[0]
    dim = a.shape[1]
    if n1 == 0 or n2 == 0:
        return np.full((n1, 2), -1, np.int64), np.full((n1, 2), np.inf, np.float64)
    k = min(_N_CANDIDATES, n2)
    if n2 <= k + 1 or dim == 0:
        return _exact_rows(a, b)
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
        indices[redo], sq[redo] = _exact_rows(a[redo], b)
    return indices, sq


def nearest_two(descriptors1, descriptors2, *, chunk_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest and second-nearest rows of ``descriptors2`` for every row of ``descriptors1``.

    Parameters
    ----------
    descriptors1 : (N1, D) array
        Query descriptors (converted to float32).
    descriptors2 : (N2, D) array
        Reference descriptors (float32), same ``D``.
    chunk_size : int
        Query rows per BLAS block; the block holds ``chunk_size * N2`` float32 values.

    Returns
    -------
    indices : (N1, 2) int64 array
        Rows of ``descriptors2``: nearest, then second nearest (ties go to the lower index).
        ``-1`` where there is no such row (``N2 < 2`` for the second, ``N2 == 0`` for both).
    distances : (N1, 2) float32 array
        Euclidean distances to them, ``inf`` where the index is ``-1``. Computed exactly (float64
        sums of squared differences), not from the float32 GEMM; see the module docstring.

    Raises
    ------
    ValueError
        If an input is not 2-D, holds NaN/inf, or the two ``D`` differ.
    TypeError
        If an input is not numeric or ``chunk_size`` is not an integer.

    References
    ----------
    D. G. Lowe, IJCV 2004, section 7.1.

    Examples
    --------
    >>> import numpy as np
    >>> d1 = np.array([[0.0, 0.0], [1.0, 1.0]], np.float32)
    >>> d2 = np.array([[1.0, 0.9], [0.0, 0.1], [0.0, 0.5]], np.float32)
    >>> indices, distances = nearest_two(d1, d2)
    >>> indices
    array([[1, 2],
           [0, 2]])
    >>> np.round(distances, 3)
    array([[0.1  , 0.5  ],
           [0.1  , 1.118]], dtype=float32)
    """
    check_scalar(chunk_size, "chunk_size", kind=numbers.Integral, low=1)
    a, b = _check_pair(descriptors1, descriptors2)
    indices, sq = _nearest_two(a, b, int(chunk_size))
    return indices, np.sqrt(sq).astype(np.float32)


def match_descriptors(descriptors1, descriptors2, *, max_ratio: float = 0.8, cross_check: bool = False,
                      chunk_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Match descriptors with the nearest-neighbour distance ratio test (Lowe's ratio test).

    Row ``i`` of ``descriptors1`` matches its nearest row ``j1`` of ``descriptors2`` when
    ``d1 / d2 <= max_ratio``, ``d1`` and ``d2`` being the distances to the nearest and
    second-nearest rows (:func:`nearest_two`).

    Parameters
    ----------
    descriptors1 : (N1, D) array
    descriptors2 : (N2, D) array
    max_ratio : float in (0, 1]
        Largest accepted ``d1 / d2`` (Lowe: 0.8). ``1.0`` accepts every nearest neighbour.
    cross_check : bool
        Also require ``i`` to be the nearest row of ``descriptors1`` to ``j1`` (mutual nearest
        neighbours; ties to the lower index). The ratio test is applied in the 1 -> 2 direction only.
    chunk_size : int
        Rows per BLAS block (see :func:`nearest_two`).

    Returns
    -------
    matches : (M, 2) int64 array
        ``(i, j1)`` pairs, most confident first; ties by ``i``.
    confidence : (M,) float32 array
        ``1 - d1 / d2`` in ``[0, 1]``, higher is better, non-increasing.

    Notes
    -----
    Degenerate ratios are defined as follows:

    * ``d1 == d2 == 0`` (two rows of ``descriptors2`` equal to the query): the match is ambiguous,
      ``ratio = 1`` (confidence 0), kept only when ``max_ratio == 1``.
    * ``d1 == 0 < d2``: ``ratio = 0``, confidence 1.
    * ``N2 == 1`` (no second neighbour, ``d2 = inf``): ``ratio = 0``, confidence 1, as
      scikit-image's ``match_descriptors`` does (kornia's ``match_snn`` returns no match instead).

    Empty inputs give ``(0, 2)`` int64 matches and ``(0,)`` float32 confidences.

    References
    ----------
    D. G. Lowe, "Distinctive image features from scale-invariant keypoints", IJCV 2004, section 7.1.
    R. Szeliski, *Computer Vision: Algorithms and Applications*, 2nd ed., 2022, eq. (7.18).

    Examples
    --------
    >>> import numpy as np
    >>> d1 = np.array([[0.0, 0.0], [1.0, 1.0]], np.float32)
    >>> d2 = np.array([[1.0, 0.9], [0.0, 0.1], [0.0, 0.5]], np.float32)
    >>> matches, confidence = match_descriptors(d1, d2, max_ratio=0.8)
    >>> matches
    array([[1, 0],
           [0, 1]])
    >>> np.round(confidence, 3)
    array([0.911, 0.8  ], dtype=float32)
    """
    check_scalar(max_ratio, "max_ratio", low=0.0, high=1.0, low_inclusive=False)
    check_scalar(chunk_size, "chunk_size", kind=numbers.Integral, low=1)
    if not isinstance(cross_check, (bool, np.bool_)):
        raise TypeError(f"cross_check must be a bool, got {cross_check!r} ({type(cross_check).__name__})")
    a, b = _check_pair(descriptors1, descriptors2)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((0, 2), np.int64), np.zeros((0,), np.float32)
    indices, sq = _nearest_two(a, b, int(chunk_size))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.sqrt(sq[:, 0] / sq[:, 1])
    ratio[(sq[:, 0] == 0) & (sq[:, 1] == 0)] = 1.0
    ratio[np.isinf(sq[:, 1])] = 0.0
    keep = ratio <= max_ratio
    if cross_check:
        back, _ = _nearest_two(b, a, int(chunk_size))
        keep &= back[indices[:, 0], 0] == np.arange(a.shape[0])
    rows = np.flatnonzero(keep)
    confidence = (1.0 - ratio[rows]).astype(np.float32)
    order = np.lexsort((rows, -confidence))
    matches = np.stack([rows[order], indices[rows[order], 0]], axis=1).astype(np.int64)
    return matches, confidence[order]
