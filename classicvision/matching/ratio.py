"""The nearest-neighbour distance ratio test (Lowe 2004, section 7.1), with an optional mutual check.

Row ``i`` of ``descriptors1`` matches its nearest row of ``descriptors2`` when the ratio of the
distances to the nearest and second-nearest rows is at most ``max_ratio``; the neighbours come
from the certified engine of :mod:`classicvision.matching.nearest`, so they equal a float64
brute force. Confidence is ``1 - d1 / d2``.

References
----------
D. G. Lowe, "Distinctive image features from scale-invariant keypoints", IJCV 60(2), 2004,
section 7.1 (ratio of closest to second-closest neighbour, threshold 0.8).
R. Szeliski, *Computer Vision: Algorithms and Applications*, 2nd ed., 2022, section 7.1.3,
eq. (7.18).
"""

from __future__ import annotations

import numbers

import numpy as np

from .._kernels.nearest import k_nearest
from .._validation import check_scalar
from .nearest import capped_chunk, check_descriptor_pair

__all__ = ["match_descriptors"]


def match_descriptors(descriptors1, descriptors2, *, max_ratio: float = 0.8, cross_check: bool = False,
                      chunk_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Match descriptors with the nearest-neighbour distance ratio test (Lowe's ratio test).

    Row ``i`` of ``descriptors1`` matches its nearest row ``j1`` of ``descriptors2`` when
    ``d1 / d2 <= max_ratio``, ``d1`` and ``d2`` being the distances to the nearest and
    second-nearest rows (:func:`~classicvision.matching.nearest.nearest_two`, the
    certified engine: equal to a float64 brute force).

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
        Rows per BLAS block (see :func:`nearest_two`; clipped the same way).

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
    a, b = check_descriptor_pair(descriptors1, descriptors2)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((0, 2), np.int64), np.zeros((0,), np.float32)
    indices, sq = k_nearest(a, b, 2, capped_chunk(chunk_size, a, b))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.sqrt(sq[:, 0] / sq[:, 1])
    ratio[(sq[:, 0] == 0) & (sq[:, 1] == 0)] = 1.0
    ratio[np.isinf(sq[:, 1])] = 0.0
    keep = ratio <= max_ratio
    if cross_check:
        back, _ = k_nearest(b, a, 1, capped_chunk(chunk_size, b, a))
        keep &= back[indices[:, 0], 0] == np.arange(a.shape[0])
    rows = np.flatnonzero(keep)
    confidence = (1.0 - ratio[rows]).astype(np.float32)
    order = np.lexsort((rows, -confidence))
    matches = np.stack([rows[order], indices[rows[order], 0]], axis=1).astype(np.int64)
    return matches, confidence[order]
