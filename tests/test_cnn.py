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

from classicvision.recognition.cnn import CNNClassifier, CNNFeatures, _stack, build_network, load_weights  # noqa: E402

SMALL = dict(image_size=16, channels=(8, 16), batch_size=16, lr=1e-2, val_fraction=0, label_smoothing=0.0, n_threads=1)


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


def test_network_output_shapes():
    net = build_network(15, channels=(32, 64, 128, 256))
    x = torch.zeros(3, 1, 64, 64)
    assert tuple(net(x).shape) == (3, 15)
    assert tuple(net.embed(x).shape) == (3, 256)
    assert tuple(build_network(2, channels=(4,))(torch.zeros(1, 1, 8, 8)).shape) == (1, 2)


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
    assert set(clf.history_) >= {"loss", "train_accuracy", "val_accuracy", "seconds"}
    # the last epoch's held-out accuracy is the final model's accuracy on the held-out images
    held = clf.held_out_
    assert len(held) == 12 and np.bincount(labels[held]).tolist() == [4, 4, 4]
    expected = np.mean(clf.predict([images[i] for i in held]) == labels[held])
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
