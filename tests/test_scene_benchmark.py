"""Tests for classicvision.scene_benchmark on small generated folders (and 3x10 images of 15-Scene)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import classicvision.recognition.encoding as bovw
from classicvision.recognition.transformers import DenseSIFT
from classicvision.experiments.scene import _entry, features_cache_dir, run_bovw, run_tiny_knn

SMALL = {"n_words": 8, "rootsift": False, "levels": 2, "C": (1.0, 10.0), "cv": 2, "n_jobs": 1, "progress": False}


def _texture(kind, seed, size=48):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    if kind == 0:
        image = 0.5 + 0.4 * np.sin(xx * 0.8 + phase)
    elif kind == 1:
        image = 0.5 + 0.4 * np.sin(yy * 0.8 + phase)
    else:
        image = cv2.GaussianBlur(rng.random((size, size), dtype=np.float32), (0, 0), 2.0) * 2 - 0.5
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "data"
    for split, offset in (("train", 0), ("test", 100)):
        for kind, name in enumerate(("stripes_v", "stripes_h", "blobs")):
            (root / split / name).mkdir(parents=True)
            for i in range(4):
                cv2.imwrite(str(root / split / name / f"{i}.png"), _texture(kind, offset + 10 * kind + i))
    (root / "test" / "blobs" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


@pytest.fixture
def counter(monkeypatch):
    calls = []
    real = bovw.dense_sift

    def counting(image, **kwargs):
        calls.append(image.shape)
        return real(image, **kwargs)

    monkeypatch.setattr(bovw, "dense_sift", counting)
    return calls


def test_run_bovw_outputs_and_cache_reuse(folder, tmp_path, counter):
    cache = tmp_path / "cache"
    first = run_bovw(folder, out=tmp_path / "out", cache=cache, **SMALL)
    assert len(counter) == 24  # 12 train + 12 readable test images, one size each
    for key in ("accuracy", "mean_per_class_accuracy", "seconds", "settings", "stage_seconds"):
        assert key in first
    assert first["n_train"] == 12 and first["n_test"] == 12
    assert first["mean_per_class_accuracy"] >= 0.6
    assert first["cache"] == {"folder": first["cache"]["folder"], "hits": 0, "computed": 24}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "mean per-class accuracy" in report and "whole test folder" in report
    assert (tmp_path / "out" / "confusion.png").stat().st_size > 0
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["accuracy"] == pytest.approx(first["accuracy"])
    assert np.asarray(saved["confusion_matrix"]).sum() == 12
    assert not list(cache.rglob("*.tmp"))

    second = run_bovw(folder, out=tmp_path / "out2", cache=cache, **{**SMALL, "C": (0.5,)})
    assert len(counter) == 24  # nothing recomputed
    assert second["cache"]["hits"] == 24 and second["cv"]["C"] == 0.5


def test_cached_and_fresh_runs_agree(folder, tmp_path):
    fresh = run_bovw(folder, cache=tmp_path / "c", **SMALL)
    cached = run_bovw(folder, cache=tmp_path / "c", **SMALL)
    assert cached["cache"]["hits"] == 24
    np.testing.assert_array_equal(fresh["confusion_matrix"], cached["confusion_matrix"])


def test_stale_tmp_and_corrupt_entries_are_ignored(folder, tmp_path, counter):
    cache = tmp_path / "cache"
    sub = features_cache_dir(cache, None, DenseSIFT(step=8, sizes=(16,)))
    sub.mkdir(parents=True)
    image = folder / "train" / "blobs" / "0.png"
    entry = _entry(sub, image)
    # a killed run's leftover under the entry's temp name, and a truncated entry for another image
    (sub / f"{entry.name}.999.tmp").write_bytes(b"half written")
    _entry(sub, folder / "train" / "blobs" / "1.png").write_bytes(b"PK\x03\x04 truncated")
    result = run_bovw(folder, cache=cache, **SMALL)
    assert len(counter) == 24 and result["cache"]["hits"] == 0
    assert entry.is_file()
    assert run_bovw(folder, cache=cache, **SMALL)["cache"]["hits"] == 24 and len(counter) == 24


def test_cache_key_changes_with_settings_and_file(folder, tmp_path):
    a = features_cache_dir(tmp_path, None, DenseSIFT(step=8))
    assert a == features_cache_dir(tmp_path, None, DenseSIFT(step=8, n_jobs=2))
    assert a != features_cache_dir(tmp_path, None, DenseSIFT(step=4))
    assert features_cache_dir(False, tmp_path, DenseSIFT()) is None
    assert features_cache_dir(None, tmp_path, DenseSIFT()).parent == tmp_path / "cache"
    image = folder / "train" / "blobs" / "0.png"
    before = _entry(a, image)
    image.write_bytes(image.read_bytes() + b"\0")
    assert _entry(a, image) != before


def test_unreadable_file_skipped_and_reported(folder, tmp_path):
    result = run_bovw(folder, cache=False, out=tmp_path / "out", **SMALL)
    assert len(result["skipped"]) == 1 and "broken.jpg" in result["skipped"][0]
    assert "broken.jpg" in (tmp_path / "out" / "report.md").read_text()
    tiny = run_tiny_knn(folder, size=8, k=(1, 3), cv=2, progress=False)
    assert len(tiny["skipped"]) == 1 and tiny["n_test"] == 12


def test_run_tiny_knn(folder, tmp_path):
    result = run_tiny_knn(folder, size=8, k=(1, 3), cv=2, out=tmp_path / "tiny", progress=False)
    for key in ("accuracy", "mean_per_class_accuracy", "seconds", "settings", "stage_seconds"):
        assert key in result
    assert result["cv"]["k"] in (1, 3)
    assert (tmp_path / "tiny" / "report.md").is_file() and (tmp_path / "tiny" / "results.json").is_file()


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
    assert result["mean_per_class_accuracy"] >= 0.7
