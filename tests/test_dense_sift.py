"""Tests for classicvision.dense_sift: the grid, agreement with the sparse descriptor, kernels vs BLAS."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from classicvision._sift_kernels import _orientation_field, _orientation_planes, _pool_grid, _pool_grid_reference
from classicvision.dense_sift import _pooling_kernels, dense_grid, dense_sift, dense_sift_multi
from classicvision.sift import sift_descriptors, to_cv2_keypoints


@pytest.fixture
def textured():
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.random((70, 90)).astype(np.float32), (0, 0), 1.5)


@pytest.mark.parametrize("step, size", [(8, 16), (4, 16), (5, 24), (3, 13), (1, 8)])
@pytest.mark.parametrize("rootsift", [False, True])
def test_dense_equals_sparse_at_grid_points(textured, step, size, rootsift):
    points, dense = dense_sift(textured, step=step, size=size, rootsift=rootsift)
    sparse = sift_descriptors(textured, points, size=float(size), rootsift=rootsift)
    assert dense.shape == sparse.shape and len(points) > 0
    np.testing.assert_allclose(dense, sparse, atol=1e-5)


def test_dense_equals_sparse_other_layouts(textured):
    points, dense = dense_sift(textured, step=6, size=18, n_cells=3, n_orientations=6, sigma=0.0)
    sparse = sift_descriptors(textured, points, size=18.0, n_cells=3, n_orientations=6, sigma=0.0)
    assert dense.shape[1] == 54
    np.testing.assert_allclose(dense, sparse, atol=1e-5)


def test_grid_geometry():
    # size 16: reach r = ceil(8 + 2) - 1 = 9; centres 9, 17, ... <= W - 1 - 9.
    points = dense_grid((40, 64), step=8, size=16)
    xs = np.unique(points[:, 0])
    ys = np.unique(points[:, 1])
    np.testing.assert_array_equal(xs, [9, 17, 25, 33, 41, 49])
    np.testing.assert_array_equal(ys, [9, 17, 25])
    np.testing.assert_array_equal(points[:2], [[9, 9], [17, 9]])     # row by row
    assert points.dtype == np.float32
    # The whole support of every centre lies inside the image.
    assert points.min() >= 9 and points[:, 0].max() <= 63 - 9 and points[:, 1].max() <= 39 - 9
    image = np.random.default_rng(1).random((40, 64)).astype(np.float32)
    got, _ = dense_sift(image, step=8, size=16)
    np.testing.assert_array_equal(got, points)


def test_image_too_small_and_dtypes():
    points, descriptors = dense_sift(np.zeros((18, 100), np.uint8), size=16)
    assert points.shape == (0, 2) and descriptors.shape == (0, 128)
    assert points.dtype == np.float32 and descriptors.dtype == np.float32
    assert len(dense_sift(np.zeros((19, 19)), size=16)[0]) == 1
    rng = np.random.default_rng(2)
    base = rng.random((40, 40))
    for image in ((base * 255).astype(np.uint8), (base * 65535).astype(np.uint16),
                  base.astype(np.float32), base):
        points, descriptors = dense_sift(image, step=4)
        assert descriptors.dtype == np.float32 and descriptors.shape == (len(points), 128)
        np.testing.assert_allclose(np.linalg.norm(descriptors, axis=1), 1.0, atol=1e-5)


def test_flat_image_gives_zero_rows():
    _, descriptors = dense_sift(np.full((32, 32), 0.3), step=4)
    assert len(descriptors) > 0 and not descriptors.any()


def test_validation():
    with pytest.raises(ValueError, match="step must be >= 1"):
        dense_sift(np.zeros((32, 32)), step=0)
    with pytest.raises(TypeError, match="step must be an integer"):
        dense_sift(np.zeros((32, 32)), step=2.5)
    with pytest.raises(ValueError, match="size must be > 0"):
        dense_sift(np.zeros((32, 32)), size=-1)
    with pytest.raises(ValueError, match="sizes must hold"):
        dense_sift_multi(np.zeros((32, 32)), sizes=())
    with pytest.raises(ValueError, match="image must be 2-D"):
        dense_sift(np.zeros((32, 32, 3)))


def test_multi_concatenates_sizes(textured):
    points, descriptors = dense_sift_multi(textured, step=6, sizes=(16, 24))
    p16, d16 = dense_sift(textured, step=6, size=16)
    p24, d24 = dense_sift(textured, step=6, size=24)
    np.testing.assert_array_equal(points, np.concatenate([p16, p24]))
    np.testing.assert_allclose(descriptors, np.concatenate([d16, d24]), atol=1e-6)


def test_pool_kernel_matches_blas_reference(textured):
    magnitude, bins = _orientation_field(textured, 8)
    planes = _orientation_planes(magnitude, bins, 8)
    for step, size in ((8, 16), (3, 20)):
        r = int(np.ceil(size / 2 + size / 8)) - 1
        n_rows = (textured.shape[0] - 1 - 2 * r) // step + 1
        n_cols = (textured.shape[1] - 1 - 2 * r) // step + 1
        kernel = _pooling_kernels(float(size), 4, r)
        np.testing.assert_allclose(_pool_grid(planes, kernel, step, n_rows, n_cols),
                                   _pool_grid_reference(magnitude, bins, kernel, step, n_rows, n_cols, 8),
                                   rtol=1e-4, atol=1e-6)


def test_close_to_opencv_on_same_grid(camera):
    image = cv2.resize(camera, (256, 256), interpolation=cv2.INTER_AREA)
    image_u8 = (image * 255).round().astype(np.uint8)
    points, ours = dense_sift(image_u8, step=8, size=16, sigma=1.52)
    _, theirs = cv2.SIFT.create().compute(image_u8, to_cv2_keypoints(points, size=16.0))
    theirs = theirs.reshape(-1, 16, 8)[:, :, (-np.arange(8)) % 8].reshape(-1, 128)
    theirs = theirs / np.maximum(np.linalg.norm(theirs, axis=1, keepdims=True), 1e-12)
    cosine = (ours * theirs).sum(axis=1)
    assert np.median(cosine) > 0.995
    assert (np.argmax(ours @ theirs.T, axis=1) == np.arange(len(points))).mean() > 0.98
