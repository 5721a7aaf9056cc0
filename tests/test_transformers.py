"""Tests for classicvision.recognition.transformers: DenseSIFT (values per image, resizing, paths,
threads), TinyImages (OpenCV's area resize), ImageFeatures, and the estimator contract."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.validation import check_is_fitted

from classicvision.features.dense_sift import dense_sift
from classicvision.recognition.transformers import DenseSIFT, ImageFeatures, TinyImages


def _image(seed: int, shape=(48, 64)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random(shape, dtype=np.float32), (0, 0), 1.5)


@pytest.fixture(scope="module")
def images():
    """Four images of different shapes and dtypes (float32, float64, uint8)."""
    return [_image(0), _image(1, (50, 76)).astype(np.float64), _image(2, (64, 40)),
            (_image(3, (40, 40)) * 255).round().astype(np.uint8)]


def _expected(image, step, sizes, rootsift=False):
    points, descriptors = zip(*(dense_sift(image, step=step, size=size, rootsift=rootsift) for size in sizes))
    return np.concatenate(points), np.concatenate(descriptors)


@pytest.mark.parametrize("sizes, rootsift", [((16,), False), ((8, 16), False), ((12, 24), True)])
def test_dense_sift_transformer_equals_dense_sift(images, sizes, rootsift):
    features = DenseSIFT(step=6, sizes=sizes, rootsift=rootsift).transform(images)
    assert len(features) == len(images)
    for image, f in zip(images, features):
        assert isinstance(f, ImageFeatures) and f.shape == image.shape
        assert f.points.dtype == np.float32 and f.descriptors.dtype == np.float32
        points, descriptors = _expected(image, 6, sizes, rootsift)
        assert len(points) > 0
        np.testing.assert_array_equal(f.points, points)
        np.testing.assert_allclose(f.descriptors, descriptors, atol=1e-6)


def test_dense_sift_max_side_downscales_by_area(images):
    # Images whose longer side exceeds max_side are resized by area averaging to
    # round(scale * side), scale = max_side / longer side; smaller ones are left alone.
    features = DenseSIFT(step=4, sizes=(8,), max_side=40).transform(images)
    for image, f in zip(images, features):
        height, width = image.shape
        scale = min(1.0, 40 / max(height, width))
        expected_shape = (round(height * scale), round(width * scale))
        assert f.shape == expected_shape
        if scale < 1:
            as_float = image.astype(np.float32) / (255 if image.dtype == np.uint8 else 1)
            resized = cv2.resize(as_float, expected_shape[::-1], interpolation=cv2.INTER_AREA)
        else:
            resized = image
        points, descriptors = _expected(resized, 4, (8,))
        np.testing.assert_array_equal(f.points, points)
        np.testing.assert_allclose(f.descriptors, descriptors, atol=1e-5)
    assert [f.shape for f in features] == [(30, 40), (26, 40), (40, 25), (40, 40)]


def test_dense_sift_reads_paths(tmp_path, images):
    path = tmp_path / "a.png"
    u8 = (images[0] * 255).round().astype(np.uint8)
    cv2.imwrite(str(path), u8)
    from_path = DenseSIFT().transform([path, str(path)])
    from_array = DenseSIFT().transform([u8])[0]
    for f in from_path:
        np.testing.assert_array_equal(f.points, from_array.points)
        np.testing.assert_allclose(f.descriptors, from_array.descriptors, atol=1e-5)


def test_dense_sift_threads_equal_serial(images):
    serial = DenseSIFT(step=4, sizes=(8, 16), rootsift=True).transform(images)
    threaded = DenseSIFT(step=4, sizes=(8, 16), rootsift=True, n_jobs=2).transform(images)
    assert len(threaded) == len(serial)
    for a, b in zip(serial, threaded):              # same order, same values
        assert a.shape == b.shape
        np.testing.assert_array_equal(a.points, b.points)
        np.testing.assert_array_equal(a.descriptors, b.descriptors)


def test_dense_sift_errors(images):
    with pytest.raises(ValueError, match="sequence of images"):
        DenseSIFT().transform(images[0])
    with pytest.raises(ValueError, match="step"):
        DenseSIFT(step=0).fit()
    with pytest.raises(ValueError, match="sizes"):
        DenseSIFT(sizes=()).fit()
    with pytest.raises(ValueError, match="max_side"):
        DenseSIFT(max_side=4).transform(images)
    with pytest.raises(TypeError, match="list of images"):
        DenseSIFT().transform("a.png")


def test_tiny_images(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.random((40, 30), dtype=np.float32)
    x = TinyImages(size=8).fit_transform([image, np.full((10, 10), 0.5, np.float32)])
    assert x.shape == (2, 64) and x.dtype == np.float32
    np.testing.assert_allclose(x[0].mean(), 0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(x[0]), 1, rtol=1e-5)
    assert not x[1].any()
    expected = cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA).ravel()
    expected = (expected - expected.mean()) / np.linalg.norm(expected - expected.mean())
    np.testing.assert_allclose(x[0], expected, atol=1e-5)
    path = tmp_path / "t.png"
    cv2.imwrite(str(path), (image * 255).round().astype(np.uint8))
    np.testing.assert_allclose(TinyImages(size=8).transform([path])[0], expected, atol=5e-3)
    with pytest.raises(ValueError, match="size"):
        TinyImages(size=0).fit()


@pytest.mark.parametrize("estimator", [DenseSIFT(step=5, sizes=(8, 12), rootsift=True, max_side=50),
                                       TinyImages(size=6)], ids=["DenseSIFT", "TinyImages"])
def test_stateless_estimator_contract(images, estimator):
    def same(a, b):
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
            return
        assert len(a) == len(b)
        for fa, fb in zip(a, b):
            assert fa.shape == fb.shape
            np.testing.assert_array_equal(fa.points, fb.points)
            np.testing.assert_array_equal(fa.descriptors, fb.descriptors)

    params = estimator.get_params()
    assert clone(estimator).get_params() == params
    # Stateless: transform needs no fit (the tags say so, and check_is_fitted agrees).
    check_is_fitted(estimator)
    unfitted = clone(estimator).transform(images)
    same(estimator.fit(images).transform(images), unfitted)
    same(clone(estimator).fit_transform(images), unfitted)
    restored = pickle.loads(pickle.dumps(estimator))
    assert restored.get_params() == params
    same(restored.transform(images), unfitted)
    # set_params reaches transform.
    key = "step" if "step" in params else "size"
    changed = clone(estimator).set_params(**{key: params[key] + 2})
    assert changed.get_params()[key] == params[key] + 2
    other = changed.transform(images)
    if isinstance(other, np.ndarray):
        assert other.shape[1] != unfitted.shape[1]
    else:
        assert all(len(a.points) != len(b.points) for a, b in zip(other, unfitted))
