"""Tests for classicvision.cnn: shapes, learning a separable toy set, reproducibility, weights I/O."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from classicvision.recognition import augment, cnn  # noqa: E402
from classicvision.recognition.cam import feature_maps, grad_cam  # noqa: E402
from classicvision.recognition.cnn import (  # noqa: E402
    CNNClassifier,
    CNNFeatures,
    _stack,
    build_network,
    load_weights,
    resolve_device,
)
from classicvision.recognition.schedule import learning_rate, plan_epochs  # noqa: E402

SMALL = dict(image_size=16, channels=(8, 16), batch_size=16, lr=0.05, val_fraction=0, label_smoothing=0.0, n_threads=1)


def toy_set(n_per_class: int, seed: int):
    """Three classes with distinct patterns (horizontal stripes, vertical stripes, a centred blob),
    random sizes 18-30 px, random phase and noise. Returns (images, labels)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(3):
        for _ in range(n_per_class):
            height, width = rng.integers(18, 31, size=2)
            yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
            phase = rng.uniform(0, 2 * np.pi)
            if label == 0:
                image = 0.5 + 0.4 * np.sin(2 * np.pi * yy / 6 + phase)
            elif label == 1:
                image = 0.5 + 0.4 * np.sin(2 * np.pi * xx / 6 + phase)
            else:
                r2 = ((yy - height / 2) / height) ** 2 + ((xx - width / 2) / width) ** 2
                image = 0.2 + 0.6 * (r2 < 0.08)
            image = image + rng.normal(0, 0.05, image.shape)
            images.append(np.clip(image, 0, 1).astype(np.float32))
            labels.append(label)
    return images, np.asarray(labels)


@pytest.fixture(scope="module")
def toy():
    return toy_set(20, 0), toy_set(10, 1)


@pytest.fixture(scope="module")
def fitted(toy):
    (images, labels), _ = toy
    return CNNClassifier(epochs=6, random_state=0, **SMALL).fit(images, labels)


@pytest.mark.parametrize("architecture", ["resnet", "simple"])
def test_network_output_shapes(architecture):
    net = build_network(15, architecture=architecture, channels=(8, 16, 32, 64))
    x = torch.zeros(3, 1, 64, 64)
    assert tuple(net(x).shape) == (3, 15)
    assert tuple(net.embed(x).shape) == (3, 64)
    maps = net.feature_maps(x)
    assert tuple(maps[-1].shape) == (3, 64, 4, 4)  # 64 / 2**4 either way
    assert len(maps) == (5 if architecture == "resnet" else 4)  # the ResNet's stem, then one map per stage
    torch.testing.assert_close(net.embed(x), maps[-1].mean(dim=(2, 3)))
    assert tuple(build_network(2, architecture=architecture, channels=(4,))(torch.zeros(1, 1, 8, 8)).shape) == (1, 2)


def test_memory_format_keeps_narrow_strided_shortcuts_out_of_channels_last():
    """torch 2.13's CPU backward of a strided 1x1 convolution with < 8 input channels in
    channels-last corrupts the heap on AVX2 machines (the tiny networks of these tests aborted the
    run); those networks train in NCHW, the others in channels-last."""
    from classicvision.recognition.networks import memory_format

    assert memory_format(build_network(3, channels=(4, 8))) == torch.contiguous_format       # 4 -> 8 shortcut
    assert memory_format(build_network(3, channels=(8, 16, 32))) == torch.channels_last
    assert memory_format(build_network(3, channels=(4,))) == torch.channels_last             # no shortcut
    assert memory_format(build_network(3, architecture="simple", channels=(4, 8))) == torch.channels_last
    CNNClassifier(epochs=1, random_state=0, image_size=16, channels=(4, 8), n_threads=1).fit(
        np.random.default_rng(0).random((8, 20, 20)).astype(np.float32), np.arange(8) % 2)    # trains, no abort


def test_resnet_blocks_start_as_identity_and_errors():
    net = build_network(3, channels=(4, 8), blocks=2)
    assert len(net.stages[0]) == 2 and all(float(b.bn2.weight.detach().abs().sum()) == 0 for s in net.stages for b in s)
    with pytest.raises(ValueError, match="architecture must be one of"):
        build_network(3, architecture="vgg")
    with pytest.raises(ValueError, match="blocks must be >= 1"):
        build_network(3, blocks=0)


def test_learns_separable_toy_set(toy, fitted):
    _, (test_images, test_labels) = toy
    predicted = fitted.predict(test_images)
    assert predicted.shape == (30,) and predicted.dtype == np.int64
    assert fitted.score(test_images, test_labels) >= 0.8  # chance is 1/3
    proba = fitted.predict_proba(test_images)
    assert proba.shape == (30, 3) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    assert len(fitted.history_["loss"]) == 6
    assert fitted.history_["loss"][-1] < fitted.history_["loss"][0]
    assert np.isnan(fitted.history_["val_accuracy"]).all()  # val_fraction=0: no held-out part


def test_held_out_accuracy_is_reported(toy):
    (images, labels), _ = toy
    clf = CNNClassifier(epochs=2, random_state=0, **{**SMALL, "val_fraction": 0.2}).fit(images, labels)
    assert set(clf.history_) >= {"loss", "train_accuracy", "val_accuracy", "lr", "seconds"}
    # the last epoch's held-out accuracy is the final model's accuracy on the held-out images (centred crop)
    held = clf.held_out_
    assert len(held) == 12 and np.bincount(labels[held]).tolist() == [4, 4, 4]
    expected = np.mean(clf.set_params(tta="none").predict([images[i] for i in held]) == labels[held])
    assert clf.history_["val_accuracy"][-1] == pytest.approx(expected)


def test_string_labels(toy):
    (images, labels), _ = toy
    names = np.array(["h", "v", "blob"])[labels]
    clf = CNNClassifier(epochs=1, random_state=0, **SMALL).fit(images, names)
    assert set(clf.predict(images[:5])) <= set(names)


def test_same_random_state_gives_identical_weights_and_predictions(toy, fitted):
    (images, labels), (test_images, _) = toy
    state = torch.get_rng_state()
    again = CNNClassifier(epochs=6, random_state=0, **SMALL).fit(images, labels)
    assert torch.equal(state, torch.get_rng_state())  # the global generator is left untouched
    for (name, a), b in zip(fitted.model_.state_dict().items(), again.model_.state_dict().values()):
        assert torch.equal(a, b), name
    np.testing.assert_array_equal(fitted.predict_proba(test_images), again.predict_proba(test_images))
    other = CNNClassifier(epochs=1, random_state=1, **SMALL).fit(images, labels)
    first = CNNClassifier(epochs=1, random_state=0, **SMALL).fit(images, labels)
    assert not torch.equal(other.model_.classifier.weight, first.model_.classifier.weight)


def test_save_load_round_trip(tmp_path, toy, fitted):
    _, (test_images, _) = toy
    path = fitted.save_weights(tmp_path / "weights.pt")
    state = torch.load(path, weights_only=True)
    assert set(state) == set(fitted.model_.state_dict())
    settings = json.loads((tmp_path / "weights.pt.json").read_text())
    assert settings["mean"] == fitted.mean_ and settings["channels"] == [8, 16]
    loaded = load_weights(path)
    np.testing.assert_array_equal(loaded.predict(test_images), fitted.predict(test_images))
    np.testing.assert_allclose(loaded.predict_proba(test_images), fitted.predict_proba(test_images), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="weights not found"):
        load_weights(tmp_path / "missing.pt")


def test_cnn_features(tmp_path, toy, fitted):
    _, (test_images, _) = toy
    features = CNNFeatures(classifier=fitted).fit().transform(test_images)
    assert features.shape == (30, 16) and features.dtype == np.float32
    assert np.isfinite(features).all()
    from_file = CNNFeatures(weights=fitted.save_weights(tmp_path / "w.pt")).fit().transform(test_images)
    np.testing.assert_allclose(from_file, features, atol=1e-5)
    assert CNNFeatures(classifier=fitted).fit().transform([]).shape == (0, 16)
    with pytest.raises(ValueError, match="exactly one"):
        CNNFeatures().fit()
    with pytest.raises(NotFittedError):
        CNNFeatures(classifier=fitted).transform(test_images)
    with pytest.raises(NotFittedError):
        CNNFeatures(classifier=CNNClassifier()).fit()


def test_normalization_uses_training_images_only(toy):
    (images, labels), _ = toy
    clf = CNNClassifier(epochs=1, random_state=0, **SMALL).fit(images, labels)
    stored = _stack(images, 18)  # pad size of image_size 16
    assert clf.mean_ == pytest.approx(stored.mean(), rel=1e-5)
    assert clf.std_ == pytest.approx(stored.std(), rel=1e-5)
    clf.predict([np.ones((20, 20), np.float32)] * 5)  # predicting on other data changes nothing
    assert clf.mean_ == pytest.approx(stored.mean(), rel=1e-5)
    # with a held-out part, only the fitting part counts
    held = CNNClassifier(epochs=1, random_state=0, **{**SMALL, "val_fraction": 0.25}).fit(images, labels)
    assert len(held.held_out_) == 15 and np.bincount(labels[held.held_out_]).tolist() == [5, 5, 5]
    fitting = np.setdiff1d(np.arange(len(images)), held.held_out_)
    assert held.mean_ == pytest.approx(stored[fitting].mean(), rel=1e-5)
    assert held.mean_ != pytest.approx(stored.mean(), rel=1e-6)


def test_predict_before_fit_raises():
    with pytest.raises(NotFittedError):
        CNNClassifier().predict([np.zeros((8, 8), np.float32)])


def test_input_errors(toy):
    (images, labels), _ = toy
    with pytest.raises(ValueError, match="y must have shape"):
        CNNClassifier(**SMALL).fit(images, labels[:-1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        CNNClassifier(**SMALL).fit(images[:3], [0, 0, 0])
    with pytest.raises(ValueError, match="image_size must be at least 16"):
        CNNClassifier(image_size=8, channels=(4, 4, 4, 4)).fit(images, labels)
    with pytest.raises(ValueError, match=r"images\[0\] must be 2-D"):
        CNNClassifier(**SMALL).fit([np.zeros((4, 4, 4))] + images[1:], labels)
    with pytest.raises(TypeError, match="epochs"):
        CNNClassifier(epochs=1.5).fit(images, labels)
    params = clone(CNNClassifier(epochs=3, lr=0.5)).get_params()
    assert params["epochs"] == 3 and params["lr"] == 0.5


def test_import_without_torch_gives_install_hint():
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n"
            "            raise ModuleNotFoundError(name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import classicvision.recognition.cnn as cnn, numpy as np\n"
            "try:\n    cnn.CNNClassifier().fit([np.zeros((8, 8))] * 2, [0, 1])\n"
            "except ImportError as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install classicvision[cnn]" in result.stdout


def test_same_random_state_reproduces_with_two_threads_and_mixup(toy):
    (images, labels), _ = toy
    options = {**SMALL, "n_threads": 2, "mixup": 0.4, "epochs": 2}
    first, again = (CNNClassifier(random_state=3, **options).fit(images, labels) for _ in range(2))
    for (name, a), b in zip(first.model_.state_dict().items(), again.model_.state_dict().values()):
        assert torch.equal(a, b), name
    plain = CNNClassifier(random_state=3, **{**options, "mixup": 0.0}).fit(images, labels)
    assert not torch.equal(plain.model_.classifier.weight, first.model_.classifier.weight)


def test_legacy_simple_network_round_trip(tmp_path, toy):
    (images, labels), (test_images, _) = toy
    clf = CNNClassifier(epochs=1, random_state=0, architecture="simple", **SMALL).fit(images, labels)
    path = clf.save_weights(tmp_path / "simple.pt")
    settings = json.loads((tmp_path / "simple.pt.json").read_text())
    assert settings["architecture"] == "simple" and settings["tta"] == "flip"
    np.testing.assert_array_equal(load_weights(path).predict_proba(test_images), clf.predict_proba(test_images))
    # a side file written before the ResNet: no architecture (the SimpleNet), flip_test instead of tta
    for key in ("architecture", "blocks", "tta", "format"):
        del settings[key]
    (tmp_path / "simple.pt.json").write_text(json.dumps({**settings, "flip_test": False}))
    old = load_weights(path)
    assert old.architecture == "simple" and old.tta == "none"
    np.testing.assert_array_equal(old.predict_proba(test_images), clf.set_params(tta="none").predict_proba(test_images))


def test_device_auto_is_the_cpu_here(toy):
    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto") == "cpu"
        with pytest.raises(ValueError, match="sees no CUDA"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")
    (images, labels), _ = toy
    clf = CNNClassifier(epochs=1, random_state=0, device="auto", **SMALL).fit(images, labels)
    assert clf.device_ == resolve_device("auto") and next(clf.model_.parameters()).device.type == clf.device_


def test_bfloat16_training_is_reproducible_float32_at_prediction_and_auto_follows_the_hardware(
        monkeypatch, toy, fitted):
    (images, labels), (test_images, _) = toy
    runs = [CNNClassifier(epochs=6, random_state=0, precision="bfloat16", **SMALL).fit(images, labels)
            for _ in range(2)]
    assert [r.precision_ for r in runs] == ["bfloat16"] * 2
    for (name, a), b in zip(runs[0].model_.state_dict().items(), runs[1].model_.state_dict().values()):
        assert torch.equal(a, b), name
        assert a.dtype == fitted.model_.state_dict()[name].dtype   # the weights stay float32
    # autocast really ran: same draws, other arithmetic, other weights, but the same task learned
    assert not torch.equal(runs[0].model_.classifier.weight, fitted.model_.classifier.weight)
    np.testing.assert_allclose(runs[0].model_.classifier.weight.detach(), fitted.model_.classifier.weight.detach(),
                               atol=0.1)
    (_, test_labels) = toy[1]
    assert runs[0].score(test_images, test_labels) >= 0.9
    # prediction is float32: the probabilities are those of the float32 network on float32 inputs
    with torch.inference_mode():
        x = cnn._centre(torch.from_numpy(_stack(test_images[:4], cnn._pad_size(16))).unsqueeze(1), 16)
        expected = torch.softmax(runs[0].model_((x - runs[0].mean_) / runs[0].std_), 1).numpy()
    got = runs[0].set_params(tta="none").predict_proba(test_images[:4])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert got.dtype == np.float32
    monkeypatch.setattr(cnn, "bfloat16_supported", lambda device="cpu": False)
    auto = CNNClassifier(epochs=6, random_state=0, precision="auto", **SMALL).fit(images, labels)
    assert auto.precision_ == "float32" and torch.equal(auto.model_.classifier.weight, fitted.model_.classifier.weight)
    with pytest.raises(ValueError, match="precision"):
        CNNClassifier(epochs=1, precision="float16", **SMALL).fit(images, labels)


# ---------------------------------------------------------------------------------------- augmentation
def test_flip_really_flips_and_centre_crop_is_exact():
    generator = torch.Generator().manual_seed(0)
    batch = torch.rand(16, 1, 18, 18)
    centre = batch[..., 1:17, 1:17]
    transforms = augment.random_crop_transforms(16, generator, scale=None, rotation=0, base_scale=16 / 18)
    out = augment.warp_batch(batch, transforms, 16)
    mirrored = transforms[:, 0, 0] < 0
    assert 0 < int(mirrored.sum()) < 16  # both kinds drawn
    torch.testing.assert_close(out[~mirrored], centre[~mirrored], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[mirrored], centre[mirrored].flip(-1), atol=1e-5, rtol=0)
    identity = augment.test_time_transforms("none").expand(16, 2, 3)
    torch.testing.assert_close(augment.warp_batch(batch, identity, 18), batch, atol=1e-5, rtol=0)


def test_random_crops_keep_shape_range_and_follow_the_generator():
    batch = torch.rand(8, 1, 40, 40)
    draw = lambda seed, **kw: augment.augment_batch(batch, 32, torch.Generator().manual_seed(seed), **kw)  # noqa: E731
    out = draw(0, jitter=0.0)
    assert out.shape == (8, 1, 32, 32) and out.dtype == torch.float32
    assert float(out.min()) >= float(batch.min()) - 1e-6 and float(out.max()) <= float(batch.max()) + 1e-6
    assert torch.equal(draw(0), draw(0)) and not torch.equal(draw(0), draw(1))
    transforms = augment.random_crop_transforms(1000, torch.Generator().manual_seed(0), scale=(0.25, 1.0),
                                                rotation=0, flip=False)
    side_x, side_y, cx, cy = transforms[:, 0, 0], transforms[:, 1, 1], transforms[:, 0, 2], transforms[:, 1, 2]
    area = side_x * side_y
    assert float(area.min()) >= 0.25 - 1e-6 and float(area.max()) <= 1 + 1e-6
    assert bool(((cx.abs() + side_x) <= 1 + 1e-6).all() and ((cy.abs() + side_y) <= 1 + 1e-6).all())  # inside
    jittered = augment.jitter_batch(torch.full((4, 1, 5, 5), 0.5), torch.Generator().manual_seed(0), 0.2)
    assert float((jittered - 0.5).abs().max()) <= 0.2 + 1e-6  # a flat image only moves by the brightness


def test_test_time_views():
    assert [len(augment.test_time_transforms(t)) for t in ("none", "flip", "crops")] == [1, 2, 10]
    views = augment.test_time_transforms("crops", base_scale=0.9)
    torch.testing.assert_close(views[0], torch.tensor([[0.9, 0, 0], [0, 0.9, 0]]))
    torch.testing.assert_close(views[1], torch.tensor([[-0.9, 0, 0], [0, 0.9, 0]]))
    corners = views[2:]
    assert bool((corners[:, 0, 2].abs() + corners[:, 1, 1] <= 1 + 1e-6).all())
    assert sorted({(float(x), float(y)) for x, y in corners[:, :, 2].tolist()}) == [(-0.25, -0.25), (-0.25, 0.25),
                                                                                     (0.25, -0.25), (0.25, 0.25)]
    with pytest.raises(ValueError, match="tta must be one of"):
        augment.test_time_transforms("five")


def test_tta_averages_the_softmax_of_the_views(toy, fitted):
    _, (test_images, _) = toy
    x = torch.from_numpy(fitted.network_inputs(test_images, standardized=True)).unsqueeze(1)
    with torch.inference_mode():
        centre, mirror = (torch.softmax(fitted.model_(v), 1).numpy() for v in (x, x.flip(-1)))
        embedded = ((fitted.model_.embed(x) + fitted.model_.embed(x.flip(-1))) / 2).numpy()
    clf = clone(fitted)  # same parameters, then the fitted state
    clf.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    np.testing.assert_allclose(clf.set_params(tta="none").predict_proba(test_images), centre, atol=1e-6)
    proba, features = clf.set_params(tta="flip").predict_proba_and_features(test_images)
    np.testing.assert_allclose(proba, (centre + mirror) / 2, atol=1e-6)
    np.testing.assert_allclose(features, embedded, atol=1e-5)
    crops = clf.set_params(tta="crops").predict_proba(test_images)
    assert crops.shape == (30, 3) and crops.dtype == np.float32
    np.testing.assert_allclose(crops.sum(1), 1, atol=1e-5)
    assert not np.allclose(crops, proba)


def test_test_size_feeds_larger_centred_crops_of_a_larger_resize(tmp_path, toy, fitted):
    _, (test_images, _) = toy
    clf = clone(fitted).set_params(test_size=24, tta="none")
    clf.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    crops = clf.network_inputs(test_images)
    assert crops.shape == (30, 24, 24)
    # the centred 24 px crop of each image resized (area / bilinear, as cv2) to 24 + 2 * round(24 / 16) = 28
    stored = _stack(test_images, 28)
    np.testing.assert_array_equal(crops, stored[:, 2:26, 2:26])
    x = torch.from_numpy((crops - fitted.mean_) / fitted.std_).unsqueeze(1)
    with torch.inference_mode():
        expected = torch.softmax(fitted.model_(x), 1).numpy()
    np.testing.assert_allclose(clf.predict_proba(test_images), expected, atol=1e-6)
    at_training_size = clf.set_params(test_size=None).predict_proba(test_images)
    assert not np.allclose(expected, at_training_size, atol=1e-3)
    clf.set_params(test_size=24)
    loaded = load_weights(clf.save_weights(tmp_path / "w.pt"))
    assert loaded.test_size == 24
    np.testing.assert_allclose(loaded.predict_proba(test_images), expected, atol=1e-6)
    with pytest.raises(ValueError, match="test_size"):
        clf.set_params(test_size=2).predict(test_images)


# ---------------------------------------------------------------------------------------- schedule and budget
def test_learning_rate_schedule():
    rates = [learning_rate(s, 100, peak=0.1, warmup_steps=10) for s in range(100)]
    assert rates[:10] == pytest.approx([0.01 * (s + 1) for s in range(10)])
    assert rates[10] == pytest.approx(0.1) and rates[55] == pytest.approx(0.05) and 0 < rates[-1] < 1e-3
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    # the warm-up does not depend on the run's length: what a budgeted run relies on
    assert [learning_rate(s, 30, peak=0.1, warmup_steps=10) for s in range(10)] == rates[:10]
    assert {learning_rate(s, 100, peak=0.1, warmup_steps=10, schedule="constant") for s in range(100)} == {0.1}
    with pytest.raises(ValueError, match="schedule must be one of"):
        learning_rate(0, 10, peak=0.1, schedule="step")
    assert plan_epochs(100, elapsed=20, epoch_seconds=8, max_epochs=50, epochs_done=2) == 12
    assert plan_epochs(100, elapsed=120, epoch_seconds=8, max_epochs=50, epochs_done=2) == 2


class _Clock:
    """A fake ``time`` for the cnn module: the clock moves only when a batch is augmented, by
    ``seconds_per_image`` (a function of the batch number) per image, as if that were the throughput."""

    def __init__(self, seconds_per_image):
        self.now, self.batches, self.seconds_per_image = 0.0, 0, seconds_per_image

    def perf_counter(self):
        return self.now

    def augment(self, batch, *args, **kwargs):
        self.now += self.seconds_per_image(self.batches) * batch.shape[0]
        self.batches += 1
        return augment.augment_batch(batch, *args, **kwargs)


def _budgeted(monkeypatch, toy, seconds_per_image, **options):
    (images, labels), _ = toy
    clock = _Clock(seconds_per_image)
    monkeypatch.setattr(cnn, "time", clock)
    monkeypatch.setattr(cnn, "augment_batch", clock.augment)
    clf = CNNClassifier(random_state=0, **{**SMALL, "epochs": 50, **options}).fit(images, labels)
    monkeypatch.undo()
    return clf


def test_budget_chooses_the_epochs_from_the_measured_throughput(monkeypatch, toy):
    # 60 images at 0.1 s each: 6 s per epoch; after epoch 2 (12 s), 28 s are left: 4 more epochs
    clf = _budgeted(monkeypatch, toy, lambda batch: 0.1, max_seconds=40.0)
    assert clf.epochs_ == 6 and len(clf.history_["loss"]) == 6 and not clf.stopped_early_
    assert clf.history_["seconds"] == pytest.approx([6.0] * 6)
    # and it trained exactly as the same number of epochs without a budget does
    (images, labels), _ = toy
    fixed = CNNClassifier(random_state=0, **{**SMALL, "epochs": 6}).fit(images, labels)
    for (name, a), b in zip(fixed.model_.state_dict().items(), clf.model_.state_dict().values()):
        assert torch.equal(a, b), name
    # a one-epoch warm-up plans after the first epoch: 1 + floor((40 - 6) / 6) = 6
    assert _budgeted(monkeypatch, toy, lambda batch: 0.1, max_seconds=40.0, warmup_epochs=1).epochs_ == 6
    assert _budgeted(monkeypatch, toy, lambda batch: 0.1, max_seconds=400.0).epochs_ == 50  # the cap


def test_budget_stops_when_epochs_slow_down(monkeypatch, toy):
    # 4 batches per epoch; from epoch 3 on each image costs twice as much (12 s per epoch): the plan
    # (6 epochs) no longer fits, and training stops before the epoch that would end past 40 s
    clf = _budgeted(monkeypatch, toy, lambda batch: 0.1 if batch < 8 else 0.2, max_seconds=40.0)
    assert clf.epochs_ == 6 and clf.stopped_early_
    assert clf.history_["seconds"] == pytest.approx([6.0, 6.0, 12.0, 12.0])  # 36 s; a fifth would end at 48
    short = _budgeted(monkeypatch, toy, lambda batch: 0.1, max_seconds=10.0)  # under two epochs: one
    assert len(short.history_["loss"]) == 1 and short.stopped_early_ and short.epochs_ == 50
    with pytest.raises(ValueError, match="needs warmup_epochs >= 1"):
        CNNClassifier(max_seconds=10.0, warmup_epochs=0, **SMALL).fit(*toy[0])


# ---------------------------------------------------------------------------------------- Grad-CAM
def test_grad_cam_is_the_class_activation_map_over_hw(toy, fitted):
    # the head is average pooling then one linear layer, so alpha_k = W[c, k] / (h w) (Zhou et al. 2016)
    _, (test_images, test_labels) = toy
    images = test_images[:6]
    maps = grad_cam(fitted, images, target=test_labels[:6])
    assert maps.shape == (6, 16, 16) and maps.dtype == np.float32 and (maps >= 0).all() and maps.max() > 0
    last = feature_maps(fitted, images)[-1]                          # (6, 16, 4, 4)
    weights = fitted.model_.classifier.weight.detach().numpy()[test_labels[:6]]  # (6, 16)
    cam = np.maximum(np.einsum("nk,nkij->nij", weights, last) / (last.shape[2] * last.shape[3]), 0)
    expected = torch.nn.functional.interpolate(torch.from_numpy(cam)[:, None], size=(16, 16), mode="bilinear",
                                               align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-6)
    # no target: the class predicted from the centred crop; one label for all; unknown labels refused
    predicted = fitted.set_params(tta="none").predict(images)
    np.testing.assert_allclose(grad_cam(fitted, images), grad_cam(fitted, images, target=predicted), atol=1e-6)
    assert grad_cam(fitted, images, target=2).shape == (6, 16, 16)
    assert grad_cam(fitted, [], target=None).shape == (0, 16, 16)
    with pytest.raises(ValueError, match="target must be labels"):
        grad_cam(fitted, images, target=7)
    with pytest.raises(NotFittedError):
        grad_cam(CNNClassifier(), images)


def test_feature_maps_follow_the_network(fitted, toy):
    _, (test_images, _) = toy
    maps = feature_maps(fitted, test_images[:2])
    assert [m.shape for m in maps] == [(2, 8, 8, 8), (2, 8, 8, 8), (2, 16, 4, 4)]
    assert all(m.dtype == np.float32 for m in maps)
    np.testing.assert_allclose(maps[-1].mean(axis=(2, 3)), fitted.set_params(tta="none").transform(test_images[:2]),
                               atol=1e-5)


TINY_CNN = dict(image_size=16, channels=(4, 8), val_fraction=0.2, n_threads=1)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """train/ and test/ class folders of toy PNGs, with one unreadable file in test/."""
    import cv2

    root = tmp_path_factory.mktemp("data")
    (images, labels), (test_images, test_labels) = toy_set(6, 2), toy_set(3, 3)
    for split, split_images, split_labels in (("train", images, labels), ("test", test_images, test_labels)):
        for i, (image, label) in enumerate(zip(split_images, split_labels)):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{i:03d}.png"), (image * 255).astype(np.uint8))
    (root / "test" / "class0" / "broken.png").write_bytes(b"not an image")
    return root


def test_run_cnn_on_a_tiny_folder(tmp_path, tiny_folder):
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix

    from classicvision.datasets import load_image_folder, read_images
    from classicvision.experiments.cnn import run_cnn

    out = tmp_path / "out"
    results = run_cnn(tiny_folder, epochs=2, out=out, progress=False, random_state=0, **TINY_CNN)
    assert results["n_train"] == 18 and results["n_test"] == 9
    assert len(results["skipped"]) == 1 and "broken.png" in results["skipped"][0]
    assert len(results["epoch_seconds"]) == 2
    y_true, y_pred = np.asarray(results["y_true"]), np.asarray(results["y_pred"])
    paths, labels, _ = load_image_folder(tiny_folder, "test")
    test_images, kept, _ = read_images(paths)
    np.testing.assert_array_equal(y_true, labels[kept])
    np.testing.assert_array_equal(results["confusion_matrix"], confusion_matrix(y_true, y_pred, labels=range(3)))
    assert results["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert results["mean_per_class_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    # the saved network predicts what the run reported
    np.testing.assert_array_equal(load_weights(out / "weights.pt").predict(test_images), y_pred)
    svm = results["cnn_features_svm"]
    assert np.asarray(svm["confusion_matrix"]).sum() == 9 and svm["C"] in (0.001, 0.01, 0.1, 1.0)
    for name in ("report.md", "results.json", "confusion.png", "training_curves.png", "weights.pt", "weights.pt.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text())
    assert saved["n_test"] == 9 and saved["confusion_matrix"] == results["confusion_matrix"]
    assert "training curves" in (out / "report.md").read_text()
    settings = results["settings"]
    assert settings["device"] == resolve_device("auto") and settings["n_threads"] == 1
    assert settings["epochs"] == settings["epochs_planned"] == settings["max_epochs"] == 2
    assert not settings["stopped_early"] and results["budget"]["max_seconds"] == 870.0
    assert 0 < results["budget"]["train_max_seconds"] < 870.0


def test_run_cnn_threads_budget_and_ablation(tmp_path, tiny_folder):
    from classicvision.experiments.cnn import run_cnn

    ablation = tmp_path / "cnn_ablation.md"
    ablation.write_text("# CNN ablation\n\n| variant | validation |\n| --- | --- |\n| default | 50% |\n")
    ablation.with_suffix(".json").write_text("{}")
    results = run_cnn(tiny_folder, epochs=1, out=tmp_path / "out", progress=False, max_seconds=None,
                      n_threads="auto", ablation=ablation, **{k: v for k, v in TINY_CNN.items() if k != "n_threads"})
    assert results["settings"]["n_threads"] in (1, 2) and results["budget"]["train_max_seconds"] is None
    assert set(results["budget"]["probe_seconds_per_training_image"]) == {1, 2}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "No time budget: 1 epochs." in report and "| default | 50% |" in report and "## Ablation" in report
    with pytest.raises(ValueError, match="leaves no time to train"):
        run_cnn(tiny_folder, epochs=1, progress=False, max_seconds=1.0, **TINY_CNN)

