"""Tests for classicvision.experiments.scene (run_bovw, run_tiny_knn) and experiments.reports, on
small generated folders whose classes differ clearly (and 3x10 images of 15-Scene)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, recall_score

import classicvision.recognition.transformers as transformers
from classicvision.datasets import load_image_folder, read_images
from classicvision.experiments.reports import json_default, scores, write_report
from classicvision.experiments.scene import kernel_maps, run_bovw, run_tiny_knn
from classicvision.recognition.encoding import BagOfWords
from classicvision.recognition.transformers import DenseSIFT

SMALL = {"n_words": 8, "rootsift": False, "levels": 2, "C": (1.0, 10.0), "cv": 2, "n_jobs": 1, "progress": False}
CLASSES = ("blobs", "stripes_h", "stripes_v")  # sorted, as load_image_folder lists them


def texture(kind: int, seed: int, size: int = 48) -> np.ndarray:
    """uint8 image of class ``kind``: 0 blurred noise blobs, 1 horizontal stripes, 2 vertical stripes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    if kind == 0:
        image = cv2.GaussianBlur(rng.random((size, size), dtype=np.float32), (0, 0), 2.0) * 2 - 0.5
    elif kind == 1:
        image = 0.5 + 0.4 * np.sin(yy * 0.8 + phase)
    else:
        image = 0.5 + 0.4 * np.sin(xx * 0.8 + phase)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def make_folder(root, make=texture, n=4):
    for split, offset in (("train", 0), ("test", 100)):
        for kind, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(str(root / split / name / f"{i}.png"), make(kind, offset + 10 * kind + i))
    (root / "test" / "blobs" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path / "data")


@pytest.fixture
def counter(monkeypatch):
    """Counts dense SIFT computations (the runners use one process with n_jobs=1)."""
    calls = []
    real = transformers.dense_sift

    def counting(image, **kwargs):
        calls.append(image.shape)
        return real(image, **kwargs)

    monkeypatch.setattr(transformers, "dense_sift", counting)
    return calls


def _check_scores(result):
    """The score keys agree with sklearn's metrics on the returned predictions."""
    y_true, y_pred = np.asarray(result["y_true"]), np.asarray(result["y_pred"])
    labels = np.arange(len(result["class_names"]))
    np.testing.assert_array_equal(result["confusion_matrix"], confusion_matrix(y_true, y_pred, labels=labels))
    assert result["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert result["mean_per_class_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))


def test_run_bovw_against_the_same_pipeline_built_by_hand(folder, tmp_path, counter):
    result = run_bovw(folder, out=tmp_path / "out", cache=tmp_path / "cache", **SMALL)
    assert len(counter) == 24  # 12 train + 12 readable test images, each computed once
    _check_scores(result)
    assert result["class_names"] == list(CLASSES) and result["n_train"] == 12 and result["n_test"] == 12
    _, labels, _ = load_image_folder(folder, "test")
    np.testing.assert_array_equal(result["y_true"], np.delete(labels, 0))  # broken.jpg sorts first in blobs/
    assert result["mean_per_class_accuracy"] >= 0.9  # the classes differ clearly; chance is 1/3
    # independent oracle: the public estimators composed by hand with the chosen kernel and C
    train_paths, y_train, _ = load_image_folder(folder, "train")
    test_paths, _, _ = load_image_folder(folder, "test")
    images, _, _ = read_images(train_paths)
    test_images, _, _ = read_images(test_paths)
    dsift = DenseSIFT(step=8, sizes=(16,), rootsift=False)
    rounded = [f._replace(descriptors=f.descriptors.astype(np.float16).astype(np.float32))
               for f in dsift.transform(images)]
    test_rounded = [f._replace(descriptors=f.descriptors.astype(np.float16).astype(np.float32))
                    for f in dsift.transform(test_images)]
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    by_hand = make_pipeline(BagOfWords(n_words=8, levels=2, encoding="soft", normalize="l1", random_state=0),
                            kernel_maps()[result["cv"]["kernel"]],
                            LinearSVC(C=result["cv"]["C"], tol=1e-3, random_state=0)).fit(rounded, y_train)
    np.testing.assert_array_equal(result["y_pred"], by_hand.predict(test_rounded))
    # the files
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    for key in ("accuracy", "mean_per_class_accuracy", "per_class_accuracy", "confusion_matrix", "class_names",
                "seconds", "stage_seconds", "settings", "cv", "n_train", "n_test", "skipped"):
        assert saved[key] == json.loads(json.dumps(result[key], default=json_default)), key
    assert set(saved["stage_seconds"]) >= {"list", "features_train", "codebook", "encode_train", "svm_cv_and_fit",
                                           "features_encode_predict_test"}
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"{result['mean_per_class_accuracy']:.4f}" in report and "whole test folder" in report
    assert cv2.imread(str(tmp_path / "out" / "confusion.png")) is not None


def test_cache_is_reused_and_cached_and_fresh_runs_agree(folder, tmp_path, counter):
    cache = tmp_path / "cache"
    first = run_bovw(folder, cache=cache, **SMALL)
    assert first["cache"]["hits"] == 0 and first["cache"]["computed"] == 24 and len(counter) == 24
    second = run_bovw(folder, cache=cache, **{**SMALL, "C": (0.5,)})
    assert len(counter) == 24 and second["cache"]["hits"] == 24 and second["cv"]["C"] == 0.5
    again = run_bovw(folder, cache=cache, **SMALL)
    assert again["y_pred"] == first["y_pred"]
    uncached = run_bovw(folder, cache=False, **SMALL)
    assert uncached["y_pred"] == first["y_pred"] and uncached["cache"]["folder"] is None
    assert not list(cache.rglob("*.tmp"))


def test_unwritable_cache_runs_uncached_with_a_warning(folder, tmp_path, caplog):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should go")
    with caplog.at_level("WARNING"):
        result = run_bovw(folder, cache=blocker / "cache", **SMALL)
    assert result["cache"]["folder"] is None and result["cache"]["hits"] == 0
    assert any("without a cache" in r.getMessage() for r in caplog.records)
    assert result["y_pred"] == run_bovw(folder, cache=tmp_path / "ok", **SMALL)["y_pred"]


def test_unreadable_file_skipped_and_reported(folder, tmp_path):
    result = run_bovw(folder, cache=False, out=tmp_path / "out", **SMALL)
    assert len(result["skipped"]) == 1 and "broken.jpg" in result["skipped"][0]
    assert "broken.jpg" in (tmp_path / "out" / "report.md").read_text()
    tiny = run_tiny_knn(folder, size=8, k=(1, 3), cv=2, progress=False)
    assert len(tiny["skipped"]) == 1 and tiny["n_test"] == 12


def _halves(kind: int, seed: int, size: int = 40) -> np.ndarray:
    """Bright left half, bright top half or bright centre square, plus noise (tiny images tell them apart)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((size, size), np.float32)
    if kind == 0:
        image[:, :size // 2] = 1
    elif kind == 1:
        image[:size // 2] = 1
    else:
        image[size // 4:3 * size // 4, size // 4:3 * size // 4] = 1
    image = np.clip(0.1 + 0.8 * image + rng.normal(0, 0.1, image.shape), 0, 1)
    return (image * 255).round().astype(np.uint8)


def test_run_tiny_knn(tmp_path):
    root = make_folder(tmp_path / "halves", _halves, n=5)
    result = run_tiny_knn(root, size=8, k=(1, 3), cv=2, out=tmp_path / "tiny", progress=False)
    _check_scores(result)
    assert result["accuracy"] == 1.0 and result["n_train"] == 15 and result["n_test"] == 15
    # independent oracle: 8x8 area-resized, zero-mean unit-norm images and sklearn's k-NN with the chosen k
    from sklearn.neighbors import KNeighborsClassifier

    def tiny(split):
        paths, labels, _ = load_image_folder(root, split)
        rows, kept = [], []
        for i, path in enumerate(paths):
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                continue
            row = cv2.resize(image.astype(np.float64) / 255, (8, 8), interpolation=cv2.INTER_AREA).ravel()
            rows.append((row - row.mean()) / np.linalg.norm(row - row.mean()))
            kept.append(i)
        return np.array(rows), labels[kept]

    (x, y), (xt, yt) = tiny("train"), tiny("test")
    knn = KNeighborsClassifier(n_neighbors=result["cv"]["k"]).fit(x, y)
    np.testing.assert_array_equal(result["y_pred"], knn.predict(xt))
    np.testing.assert_array_equal(result["y_true"], yt)
    assert json.loads((tmp_path / "tiny" / "results.json").read_text())["confusion_matrix"] == \
        result["confusion_matrix"]
    assert "k = **" in (tmp_path / "tiny" / "report.md").read_text()


def test_scores_against_sklearn():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 200)
    y_true[y_true == 3] = 4  # class 3 has no test image
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 5, 200))
    names = list("abcde")
    r = scores(y_true, y_pred, names)
    np.testing.assert_array_equal(r["confusion_matrix"], confusion_matrix(y_true, y_pred, labels=range(5)))
    assert r["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    with pytest.warns(UserWarning):  # sklearn warns that y_pred holds class 3, absent from y_true
        assert r["mean_per_class_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    present = [0, 1, 2, 4]
    recall = recall_score(y_true, y_pred, labels=present, average=None)
    assert [r["per_class_accuracy"][i] for i in present] == pytest.approx(recall.tolist())
    assert r["per_class_accuracy"][3] == "n/a" and r["per_class_support"][3] == 0
    assert r["class_names"] == names
    text = json.dumps(r)  # plain JSON: no NaN, no numpy types
    assert "NaN" not in text and "null" not in text
    empty = scores([], [], names)
    assert empty["accuracy"] == "n/a" and empty["mean_per_class_accuracy"] == "n/a"
    assert np.asarray(empty["confusion_matrix"]).shape == (5, 5)
    with pytest.raises(ValueError, match="y_pred must hold class indices"):
        scores([0, 1], [0, 5], names)
    with pytest.raises(ValueError, match="same length"):
        scores([0, 1], [0], names)


def test_write_report(tmp_path):
    r = {**scores([0, 0, 1], [0, 1, 1], ["a", "b", "c"]), "seconds": 1.5, "stage_seconds": {"x": np.float64(0.5)},
         "settings": {"k": (1, 2)}, "n_train": 3, "n_test": 3, "skipped": ["bad.png: cannot decode"]}
    files = write_report(tmp_path / "o", r, "test method", ["## Own section", "", "body text"])
    saved = json.loads((tmp_path / "o" / "results.json").read_text())
    assert saved["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 0]] and saved["settings"] == {"k": [1, 2]}
    report = (tmp_path / "o" / "report.md").read_text()
    assert "# 15-Scene: test method" in report and "body text" in report and "| c | n/a | 0 |" in report
    assert "bad.png" in report and files["confusion"] is not None
    assert cv2.imread(files["confusion"]) is not None
    assert write_report(None, r, "nothing") is None
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_default(object())


@pytest.mark.data
def test_scene15_three_classes(scene15_dir, tmp_path):
    root = tmp_path / "scene15_small"
    for split in ("train", "test"):
        for name in ("Coast", "Forest", "Office"):
            (root / split / name).mkdir(parents=True)
            for path in sorted((scene15_dir / split / name).iterdir())[:10]:
                (root / split / name / path.name).symlink_to(path)
    result = run_bovw(root, cache=False, n_words=30, levels=2, C=(1.0,), cv=2, n_jobs=1, progress=False)
    assert result["n_train"] == 30 and result["n_test"] == 30
    _check_scores(result)
    assert result["mean_per_class_accuracy"] >= 0.7
