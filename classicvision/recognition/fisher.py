"""Improved Fisher vectors (Perronnin, Sanchez & Mensink 2010; Sanchez et al. 2013), as a
scikit-learn transformer over the images' local features::

    make_pipeline(DenseSIFT(step=4, sizes=(16, 24), rootsift=True), FisherVector(n_components=256), LinearSVC())

:class:`FisherVector` learns, on a random sample of the training descriptors, a PCA (to
decorrelate the descriptors, which the diagonal mixture assumes) and a diagonal Gaussian mixture
(:func:`classicvision.recognition.gmm.fit_gmm`). An image's descriptors ``x_t`` (``t = 1..T``,
after PCA, optionally with their normalized position appended: "spatial augmentation") with
posteriors ``gamma_t(k)`` give, for every Gaussian ``k`` (Sanchez et al. 2013, eq. 16-17)

    G_mu_k    = 1 / (T sqrt(w_k))   sum_t gamma_t(k) (x_t - mu_k) / sigma_k
    G_sigma_k = 1 / (T sqrt(2 w_k)) sum_t gamma_t(k) [ (x_t - mu_k)**2 / sigma_k**2 - 1 ]

(element-wise over the ``D`` dimensions). The vector is ``[G_mu_1 .. G_mu_K, G_sigma_1 ..
G_sigma_K]`` (``2 K D`` values, Gaussian-major, dimension fastest), then the improved
normalization: signed square root ``sign(z) sqrt(|z|)``, then L2 (Perronnin 2010, section 3).

Spatial information: ``augment=True`` appends ``(x / width - 0.5, y / height - 0.5)`` to each
descriptor before the mixture (VLFeat's recognition demo; Sanchez, Perronnin & de Campos 2012);
``pyramid`` lists grids ``(columns, rows)``, each cell of each grid giving its own improved
Fisher vector of the descriptors that fall in it, concatenated grid by grid, cells row-major
(Perronnin 2010's 1x1 + 2x2 + 1x3, "3x1" for three horizontal bands), and the whole divided by
the square root of the number of cells, so every cell weighs the same and the result has unit
norm. An image (or a cell) without descriptors gives zeros.

The sums run as matrix products, an image at a time: the statistics ``S0 = sum gamma``,
``S1 = sum gamma x``, ``S2 = sum gamma x**2`` come from two products
(:func:`~classicvision.recognition.gmm.gmm_statistics`), computed once per cell of the finest
partition that refines every grid (the descriptors sorted by that cell) and summed up to the
grids' cells, so a pyramid costs no more products than one cell.
"""

from __future__ import annotations

import logging
import math
import os
import numbers

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from .._validation import check_descriptors, check_scalar
from ._blocks import check_descriptor_width
from .gmm import GaussianMixtureDiag, fit_gmm, gmm_statistics
from .sampling import normalized_positions, sample_features
from .transformers import ListInputMixin, check_features

__all__ = ["FisherVector", "fisher_from_statistics", "fisher_vector", "learn_pca", "signed_sqrt_l2"]

logger = logging.getLogger(__name__)

def learn_pca(descriptors: np.ndarray, n_components: int, *, whiten: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Principal components of ``descriptors`` (float64 covariance, ``numpy.linalg.eigh``).

    Parameters
    ----------
    descriptors : (N, D) float32 array
    n_components : int
        ``d <= D`` components kept, largest variance first.
    whiten : bool
        Divide each component by the square root of its variance (plus 1e-5 of the largest).

    Returns
    -------
    mean : (D,) float32 array
    projection : (D, d) float32 array
        Project with ``(x - mean) @ projection``; the signs make each column's largest entry positive.
    """
    x = np.asarray(descriptors, np.float64)
    mean = x.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(x - mean, rowvar=False).reshape(x.shape[1], x.shape[1]))
    order = np.argsort(values)[::-1][:n_components]
    values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
    vectors *= np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(vectors.shape[1])])
    if whiten:
        vectors = vectors / np.sqrt(values + 1e-5 * max(values[0], 1e-12))
    return mean.astype(np.float32), np.ascontiguousarray(vectors, np.float32)


def signed_sqrt_l2(vectors: np.ndarray) -> np.ndarray:
    """Rows mapped to ``sign(z) sqrt(|z|)`` then scaled to unit L2 norm (zero rows stay zero), in place.

    >>> signed_sqrt_l2(np.array([[4.0, -9.0], [0.0, 0.0]], np.float32)).astype(np.float64).round(4).tolist()
    [[0.5547, -0.8321], [0.0, 0.0]]
    """
    np.copysign(np.sqrt(np.abs(vectors)), vectors, out=vectors)
    norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64))
    vectors /= np.maximum(norms, 1e-30).astype(vectors.dtype)[:, None]
    return vectors


def fisher_from_statistics(s0: np.ndarray, s1: np.ndarray, s2: np.ndarray, gmm: GaussianMixtureDiag) -> np.ndarray:
    """Fisher vectors (before normalization) of sets of descriptors from their statistics.

    Parameters
    ----------
    s0 : (R, K) float64 array
        ``sum_t gamma_t(k)`` of each of R sets.
    s1, s2 : (R, K, D) float64 arrays
        ``sum_t gamma_t(k) x_t`` and ``sum_t gamma_t(k) x_t**2``.
    gmm : GaussianMixtureDiag

    Returns
    -------
    (R, 2 K D) float32 array
        ``[G_mu, G_sigma]`` of the module docstring with ``T = sum_k s0``; zeros where ``T == 0``.
    """
    weights = gmm.weights.astype(np.float64)
    means = gmm.means.astype(np.float64)
    sigma = np.sqrt(gmm.variances.astype(np.float64))
    count = s0.sum(axis=1)
    scale = 1.0 / np.maximum(count, 1e-300)
    s0 = s0[:, :, None]
    g_mu = (s1 - means * s0) / sigma
    g_sigma = (s2 - 2.0 * means * s1 + means ** 2 * s0) / sigma ** 2 - s0
    g_mu *= (scale[:, None, None] / np.sqrt(weights)[None, :, None])
    g_sigma *= (scale[:, None, None] / np.sqrt(2.0 * weights)[None, :, None])
    out = np.concatenate([g_mu.reshape(len(count), -1), g_sigma.reshape(len(count), -1)], axis=1)
    out[count <= 0] = 0.0
    return out.astype(np.float32)


def fisher_vector(descriptors, gmm: GaussianMixtureDiag, *, improved: bool = True) -> np.ndarray:
    """The Fisher vector of one set of descriptors under a diagonal mixture.

    Parameters
    ----------
    descriptors : (T, D) float32 array
        In the mixture's space (already projected).
    gmm : GaussianMixtureDiag
        ``K`` components in ``D`` dimensions.
    improved : bool
        Signed square root then L2 (the improved Fisher vector).

    Returns
    -------
    (2 K D,) float32 array
        ``[G_mu_1 .. G_mu_K, G_sigma_1 .. G_sigma_K]`` (module docstring); zeros if ``T == 0``.

    References
    ----------
    J. Sanchez, F. Perronnin, T. Mensink, J. Verbeek, "Image classification with the Fisher
    vector: theory and practice", IJCV 105(3), 2013, section 2.3, eq. 16-17.
    F. Perronnin, J. Sanchez, T. Mensink, "Improving the Fisher kernel for large-scale image
    classification", ECCV 2010, section 3.

    Examples
    --------
    >>> gmm = GaussianMixtureDiag(np.ones(1, np.float32), np.zeros((1, 2), np.float32), np.ones((1, 2), np.float32))
    >>> fisher_vector(np.array([[1.0, 0.0], [1.0, 0.0]], np.float32), gmm, improved=False).tolist()
    [1.0, 0.0, 0.0, -0.7071067690849304]
    """
    k, d = gmm.means.shape
    x = check_descriptors(descriptors, "descriptors", dim=d)
    if len(x) == 0:
        return np.zeros(2 * k * d, np.float32)
    stats, _ = gmm_statistics(x, gmm)
    out = fisher_from_statistics(stats[:, :, 2 * d], stats[:, :, :d], stats[:, :, d:2 * d], gmm)
    return (signed_sqrt_l2(out) if improved else out)[0]


def _check_pyramid(pyramid) -> tuple:
    try:
        grids = tuple((int(c), int(r)) for c, r in pyramid)
    except (TypeError, ValueError):
        raise ValueError(f"pyramid must be a sequence of (columns, rows) pairs, got {pyramid!r}") from None
    if not grids:
        raise ValueError("pyramid must hold at least one (columns, rows) grid, got ()")
    for (c, r), given in zip(grids, pyramid):
        if c < 1 or r < 1 or c > 16 or r > 16 or tuple(given) != (c, r):
            raise ValueError(f"pyramid grids must be pairs of integers in [1, 16], got {tuple(given)!r}")
    return grids


class FisherVector(ListInputMixin, TransformerMixin, BaseEstimator):
    """Improved Fisher vectors of the images' local features (PCA + diagonal GMM learned in ``fit``).

    Parameters
    ----------
    n_components : int
        Gaussians ``K`` in the mixture.
    n_pca : int or None
        Dimensions kept by the PCA of the descriptors (None: no PCA, the descriptors as given).
    whiten : bool
        Whiten the PCA components (unit variance each).
    augment : bool
        Spatial augmentation: append ``(x / width - 0.5, y / height - 0.5)`` after the PCA.
    pyramid : sequence of (columns, rows)
        Spatial grids; ``((1, 1),)`` is no pyramid; ``((1, 1), (2, 2), (1, 3))`` is Perronnin 2010's.
    improved : bool
        Signed square root and L2 per cell (False: the raw normalized gradient, for tests).
    n_jobs : int or None
        Threads over blocks of images in ``transform`` and over blocks of descriptors in the EM
        (None or 1: the calling thread). BLAS runs single-threaded inside (threadpoolctl): on a
        loaded machine OpenBLAS's own threads spin and made encoding 9x slower (measured).
    sample_size : int
        Descriptors drawn at random from the training images for the PCA and the mixture.
    max_iter : int
        EM iterations at most.
    random_state : None, int or numpy.random.RandomState
        Seeds the sample and the mixture's k-means++ initialisation.

    Attributes
    ----------
    pca_mean_ : (D_in,) float32 array or None
    pca_projection_ : (D_in, n_pca) float32 array or None
    gmm_ : GaussianMixtureDiag
        ``K`` components in ``D = n_pca + 2 * augment`` dimensions.
    log_likelihood_ : float
        Mean log-likelihood per training-sample descriptor.
    n_descriptors_fit_ : int

    Notes
    -----
    ``transform`` returns ``(n_images, n_cells * 2 * K * D)`` float32 (``n_cells`` summed over the
    grids), laid out as in the module docstring, unit L2 norm per image (zeros for an image
    without descriptors). Everything is float32 except the per-cell statistics (float64).

    References
    ----------
    F. Perronnin, J. Sanchez, T. Mensink, "Improving the Fisher kernel for large-scale image
    classification", ECCV 2010. J. Sanchez, F. Perronnin, T. Mensink, J. Verbeek, "Image
    classification with the Fisher vector: theory and practice", IJCV 105(3), 2013, section 2.
    J. Sanchez, F. Perronnin, T. de Campos, "Modeling the spatial layout of images beyond spatial
    pyramids", Pattern Recognition Letters 33(16), 2012 (spatial augmentation).

    Examples
    --------
    >>> from classicvision.recognition.transformers import ImageFeatures
    >>> rng = np.random.default_rng(0)
    >>> feats = [ImageFeatures(rng.random((40, 2), dtype=np.float32) * 10,
    ...                        rng.random((40, 6), dtype=np.float32), (10, 10)) for _ in range(3)]
    >>> fv = FisherVector(n_components=2, n_pca=4, random_state=0).fit_transform(feats)
    >>> fv.shape, np.linalg.norm(fv, axis=1).round(4).tolist()
    ((3, 24), [1.0, 1.0, 1.0])
    """

    def __init__(self, n_components=256, *, n_pca=80, whiten=False, augment=True, pyramid=((1, 1),), improved=True,
                 n_jobs=None, sample_size=100_000, max_iter=30, random_state=None):
        self.n_components = n_components
        self.n_pca = n_pca
        self.whiten = whiten
        self.augment = augment
        self.pyramid = pyramid
        self.improved = improved
        self.n_jobs = n_jobs
        self.sample_size = sample_size
        self.max_iter = max_iter
        self.random_state = random_state

    def _validate(self) -> tuple:
        check_scalar(self.n_components, "n_components", kind=numbers.Integral, low=1)
        if self.n_pca is not None:
            check_scalar(self.n_pca, "n_pca", kind=numbers.Integral, low=1)
        check_scalar(self.sample_size, "sample_size", kind=numbers.Integral, low=1)
        check_scalar(self.max_iter, "max_iter", kind=numbers.Integral, low=1)
        if self.n_jobs is not None:
            check_scalar(self.n_jobs, "n_jobs", kind=numbers.Integral)
        return _check_pyramid(self.pyramid)

    def _project(self, descriptors: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Descriptors in the mixture's space (PCA, then the appended positions)."""
        x = descriptors
        if self.pca_projection_ is not None:
            x = x @ self.pca_projection_
            x -= self.pca_mean_ @ self.pca_projection_
        if self.augment:
            x = np.concatenate([x, (positions - 0.5).astype(np.float32)], axis=1)
        return np.ascontiguousarray(x, np.float32)

    def fit(self, X, y=None):
        """Learn the PCA and the mixture from a random sample of the descriptors of ``X`` (ImageFeatures)."""
        self._validate()
        features = check_features(X)
        total = sum(len(f.descriptors) for f in features)
        if total < self.n_components:
            raise ValueError(f"n_components must be <= the number of training descriptors ({total}), "
                             f"got {self.n_components}")
        dims = {f.descriptors.shape[1] for f in features if len(f.descriptors)}
        if len(dims) != 1:
            raise ValueError(f"all descriptors must have the same width, got widths {sorted(dims)}")
        self._check_width(dims.pop())
        rng = check_random_state(self.random_state)
        sample, positions = sample_features(features, self.sample_size, rng)
        return self._fit_sample(sample, positions, rng)

    def fit_sample(self, descriptors, positions=None):
        """Learn the PCA and the mixture from a descriptor sample drawn elsewhere (a cluster's reservoir).

        ``descriptors`` (N, D) float32, ``positions`` (N, 2) ``(fx, fy)`` in [0, 1] as
        :func:`~classicvision.recognition.sampling.normalized_positions` gives them (required when
        ``augment``). What :meth:`fit` does after drawing its sample, except that the EM's
        generator is seeded afresh from ``random_state`` (``fit`` goes on with the one that drew
        the sample), so the same sample and seed give the same encoder on any machine.
        """
        self._validate()
        x = np.ascontiguousarray(np.asarray(descriptors, np.float32))
        if x.ndim != 2 or len(x) < self.n_components:
            raise ValueError(f"descriptors must be (N, D) with N >= n_components ({self.n_components}), "
                             f"got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("descriptors contain NaN or infinite values")
        self._check_width(x.shape[1])
        if self.augment:
            if positions is None:
                raise ValueError("positions are required with augment=True")
            positions = np.asarray(positions, np.float64)
            if positions.shape != (len(x), 2) or not np.isfinite(positions).all():
                raise ValueError(f"positions must be finite with shape ({len(x)}, 2), got shape {positions.shape}")
        else:
            positions = np.zeros((len(x), 2))
        return self._fit_sample(x, positions, check_random_state(self.random_state))

    def _check_width(self, width: int) -> None:
        if self.n_pca is not None and self.n_pca > width:
            raise ValueError(f"n_pca must be <= the descriptor width ({width}), got {self.n_pca}")

    def _fit_sample(self, sample, positions, rng):
        width = sample.shape[1]
        self.pca_mean_ = self.pca_projection_ = None
        if self.n_pca is not None:
            self.pca_mean_, self.pca_projection_ = learn_pca(sample, int(self.n_pca), whiten=bool(self.whiten))
        self.n_features_in_descriptors_ = width
        x = self._project(sample, positions)
        with threadpool_limits(1, user_api="blas"):
            self.gmm_, self.log_likelihood_ = fit_gmm(x, int(self.n_components), max_iter=int(self.max_iter),
                                                      random_state=rng, n_jobs=self.n_jobs)
        self.n_descriptors_fit_ = len(sample)
        return self

    def _cells(self, grids: tuple) -> tuple[int, int, list]:
        """Finest partition ``(columns, rows)`` and, per grid, the map from its cells to the partition's."""
        columns = math.lcm(*(c for c, _ in grids))
        rows = math.lcm(*(r for _, r in grids))
        maps = []
        for c, r in grids:
            col = np.arange(columns) // (columns // c)
            row = np.arange(rows) // (rows // r)
            cell = (row[:, None] * c + col[None, :]).ravel()  # fine cell (row-major) -> grid cell
            maps.append((np.arange(c * r)[:, None] == cell[None, :]).astype(np.float64))  # (c r, fine) 0/1
        return columns, rows, maps

    def _encode_one(self, features, grids: tuple, plan: tuple) -> np.ndarray:
        """The ``(n_cells * 2 K D,)`` float32 vector of one image (unchecked)."""
        k, d = self.gmm_.means.shape
        columns, rows, maps = plan
        n_cells = sum(c * r for c, r in grids)
        out = np.zeros((n_cells, 2 * k * d), np.float32)
        if len(features.descriptors) == 0:
            return out.ravel()
        positions = normalized_positions(features.points, features.shape)
        x = self._project(features.descriptors, positions)
        if columns * rows > 1:  # descriptors ordered by fine cell, so each cell is a block of rows
            fine = (np.minimum((positions[:, 1] * rows).astype(np.int64), rows - 1) * columns
                    + np.minimum((positions[:, 0] * columns).astype(np.int64), columns - 1))
            x = x[np.argsort(fine, kind="stable")]
            bounds = np.concatenate([[0], np.cumsum(np.bincount(fine, minlength=columns * rows))])
        else:
            bounds = None
        stats, _ = gmm_statistics(x, self.gmm_, bounds)        # (fine cells, K, 2D + 1): [S1, S2, S0]
        stats = stats.reshape(len(stats), -1)
        offset = 0
        for (c, r), cell_map in zip(grids, maps):
            g = (cell_map @ stats).reshape(c * r, k, 2 * d + 1)
            fv = fisher_from_statistics(g[:, :, 2 * d], g[:, :, :d], g[:, :, d:2 * d], self.gmm_)
            out[offset:offset + c * r] = signed_sqrt_l2(fv) if self.improved else fv
            offset += c * r
        out = out.ravel()
        if n_cells > 1:
            out /= np.float32(math.sqrt(n_cells))
        return out

    def _encode(self, features: list, grids: tuple) -> np.ndarray:
        plan = self._cells(grids)
        return np.stack([self._encode_one(f, grids, plan) for f in features]) if features else None

    def transform(self, X) -> np.ndarray:
        """Fisher vectors of every image of ``X`` (ImageFeatures): ``(n_images, n_cells * 2 K D)`` float32."""
        check_is_fitted(self, "gmm_")
        grids = self._validate()
        features = check_features(X)
        check_descriptor_width(features, self.n_features_in_descriptors_, "those seen in fit")
        k, d = self.gmm_.means.shape
        width = sum(c * r for c, r in grids) * 2 * k * d
        if not features:
            return np.zeros((0, width), np.float32)
        with threadpool_limits(1, user_api="blas"):
            if self.n_jobs is None or self.n_jobs == 1 or len(features) < 2:
                return self._encode(features, grids)
            from joblib import Parallel, delayed

            threads = int(self.n_jobs) if self.n_jobs > 0 else (os.cpu_count() or 1)
            step = -(-len(features) // (4 * threads))   # about 4 blocks of images per thread
            blocks = Parallel(n_jobs=self.n_jobs, prefer="threads")(
                delayed(self._encode)(features[i:i + step], grids) for i in range(0, len(features), step))
        return np.concatenate(blocks)
