"""Bag of visual words with spatial pyramids, as scikit-learn transformers.

The course pipeline reads as three steps that compose in a :class:`sklearn.pipeline.Pipeline`::

    make_pipeline(DenseSIFT(step=8), BagOfWords(n_words=200, levels=3), LinearSVC())

* :class:`DenseSIFT` (stateless): images or image paths -> a list of :class:`ImageFeatures`
  (dense SIFT on a regular grid, one or several patch sizes).
* :class:`BagOfWords`: learns a k-means codebook (``codebook_``) on a random sample of the
  training descriptors, then turns each image's descriptors into a spatial-pyramid histogram of
  visual words (Csurka et al. 2004; Lazebnik, Schmid & Ponce 2006), hard or soft (kernel
  codebook, van Gemert et al. 2008), normalized by L1, Hellinger (L1 then square root) or L2.
* :class:`TinyImages` (stateless): the tiny-image baseline (Torralba et al. 2008) for k-NN.

Pyramid layout: level ``l`` (``0 <= l < levels``) splits the image into ``2**l x 2**l`` cells;
the feature vector is level 0's histogram, then level 1's four cells (row-major: top-left,
top-right, bottom-left, bottom-right), then level 2's sixteen, ..., each cell ``n_words`` long,
so ``n_words * (4**levels - 1) // 3`` values in all. With ``L = levels - 1``, the histograms of
level 0 are weighted by ``1 / 2**L`` and those of level ``l >= 1`` by ``1 / 2**(L - l + 1)``
(Lazebnik 2006, eq. 3). Every image's counts are first divided by its number of descriptors, so
images of different sizes compare; the normalization then applies to the whole vector.
"""

from __future__ import annotations

import logging
import numbers

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._validation import check_choice, check_scalar
from ._blocks import check_descriptor_width, feature_blocks
from .codebook import assign_words, learn_codebook, nearest_words
from .transformers import ListInputMixin, check_features

__all__ = ["BagOfWords", "pyramid_level_weights"]

logger = logging.getLogger(__name__)

_SOFT_NEAREST = 5  # soft assignment spreads each descriptor over its 5 nearest words
_BATCH_DESCRIPTORS = 262_144  # descriptors encoded per block in BagOfWords.transform


def pyramid_level_weights(levels: int) -> np.ndarray:
    """Weights of the spatial-pyramid levels (Lazebnik 2006, eq. 3).

    Returns ``(levels,)`` float64: ``1 / 2**L`` for level 0 and ``1 / 2**(L - l + 1)`` for
    level ``l >= 1``, with ``L = levels - 1``; a single level gets weight 1.

    >>> pyramid_level_weights(3).tolist()
    [0.25, 0.25, 0.5]
    """
    top = levels - 1
    return np.array([1.0 / 2 ** top] + [1.0 / 2 ** (top - level + 1) for level in range(1, levels)])


class BagOfWords(ListInputMixin, TransformerMixin, BaseEstimator):
    """Spatial-pyramid histograms of visual words (a k-means codebook learned in ``fit``).

    Parameters
    ----------
    n_words : int
        Codebook size K.
    levels : int
        Pyramid levels (1 = a plain bag of words, 3 = 1x1 + 2x2 + 4x4).
    encoding : {"hard", "soft"}
        "hard": each descriptor votes 1 for its nearest word. "soft": kernel codebook (van
        Gemert et al. 2008, "codeword uncertainty"): weights ``exp(-d**2 / (2 sigma**2))`` over
        the 5 nearest words, normalized to sum 1 per descriptor.
    normalize : {"l1", "sqrt", "l2"}
        Of the whole weighted vector: L1; "sqrt" = Hellinger map (L1 then element-wise square
        root, so the result has unit L2 norm); L2.
    sample_size : int
        Descriptors drawn at random (without replacement) from the training images for k-means.
    soft_sigma : float or None
        Gaussian width for "soft"; None: the median distance from a sample descriptor to its
        nearest word (stored as ``soft_sigma_``).
    max_iter : int
        k-means Lloyd iterations at most.
    random_state : None, int or numpy.random.RandomState
        Seeds the descriptor sample and k-means++.

    Attributes
    ----------
    codebook_ : (n_words, D) float32 array
    soft_sigma_ : float or None
    n_descriptors_fit_ : int
        Descriptors the codebook was learned on.

    Notes
    -----
    ``transform`` returns ``(n_images, n_words * (4**levels - 1) // 3)`` float32, laid out as
    in the module docstring. An image without descriptors gives an all-zero row.

    References
    ----------
    G. Csurka et al., "Visual categorization with bags of keypoints", ECCV Workshop 2004.
    S. Lazebnik, C. Schmid, J. Ponce, "Beyond bags of features: spatial pyramid matching for
    recognizing natural scene categories", CVPR 2006, section 3, eq. 3.
    J. van Gemert, J.-M. Geusebroek, C. Veenman, A. Smeulders, "Kernel codebooks for scene
    categorization", ECCV 2008, section 3.

    Examples
    --------
    >>> from classicvision.recognition.transformers import ImageFeatures
    >>> rng = np.random.default_rng(0)
    >>> feats = [ImageFeatures(rng.random((30, 2), dtype=np.float32) * 10,
    ...                        rng.random((30, 4), dtype=np.float32), (10, 10)) for _ in range(3)]
    >>> BagOfWords(n_words=5, levels=2, random_state=0).fit_transform(feats).shape
    (3, 25)
    """

    def __init__(self, n_words=200, *, levels=3, encoding="hard", normalize="sqrt", sample_size=100_000,
                 soft_sigma=None, max_iter=20, random_state=None):
        self.n_words = n_words
        self.levels = levels
        self.encoding = encoding
        self.normalize = normalize
        self.sample_size = sample_size
        self.soft_sigma = soft_sigma
        self.max_iter = max_iter
        self.random_state = random_state

    def _validate(self):
        check_scalar(self.n_words, "n_words", kind=numbers.Integral, low=1)
        check_scalar(self.levels, "levels", kind=numbers.Integral, low=1, high=6)
        check_choice(self.encoding, "encoding", ("hard", "soft"))
        check_choice(self.normalize, "normalize", ("l1", "sqrt", "l2"))
        check_scalar(self.sample_size, "sample_size", kind=numbers.Integral, low=1)
        check_scalar(self.max_iter, "max_iter", kind=numbers.Integral, low=0)
        if self.soft_sigma is not None:
            check_scalar(self.soft_sigma, "soft_sigma", low=0, low_inclusive=False)

    def fit(self, X, y=None):
        """Learn ``codebook_`` from a random sample of the descriptors of ``X`` (ImageFeatures)."""
        self._validate()
        features = check_features(X)
        counts = np.array([len(f.descriptors) for f in features], np.int64)
        total = int(counts.sum())
        if total < self.n_words:
            raise ValueError(f"n_words must be <= the number of training descriptors ({total}), "
                             f"got {self.n_words}")
        dims = {f.descriptors.shape[1] for f in features if len(f.descriptors)}
        if len(dims) != 1:
            raise ValueError(f"all descriptors must have the same width, got widths {sorted(dims)}")
        rng = check_random_state(self.random_state)
        take = np.sort(rng.choice(total, size=min(self.sample_size, total), replace=False))
        starts = np.concatenate([[0], np.cumsum(counts)])
        image = np.searchsorted(starts, take, side="right") - 1
        sample = np.concatenate([features[i].descriptors[take[image == i] - starts[i]]
                                 for i in np.unique(image)])
        self.codebook_ = learn_codebook(sample, int(self.n_words), max_iter=int(self.max_iter),
                                        random_state=rng)
        self.soft_sigma_ = None
        if self.encoding == "soft":
            if self.soft_sigma is None:
                _, dist = nearest_words(sample, self.codebook_, 1)
                self.soft_sigma_ = max(float(np.median(np.sqrt(dist[:, 0]))), 1e-6)
            else:
                self.soft_sigma_ = float(self.soft_sigma)
        self.n_descriptors_fit_ = int(len(sample))
        return self

    def _votes(self, descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(words (n, m) int64, weights (n, m) float32) for n descriptors."""
        if self.encoding == "hard":
            words = assign_words(descriptors, self.codebook_).astype(np.int64)[:, None]
            return words, np.ones_like(words, np.float32)
        words, dist = nearest_words(descriptors, self.codebook_, _SOFT_NEAREST)
        weights = np.exp(-(dist - dist[:, :1]) / np.float32(2.0 * self.soft_sigma_ ** 2))
        weights /= weights.sum(axis=1, keepdims=True)
        return words.astype(np.int64), weights.astype(np.float32)

    def _encode_block(self, features: list) -> np.ndarray:
        """Unnormalized, level-weighted pyramid histograms of a block of images."""
        n_words, levels = int(self.n_words), int(self.levels)
        dim = n_words * (4 ** levels - 1) // 3
        out = np.zeros((len(features), dim), np.float64)
        counts = np.array([len(f.descriptors) for f in features])
        if counts.sum() == 0:
            return out
        descriptors = np.concatenate([f.descriptors for f in features if len(f.descriptors)])
        points = np.concatenate([f.points for f in features if len(f.points)])
        image = np.repeat(np.arange(len(features)), counts)
        heights = np.array([f.shape[0] for f in features], np.float64)[image]
        widths = np.array([f.shape[1] for f in features], np.float64)[image]
        fx = np.clip((points[:, 0] + 0.5) / widths, 0.0, 1.0)
        fy = np.clip((points[:, 1] + 0.5) / heights, 0.0, 1.0)
        words, weights = self._votes(descriptors)
        per_image = weights.sum(axis=1).astype(np.float64)
        scale = np.bincount(image, per_image, minlength=len(features))  # total vote per image
        weights = weights / scale[image][:, None]
        level_weights = pyramid_level_weights(levels)
        offset = 0
        for level in range(levels):
            cells = 2 ** level
            cx = np.minimum((fx * cells).astype(np.int64), cells - 1)
            cy = np.minimum((fy * cells).astype(np.int64), cells - 1)
            base = image * dim + offset + (cy * cells + cx) * n_words
            bins = (base[:, None] + words).ravel()
            out.ravel()[:] += level_weights[level] * np.bincount(
                bins, weights.ravel(), minlength=out.size)
            offset += cells * cells * n_words
        return out

    def transform(self, X) -> np.ndarray:
        """Spatial-pyramid histograms, ``(n_images, n_words * (4**levels - 1) // 3)`` float32."""
        check_is_fitted(self, "codebook_")
        self._validate()
        features = check_features(X)
        check_descriptor_width(features, self.codebook_.shape[1], "the codebook's")
        blocks = [self._encode_block(block) for block in feature_blocks(features, _BATCH_DESCRIPTORS)]
        hist = np.concatenate(blocks) if blocks else np.zeros((0, 0))
        hist = hist.reshape(len(features), int(self.n_words) * (4 ** int(self.levels) - 1) // 3)
        if self.normalize in ("l1", "sqrt"):
            hist /= np.maximum(hist.sum(axis=1, keepdims=True), 1e-300)
            if self.normalize == "sqrt":
                np.sqrt(hist, out=hist)
        else:
            hist /= np.maximum(np.linalg.norm(hist, axis=1, keepdims=True), 1e-300)
        return hist.astype(np.float32)


