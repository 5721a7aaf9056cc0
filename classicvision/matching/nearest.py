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

from .._kernels.nearest import nearest_two as _engine
from .._validation import check_descriptors, check_scalar

__all__ = ["nearest_two", "check_descriptor_pair"]


def check_descriptor_pair(descriptors1, descriptors2):
    descriptors1 = check_descriptors(descriptors1, "descriptors1")
    descriptors2 = check_descriptors(descriptors2, "descriptors2")
    d1, d2 = descriptors1.shape[1], descriptors2.shape[1]
    if d1 != d2 and descriptors1.shape[0] and descriptors2.shape[0]:
        raise ValueError(
            f"descriptors1 and descriptors2 must have the same length D, got {d1} and {d2}")
    return descriptors1, descriptors2



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
    a, b = check_descriptor_pair(descriptors1, descriptors2)
    indices, sq = _engine(a, b, int(chunk_size))
    return indices, np.sqrt(sq).astype(np.float32)

