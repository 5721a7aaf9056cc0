"""Diagonal-covariance Gaussian mixtures for Fisher vectors: the EM fit and the posteriors.

A mixture of ``K`` Gaussians in ``D`` dimensions with weights ``w_k``, means ``mu_k`` and
diagonal variances ``sigma_k**2`` has the log-density, for a descriptor ``x``,

    log p(x) = logsumexp_k [ log w_k - 1/2 sum_d ( log(2 pi sigma_kd**2) + (x_d - mu_kd)**2 / sigma_kd**2 ) ]

and the posterior (soft assignment, "responsibility") ``gamma_k(x) = w_k p_k(x) / p(x)``.
:func:`gmm_log_densities` computes the bracket for ``N`` descriptors at once as one float32
matrix product of ``[x**2, x, 1]`` with ``[-1/(2 sigma**2), mu/sigma**2, c_k]`` (``N x (2D+1)``
by ``(2D+1) x K``), which is what makes encoding cheap; :func:`gmm_posteriors` normalizes it.

:func:`fit_gmm` is EM (Dempster, Laird & Rubin 1977) in float32 with float64 sufficient
statistics, started from a k-means codebook (:func:`classicvision.recognition.codebook.learn_codebook`,
k-means++ seeding), with a variance floor as VLFeat's ``vl_gmm`` (a fraction of the data's
variance per dimension). It was measured against scikit-learn's
``GaussianMixture(covariance_type="diag")`` on the same sample (102,000 PCA-80 dense RootSIFT
descriptors of 15-Scene train, 256 components, 30 iterations each, 2 cores shared, load ~2.5):
this EM 28.4 s, mean log-likelihood 144.24 per descriptor; scikit-learn (its k-means init,
float64) 67.6 s, 144.55 (0.2% higher, not converged at 30 iterations either). So this module
keeps its own EM, 2.4x faster for a fit 0.2% lower in log-likelihood; ``tests/test_gmm.py`` checks it
reaches scikit-learn's optimum on small data.
"""

from __future__ import annotations

import logging
import numbers
from typing import NamedTuple

import numpy as np
from sklearn.utils import check_random_state

from .._validation import check_descriptors, check_scalar
from .codebook import learn_codebook

__all__ = ["GaussianMixtureDiag", "fit_gmm", "gmm_log_densities", "gmm_posteriors", "gmm_statistics"]

logger = logging.getLogger(__name__)

_CHUNK = 16_384  # descriptors per block in the E step (bounds the (chunk, K) float32 block; a task per thread)


class GaussianMixtureDiag(NamedTuple):
    """A diagonal-covariance Gaussian mixture.

    Attributes
    ----------
    weights : (K,) float32 array
        Mixture weights, positive, summing to 1.
    means : (K, D) float32 array
    variances : (K, D) float32 array
        Diagonal covariances ``sigma**2``, positive.
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray


def _design(gmm: GaussianMixtureDiag) -> np.ndarray:
    """``(2D + 1, K)`` float32 matrix M with ``[x**2, x, 1] @ M`` = the per-component log-densities."""
    precision = 1.0 / gmm.variances.astype(np.float64)
    means = gmm.means.astype(np.float64)
    const = (np.log(gmm.weights.astype(np.float64))
             - 0.5 * (np.log(2.0 * np.pi * gmm.variances.astype(np.float64)).sum(axis=1)
                      + (means ** 2 * precision).sum(axis=1)))
    return np.concatenate([-0.5 * precision.T, (means * precision).T, const[None, :]]).astype(np.float32)


def gmm_log_densities(descriptors: np.ndarray, gmm: GaussianMixtureDiag) -> np.ndarray:
    """``log(w_k p_k(x))`` of every descriptor and component (unchecked inputs).

    Parameters
    ----------
    descriptors : (N, D) float32 array
    gmm : GaussianMixtureDiag
        ``K`` components in ``D`` dimensions.

    Returns
    -------
    (N, K) float32 array
        The bracket of the module docstring's formula.
    """
    x = np.asarray(descriptors, np.float32)
    design = _design(gmm)
    d = x.shape[1]
    out = (x * x) @ design[:d]
    out += x @ design[d:2 * d]
    out += design[2 * d]
    return out


def gmm_posteriors(descriptors: np.ndarray, gmm: GaussianMixtureDiag) -> tuple[np.ndarray, np.ndarray]:
    """Posteriors ``gamma_k(x)`` and log-densities ``log p(x)`` of every descriptor.

    Parameters
    ----------
    descriptors : (N, D) float32 array
    gmm : GaussianMixtureDiag

    Returns
    -------
    posteriors : (N, K) float32 array
        Rows sum to 1; those below ``1e-30`` of their row's largest are zero (as in :func:`gmm_statistics`).
    log_density : (N,) float64 array
        ``log p(x)`` per descriptor.

    Examples
    --------
    >>> gmm = GaussianMixtureDiag(np.array([0.5, 0.5], np.float32), np.array([[0.0], [4.0]], np.float32),
    ...                           np.ones((2, 1), np.float32))
    >>> q, _ = gmm_posteriors(np.array([[0.0], [2.0]], np.float32), gmm)
    >>> q.round(3).tolist()
    [[1.0, 0.0], [0.5, 0.5]]
    """
    log = gmm_log_densities(descriptors, gmm)
    top = log.max(axis=1, keepdims=True)
    log -= top
    np.putmask(log, log < -69.0, -np.inf)
    np.exp(log, out=log)
    total = log.sum(axis=1, keepdims=True, dtype=np.float64)
    log /= total.astype(np.float32)
    return log, (np.log(total[:, 0]) + top[:, 0])


def gmm_statistics(descriptors: np.ndarray, gmm: GaussianMixtureDiag, bounds=None) -> tuple[np.ndarray, np.ndarray]:
    """Soft-assignment statistics of groups of consecutive descriptors (unchecked inputs).

    With the posteriors ``gamma_t(k)`` of :func:`gmm_posteriors`, group ``g`` (rows
    ``bounds[g]:bounds[g + 1]``) gets ``S1 = sum_t gamma_t(k) x_t``, ``S2 = sum_t gamma_t(k)
    x_t**2`` and ``S0 = sum_t gamma_t(k)``, the sufficient statistics of EM (Bishop 2006, eq.
    9.24-9.26) and of the Fisher vector (Sanchez et al. 2013, eq. 16-17).

    Parameters
    ----------
    descriptors : (N, D) float32 array
    gmm : GaussianMixtureDiag
        ``K`` components in ``D`` dimensions.
    bounds : (G + 1,) int array or None
        Non-decreasing row offsets from 0 to ``N`` (None: one group, all rows).

    Returns
    -------
    statistics : (G, K, 2 D + 1) float64 array
        ``[S1, S2, S0]`` along the last axis, per group and component.
    log_density : (N,) float64 array
        ``log p(x_t)``.

    Notes
    -----
    Two float32 matrix products do all the work: ``[x, x**2, 1] @ M`` gives the log-densities
    (``N x (2D+1)`` by ``(2D+1) x K``), and ``exp(log - max)^T @ ([x, x**2, 1] / sum)`` the three
    statistics at once, the posteriors' row normalization folded into the narrower factor.
    Posteriors below ``exp(-69) = 1e-30`` of a row's largest are zero: that changes no sum beyond
    float32 rounding and keeps denormal floats out of the products, which x86 runs about 70x
    slower (measured: 93 against 5.5 ms an image for the statistics of a 256-Gaussian Fisher vector).

    Examples
    --------
    >>> gmm = GaussianMixtureDiag(np.array([0.5, 0.5], np.float32), np.array([[0.0], [10.0]], np.float32),
    ...                           np.ones((2, 1), np.float32))
    >>> stats, _ = gmm_statistics(np.array([[0.0], [5.0], [10.0]], np.float32), gmm, [0, 2, 3])
    >>> stats.round(3).tolist()
    [[[2.5, 12.5, 1.5], [2.5, 12.5, 0.5]], [[0.0, 0.0, 0.0], [10.0, 100.0, 1.0]]]
    """
    x = np.asarray(descriptors, np.float32)
    n, d = x.shape
    design = _design(gmm)
    weights = np.concatenate([design[d:2 * d], design[:d], design[2 * d:]])  # rows for [x, x**2, 1]
    a = np.empty((n, 2 * d + 1), np.float32)
    a[:, :d] = x
    np.multiply(x, x, out=a[:, d:2 * d])
    a[:, 2 * d] = 1.0
    log = a @ weights
    top = log.max(axis=1, keepdims=True) if n else np.zeros((0, 1), np.float32)
    log -= top
    np.putmask(log, log < -69.0, -np.inf)
    np.exp(log, out=log)
    total = log.sum(axis=1, keepdims=True)
    a /= total
    bounds = np.asarray([0, n] if bounds is None else bounds, np.int64)
    statistics = np.zeros((len(bounds) - 1, len(weights[0]), 2 * d + 1))
    for g in range(len(bounds) - 1):
        if bounds[g + 1] > bounds[g]:
            statistics[g] = log[bounds[g]:bounds[g + 1]].T @ a[bounds[g]:bounds[g + 1]]
    return statistics, np.log(total[:, 0].astype(np.float64)) + top[:, 0]


def _block_statistics(block: np.ndarray, gmm: GaussianMixtureDiag):
    stats, log_density = gmm_statistics(block, gmm)
    d = block.shape[1]
    return stats[0, :, 2 * d], stats[0, :, :d], stats[0, :, d:2 * d], float(log_density.sum())


def _statistics(x: np.ndarray, gmm: GaussianMixtureDiag, n_jobs=None):
    """Zeroth, first and second order statistics (float64) and the mean log-likelihood of ``x``."""
    blocks = [x[begin:begin + _CHUNK] for begin in range(0, len(x), _CHUNK)]
    if n_jobs is None or n_jobs == 1 or len(blocks) < 2:
        parts = [_block_statistics(block, gmm) for block in blocks]
    else:
        from joblib import Parallel, delayed

        parts = Parallel(n_jobs=n_jobs, prefer="threads")(delayed(_block_statistics)(b, gmm) for b in blocks)
    s0, s1, s2, loglik = (sum(p[i] for p in parts) for i in range(4))
    return s0, s1, s2, loglik / len(x)


def fit_gmm(descriptors, n_components: int, *, max_iter: int = 30, tol: float = 1e-4, variance_floor: float = 1e-3,
            kmeans_iter: int = 10, random_state=None, n_jobs=None) -> tuple[GaussianMixtureDiag, float]:
    """Fit a diagonal Gaussian mixture by EM, started from k-means.

    Parameters
    ----------
    descriptors : (N, D) float32 array
        Training sample, ``N >= n_components``.
    n_components : int
        Number of Gaussians ``K``.
    max_iter : int
        EM iterations at most.
    tol : float
        Stop when the mean log-likelihood per descriptor improves by less than ``tol``
        (scikit-learn's ``GaussianMixture`` convention).
    variance_floor : float
        Every variance is at least ``variance_floor * max_d var(descriptors[:, d])`` (VLFeat's
        ``vl_gmm`` floor), so a component on a few points does not collapse.
    kmeans_iter : int
        Lloyd iterations of the initial k-means.
    random_state : None, int or numpy.random.RandomState
        Seeds the k-means++ initialisation.
    n_jobs : int or None
        Threads over blocks of descriptors in the E step (joblib; None: the calling thread).

    Returns
    -------
    gmm : GaussianMixtureDiag
        float32 weights ``(K,)``, means ``(K, D)``, variances ``(K, D)``.
    log_likelihood : float
        Mean log-likelihood per descriptor of ``descriptors`` under ``gmm`` (before its last
        M step, as scikit-learn's ``lower_bound_``).

    Notes
    -----
    The M step sets ``w_k = S0_k / N``, ``mu_k = S1_k / S0_k``,
    ``sigma_k**2 = S2_k / S0_k - mu_k**2`` with ``S0_k = sum_i gamma_ik``, ``S1_k = sum_i
    gamma_ik x_i``, ``S2_k = sum_i gamma_ik x_i**2`` (Bishop 2006, eq. 9.24-9.26). A component
    whose weight vanishes (``S0_k < 1e-6 N``) is restarted on the descriptor of lowest
    likelihood, with the average variance.

    References
    ----------
    A. Dempster, N. Laird, D. Rubin, "Maximum likelihood from incomplete data via the EM
    algorithm", JRSS B 39(1), 1977. C. Bishop, "Pattern recognition and machine learning",
    2006, section 9.2.2. A. Vedaldi, B. Fulkerson, VLFeat ``vl_gmm``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0, 1, (500, 2)), rng.normal(8, 0.5, (500, 2))]).astype(np.float32)
    >>> gmm, _ = fit_gmm(x, 2, random_state=0)
    >>> (np.sort(gmm.means[:, 0]).round() + 0.0).tolist(), np.sort(gmm.weights).astype(np.float64).round(1).tolist()
    ([0.0, 8.0], [0.5, 0.5])
    """
    x = check_descriptors(descriptors, "descriptors")
    check_scalar(n_components, "n_components", kind=numbers.Integral, low=1)
    check_scalar(max_iter, "max_iter", kind=numbers.Integral, low=1)
    check_scalar(kmeans_iter, "kmeans_iter", kind=numbers.Integral, low=0)
    check_scalar(tol, "tol", low=0)
    check_scalar(variance_floor, "variance_floor", low=0, low_inclusive=False)
    n, d = x.shape
    k = int(n_components)
    if n < k:
        raise ValueError(f"n_components must be <= the number of descriptors ({n}), got {k}")
    rng = check_random_state(random_state)
    data_var = np.var(x, axis=0, dtype=np.float64)
    floor = max(float(variance_floor * data_var.max()), 1e-12)
    # initialisation: k-means centres, their clusters' variances and sizes
    centres = learn_codebook(x, k, max_iter=int(kmeans_iter), random_state=rng)
    labels = np.empty(n, np.int64)
    for begin in range(0, n, _CHUNK):
        block = x[begin:begin + _CHUNK].astype(np.float64)
        dist = (block ** 2).sum(1)[:, None] - 2.0 * block @ centres.T + (centres.astype(np.float64) ** 2).sum(1)
        labels[begin:begin + _CHUNK] = np.argmin(dist, axis=1)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.zeros((k, d))
    squares = np.zeros((k, d))
    np.add.at(sums, labels, x.astype(np.float64))
    np.add.at(squares, labels, x.astype(np.float64) ** 2)
    safe = np.maximum(counts, 1.0)[:, None]
    means = np.where(counts[:, None] > 0, sums / safe, centres)
    variances = np.where(counts[:, None] > 1, squares / safe - means ** 2, data_var)
    weights = np.maximum(counts, 1.0) / np.maximum(counts, 1.0).sum()
    gmm = GaussianMixtureDiag(weights.astype(np.float32), means.astype(np.float32),
                              np.maximum(variances, floor).astype(np.float32))
    previous = -np.inf
    loglik = previous
    for iteration in range(int(max_iter)):
        s0, s1, s2, loglik = _statistics(x, gmm, n_jobs)
        dead = s0 < 1e-6 * n
        s0_safe = np.maximum(s0, 1e-300)[:, None]
        means = s1 / s0_safe
        variances = np.maximum(s2 / s0_safe - means ** 2, floor)
        weights = s0 / s0.sum()
        if dead.any():  # restart empty components on the worst-explained descriptors
            _, log_density = gmm_posteriors(x, gmm)
            worst = np.argsort(log_density, kind="stable")[:int(dead.sum())]
            means[dead] = x[worst]
            variances[dead] = variances[~dead].mean(axis=0) if (~dead).any() else data_var
            weights[dead] = 1.0 / n
            weights /= weights.sum()
            logger.debug("restarted %d empty Gaussians", int(dead.sum()))
        gmm = GaussianMixtureDiag(weights.astype(np.float32), means.astype(np.float32),
                                  variances.astype(np.float32))
        if loglik - previous < tol and not dead.any():
            logger.debug("EM converged after %d iterations (log-likelihood %.6f)", iteration + 1, loglik)
            break
        previous = loglik
    return gmm, float(loglik)
