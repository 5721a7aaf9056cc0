"""Certified k-nearest neighbours: the one engine behind ratio matching, word assignment and k-means.

Algorithm (``classicvision._kernels.nearest.k_nearest``), for query rows ``a`` and reference rows
``b`` (float32, width ``D``), in chunks of ``chunk_size`` query rows:

1. Screen with BLAS in float32: ``s_ij = |b_j|^2 - 2 a_i . b_j`` (the squared distance less the
   row constant ``|a_i|^2``), one GEMM per chunk against ``-2 b^T`` (an exact scaling); memory
   ``chunk_size * N2 * 4`` bytes.
2. Keep the ``c + 1`` smallest screened values of each row (numba ``_smallest_k``: block minima,
   then a sorted buffer; ties to the lower index), ``c >= k`` candidates (``k + 4``; 1 when
   ``k = 1``), and recompute the ``c`` candidates' squared distances exactly, as float64 sums of
   squared differences; rank them by (distance, index) and keep ``k``.
3. Certify: a float32 dot product of length ``D`` errs by at most ``gamma_D |a| |b|``
   (Higham 2002, section 3.1, any summation order), and rounding ``|b|^2`` and the addition adds
   ``O(u)`` more, so every screened value satisfies
   ``| s_ij - (|a_i - b_j|^2 - |a_i|^2) | <= c_D (|a_i|^2 + max_j |b_j|^2)``,
   ``c_D = 2 (D + 4) 2^-24`` (a factor 2 to spare; plus ``D 2^-146`` for subnormal products).
   Every row left out has a screened value at least ``s_(c+1)``, so its distance is at least
   ``|a_i|^2 + s_(c+1) - c_D (|a_i|^2 + max_j |b_j|^2)``. When that is strictly above the exact
   ``k``-th distance, the ``k`` ranked candidates are the true nearest ``k``. Rows that fail
   (exact or near ties beyond the candidates, duplicates) and rows that could overflow float32
   are redone exactly against all of ``b`` in float64.

So the certified answer equals a float64 brute force (``scipy.spatial.distance.cdist``) with
ties broken towards the lower index, and float32 cancellation in ``|a|^2 + |b|^2 - 2 a.b``
cannot swap neighbours. This is the only bound in the package: :func:`nearest_two`,
:func:`nearest_neighbors`, :func:`classicvision.matching.ratio.match_descriptors` and
:func:`classicvision.recognition.codebook.assign_words` are certified; the k-means Lloyd steps
and soft word assignment use step 1-2's screen alone (``certify=False``: distances
``|a|^2 + s`` in float32, each within the bound, the neighbours nearest up to twice it).

References
----------
N. J. Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., SIAM, 2002,
section 3.1 (inner products: ``|fl(x.y) - x.y| <= gamma_n |x|.|y|``, ``gamma_n = n u / (1 - n u)``).
D. G. Lowe, "Distinctive image features from scale-invariant keypoints", IJCV 60(2), 2004,
section 7.1 (nearest and second-nearest neighbours for the ratio test).
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import _limits
from .._kernels.nearest import k_nearest
from .._validation import check_descriptors, check_scalar

__all__ = ["nearest_two", "nearest_neighbors", "check_descriptor_pair"]


def check_descriptor_pair(descriptors1, descriptors2):
    """Both descriptor sets as (N, D) float32 arrays, or raise if either is bad or the widths differ."""
    descriptors1 = check_descriptors(descriptors1, "descriptors1")
    descriptors2 = check_descriptors(descriptors2, "descriptors2")
    d1, d2 = descriptors1.shape[1], descriptors2.shape[1]
    if d1 != d2 and descriptors1.shape[0] and descriptors2.shape[0]:
        raise ValueError(
            f"descriptors1 and descriptors2 must have the same length D, got {d1} and {d2}")
    return descriptors1, descriptors2



def capped_chunk(chunk_size: int, a: np.ndarray, b: np.ndarray) -> int:
    """``chunk_size`` clipped to the query rows and to a ``(chunk, N2)`` float32 block within
    :data:`classicvision._limits.MAX_ARRAY_BYTES`: the block changes the memory, never the answer."""
    return _limits.capped_chunk(chunk_size, a.shape[0], 4 * b.shape[0])


def nearest_two(descriptors1, descriptors2, *, chunk_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Exact nearest and second-nearest rows of ``descriptors2`` for every row of ``descriptors1``.

    Parameters
    ----------
    descriptors1 : (N1, D) array
        Query descriptors (converted to float32).
    descriptors2 : (N2, D) array
        Reference descriptors (float32), same ``D``.
    chunk_size : int
        Query rows per BLAS block; the block holds ``chunk_size * N2`` float32 values. Clipped to
        ``N1`` and to a block of at most :data:`classicvision._limits.MAX_ARRAY_BYTES`.

    Returns
    -------
    indices : (N1, 2) int64 array
        Rows of ``descriptors2``: nearest, then second nearest (ties go to the lower index).
        ``-1`` where there is no such row (``N2 < 2`` for the second, ``N2 == 0`` for both).
    distances : (N1, 2) float32 array
        Euclidean distances to them, ``inf`` where the index is ``-1``. Computed exactly (float64
        sums of squared differences), not from the float32 GEMM; see the module docstring.
        The same as ``nearest_neighbors(descriptors1, descriptors2, k=2)``.

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
    a, b = check_descriptor_pair(descriptors1, descriptors2)
    indices, sq = k_nearest(a, b, 2, capped_chunk(chunk_size, a, b))
    return indices, np.sqrt(sq).astype(np.float32)


def nearest_neighbors(descriptors1, descriptors2, *, k: int = 2,
                      chunk_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest rows of ``descriptors2`` for every row of ``descriptors1``, nearest first.

    Parameters
    ----------
    descriptors1 : (N1, D) array
        Query descriptors (converted to float32).
    descriptors2 : (N2, D) array
        Reference descriptors (float32), same ``D``.
    k : int
        Neighbours per query, at least 1.
    chunk_size : int
        Query rows per BLAS block; the block holds ``chunk_size * N2`` float32 values. Clipped to
        ``N1`` and to a block of at most :data:`classicvision._limits.MAX_ARRAY_BYTES`.

    Returns
    -------
    indices : (N1, k) int64 array
        Rows of ``descriptors2`` by increasing distance, ties to the lower index; ``-1`` in the
        columns past ``N2``.
    distances : (N1, k) float32 array
        Euclidean distances to them (from exact float64 squared distances), ``inf`` where the
        index is ``-1``.

    Raises
    ------
    ValueError
        If an input is not 2-D, holds NaN/inf, the two ``D`` differ, ``k < 1``, or the
        ``(N1, k)`` result would pass :data:`classicvision._limits.MAX_ARRAY_BYTES`.
    TypeError
        If an input is not numeric or ``k``/``chunk_size`` is not an integer.

    Notes
    -----
    The certified engine of the module docstring: equal to a float64 brute force.

    References
    ----------
    N. J. Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., 2002, section 3.1.

    Examples
    --------
    >>> import numpy as np
    >>> d1 = np.array([[0.0, 0.0]], np.float32)
    >>> d2 = np.array([[3.0, 4.0], [0.0, 1.0], [0.0, 1.0], [2.0, 0.0]], np.float32)
    >>> indices, distances = nearest_neighbors(d1, d2, k=3)
    >>> indices
    array([[1, 2, 3]])
    >>> distances
    array([[1., 1., 2.]], dtype=float32)
    """
    check_scalar(k, "k", kind=numbers.Integral, low=1)
    check_scalar(chunk_size, "chunk_size", kind=numbers.Integral, low=1)
    a, b = check_descriptor_pair(descriptors1, descriptors2)
    _limits.check_array_bytes(12.0 * a.shape[0] * k, f"k={k!r} neighbours of {a.shape[0]} rows",
                              "pass a smaller k (columns past N2 are -1)")
    indices, sq = k_nearest(a, b, int(k), capped_chunk(chunk_size, a, b))
    return indices, np.sqrt(sq).astype(np.float32)

