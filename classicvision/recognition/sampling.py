"""Random descriptor samples from a list of images' features, and the normalized positions of
points: what the encodings (:mod:`~classicvision.recognition.fisher`,
:mod:`~classicvision.recognition.vlad`) learn their PCA, mixture or codebook from."""

from __future__ import annotations

import numpy as np

__all__ = ["normalized_positions", "sample_features"]


def normalized_positions(points: np.ndarray, shape) -> np.ndarray:
    """``(N, 2)`` float64 ``(fx, fy)`` in ``[0, 1]``: pixel centres ``(x + 0.5) / width``, ``(y + 0.5) / height``.

    ``shape`` is the image's ``(height, width)``, or an ``(N, 2)`` array of them, one per point
    (points of several images at once).

    >>> normalized_positions(np.array([[0.0, 1.0]], np.float32), (4, 2)).tolist()
    [[0.25, 0.375]]
    >>> normalized_positions(np.array([[0.0, 1.0], [0.0, 1.0]]), np.array([[4, 2], [2, 4]])).tolist()
    [[0.25, 0.375], [0.125, 0.75]]
    """
    height_width = np.asarray(shape, np.float64)
    out = (np.asarray(points, np.float64) + 0.5) / height_width[..., ::-1]
    return np.clip(out, 0.0, 1.0)


def sample_features(features: list, size: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """``size`` descriptors drawn uniformly without replacement over all images (all if fewer).

    Parameters
    ----------
    features : list of ImageFeatures
    size : int
    rng : numpy.random.RandomState

    Returns
    -------
    descriptors : (M, D) float32 array
        ``M = min(size, total)``, in image order.
    positions : (M, 2) float64 array
        Their :func:`normalized_positions`.
    """
    counts = np.array([len(f.descriptors) for f in features], np.int64)
    total = int(counts.sum())
    take = np.sort(rng.choice(total, size=min(int(size), total), replace=False))
    starts = np.concatenate([[0], np.cumsum(counts)])
    image = np.searchsorted(starts, take, side="right") - 1
    descriptors, positions = [], []
    for i in np.unique(image):
        rows = take[image == i] - starts[i]
        descriptors.append(features[i].descriptors[rows])
        positions.append(normalized_positions(features[i].points[rows], features[i].shape))
    return np.concatenate(descriptors).astype(np.float32, copy=False), np.concatenate(positions)
