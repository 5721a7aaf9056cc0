"""Visual-word codebooks: k-means++ over a descriptor sample, and exact nearest-word assignment.

A bag of visual words (Csurka et al. 2004) quantizes each local descriptor to its nearest
*visual word*, a centre found by k-means over a sample of training descriptors. This module
holds the two halves of that idea as plain functions (scikit-learn's ``k_means`` / ``KMeans``
split): :func:`learn_codebook` learns the centres and :func:`assign_words` maps descriptors to
them. :class:`classicvision.recognition.encoding.BagOfWords` is the estimator that calls them.

All nearest-word searches go through the one engine of :mod:`classicvision.matching.nearest`
(``_kernels.nearest.k_nearest``): a float32 BLAS screen ``|b|^2 - 2 a.b`` in chunks and one
error bound (Higham 2002, section 3.1), documented there. Where it applies:

* :func:`assign_words`: certified, so the words equal a float64 brute force (ties to the lowest
  word index, as ``np.argmin``).
* :func:`learn_codebook` (the Lloyd assignments) and :func:`nearest_words` (soft assignment, the
  soft-assignment bandwidth, :func:`inertia`): the screen's answer, not certified. A returned
  word is nearest up to twice the bound ``c (|a|^2 + max_k |b_k|^2)``, ``c = 2 (D + 4) 2^-24``
  (about ``3e-5`` for unit RootSIFT rows), and each returned squared distance errs by at most the
  bound. Exactness buys nothing there: a Lloyd step that swaps two words equidistant to within
  ``1e-5`` moves the centres by less than the float32 mean itself rounds, and kernel-codebook
  weights ``exp(-d / 2 sigma^2)`` are continuous in ``d``.
"""

from __future__ import annotations

import logging
import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state

from .._kernels.nearest import k_nearest
from .._validation import check_descriptors, check_scalar

__all__ = ["learn_codebook", "assign_words", "nearest_words", "inertia"]

logger = logging.getLogger(__name__)

# Query rows per BLAS block: chunk_size * K float32 values (16 MB for 1000 words). Fewer, larger
# GEMM calls: 1024 rows were 3-4x slower per Lloyd step on a loaded 2-core machine.
_CHUNK = 2048


def nearest_words(descriptors: np.ndarray, codebook: np.ndarray, n_nearest: int = 1,
                  chunk_size: int = _CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_nearest`` nearest words and their squared distances, nearest first (unchecked).

    ``descriptors`` (N, D) and ``codebook`` (K, D) are finite float32. Returns
    ``(indices (N, min(n_nearest, K)) int64, squared distances (N, min(n_nearest, K)) float32)``
    from the float32 screen of the shared engine, not certified: see the module docstring for the
    bound that applies (used for soft assignment and :func:`inertia`).
    """
    n_nearest = min(int(n_nearest), codebook.shape[0])
    return k_nearest(descriptors, codebook, n_nearest, int(chunk_size), certify=False)


def assign_words(descriptors, codebook, *, chunk_size: int = _CHUNK) -> np.ndarray:
    """Index of the nearest visual word (squared Euclidean distance) for every descriptor.

    Parameters
    ----------
    descriptors : (N, D) float32 array
        Local descriptors, one per row.
    codebook : (K, D) float32 array
        Visual words, e.g. from :func:`learn_codebook`.
    chunk_size : int
        Rows of ``descriptors`` per BLAS block (memory is ``chunk_size * K`` floats).

    Returns
    -------
    words : (N,) int32 array
        ``words[i] = argmin_k |descriptors[i] - codebook[k]|^2``; exact ties go to the lowest
        index. ``(0,)`` for no descriptors.

    Notes
    -----
    The certified engine of :mod:`classicvision.matching.nearest` with ``k = 1``: a float32 GEMM
    screen, the screened best word's distance recomputed in float64, and the certificate that
    the second screened value, less the rounding bound, lies above it; rows that fail are
    recomputed against every word in float64. The result equals a float64 brute force.

    References
    ----------
    G. Csurka, C. Dance, L. Fan, J. Willamowski, C. Bray, "Visual categorization with bags of
    keypoints", ECCV Workshop on Statistical Learning in Computer Vision, 2004, section 2.1.
    N. J. Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., 2002, section 3.1.

    Examples
    --------
    >>> codebook = np.array([[0, 0], [1, 1]], np.float32)
    >>> assign_words(np.array([[0.1, 0.0], [0.9, 1.2]], np.float32), codebook)
    array([0, 1], dtype=int32)
    """
    descriptors = check_descriptors(descriptors, "descriptors")
    codebook = check_descriptors(codebook, "codebook")
    check_scalar(chunk_size, "chunk_size", kind=numbers.Integral, low=1)
    if codebook.shape[0] == 0:
        raise ValueError("codebook must have at least one word, got shape (0, D)")
    if descriptors.shape[0] == 0:
        return np.zeros(0, np.int32)
    if descriptors.shape[1] != codebook.shape[1]:
        raise ValueError(f"descriptors and codebook must have the same number of columns, "
                         f"got {descriptors.shape[1]} and {codebook.shape[1]}")
    indices, _ = k_nearest(descriptors, codebook, 1, int(chunk_size), certify=True)
    return indices[:, 0].astype(np.int32)


def _kmeans_plus_plus(sample: np.ndarray, n_words: int, rng: np.random.RandomState) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007, with 2 + log k trials per step)."""
    n = sample.shape[0]
    n_trials = 2 + int(np.log(n_words))
    sample_sq = np.einsum("ij,ij->i", sample, sample)
    centres = np.empty((n_words, sample.shape[1]), np.float32)
    first = rng.randint(n)
    centres[0] = sample[first]
    closest = np.maximum(sample_sq - 2.0 * (sample @ sample[first]) + sample_sq[first], 0.0)
    potential = float(closest.sum())
    for c in range(1, n_words):
        if potential <= 0.0:  # every point already sits on a centre: pick any
            candidates = rng.randint(n, size=n_trials)
        else:
            draws = rng.uniform(size=n_trials) * potential
            candidates = np.searchsorted(np.cumsum(closest, dtype=np.float64), draws)
            candidates = np.minimum(candidates, n - 1)
        cand = sample[candidates]
        dist = sample_sq[None, :] - 2.0 * (cand @ sample.T) + sample_sq[candidates][:, None]
        np.maximum(dist, 0.0, out=dist)
        np.minimum(dist, closest[None, :], out=dist)
        potentials = dist.sum(axis=1, dtype=np.float64)
        best = int(np.argmin(potentials))
        closest = dist[best]
        potential = float(potentials[best])
        centres[c] = sample[candidates[best]]
    return centres


def learn_codebook(descriptors, n_words: int, *, max_iter: int = 20, tol: float = 1e-4,
                   random_state=None) -> np.ndarray:
    """Learn ``n_words`` visual words by k-means (k-means++ seeding, Lloyd iterations).

    Parameters
    ----------
    descriptors : (N, D) float32 array
        Training descriptors (usually a random sample of those of the training images).
    n_words : int
        Number of words K; at most N.
    max_iter : int
        Lloyd iterations at most.
    tol : float
        Stop when the summed squared shift of the centres falls below
        ``tol * mean(var(descriptors, axis=0))`` (scikit-learn's convention), or when no
        assignment changed.
    random_state : None, int or numpy.random.RandomState
        Seeds the k-means++ draws.

    Returns
    -------
    codebook : (K, D) float32 array

    Notes
    -----
    Seeding is greedy k-means++: each new centre is the best (lowest potential) of
    ``2 + log K`` candidates drawn with probability proportional to the squared distance to the
    nearest chosen centre. The Lloyd assignments use the shared engine's float32 screen (bound
    in the module docstring). A cluster left empty by a Lloyd step is re-seeded at the sample point
    farthest from its centre (the next farthest for the next empty cluster): deterministic.

    References
    ----------
    D. Arthur, S. Vassilvitskii, "k-means++: the advantages of careful seeding", SODA 2007.
    S. Lloyd, "Least squares quantization in PCM", IEEE Trans. Inf. Theory 28(2), 1982.
    G. Csurka et al., "Visual categorization with bags of keypoints", ECCV Workshop 2004.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> points = np.concatenate([rng.normal(c, 0.1, (50, 2)) for c in (0, 10)]).astype(np.float32)
    >>> (np.sort(learn_codebook(points, 2, random_state=0)[:, 0]).round() + 0.0).tolist()
    [0.0, 10.0]
    """
    descriptors = check_descriptors(descriptors, "descriptors")
    check_scalar(n_words, "n_words", kind=numbers.Integral, low=1)
    check_scalar(max_iter, "max_iter", kind=numbers.Integral, low=0)
    check_scalar(tol, "tol", low=0)
    n = descriptors.shape[0]
    if n < n_words:
        raise ValueError(f"n_words must be <= the number of descriptors ({n}), got {n_words}")
    rng = check_random_state(random_state)
    centres = _kmeans_plus_plus(descriptors, int(n_words), rng)
    threshold = tol * float(np.mean(np.var(descriptors, axis=0, dtype=np.float64)))
    labels = None
    rows = np.arange(n)
    sample_sq = np.einsum("ij,ij->i", descriptors, descriptors, dtype=np.float64)
    for iteration in range(max_iter):
        nearest, dist = k_nearest(descriptors, centres, 1, _CHUNK, certify=False, a_sq=sample_sq)
        new_labels = nearest[:, 0]
        if labels is not None and np.array_equal(new_labels, labels):
            logger.debug("k-means converged (no change) after %d iterations", iteration)
            break
        labels = new_labels
        onehot = sp.csr_matrix((np.ones(n, np.float32), (labels, rows)), shape=(n_words, n))
        sums = np.asarray(onehot @ descriptors, dtype=np.float32)
        counts = np.bincount(labels, minlength=n_words)
        new_centres = sums / np.maximum(counts, 1)[:, None].astype(np.float32)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            far = np.argsort(-dist[:, 0], kind="stable")[:empty.size]
            new_centres[empty] = descriptors[far]
            logger.debug("re-seeded %d empty clusters", empty.size)
        shift = float(((new_centres - centres) ** 2).sum())
        centres = new_centres
        if shift <= threshold:
            logger.debug("k-means converged (shift %.3g) after %d iterations", shift, iteration + 1)
            break
    return np.ascontiguousarray(centres, dtype=np.float32)


def inertia(descriptors, codebook) -> float:
    """Sum of squared distances of ``descriptors`` to their nearest word (the k-means objective)."""
    descriptors = check_descriptors(descriptors, "descriptors")
    codebook = check_descriptors(codebook, "codebook")
    _, dist = nearest_words(descriptors, codebook, 1)
    return float(dist.sum(dtype=np.float64))
