"""A small convolutional network for scene recognition, as scikit-learn estimators (optional torch).

* :class:`CNNClassifier` trains a network of :func:`~classicvision.recognition.networks.build_network`
  from scratch (a small ResNet by default, or the SimpleNet this library used first):
  ``fit(images, y)`` with images a list of 2-D float32 arrays of any size, ``predict`` -> ``(n,)``
  labels, ``predict_proba``, ``score``; ``transform`` gives the penultimate features.
* :class:`CNNFeatures` returns those ``(n, F)`` float32 features from a fitted classifier or a
  weights file, for a linear SVM ("CNN features + linear classifier").
* :func:`load_weights` reads what :meth:`CNNClassifier.save_weights` wrote, without pickle.
* :func:`~classicvision.recognition.cam.grad_cam` and :func:`~classicvision.recognition.cam.feature_maps`
  (defined in :mod:`classicvision.recognition.cam`, importable from here too) show what it looks at.

Pre-processing: every image is resized once (area averaging, aspect ratio not kept) to a square
of ``image_size + 2 * round(image_size / 16)`` pixels (about 9/8 of the input) and kept in one
tensor. Training batches are augmented on the fly (:mod:`classicvision.recognition.augment`:
random resized crop, small rotation, mirror, brightness and contrast), optionally mixed
(mixup, Zhang et al. 2018), and the loss is the label-smoothed cross-entropy (Szegedy et al.
2016). Prediction takes the centred ``test_size`` crop (``image_size`` unless set) of the image resized
to ``test_size + 2 * round(test_size / 16)`` and averages the softmax (and the features) over the
views of ``tta``. A test size above the training size compensates for the random crops, which
show objects larger in training than the centred crop does at the same input size (Touvron et
al., "Fixing the train-test resolution discrepancy", NeurIPS 2019); the network pools globally,
so any size works. Pixels are standardized by a mean and a standard deviation
measured on the fitting part of the training images only.

Optimization: SGD with Nesterov momentum (or AdamW, Loshchilov & Hutter 2019), weight decay on
the convolution and linear weights only, and a learning rate that warms up linearly for
``warmup_epochs`` then follows a cosine to zero (:func:`~classicvision.recognition.schedule.learning_rate`).

Time budget: with ``max_seconds``, the number of epochs is chosen after the second one (the first
pays for memory and kernel set-up, so it is slower than the rest): ``epochs_ = min(epochs, 2 +
floor((max_seconds - t2) / d2))`` with ``t2`` the seconds since ``fit`` began and ``d2`` the second
epoch's duration (:func:`~classicvision.recognition.schedule.plan_epochs`); with a one-epoch
warm-up, after the first, from its duration. Those epochs are warm-up, whose learning rates do
not depend on the total, so a budgeted run trains exactly as ``epochs=epochs_`` without a budget
would: record ``epochs_`` and pass it to reproduce the run. Should later epochs run slower (a
loaded machine, or a budget shorter than two epochs), training stops before an epoch that the
mean epoch time so far (from the second epoch on, when there is one) says would end past
``max_seconds`` (``stopped_early_`` is then True, and the run is reproduced only on equally slow
hardware).

Randomness comes only from ``random_state``: the global torch generator is forked (so user state
is untouched), deterministic algorithms are on and the number of threads is fixed during ``fit``
and prediction, so the same ``random_state`` on the same machine gives bit-identical weights on
the CPU. On CUDA (``device='cuda'``, or ``'auto'`` where torch sees a GPU) the same views are
drawn (the generator stays on the CPU) and deterministic kernels are asked for, but runs may
differ in the last bits.

Arithmetic: with ``precision='bfloat16'`` the forward pass and the loss of training run under
``torch.autocast`` in bfloat16 (the weights, their gradients and the optimizer stay float32;
Kalamkar et al., "A study of BFLOAT16 for deep learning training", 2019): on a CPU with the
AVX-512 BF16 instructions (or on a GPU) an epoch takes about 0.6x the float32 time, and the same
``random_state`` on the same machine still gives bit-identical weights. ``'auto'`` takes it
where :func:`bfloat16_supported` says the device computes it natively, float32 elsewhere (an
emulated bfloat16 is slower than float32). Prediction always runs in float32.

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

from .._validation import check_choice, check_image, check_scalar
from .augment import TTA_VIEWS, augment_batch, test_time_transforms, warp_batch
from .cam import feature_maps, grad_cam
from .networks import ARCHITECTURES, build_network, memory_format
from .schedule import SCHEDULES, learning_rate, plan_epochs

__all__ = ["CNNClassifier", "CNNFeatures", "bfloat16_supported", "build_network", "feature_maps", "grad_cam",
           "load_weights", "resolve_device", "resolve_precision", "training_autocast"]

logger = logging.getLogger(__name__)

_HINT = "the CNN needs PyTorch: pip install classicvision[cnn]  (or pip install torch==2.13.0)"
_OPTIMIZERS = ("sgd", "adamw")
_PRECISIONS = ("float32", "bfloat16", "auto")
_BATCH = 128  # images per forward pass at prediction time


def import_torch():
    """Import torch, or raise an ImportError with the install hint."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ModuleNotFoundError(_HINT) from exc
    return torch


def resolve_device(device: str = "auto") -> str:
    """The torch device name for ``device``: ``'auto'`` is ``'cuda'`` when torch sees a GPU, else ``'cpu'``.

    Parameters
    ----------
    device : str
        ``'auto'``, ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For another name, or a CUDA device that torch does not see.

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    """
    if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda")
                                           or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device == "cpu":
        return device
    torch = import_torch()
    available = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if available else "cpu"
    if not available or (":" in device and int(device[5:]) >= torch.cuda.device_count()):
        raise ValueError(f"device={device!r} but torch sees {torch.cuda.device_count() if available else 'no'} "
                         "CUDA device(s)")
    return device


def bfloat16_supported(device: str = "cpu") -> bool:
    """Whether ``device`` (a resolved device string) computes bfloat16 convolutions natively: a CUDA
    GPU that torch says supports it, or a CPU with the AVX-512 BF16 (or AMX) instructions that
    oneDNN uses. Elsewhere torch emulates bfloat16, more slowly than float32."""
    torch = import_torch()
    if device.startswith("cuda"):
        return bool(torch.cuda.is_bf16_supported())
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - a torch without the query
        return False


def resolve_precision(precision: str, device: str) -> str:
    """``'float32'`` or ``'bfloat16'`` for a ``precision`` of :class:`CNNClassifier` on a resolved
    ``device``: ``'auto'`` is bfloat16 where :func:`bfloat16_supported`."""
    check_choice(precision, "precision", _PRECISIONS)
    if precision == "auto":
        return "bfloat16" if bfloat16_supported(device) else "float32"
    return precision


def training_autocast(device: str, precision: str):
    """The ``torch.autocast`` context of a training step on ``device`` in a resolved ``precision``
    (bfloat16; disabled for float32). Reusable: one context serves every step."""
    torch = import_torch()
    return torch.autocast("cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16,
                          enabled=precision == "bfloat16")


def _pad_size(image_size: int) -> int:
    """Side of the stored images: about 9/8 of the input, larger by an even number of pixels."""
    return int(image_size + 2 * round(image_size / 16))


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
def _reproducible(torch, seed: int, n_threads: int, device: str):
    """Fork the torch generators, seed them, force deterministic kernels and a thread count."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    cuda = device.startswith("cuda")
    benchmark = torch.backends.cudnn.benchmark
    with torch.random.fork_rng(devices=[torch.device(device)] if cuda else []):
        torch.manual_seed(seed)
        torch.set_num_threads(n_threads)
        # CUDA: some kernels have no deterministic version (or need CUBLAS_WORKSPACE_CONFIG): warn, do not fail
        torch.use_deterministic_algorithms(True, warn_only=cuda)
        torch.backends.cudnn.benchmark = False
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic)
            torch.backends.cudnn.benchmark = benchmark


def _centre(batch, image_size: int):
    start = (batch.shape[-1] - image_size) // 2
    return batch[..., start:start + image_size, start:start + image_size]


def _parameter_groups(model, weight_decay: float):
    """Weight decay on convolution and linear weights only (not on biases and batch-norm parameters)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


class CNNClassifier(ClassifierMixin, BaseEstimator):
    """A small CNN trained from scratch on grey images, as a scikit-learn classifier.

    Parameters
    ----------
    architecture : {'resnet', 'simple'}
        See :func:`~classicvision.recognition.networks.build_network`.
    channels : tuple of int
        Width of each stage (ResNet) or block (SimpleNet).
    blocks : int
        Residual blocks per stage (ResNet).
    image_size : int
        Side of the square network input, in pixels.
    dropout : float
        Drop probability before the classifier.
    epochs : int
        Length of the learning-rate schedule; with ``max_seconds``, the most epochs run.
    max_seconds : float or None
        Time budget of ``fit`` in seconds (pre-processing included); the epoch count is chosen
        after the second epoch (see the module docstring). None: exactly ``epochs``.
    batch_size : int
    optimizer : {'sgd', 'adamw'}
        SGD with Nesterov momentum ``momentum``, or AdamW.
    lr : float
        Peak learning rate.
    momentum : float
        SGD momentum (ignored by AdamW).
    weight_decay : float
        Weight decay of the convolution and linear weights (decoupled with AdamW).
    schedule : {'cosine', 'constant'}
        Cosine decay to 0 after the warm-up, or a constant ``lr`` (no warm-up).
    warmup_epochs : int
        Epochs of linear warm-up (cosine schedule); at least 1 with ``max_seconds``.
    label_smoothing : float
        Label smoothing of the cross-entropy loss (Szegedy et al. 2016).
    mixup : float
        Mixup's Beta(``mixup``, ``mixup``) parameter (Zhang et al. 2018); 0 turns it off.
    crop_scale : (float, float) or None
        Area range of the random resized crops, as fractions of the stored image; None: the
        centred crop only (no random crop).
    crop_ratio : (float, float)
        Aspect-ratio range of the random crops.
    rotation : float
        Largest random rotation, in degrees.
    jitter : float
        Largest brightness offset and relative contrast change.
    tta : {'none', 'flip', 'crops'}
        Views averaged at prediction: the centred crop, plus its mirror, plus four corner crops
        and their mirrors (:func:`~classicvision.recognition.augment.test_time_transforms`).
        It is used only at prediction time, so it may be changed after ``fit``.
    test_size : int or None
        Side of the network input at prediction (see the module docstring); None: ``image_size``.
        Prediction only, like ``tta``.
    precision : {'float32', 'bfloat16', 'auto'}
        Arithmetic of the training forward pass and loss (see the module docstring); 'auto':
        bfloat16 where :func:`bfloat16_supported`. Prediction is float32 in every case.
    val_fraction : float
        Fraction of the training images held out (stratified) to report held-out accuracy (of the
        centred crop) after each epoch; 0 trains on all of them.
    device : str
        ``'auto'``, ``'cpu'``, ``'cuda'`` or ``'cuda:N'`` (:func:`resolve_device`).
    n_threads : int
        torch CPU threads during fit and predict (fixed for reproducibility).
    random_state : int or None
    progress : callable or None
        Called after each epoch as ``progress(epoch, epochs, record)`` with ``record`` a dict of
        ``loss``, ``train_accuracy``, ``val_accuracy``, ``lr`` and ``seconds``; ``epochs`` is the
        planned count (before the plan of a budgeted run, the ``epochs`` parameter).

    Attributes
    ----------
    model_ : torch.nn.Module
        The trained network, in eval mode, on ``device_``.
    classes_ : (n_classes,) array of the labels seen in ``fit``
    mean_, std_ : float
        Pixel statistics of the training images (fitting part only).
    held_out_ : (k,) int64 array
        Indices of the training images held out of fitting (stratified, ``val_fraction`` of each class).
    epochs_ : int
        Planned epochs (``epochs``, or the budget's plan).
    stopped_early_ : bool
        Whether the budget ended training before ``epochs_`` epochs.
    device_ : str
    precision_ : str
        The arithmetic training used: 'float32' or 'bfloat16'.
    n_features_ : int
        Width of the features (``channels[-1]``).
    history_ : dict of lists
        Per epoch: ``loss`` (mean training loss), ``train_accuracy`` (on the augmented batches),
        ``val_accuracy`` (held-out part; NaN without one), ``lr`` (at the epoch's last step), ``seconds``.

    References
    ----------
    He et al., "Deep residual learning for image recognition", CVPR 2016.
    Szegedy et al., "Rethinking the Inception architecture for computer vision", CVPR 2016, §7.
    Zhang et al., "mixup: beyond empirical risk minimization", ICLR 2018.
    Touvron et al., "Fixing the train-test resolution discrepancy", NeurIPS 2019.
    Loshchilov & Hutter, "SGDR", ICLR 2017; "Decoupled weight decay regularization", ICLR 2019.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> images = [rng.random((20, 20), dtype=np.float32) * (i % 2) for i in range(8)]
    >>> clf = CNNClassifier(epochs=1, image_size=16, channels=(4,), random_state=0, val_fraction=0)
    >>> clf.fit(images, np.arange(8) % 2).predict(images).shape
    (8,)
    """

    def __init__(self, *, architecture="resnet", channels=(32, 64, 128, 256), blocks=1, image_size=112, dropout=0.3,
                 epochs=30, max_seconds=None, batch_size=64, optimizer="sgd", lr=0.05, momentum=0.9,
                 weight_decay=5e-4, schedule="cosine", warmup_epochs=2, label_smoothing=0.1, mixup=0.0,
                 crop_scale=(0.25, 1.0), crop_ratio=(3 / 4, 4 / 3), rotation=10.0, jitter=0.2, tta="flip",
                 test_size=None, precision="float32", val_fraction=0.1, device="auto", n_threads=2, random_state=None,
                 progress=None):
        self.architecture = architecture
        self.channels = channels
        self.blocks = blocks
        self.image_size = image_size
        self.dropout = dropout
        self.epochs = epochs
        self.max_seconds = max_seconds
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.label_smoothing = label_smoothing
        self.mixup = mixup
        self.crop_scale = crop_scale
        self.crop_ratio = crop_ratio
        self.rotation = rotation
        self.jitter = jitter
        self.tta = tta
        self.test_size = test_size
        self.precision = precision
        self.val_fraction = val_fraction
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state
        self.progress = progress

    def _validate(self):
        for name in ("epochs", "batch_size", "image_size", "n_threads", "blocks"):
            check_scalar(getattr(self, name), name, kind=int, low=1)
        check_scalar(self.warmup_epochs, "warmup_epochs", kind=int, low=0)
        check_scalar(self.lr, "lr", low=0, low_inclusive=False)
        check_scalar(self.momentum, "momentum", low=0, high=1, high_inclusive=False)
        check_scalar(self.weight_decay, "weight_decay", low=0)
        check_scalar(self.val_fraction, "val_fraction", low=0, high=0.5)
        check_scalar(self.label_smoothing, "label_smoothing", low=0, high=1, high_inclusive=False)
        check_scalar(self.mixup, "mixup", low=0)
        check_scalar(self.jitter, "jitter", low=0, high=1)
        check_scalar(self.rotation, "rotation", low=0, high=180)
        check_scalar(self.dropout, "dropout", low=0, high=1, high_inclusive=False)
        for name, choices in (("architecture", ARCHITECTURES), ("optimizer", _OPTIMIZERS), ("schedule", SCHEDULES),
                              ("tta", tuple(TTA_VIEWS)), ("precision", _PRECISIONS)):
            check_choice(getattr(self, name), name, choices)
        if self.max_seconds is not None:
            check_scalar(self.max_seconds, "max_seconds", low=0, low_inclusive=False)
            if self.schedule == "cosine" and self.warmup_epochs < 1:
                raise ValueError("max_seconds with schedule='cosine' needs warmup_epochs >= 1 (the first epoch must "
                                 f"not depend on the planned length), got warmup_epochs={self.warmup_epochs}")
        for name, value, high in (("crop_scale", self.crop_scale, 1.0), ("crop_ratio", self.crop_ratio, None)):
            if value is None and name == "crop_scale":
                continue
            if not (isinstance(value, (tuple, list)) and len(value) == 2 and 0 < value[0] <= value[1]
                    and (high is None or value[1] <= high)):
                bound = f" <= {high}" if high else ""
                raise ValueError(f"{name} must be a pair (low, high) with 0 < low <= high{bound}, got {value!r}")
        if not isinstance(self.channels, (tuple, list)) or not self.channels:
            raise ValueError(f"channels must be a non-empty tuple of integers, got {self.channels!r}")
        if self.image_size < 2 ** len(self.channels):
            raise ValueError(f"image_size must be at least {2 ** len(self.channels)} for {len(self.channels)} "
                             f"blocks, got {self.image_size}")
        self._validate_test_size()

    def _validate_test_size(self):
        if self.test_size is not None:
            check_scalar(self.test_size, "test_size", kind=int, low=2 ** len(self.channels))

    def _test_side(self) -> int:
        return int(self.image_size if self.test_size is None else self.test_size)

    def fit(self, images, y):
        """Train on ``images`` (list of 2-D float32 arrays, any sizes) with labels ``y`` ((n,) array)."""
        start = time.perf_counter()
        torch = import_torch()
        self._validate()
        device = resolve_device(self.device)
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
        self.device_ = device
        self.precision_ = resolve_precision(self.precision, device)
        with _reproducible(torch, seed, self.n_threads, device):
            self.model_ = build_network(len(self.classes_), architecture=self.architecture,
                                        channels=tuple(self.channels), blocks=self.blocks, dropout=self.dropout)
            self.model_ = self.model_.to(device=device, memory_format=memory_format(self.model_))
            self._train(torch, stored, codes, fit_idx, val_idx, seed, start)
        self.model_.eval()
        self.n_features_ = int(self.channels[-1])
        return self

    def _train(self, torch, stored, codes, fit_idx, val_idx, seed, start):
        generator = torch.Generator().manual_seed(seed)   # on the CPU whatever the device: the same draws
        mix_rng = np.random.default_rng(seed + 1)
        device = self.device_
        train_x = torch.from_numpy(stored[fit_idx]).unsqueeze(1).to(device)
        train_y = torch.from_numpy(codes[fit_idx].astype(np.int64)).to(device)
        steps = -(-len(fit_idx) // self.batch_size)
        groups = _parameter_groups(self.model_, self.weight_decay)
        if self.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum, nesterov=self.momentum > 0)
        else:
            optimizer = torch.optim.AdamW(groups, lr=self.lr)
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=self.label_smoothing)
        autocast = training_autocast(device, self.precision_)
        self.epochs_, self.stopped_early_ = int(self.epochs), False
        self.history_ = {"loss": [], "train_accuracy": [], "val_accuracy": [], "lr": [], "seconds": []}
        epoch, step, lr = 0, 0, float(self.lr)
        plan_after = self._plan_after()
        layout = memory_format(self.model_)
        while epoch < self.epochs_:
            if epoch >= 1 and self.max_seconds is not None:
                elapsed = time.perf_counter() - start
                if elapsed + np.mean(self.history_["seconds"][min(epoch - 1, 1):]) > self.max_seconds:
                    self.stopped_early_ = True
                    logger.warning("time budget: stopping after %d of %d epochs (%.0f s of %.0f)", epoch,
                                   self.epochs_, elapsed, self.max_seconds)
                    break
            epoch_start = time.perf_counter()
            self.model_.train()
            order = torch.randperm(len(fit_idx), generator=generator)
            total_loss, correct = 0.0, 0
            for s in range(steps):
                idx = order[s * self.batch_size:(s + 1) * self.batch_size]
                if len(idx) < 2:  # batch norm needs two samples
                    continue
                lr = learning_rate(step, self.epochs_ * steps, peak=self.lr, warmup_steps=self.warmup_epochs * steps,
                                   schedule=self.schedule)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                idx_device = idx.to(device)
                batch = augment_batch(train_x[idx_device], self.image_size, generator, scale=self.crop_scale,
                                      ratio=tuple(self.crop_ratio), rotation=self.rotation, jitter=self.jitter)
                batch = ((batch - self.mean_) / self.std_).contiguous(memory_format=layout)
                target = train_y[idx_device]
                if self.mixup > 0:
                    lam = float(mix_rng.beta(self.mixup, self.mixup))
                    partner = torch.randperm(len(idx), generator=generator).to(device)
                    batch = lam * batch + (1 - lam) * batch[partner]
                    with autocast:
                        logits = self.model_(batch)
                        loss = lam * loss_fn(logits, target) + (1 - lam) * loss_fn(logits, target[partner])
                else:
                    with autocast:
                        logits = self.model_(batch)
                        loss = loss_fn(logits, target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                total_loss += loss.item() * len(idx)
                correct += int((logits.argmax(1) == target).sum())
            val = float("nan")
            if len(val_idx):
                proba, _ = self._outputs(torch, stored[val_idx], "none", self.image_size)
                val = float(np.mean(proba.argmax(1) == codes[val_idx]))
            record = {"loss": total_loss / len(fit_idx), "train_accuracy": correct / len(fit_idx),
                      "val_accuracy": val, "lr": lr, "seconds": time.perf_counter() - epoch_start}
            for key, value in record.items():
                self.history_[key].append(value)
            epoch += 1
            if epoch == plan_after and self.max_seconds is not None:
                self.epochs_ = plan_epochs(self.max_seconds, time.perf_counter() - start, record["seconds"],
                                           self.epochs, epochs_done=epoch)
                logger.info("time budget %.0f s: %d epochs planned after epoch %d (%.1f s)", self.max_seconds,
                            self.epochs_, epoch, record["seconds"])
            logger.info("epoch %d/%d %s", epoch, self.epochs_, record)
            if self.progress is not None:
                self.progress(epoch, self.epochs_, record)

    def _plan_after(self) -> int:
        """The epoch after which a budgeted run fixes its length: the second (the first pays for set-up),
        or the first when the warm-up lasts one epoch only (the second epoch's rates depend on the length)."""
        return 1 if (self.schedule == "cosine" and self.warmup_epochs == 1) else 2

    def _outputs(self, torch, stored, tta: str, size: int):
        """Softmax (n, n_classes) and features (n, F), averaged over the views of ``tta``, of stored
        images, with network inputs of side ``size``."""
        self.model_.eval()
        views = test_time_transforms(tta, base_scale=size / stored.shape[-1])
        probas, features = [], []
        layout = memory_format(self.model_)
        threads = torch.get_num_threads()
        torch.set_num_threads(self.n_threads)
        try:
            with torch.inference_mode():
                for s in range(0, len(stored), _BATCH):
                    batch = torch.from_numpy(stored[s:s + _BATCH]).unsqueeze(1).to(self.device_)
                    proba, embedded = 0, 0
                    for v in range(len(views)):
                        if v == 0:  # the centred crop, exactly
                            view = _centre(batch, size)
                        elif v == 1:  # its mirror
                            view = _centre(batch, size).flip(-1)
                        else:
                            view = warp_batch(batch, views[v:v + 1].expand(len(batch), 2, 3), size)
                        view = ((view - self.mean_) / self.std_).contiguous(memory_format=layout)
                        e = self.model_.embed(view)
                        proba = proba + torch.softmax(self.model_.classifier(e), 1)
                        embedded = embedded + e
                    probas.append((proba / len(views)).float().cpu().numpy())
                    features.append((embedded / len(views)).float().cpu().numpy())
        finally:
            torch.set_num_threads(threads)
        if not probas:
            return np.zeros((0, len(self.classes_)), np.float32), np.zeros((0, self.n_features_), np.float32)
        return np.concatenate(probas), np.concatenate(features)

    def predict_proba_and_features(self, images) -> tuple[np.ndarray, np.ndarray]:
        """``predict_proba`` and ``transform`` from one pass over the views: ((n, n_classes), (n, F)) float32."""
        check_is_fitted(self, "model_")
        check_choice(self.tta, "tta", tuple(TTA_VIEWS))
        self._validate_test_size()
        size = self._test_side()
        stored = _stack(_check_images(images), _pad_size(size))
        return self._outputs(import_torch(), stored, self.tta, size)

    def predict_proba(self, images) -> np.ndarray:
        """(n, n_classes) float32 class probabilities, columns in the order of ``classes_``."""
        return self.predict_proba_and_features(images)[0]

    def predict(self, images) -> np.ndarray:
        """(n,) predicted labels (int64 when the labels are integers)."""
        return self.labels(self.predict_proba(images))

    def labels(self, proba) -> np.ndarray:
        """The labels of the most probable class of each row of ``proba`` ((n, n_classes) array)."""
        labels = self.classes_[np.asarray(proba).argmax(1)]
        return labels.astype(np.int64) if np.issubdtype(labels.dtype, np.integer) else labels

    def transform(self, images) -> np.ndarray:
        """(n, channels[-1]) float32 penultimate-layer features, averaged over the views of ``tta``."""
        return self.predict_proba_and_features(images)[1]

    def network_inputs(self, images, *, standardized: bool = False) -> np.ndarray:
        """(n, S, S) float32 with S the test size: the centred crops the network sees (in [0, 1], or standardized)."""
        check_is_fitted(self, "model_")
        self._validate_test_size()
        size = self._test_side()
        crops = _centre(_stack(_check_images(images), _pad_size(size)), size)
        return np.ascontiguousarray((crops - self.mean_) / self.std_ if standardized else crops, dtype=np.float32)

    def save_weights(self, path) -> Path:
        """Write the state_dict to ``path`` (torch.save) and settings/statistics to ``path.json``.

        Returns the path of the weights file. Load with :func:`load_weights` (``weights_only=True``:
        tensors only, no pickled code).
        """
        check_is_fitted(self, "model_")
        torch = import_torch()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in self.model_.state_dict().items()}, path)
        settings = {"format": 2, "classes": self.classes_.tolist(), "mean": self.mean_, "std": self.std_,
                    "architecture": self.architecture, "image_size": int(self.image_size),
                    "channels": [int(c) for c in self.channels], "blocks": int(self.blocks),
                    "dropout": float(self.dropout), "tta": self.tta, "n_threads": int(self.n_threads),
                    "test_size": None if self.test_size is None else int(self.test_size)}
        _side_file(path).write_text(json.dumps(settings, indent=2))
        return path


def _side_file(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def load_weights(path, *, device: str = "cpu") -> CNNClassifier:
    """A fitted :class:`CNNClassifier` from :meth:`CNNClassifier.save_weights` files.

    The tensors are read with ``torch.load(weights_only=True)`` (no pickled code runs) and the
    architecture from the JSON side file; files written before the ResNet (no ``architecture``
    key) hold the SimpleNet, whose ``flip_test`` becomes ``tta='flip'`` or ``'none'``.

    Parameters
    ----------
    path : path
        The weights file; ``path.json`` must be beside it.
    device : str
        Where the network goes (:func:`resolve_device`).

    Returns
    -------
    CNNClassifier
        Fitted (``predict``, ``transform`` work); the training parameters keep their defaults.
    """
    torch = import_torch()
    path = Path(path)
    if not path.is_file() or not _side_file(path).is_file():
        raise FileNotFoundError(f"weights not found: need {path} and {_side_file(path)}")
    settings = json.loads(_side_file(path).read_text())
    tta = settings.get("tta", "flip" if settings.get("flip_test", True) else "none")
    clf = CNNClassifier(architecture=settings.get("architecture", "simple"), image_size=settings["image_size"],
                        channels=tuple(settings["channels"]), blocks=settings.get("blocks", 1),
                        dropout=settings["dropout"], tta=tta, test_size=settings.get("test_size"),
                        n_threads=settings["n_threads"], device=device)
    clf.classes_ = np.asarray(settings["classes"])
    clf.mean_, clf.std_ = settings["mean"], settings["std"]
    clf.n_features_ = int(settings["channels"][-1])
    clf.device_ = resolve_device(device)
    model = build_network(len(clf.classes_), architecture=clf.architecture, channels=clf.channels,
                          blocks=clf.blocks, dropout=clf.dropout)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    clf.model_ = model.to(device=clf.device_, memory_format=memory_format(model)).eval()
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
