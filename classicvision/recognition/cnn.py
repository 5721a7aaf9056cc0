"""A small convolutional network for scene recognition, as scikit-learn estimators (optional torch).

The network follows the "SimpleNet" of the usual scene-recognition course project (Georgia Tech
CS 6476, projects 4/5): blocks of 3x3 convolution -> batch normalization (Ioffe & Szegedy 2015)
-> ReLU -> 2x2 max-pooling, then global average pooling, dropout (Srivastava et al. 2014) and
one linear classifier. It runs on grayscale images squashed to a fixed square size.

* :class:`CNNClassifier` trains it from scratch: ``fit(images, y)`` with images a list of 2-D
  float32 arrays of any size, ``predict`` -> ``(n,)`` int64 labels, ``predict_proba``, ``score``.
* :class:`CNNFeatures` returns the penultimate layer (the pooled ``channels[-1]`` values) as
  ``(n, F)`` float32 features, for a linear SVM ("CNN features + linear classifier").

Pre-processing: every image is resized once (area averaging, aspect ratio not kept) to
``pad = round(image_size * 9 / 8)`` pixels square and kept in one tensor, so augmentation is
cheap. Training batches take a random ``image_size`` crop, a random horizontal flip and a small
brightness/contrast jitter; prediction takes the centre crop (and, with ``flip_test``, averages
the softmax of the crop and of its mirror). Pixels are standardized by a mean and a standard
deviation measured on the training images only (the part used for fitting, without the
held-out part).

Randomness comes only from ``random_state``: the global torch generator is forked (so user state
is untouched), deterministic algorithms are on and the number of threads is fixed during
``fit``, so the same ``random_state`` on the same machine gives the same weights.

torch is imported lazily: importing :mod:`classicvision` never needs it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .._validation import check_image, check_scalar

__all__ = ["CNNClassifier", "CNNFeatures", "build_network", "load_weights"]

logger = logging.getLogger(__name__)

_HINT = "the CNN needs PyTorch: pip install classicvision[cnn]  (or pip install torch==2.13.0)"


def import_torch():
    """Import torch, or raise an ImportError with the install hint."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ModuleNotFoundError(_HINT) from exc
    return torch


def build_network(n_classes: int, *, channels=(32, 64, 128, 256), dropout: float = 0.3):
    """The SimpleNet-style network: conv-BN-ReLU-maxpool blocks, average pooling, dropout, linear.

    Parameters
    ----------
    n_classes : int
        Outputs of the last layer.
    channels : sequence of int
        Output channels of each block; each block halves the spatial size.
    dropout : float
        Drop probability before the classifier.

    Returns
    -------
    torch.nn.Module
        Maps a ``(n, 1, S, S)`` float32 tensor to ``(n, n_classes)`` logits; ``.embed(x)`` gives
        the ``(n, channels[-1])`` penultimate features.

    Examples
    --------
    >>> import torch
    >>> net = build_network(3, channels=(4, 8))
    >>> tuple(net(torch.zeros(2, 1, 16, 16)).shape), tuple(net.embed(torch.zeros(2, 1, 16, 16)).shape)
    ((2, 3), (2, 8))
    """
    torch = import_torch()
    nn = torch.nn

    class SmallCNN(nn.Module):
        def __init__(self):
            super().__init__()
            layers, previous = [], 1
            for width in channels:
                layers += [nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                           nn.ReLU(inplace=True), nn.MaxPool2d(2)]
                previous = width
            self.features = nn.Sequential(*layers)
            self.dropout = nn.Dropout(dropout)
            self.classifier = nn.Linear(previous, n_classes)

        def embed(self, x):
            return self.features(x).mean(dim=(2, 3))

        def forward(self, x):
            return self.classifier(self.dropout(self.embed(x)))

    return SmallCNN()


def _pad_size(image_size: int) -> int:
    return int(round(image_size * 9 / 8))


def _stack(images, size: int) -> np.ndarray:
    """Resize every image to ``size x size`` (area averaging down, bilinear up): (n, size, size) float32."""
    import cv2

    out = np.empty((len(images), size, size), np.float32)
    for i, image in enumerate(images):
        image = check_image(image, f"images[{i}]", check_range=True)
        shrink = image.shape[0] >= size and image.shape[1] >= size
        out[i] = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out


def _check_images(images, name: str = "images") -> list:
    if isinstance(images, np.ndarray) and images.ndim == 3:
        return list(images)
    if not isinstance(images, (list, tuple)):
        raise TypeError(f"{name} must be a list of 2-D arrays, got {type(images).__name__}")
    return list(images)


@contextlib.contextmanager
def _reproducible(torch, seed: int, n_threads: int):
    """Fork the global torch generator, seed it, force deterministic kernels and a thread count."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(n_threads)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic)


def _augment(torch, batch, image_size: int, generator, jitter: float):
    """Random crop, horizontal flip and brightness/contrast jitter of a (n, 1, pad, pad) batch in [0, 1]."""
    n, pad = batch.shape[0], batch.shape[-1]
    offsets = torch.randint(0, pad - image_size + 1, (n, 2), generator=generator).tolist()
    crops = torch.stack([batch[i, :, r:r + image_size, c:c + image_size] for i, (r, c) in enumerate(offsets)])
    flip = torch.rand(n, generator=generator) < 0.5
    crops = torch.where(flip[:, None, None, None], crops.flip(-1), crops)
    contrast = 1 + jitter * (2 * torch.rand(n, 1, 1, 1, generator=generator) - 1)
    brightness = jitter * (2 * torch.rand(n, 1, 1, 1, generator=generator) - 1)
    mean = crops.mean(dim=(1, 2, 3), keepdim=True)
    return (crops - mean) * contrast + mean + brightness


def _centre(batch, image_size: int):
    start = (batch.shape[-1] - image_size) // 2
    return batch[..., start:start + image_size, start:start + image_size]


class CNNClassifier(ClassifierMixin, BaseEstimator):
    """A small CNN trained from scratch (SimpleNet-style), as a scikit-learn classifier.

    Parameters
    ----------
    epochs : int
        Passes over the training images.
    batch_size : int
    lr : float
        Peak learning rate of AdamW under a one-cycle schedule (Smith & Topin 2019).
    weight_decay : float
        Decoupled weight decay of AdamW (Loshchilov & Hutter 2019).
    image_size : int
        Side of the square network input, in pixels.
    channels : tuple of int
        Channels of the convolution blocks (see :func:`build_network`).
    dropout : float
        Drop probability before the classifier.
    label_smoothing : float
        Label smoothing of the cross-entropy loss (Szegedy et al. 2016).
    jitter : float
        Largest brightness offset and relative contrast change of the augmentation.
    flip_test : bool
        Average the prediction over the image and its mirror.
    val_fraction : float
        Fraction of the training images held out (stratified) to report held-out accuracy per epoch;
        0 trains on all of them.
    n_threads : int
        torch threads during fit and predict (fixed for reproducibility).
    random_state : int or None
    progress : callable or None
        Called after each epoch as ``progress(epoch, epochs, record)`` with ``record`` a dict of
        ``loss``, ``train_accuracy``, ``val_accuracy`` and ``seconds``.

    Attributes
    ----------
    model_ : torch.nn.Module
    classes_ : (n_classes,) array of the labels seen in ``fit``
    mean_, std_ : float
        Pixel statistics of the training images (fitting part only).
    held_out_ : (k,) int64 array
        Indices of the training images held out of fitting (stratified, ``val_fraction`` of each class).
    history_ : dict of lists
        Per epoch: ``loss`` (mean training cross-entropy), ``train_accuracy`` (on the augmented
        batches), ``val_accuracy`` (held-out part of the training split; NaN without one),
        ``seconds``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> images = [rng.random((20, 20), dtype=np.float32) * (i % 2) for i in range(8)]
    >>> clf = CNNClassifier(epochs=1, image_size=16, channels=(4,), random_state=0, val_fraction=0)
    >>> clf.fit(images, np.arange(8) % 2).predict(images).shape
    (8,)
    """

    def __init__(self, *, epochs=30, batch_size=64, lr=3e-3, weight_decay=5e-4, image_size=64,
                 channels=(32, 64, 128, 256), dropout=0.3, label_smoothing=0.1, jitter=0.1, flip_test=True,
                 val_fraction=0.1, n_threads=2, random_state=None, progress=None):
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.image_size = image_size
        self.channels = channels
        self.dropout = dropout
        self.label_smoothing = label_smoothing
        self.jitter = jitter
        self.flip_test = flip_test
        self.val_fraction = val_fraction
        self.n_threads = n_threads
        self.random_state = random_state
        self.progress = progress

    def _validate(self):
        for name in ("epochs", "batch_size", "image_size", "n_threads"):
            check_scalar(getattr(self, name), name, kind=int, low=1)
        check_scalar(self.lr, "lr", low=0, low_inclusive=False)
        check_scalar(self.weight_decay, "weight_decay", low=0)
        check_scalar(self.val_fraction, "val_fraction", low=0, high=0.5)
        check_scalar(self.label_smoothing, "label_smoothing", low=0, high=1, high_inclusive=False)
        check_scalar(self.jitter, "jitter", low=0, high=1)
        check_scalar(self.dropout, "dropout", low=0, high=1, high_inclusive=False)
        if self.image_size < 2 ** len(self.channels):
            raise ValueError(f"image_size must be at least {2 ** len(self.channels)} for {len(self.channels)} "
                             f"blocks, got {self.image_size}")

    def fit(self, images, y):
        """Train on ``images`` (list of 2-D float32 arrays, any sizes) with labels ``y`` ((n,) array)."""
        torch = import_torch()
        self._validate()
        images = _check_images(images)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(images):
            raise ValueError(f"y must have shape ({len(images)},), got shape {y.shape}")
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y must hold at least 2 classes, got {len(self.classes_)}")
        seed = int(np.random.default_rng(self.random_state).integers(2 ** 31))
        rng = np.random.default_rng(seed)
        fit_idx, val_idx = _stratified_split(codes, self.val_fraction, rng)
        self.held_out_ = val_idx
        stored = _stack(images, _pad_size(self.image_size))
        self.mean_ = float(stored[fit_idx].mean())
        self.std_ = float(stored[fit_idx].std()) or 1.0
        with _reproducible(torch, seed, self.n_threads):
            self.model_ = build_network(len(self.classes_), channels=tuple(self.channels), dropout=self.dropout)
            self.model_ = self.model_.to(memory_format=torch.channels_last)
            self._train(torch, stored, codes, fit_idx, val_idx, seed)
        self.n_features_ = int(self.channels[-1])
        return self

    def _train(self, torch, stored, codes, fit_idx, val_idx, seed):
        generator = torch.Generator().manual_seed(seed)
        train_x = torch.from_numpy(stored[fit_idx]).unsqueeze(1)
        train_y = torch.from_numpy(codes[fit_idx].astype(np.int64))
        steps = -(-len(fit_idx) // self.batch_size)
        optimizer = torch.optim.AdamW(self.model_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.lr, total_steps=self.epochs * steps)
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=self.label_smoothing)
        self.history_ = {"loss": [], "train_accuracy": [], "val_accuracy": [], "seconds": []}
        for epoch in range(self.epochs):
            start = time.perf_counter()
            self.model_.train()
            order = torch.randperm(len(fit_idx), generator=generator)
            total_loss, correct = 0.0, 0
            for s in range(steps):
                idx = order[s * self.batch_size:(s + 1) * self.batch_size]
                if len(idx) < 2:  # batch norm needs two samples
                    continue
                batch = _augment(torch, train_x[idx], self.image_size, generator, self.jitter)
                batch = ((batch - self.mean_) / self.std_).contiguous(memory_format=torch.channels_last)
                logits = self.model_(batch)
                loss = loss_fn(logits, train_y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total_loss += loss.item() * len(idx)
                correct += int((logits.argmax(1) == train_y[idx]).sum())
            val = float("nan")
            if len(val_idx):
                val = float(np.mean(self._predict_codes(torch, stored[val_idx]) == codes[val_idx]))
            record = {"loss": total_loss / len(fit_idx), "train_accuracy": correct / len(fit_idx),
                      "val_accuracy": val, "seconds": time.perf_counter() - start}
            for key, value in record.items():
                self.history_[key].append(value)
            logger.info("epoch %d/%d %s", epoch + 1, self.epochs, record)
            if self.progress is not None:
                self.progress(epoch + 1, self.epochs, record)

    def _forward(self, torch, stored, what: str):
        """Logits-softmax or embeddings of pre-resized (n, pad, pad) images, in batches."""
        self.model_.eval()
        outputs = []
        threads = torch.get_num_threads()
        torch.set_num_threads(self.n_threads)
        try:
            with torch.inference_mode():
                for s in range(0, len(stored), 256):
                    batch = _centre(torch.from_numpy(stored[s:s + 256]).unsqueeze(1), self.image_size)
                    batch = ((batch - self.mean_) / self.std_).contiguous(memory_format=torch.channels_last)
                    views = [batch, batch.flip(-1)] if self.flip_test else [batch]
                    if what == "embed":
                        out = sum(self.model_.embed(v) for v in views) / len(views)
                    else:
                        out = sum(torch.softmax(self.model_(v), 1) for v in views) / len(views)
                    outputs.append(out.numpy())
        finally:
            torch.set_num_threads(threads)
        width = self.channels[-1] if what == "embed" else len(self.classes_)
        return np.concatenate(outputs).astype(np.float32) if outputs else np.zeros((0, width), np.float32)

    def _predict_codes(self, torch, stored):
        return self._forward(torch, stored, "proba").argmax(1)

    def predict_proba(self, images) -> np.ndarray:
        """(n, n_classes) float32 class probabilities, columns in the order of ``classes_``."""
        check_is_fitted(self, "model_")
        stored = _stack(_check_images(images), _pad_size(self.image_size))
        return self._forward(import_torch(), stored, "proba")

    def predict(self, images) -> np.ndarray:
        """(n,) predicted labels (int64 when the labels are integers)."""
        proba = self.predict_proba(images)
        labels = self.classes_[proba.argmax(1)]
        return labels.astype(np.int64) if np.issubdtype(labels.dtype, np.integer) else labels

    def transform(self, images) -> np.ndarray:
        """(n, channels[-1]) float32 penultimate-layer features."""
        check_is_fitted(self, "model_")
        stored = _stack(_check_images(images), _pad_size(self.image_size))
        return self._forward(import_torch(), stored, "embed")

    def save_weights(self, path) -> Path:
        """Write the state_dict to ``path`` (torch.save) and settings/statistics to ``path.json``.

        Returns the path of the weights file. Load with :func:`load_weights` (``weights_only=True``).
        """
        check_is_fitted(self, "model_")
        torch = import_torch()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.model_.state_dict(), path)
        settings = {"classes": self.classes_.tolist(), "mean": self.mean_, "std": self.std_,
                    "image_size": int(self.image_size), "channels": [int(c) for c in self.channels],
                    "dropout": float(self.dropout), "flip_test": bool(self.flip_test),
                    "n_threads": int(self.n_threads)}
        _side_file(path).write_text(json.dumps(settings, indent=2))
        return path


def _side_file(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def load_weights(path) -> CNNClassifier:
    """A fitted :class:`CNNClassifier` from :meth:`CNNClassifier.save_weights` files (``weights_only=True``)."""
    torch = import_torch()
    path = Path(path)
    if not path.is_file() or not _side_file(path).is_file():
        raise FileNotFoundError(f"weights not found: need {path} and {_side_file(path)}")
    settings = json.loads(_side_file(path).read_text())
    clf = CNNClassifier(image_size=settings["image_size"], channels=tuple(settings["channels"]),
                        dropout=settings["dropout"], flip_test=settings["flip_test"],
                        n_threads=settings["n_threads"])
    clf.classes_ = np.asarray(settings["classes"])
    clf.mean_, clf.std_ = settings["mean"], settings["std"]
    clf.n_features_ = int(settings["channels"][-1])
    model = build_network(len(clf.classes_), channels=clf.channels, dropout=clf.dropout)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    clf.model_ = model.to(memory_format=torch.channels_last).eval()
    return clf


def _stratified_split(codes: np.ndarray, fraction: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Indices (fit, held-out): ``round(fraction * count)`` of each class held out, at random."""
    held = []
    for c in np.unique(codes):
        members = np.flatnonzero(codes == c)
        k = int(round(fraction * len(members)))
        held.extend(rng.permutation(members)[:min(k, len(members) - 1)])
    held = np.sort(np.asarray(held, dtype=np.int64))
    return np.setdiff1d(np.arange(len(codes)), held), held


class CNNFeatures(TransformerMixin, BaseEstimator):
    """Penultimate-layer features of a trained :class:`CNNClassifier`, for a linear classifier.

    Parameters
    ----------
    classifier : CNNClassifier or None
        A fitted classifier whose network is used as is.
    weights : path or None
        Or a weights file written by :meth:`CNNClassifier.save_weights`.

    Attributes
    ----------
    classifier_ : CNNClassifier
        The fitted network used by ``transform``.
    n_features_out_ : int

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> images = [rng.random((20, 20), dtype=np.float32) for _ in range(4)]
    >>> clf = CNNClassifier(epochs=1, image_size=16, channels=(4, 8), random_state=0, val_fraction=0)
    >>> CNNFeatures(classifier=clf.fit(images, [0, 1, 0, 1])).fit_transform(images).shape
    (4, 8)
    """

    def __init__(self, *, classifier=None, weights=None):
        self.classifier = classifier
        self.weights = weights

    def fit(self, images=None, y=None):
        """Take the network from ``classifier`` or ``weights`` (no training happens here)."""
        if (self.classifier is None) == (self.weights is None):
            raise ValueError("give exactly one of classifier and weights, got "
                             f"classifier={type(self.classifier).__name__}, weights={self.weights!r}")
        if self.classifier is not None:
            if not isinstance(self.classifier, CNNClassifier):
                raise TypeError(f"classifier must be a CNNClassifier, got {type(self.classifier).__name__}")
            check_is_fitted(self.classifier, "model_")
            self.classifier_ = self.classifier
        else:
            self.classifier_ = load_weights(self.weights)
        self.n_features_out_ = self.classifier_.n_features_
        return self

    def transform(self, images) -> np.ndarray:
        """(n, F) float32 features, F = the last block's channels."""
        check_is_fitted(self, "classifier_")
        return self.classifier_.transform(images)
