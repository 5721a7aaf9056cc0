"""Random crops and flips (:mod:`classicvision.experiments.crops`): seeded, in bounds, really mirrored."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from classicvision.experiments.crops import random_crop, write_crops
from classicvision.io import read_image


def _ramp(height=30, width=40) -> np.ndarray:
    return (np.arange(height * width).reshape(height, width) % 251).astype(np.uint8)


def test_crop_is_the_box_of_the_image_and_flip_mirrors_it():
    image = _ramp()
    seen = set()
    for seed in range(40):
        crop = random_crop(image, np.random.default_rng(seed))
        x, y, w, h = crop.box
        assert 0 <= x and x + w <= 40 and 0 <= y and y + h <= 30
        assert crop.image.shape == (h, w) and crop.image.dtype == np.uint8
        expected = image[y:y + h, x:x + w]
        np.testing.assert_array_equal(crop.image, expected[:, ::-1] if crop.flipped else expected)
        # side fraction in [0.6, 1] and aspect change in [3/4, 4/3], before clipping to the image
        assert 0.6 * 40 * np.sqrt(0.75) - 1 <= w and 0.6 * 30 * np.sqrt(0.75) - 1 <= h
        seen.add(crop.flipped)
    assert seen == {True, False}


def test_flip_one_and_zero_and_full_scale():
    image = _ramp()
    full = random_crop(image, np.random.default_rng(0), scale=(1, 1), aspect=(1, 1), flip=1.0)
    assert full.box == (0, 0, 40, 30) and full.flipped
    np.testing.assert_array_equal(full.image, image[:, ::-1])
    assert not random_crop(image, np.random.default_rng(0), flip=0.0).flipped


def test_same_seed_same_crop_and_colour_images():
    image = np.dstack([_ramp()] * 3)
    a = random_crop(image, np.random.default_rng(7))
    b = random_crop(image, np.random.default_rng(7))
    assert a.box == b.box and a.flipped == b.flipped and a.image.shape[2] == 3
    np.testing.assert_array_equal(a.image, b.image)


@pytest.mark.parametrize("kwargs, match", [
    ({"scale": (0.0, 1.0)}, "scale must satisfy"), ({"scale": (0.5, 1.5)}, "scale must satisfy"),
    ({"aspect": (2.0, 1.0)}, "aspect must satisfy"), ({"flip": 2}, "flip must be a probability"),
])
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_crop(_ramp(), np.random.default_rng(0), **kwargs)


def test_bad_image_and_rng_are_refused():
    with pytest.raises(ValueError, match="image must be a non-empty 2-D or 3-D array, got shape"):
        random_crop(np.zeros((0, 5)), np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator, got int"):
        random_crop(_ramp(), 0)


def _source(root):
    rng = np.random.default_rng(0)
    for name, n in (("a", 2), ("b", 3)):
        (root / "train" / name).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / "train" / name / f"{i}.png"), rng.integers(0, 256, (24, 32)).astype(np.uint8))
    return root


def test_write_crops_cycles_the_sources_keeps_classes_and_is_reproducible(tmp_path):
    root = _source(tmp_path / "src")
    paths, labels, names = write_crops(root, tmp_path / "one", 12, seed=3)
    assert names == ["a", "b"] and len(paths) == 12
    # crop i comes from source order[i mod 5]: every source once per cycle of 5 (sources: a a b b b)
    assert sorted(labels[:5].tolist()) == [0, 0, 1, 1, 1]
    assert labels[5:].tolist() == labels[:7].tolist()
    assert [p.split("/")[-2] for p in paths] == [names[k] for k in labels]
    again, _, _ = write_crops(root, tmp_path / "two", 12, seed=3)
    other, _, _ = write_crops(root, tmp_path / "three", 12, seed=4)
    same = [np.array_equal(read_image(p), read_image(q)) for p, q in zip(paths, again)]
    differ = [read_image(p).shape != read_image(q).shape or not np.array_equal(read_image(p), read_image(q))
              for p, q in zip(paths, other)]
    assert all(same) and any(differ)
    for p in paths:
        h, w = read_image(p).shape
        assert 1 <= h <= 24 and 1 <= w <= 32


def test_write_crops_refuses_a_non_empty_out_and_bad_counts(tmp_path):
    root = _source(tmp_path / "src")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ValueError, match="out must be a new or empty folder"):
        write_crops(root, tmp_path / "full", 2)
    with pytest.raises(ValueError, match="n_images must be an integer >= 0, got -1"):
        write_crops(root, tmp_path / "new", -1)
    with pytest.raises(ValueError, match="quality must be an integer from 1 to 100"):
        write_crops(root, tmp_path / "new", 1, quality=0)
    assert write_crops(root, tmp_path / "none", 0)[0] == []
