"""VLAD: vectors of locally aggregated descriptors (Jegou et al. 2010), with intra-normalization
(Arandjelovic & Zisserman 2013), as a scikit-learn transformer over the images' local features::

    make_pipeline(DenseSIFT(step=8, rootsift=True), VLAD(n_words=64), LinearSVC())

:class:`VLAD` learns a k-means codebook ``c_1 .. c_K`` on a random sample of the training
descriptors (the bag of words' machinery: :func:`~classicvision.recognition.codebook.learn_codebook`
and :func:`~classicvision.recognition.codebook.assign_words`). An image's descriptors ``x`` give,
for every word ``k``, the sum of the residuals of the descriptors whose nearest word is ``k``,

    v_k = sum_{x : NN(x) = k} (x - c_k)                      (Jegou 2010, eq. 1)

concatenated word by word (``K * D`` values, word-major, dimension fastest), then normalized:

* ``"intra"``: each ``v_k`` scaled to unit L2 norm (zero blocks stay zero), then the whole vector
  to unit L2 norm (Arandjelovic & Zisserman 2013, section 3);
* ``"ssr"``: signed square root of every value, then L2 (Jegou et al. 2012's power normalization);
* ``"l2"``: L2 only (the original VLAD).

An image without descriptors gives zeros.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._validation import check_choice, check_scalar
from ._blocks import check_descriptor_width, feature_blocks
from .codebook import assign_words, learn_codebook
from .sampling import sample_features
from .transformers import ListInputMixin, check_features

__all__ = ["VLAD", "vlad"]

_BATCH_DESCRIPTORS = 262_144  # descriptors encoded per block in VLAD.transform (bounds memory)


def vlad(descriptors: np.ndarray, codebook: np.ndarray, words: np.ndarray, *, normalize: str = "intra") -> np.ndarray:
    """The VLAD vector of one set of descriptors with their assigned words (unchecked inputs).

    Parameters
    ----------
    descriptors : (N, D) float32 array
    codebook : (K, D) float32 array
    words : (N,) int array
        Index of each descriptor's nearest word.
    normalize : {"intra", "ssr", "l2"}
        See the module docstring.

    Returns
    -------
    (K * D,) float32 array

    References
    ----------
    H. Jegou, M. Douze, C. Schmid, P. Perez, "Aggregating local descriptors into a compact image
    representation", CVPR 2010, section 3, eq. 1. R. Arandjelovic, A. Zisserman, "All about
    VLAD", CVPR 2013, section 3.

    Examples
    --------
    >>> codebook = np.array([[0.0, 0.0], [10.0, 0.0]], np.float32)
    >>> x = np.array([[1.0, 0.0], [0.0, 2.0], [9.0, 0.0]], np.float32)
    >>> vlad(x, codebook, np.array([0, 0, 1]), normalize="intra").astype(np.float64).round(4).tolist()
    [0.3162, 0.6325, -0.7071, 0.0]
    """
    k, d = codebook.shape
    x = np.asarray(descriptors, np.float64)
    words = np.asarray(words, np.int64)
    sums = np.zeros((k, d))
    np.add.at(sums, words, x)
    counts = np.bincount(words, minlength=k).astype(np.float64)
    v = sums - counts[:, None] * codebook.astype(np.float64)
    if normalize == "intra":
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-30)
    v = v.ravel()
    if normalize == "ssr":
        v = np.sign(v) * np.sqrt(np.abs(v))
    v /= max(float(np.linalg.norm(v)), 1e-30)
    return v.astype(np.float32)


class VLAD(ListInputMixin, TransformerMixin, BaseEstimator):
    """VLAD vectors of the images' local features (a k-means codebook learned in ``fit``).

    Parameters
    ----------
    n_words : int
        Codebook size K.
    normalize : {"intra", "ssr", "l2"}
        See the module docstring; "intra" is Arandjelovic & Zisserman 2013's.
    sample_size : int
        Descriptors drawn at random (without replacement) from the training images for k-means.
    max_iter : int
        k-means Lloyd iterations at most.
    random_state : None, int or numpy.random.RandomState
        Seeds the sample and k-means++.

    Attributes
    ----------
    codebook_ : (n_words, D) float32 array
    n_descriptors_fit_ : int

    Notes
    -----
    ``transform`` returns ``(n_images, n_words * D)`` float32, unit L2 norm per image with
    descriptors, zeros for one without. The residual sums are one sparse product per block of
    images (``(images x words, descriptors)`` one-hot times descriptors).

    References
    ----------
    H. Jegou, M. Douze, C. Schmid, P. Perez, CVPR 2010. R. Arandjelovic, A. Zisserman, "All
    about VLAD", CVPR 2013.

    Examples
    --------
    >>> from classicvision.recognition.transformers import ImageFeatures
    >>> rng = np.random.default_rng(0)
    >>> feats = [ImageFeatures(rng.random((30, 2), dtype=np.float32) * 10,
    ...                        rng.random((30, 4), dtype=np.float32), (10, 10)) for _ in range(3)]
    >>> VLAD(n_words=5, random_state=0).fit_transform(feats).shape
    (3, 20)
    """

    def __init__(self, n_words=64, *, normalize="intra", sample_size=100_000, max_iter=20, random_state=None):
        self.n_words = n_words
        self.normalize = normalize
        self.sample_size = sample_size
        self.max_iter = max_iter
        self.random_state = random_state

    def _validate(self) -> None:
        check_scalar(self.n_words, "n_words", kind=numbers.Integral, low=1)
        check_choice(self.normalize, "normalize", ("intra", "ssr", "l2"))
        check_scalar(self.sample_size, "sample_size", kind=numbers.Integral, low=1)
        check_scalar(self.max_iter, "max_iter", kind=numbers.Integral, low=0)

    def fit(self, X, y=None):
        """Learn ``codebook_`` from a random sample of the descriptors of ``X`` (ImageFeatures)."""
        self._validate()
        features = check_features(X)
        total = sum(len(f.descriptors) for f in features)
        if total < self.n_words:
            raise ValueError(f"n_words must be <= the number of training descriptors ({total}), got {self.n_words}")
        dims = {f.descriptors.shape[1] for f in features if len(f.descriptors)}
        if len(dims) != 1:
            raise ValueError(f"all descriptors must have the same width, got widths {sorted(dims)}")
        rng = check_random_state(self.random_state)
        sample, _ = sample_features(features, self.sample_size, rng)
        self.codebook_ = learn_codebook(sample, int(self.n_words), max_iter=int(self.max_iter), random_state=rng)
        self.n_descriptors_fit_ = len(sample)
        return self

    def _encode_block(self, features: list) -> np.ndarray:
        import scipy.sparse as sp

        k, d = self.codebook_.shape
        out = np.zeros((len(features), k, d), np.float64)
        counts = np.array([len(f.descriptors) for f in features], np.int64)
        if counts.sum():
            x = np.concatenate([f.descriptors for f in features if len(f.descriptors)])
            words = assign_words(x, self.codebook_).astype(np.int64)
            rows = np.repeat(np.arange(len(features)), counts) * k + words
            onehot = sp.csr_matrix((np.ones(len(x)), (rows, np.arange(len(x)))), shape=(len(features) * k, len(x)))
            sums = (onehot @ x.astype(np.float64)).reshape(len(features), k, d)
            members = np.bincount(rows, minlength=len(features) * k).reshape(len(features), k)
            out = sums - members[:, :, None] * self.codebook_.astype(np.float64)[None]
        if self.normalize == "intra":
            out /= np.maximum(np.linalg.norm(out, axis=2, keepdims=True), 1e-30)
        out = out.reshape(len(features), k * d)
        if self.normalize == "ssr":
            out = np.sign(out) * np.sqrt(np.abs(out))
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-30)
        return out.astype(np.float32)

    def transform(self, X) -> np.ndarray:
        """VLAD vectors of every image of ``X`` (ImageFeatures): ``(n_images, n_words * D)`` float32."""
        check_is_fitted(self, "codebook_")
        self._validate()
        features = check_features(X)
        k, d = self.codebook_.shape
        check_descriptor_width(features, d, "the codebook's")
        blocks = [self._encode_block(block) for block in feature_blocks(features, _BATCH_DESCRIPTORS)]
        return np.concatenate(blocks).reshape(len(features), k * d)
