"""Stateless scikit-learn transformers from images to features: :class:`DenseSIFT` (dense SIFT
on a regular grid, one or several patch sizes, as VLFeat's PHOW) and :class:`TinyImages` (the
tiny-image baseline, Torralba et al. 2008), with :class:`ImageFeatures`, the per-image result
that the encodings of :mod:`classicvision.recognition.encoding` read.
"""

from __future__ import annotations

import numbers
import os
from typing import NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from .._validation import check_descriptors, check_image, check_points, check_scalar
from ..features.dense_sift import dense_sift
from ..io import read_image, resize

__all__ = ["ImageFeatures", "DenseSIFT", "TinyImages", "ListInputMixin", "StatelessTransformerMixin", "check_features",
           "check_image_sequence"]


class ListInputMixin:
    """Tags of an estimator that takes a list of images (or of their features), not a 2-D array."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags


class StatelessTransformerMixin(ListInputMixin):
    """Tags of a transformer that learns nothing and takes a list of images (or features), not a
    2-D array: ``fit`` only validates, and ``transform`` works unfitted."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


class ImageFeatures(NamedTuple):
    """Local features of one image.

    Attributes
    ----------
    points : (N, 2) float32 array of (x, y)
        Descriptor centres in pixels (x = column, y = row) of the (possibly resized) image.
    descriptors : (N, D) float32 array
    shape : tuple (height, width)
        Size of the image the points refer to.
    """

    points: np.ndarray
    descriptors: np.ndarray
    shape: tuple


def _load(item, index: int) -> np.ndarray:
    """An image given as a path (read with :func:`read_image`) or a 2-D array."""
    if isinstance(item, (str, os.PathLike)):
        return read_image(item)
    return check_image(item, f"X[{index}]", check_range=True)


def check_image_sequence(X, name: str = "X") -> list:
    if isinstance(X, np.ndarray):
        if X.ndim == 2 and X.dtype.kind in "uif":
            raise ValueError(f"{name} must be a sequence of images, got one 2-D array of shape {X.shape}")
        return list(X)
    if isinstance(X, (str, os.PathLike)) or not hasattr(X, "__len__"):
        raise TypeError(f"{name} must be a list of images or paths, got {type(X).__name__}")
    return list(X)


class DenseSIFT(StatelessTransformerMixin, TransformerMixin, BaseEstimator):
    """Dense SIFT descriptors on a regular grid, for each image (stateless transformer).

    Parameters
    ----------
    step : int
        Grid step in pixels.
    sizes : tuple of int
        Patch sides in pixels (descriptor support, 4x4 cells); several sizes concatenate their
        rows, as VLFeat's PHOW.
    rootsift : bool
        RootSIFT descriptors (Arandjelovic & Zisserman 2012).
    max_side : int or None
        Images whose longer side exceeds this are first downscaled to it (area averaging).
    n_jobs : int or None
        Threads over images (joblib); None runs in the calling thread.

    Notes
    -----
    ``fit`` only validates the parameters; ``transform`` takes a list of 2-D images (any
    dtype :func:`classicvision._validation.check_image` accepts) or of paths (read with
    :func:`classicvision.io.read_image`) and returns a list of :class:`ImageFeatures`.

    References
    ----------
    A. Vedaldi, B. Fulkerson, "VLFeat: an open and portable library of computer vision
    algorithms", 2008 (``vl_dsift``, ``vl_phow``). D. Lowe, "Distinctive image features from
    scale-invariant keypoints", IJCV 2004, section 6.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> features = DenseSIFT(step=8).fit_transform([rng.random((48, 64), dtype=np.float32)])
    >>> features[0].descriptors.shape[1], features[0].shape
    (128, (48, 64))
    """

    def __init__(self, *, step=8, sizes=(16,), rootsift=False, max_side=None, n_jobs=None):
        self.step = step
        self.sizes = sizes
        self.rootsift = rootsift
        self.max_side = max_side
        self.n_jobs = n_jobs

    def _validate(self) -> tuple:
        check_scalar(self.step, "step", kind=numbers.Integral, low=1)
        sizes = (self.sizes,) if isinstance(self.sizes, numbers.Integral) else tuple(self.sizes)
        if not sizes:
            raise ValueError("sizes must hold at least one patch size, got ()")
        for size in sizes:
            check_scalar(size, "sizes", kind=numbers.Integral, low=4)
        if self.max_side is not None:
            check_scalar(self.max_side, "max_side", kind=numbers.Integral, low=8)
        if self.n_jobs is not None:
            check_scalar(self.n_jobs, "n_jobs", kind=numbers.Integral)
        return sizes

    def fit(self, X=None, y=None):
        """Validate the parameters; nothing is learned. Returns self."""
        self._validate()
        return self

    def _one(self, item, index: int, sizes: tuple) -> ImageFeatures:
        image = _load(item, index)
        if self.max_side is not None and max(image.shape) > self.max_side:
            image = resize(image, self.max_side / max(image.shape))
        points, descriptors = [], []
        for size in sizes:
            p, d = dense_sift(image, step=int(self.step), size=int(size), rootsift=bool(self.rootsift))
            points.append(p)
            descriptors.append(d)
        return ImageFeatures(np.concatenate(points).astype(np.float32, copy=False),
                             np.concatenate(descriptors).astype(np.float32, copy=False),
                             tuple(int(s) for s in image.shape))

    def transform(self, X) -> list:
        """Dense SIFT of every image (or path) in ``X``: a list of :class:`ImageFeatures`."""
        sizes = self._validate()
        items = check_image_sequence(X)
        if self.n_jobs is None or self.n_jobs == 1 or len(items) < 2:
            return [self._one(item, i, sizes) for i, item in enumerate(items)]
        from joblib import Parallel, delayed

        return Parallel(n_jobs=self.n_jobs, prefer="threads")(
            delayed(self._one)(item, i, sizes) for i, item in enumerate(items))


def check_features(X, name: str = "X") -> list:
    items = check_image_sequence(X, name)
    out = []
    for i, item in enumerate(items):
        if not (isinstance(item, tuple) and len(item) == 3):
            raise TypeError(f"{name}[{i}] must be an ImageFeatures (points, descriptors, shape), "
                            f"got {type(item).__name__}; run DenseSIFT first")
        points = check_points(item[0], f"{name}[{i}].points")
        descriptors = check_descriptors(item[1], f"{name}[{i}].descriptors")
        if len(points) != len(descriptors):
            raise ValueError(f"{name}[{i}] has {len(points)} points but {len(descriptors)} descriptors")
        out.append(ImageFeatures(points, descriptors, tuple(item[2])))
    return out


class TinyImages(StatelessTransformerMixin, TransformerMixin, BaseEstimator):
    """Tiny-image features: each image resized to ``size x size``, zero mean, unit norm.

    Parameters
    ----------
    size : int
        Side of the tiny image (the aspect ratio is not kept, as in the course baseline).

    Notes
    -----
    Stateless. ``transform`` takes images or paths and returns ``(n_images, size * size)``
    float32 rows, row-major pixels; a constant image gives a zero row.

    References
    ----------
    A. Torralba, R. Fergus, W. Freeman, "80 million tiny images: a large data set for
    nonparametric object and scene recognition", IEEE TPAMI 30(11), 2008.

    Examples
    --------
    >>> features = TinyImages(size=4).fit_transform([np.arange(64, dtype=np.float32).reshape(8, 8) / 64])
    >>> features.shape, bool(abs(features.mean()) < 1e-6), round(float(np.linalg.norm(features)), 4)
    ((1, 16), True, 1.0)
    """

    def __init__(self, *, size=16):
        self.size = size

    def fit(self, X=None, y=None):
        """Validate the parameters; nothing is learned. Returns self."""
        check_scalar(self.size, "size", kind=numbers.Integral, low=1)
        return self

    def transform(self, X) -> np.ndarray:
        """``(n_images, size * size)`` float32 tiny images, zero mean and unit L2 norm per row."""
        import cv2

        self.fit()
        items = check_image_sequence(X)
        size = int(self.size)
        out = np.zeros((len(items), size * size), np.float32)
        for i, item in enumerate(items):
            image = _load(item, i)
            tiny = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
            tiny -= tiny.mean()
            norm = np.linalg.norm(tiny)
            out[i] = tiny / norm if norm > 1e-12 else 0.0
        return out
