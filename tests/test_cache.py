"""Tests for classicvision.experiments.cache: what the key covers, reuse, atomic entries, stale and corrupt files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import classicvision
import classicvision.experiments.cache as cache_module
from classicvision.experiments.cache import CachedFeatures, feature_sources, settings_key
from classicvision.recognition.transformers import DenseSIFT

PACKAGE = Path(classicvision.__file__).parent
NAMED = ["features.dense_sift", "features._gaussian", "features.filters", "_kernels.blur", "_kernels.dense_sift",
         "_kernels.gradient", "_kernels.sift", "_kernels.separable", "io", "_validation",
         "recognition.transformers"]


def _write(path, seed, size=40):
    """A PGM of fixed byte size (header + size*size bytes) whatever the content."""
    image = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


def test_sources_cover_every_module_the_features_import():
    sources = feature_sources()
    for name in NAMED:
        assert f"classicvision.{name}" in sources, name
    # complete: every package module loaded by computing dense SIFT of a file in a fresh interpreter is listed
    code = ("import sys, numpy as np, cv2, tempfile, os\n"
            "from classicvision.recognition.transformers import DenseSIFT\n"
            "from classicvision.datasets import read_images\n"
            "p = os.path.join(tempfile.mkdtemp(), 'a.png'); cv2.imwrite(p, np.zeros((32, 32), np.uint8))\n"
            "DenseSIFT(rootsift=True, max_side=16).transform(read_images([p])[0])\n"
            "print('\\n'.join(m for m, v in sys.modules.items() if m.startswith('classicvision')"
            " and not getattr(v, '__file__', '').endswith('__init__.py')))\n")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    assert loaded - {"classicvision._lazy"} <= set(sources), loaded - set(sources)


def test_key_changes_when_any_source_changes(tmp_path):
    copy = tmp_path / "classicvision"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    dsift = DenseSIFT()
    sources = feature_sources(root=copy)
    assert [n for n in sources] == [n for n in feature_sources()]
    base = settings_key(dsift, sources)
    assert base == settings_key(dsift, feature_sources())  # same bytes, same key
    for name, path in sources.items():
        original = path.read_bytes()
        path.write_bytes(original + b"\n# edited\n")
        assert settings_key(dsift, feature_sources(root=copy)) != base, name
        path.write_bytes(original)
    assert settings_key(dsift, feature_sources(root=copy)) == base


def test_key_covers_settings_and_version(monkeypatch):
    a = settings_key(DenseSIFT(step=8))
    assert a == settings_key(DenseSIFT(step=8, n_jobs=2))
    assert a != settings_key(DenseSIFT(step=4)) and a != settings_key(DenseSIFT(step=8, rootsift=True))
    monkeypatch.setattr(cache_module, "__version__", "0.0.0-other")
    assert settings_key(DenseSIFT(step=8)) != a


def test_content_change_with_same_size_and_mtime_is_recomputed(tmp_path):
    image = _write(tmp_path / "a.pgm", 0)
    cached = CachedFeatures(DenseSIFT(), cache=tmp_path / "cache")
    first, _, stats = cached.extract([image])
    assert stats["cached"] == 0
    assert cached.extract([image])[2]["cached"] == 1
    stat = os.stat(image)
    _write(image, 1)  # like `cp -p` of another image: same size, same mtime, other content
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(image).st_size == stat.st_size and os.stat(image).st_mtime_ns == stat.st_mtime_ns
    second, _, stats = cached.extract([image])
    assert stats["cached"] == 0
    assert not np.array_equal(first[0].descriptors, second[0].descriptors)
    fresh = DenseSIFT().transform([image])[0].descriptors.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(second[0].descriptors, fresh)
    # the same content under another path, with another mtime, is reused
    other = tmp_path / "copy.pgm"
    shutil.copy(image, other)
    features, _, stats = cached.extract([other])
    assert stats["cached"] == 1
    np.testing.assert_array_equal(features[0].descriptors, fresh)


def test_changed_source_starts_a_new_folder(tmp_path, monkeypatch):
    image = _write(tmp_path / "a.pgm", 0)
    cached = CachedFeatures(DenseSIFT(), cache=tmp_path / "cache")
    cached.extract([image])
    before = cached.folder
    real = feature_sources()
    edited = tmp_path / "dense_sift_edited.py"
    edited.write_bytes(real["classicvision._kernels.dense_sift"].read_bytes() + b"\n# changed\n")
    monkeypatch.setattr(cache_module, "feature_sources",
                        lambda *a, **k: {**real, "classicvision._kernels.dense_sift": edited})
    assert cached.folder != before
    assert cached.extract([image])[2]["cached"] == 0


def test_stale_tmp_removed_corrupt_entry_recomputed(tmp_path):
    images = [_write(tmp_path / f"{i}.pgm", i) for i in range(2)]
    cached = CachedFeatures(DenseSIFT(), cache=tmp_path / "cache")
    folder = cached.folder
    folder.mkdir(parents=True)
    old, new = folder / "x.npz.1.tmp", folder / "y.npz.2.tmp"
    old.write_bytes(b"half written")
    new.write_bytes(b"being written by a concurrent run")
    start = time.time()
    os.utime(old, (start - 100, start - 100))
    os.utime(new, (start + 100, start + 100))
    assert cached.remove_stale(start) == 1 and not old.exists() and new.exists()
    cached.extract(images)
    entry = next(folder.glob("*.npz"))
    entry.write_bytes(b"PK\x03\x04 truncated")
    features, _, stats = cached.extract(images)
    assert stats["cached"] == 1  # the corrupt one was recomputed
    assert np.load(entry)["descriptors"].dtype == np.float16  # and written again, whole
    np.testing.assert_array_equal(features[0].descriptors, cached.extract(images)[0][0].descriptors)


def test_transform_and_unwritable(tmp_path, caplog):
    image = _write(tmp_path / "a.pgm", 0)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cached = CachedFeatures(DenseSIFT(), cache=blocker / "cache")
    with caplog.at_level("WARNING"):
        assert not cached.writable()
        features = cached.transform([image])
    assert features[0].descriptors.shape[1] == 128 and "without a cache" in caplog.text
    (tmp_path / "bad.png").write_bytes(b"no")
    with pytest.raises(ValueError, match="unreadable"):
        CachedFeatures(DenseSIFT()).transform([tmp_path / "bad.png"])
    with pytest.raises(TypeError, match="DenseSIFT"):
        CachedFeatures("sift").fit()
