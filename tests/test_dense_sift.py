"""Tests for classicvision.dense_sift: the grid, agreement with the sparse descriptor, kernels vs BLAS."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import threading

from classicvision._kernels.blur import _blur, _blur_scratch_size
from classicvision._kernels.dense_sift import _dense_raw, _dense_raw_reference
from classicvision._kernels.separable import _separable_valid
from classicvision.features.dense_sift import _grid_counts, _pooling_kernels, dense_grid, dense_sift, dense_sift_multi
from classicvision.features.filters import gaussian_kernel1d
from classicvision.features._gaussian import smooth_symmetric as _smooth
from classicvision.features.keypoints import to_cv2_keypoints
from classicvision.features.sift import sift_descriptors


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


@pytest.mark.parametrize("sigma", [0.5, 0.75, 1.0, 1.2, 1.6])  # radii 2, 3, 4, 5, 6
def test_smooth_kernel_equals_sparse_smoothing(textured, sigma):
    from scipy import ndimage

    from classicvision.features.dense_sift import _smoothed

    # The sparse descriptor's smoothing is scipy's Gaussian with the symmetric border ('reflect',
    # dcba|abcd, the same 4-sigma kernel) and OpenCV's BORDER_REFLECT...
    sparse = _smooth(textured, sigma)
    want = ndimage.gaussian_filter(textured.astype(np.float64), sigma, mode="reflect", truncate=4.0)
    np.testing.assert_allclose(sparse, want, atol=1e-6)
    g = gaussian_kernel1d(sigma)
    np.testing.assert_allclose(sparse, cv2.sepFilter2D(textured, -1, g, g, borderType=cv2.BORDER_REFLECT),
                               atol=1e-6)
    # ... and the dense one (bands over threads, its own workspace, uint8 scaled on the fly) gives
    # the very same values, so dense and sparse descriptors see the same image.
    for threads in (1, 3):
        np.testing.assert_array_equal(_smoothed(textured, sigma, threads=threads).copy(), sparse)
    u8 = (textured / textured.max() * 255).round().astype(np.uint8)
    np.testing.assert_allclose(_smoothed(u8, sigma, 1 / 255).copy(),
                               _smooth(u8.astype(np.float32) / 255, sigma), atol=1e-6)


def _kernel_args(shape, step, size, n_cells=4):
    r, n_rows, n_cols = _grid_counts(shape, step, float(size), n_cells)
    kernel = _pooling_kernels(float(size), n_cells, r)
    nonzero = kernel != 0
    t_lo = nonzero.argmax(axis=1).astype(np.int64)
    t_hi = (kernel.shape[1] - nonzero[:, ::-1].argmax(axis=1)).astype(np.int64)
    return kernel, t_lo, t_hi, n_rows, n_cols


@pytest.mark.parametrize("step, size, n_ori, n_cells", [(8, 16, 8, 4), (3, 20, 8, 4), (5, 18, 6, 3), (9, 8, 8, 2)])
@pytest.mark.parametrize("normalize, rootsift", [(False, False), (True, False), (True, True)])
def test_fused_kernel_matches_blas_reference(textured, step, size, n_ori, n_cells, normalize, rootsift):
    kernel, t_lo, t_hi, n_rows, n_cols = _kernel_args(textured.shape, step, size, n_cells)
    got = _dense_raw(textured, kernel, t_lo, t_hi, step, n_rows, n_cols, n_ori, 0.2, rootsift, normalize)
    want = _dense_raw_reference(textured, kernel, step, n_rows, n_cols, n_ori, 0.2, rootsift, normalize)
    assert got.shape == (n_rows * n_cols, n_cells * n_cells * n_ori)
    scale = 1.0 if normalize else float(np.abs(want).max())
    np.testing.assert_allclose(got, want, atol=2e-6 * scale)


def test_same_result_from_a_worker_thread():
    image = cv2.GaussianBlur(np.random.default_rng(3).random((120, 150)).astype(np.float32), (0, 0), 1.0)
    main = dense_sift(image, step=4, size=16, rootsift=True)       # nogil kernels: thread-safe
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("d", dense_sift(image, step=4, size=16,
                                                                               rootsift=True)))
    worker.start()
    worker.join()
    np.testing.assert_array_equal(result["d"][0], main[0])
    np.testing.assert_allclose(result["d"][1], main[1], atol=1e-6)


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


def test_float32_bins_match_float64_bins():
    from numba import njit

    from classicvision._kernels.gradient import _bin_of, _bin_of32

    @njit
    def both(dx, dy, n):
        out = np.empty((2, dx.shape[0]))
        for e in range(dx.shape[0]):
            out[0, e] = _bin_of(float(dx[e]), float(dy[e]), n / (2 * np.pi), float(n))
            out[1, e] = _bin_of32(dx[e], dy[e], np.float32(n / (2 * np.pi)), np.float32(n))
        return out

    rng = np.random.default_rng(4)
    dx = np.concatenate([rng.normal(size=20000), [0, 1, -1, 0, 0, 1e-30]]).astype(np.float32)
    dy = np.concatenate([rng.normal(size=20000), [0, 0, 0, 1, -1, -1e-30]]).astype(np.float32)
    for n in (8, 6):
        want64, got32 = both(dx, dy, n)
        libm = np.mod(np.arctan2(dy.astype(np.float64), dx) * (n / (2 * np.pi)), n)
        for ref in (want64, libm):
            dist = np.abs(got32 - ref)
            np.testing.assert_array_less(np.minimum(dist, n - dist), 2e-6)   # bin units, cyclic
        assert ((got32 >= 0) & (got32 < n)).all()


@pytest.mark.parametrize("n_bands", [2, 3])
def test_parallel_kernels_equal_single_thread(textured, n_bands):
    from classicvision._kernels.dense_sift import _band_scratch_size, _dense_raw_parallel

    g = gaussian_kernel1d(1.0)
    scratch = np.full(_blur_scratch_size(textured.shape, g.size // 2, n_bands), np.nan, np.float32)
    np.testing.assert_array_equal(
        _blur(textured, g, "reflect", x_first=True, n_bands=n_bands, out=np.empty_like(textured),
              scratch=scratch),
        _blur(textured, g, "reflect", x_first=True, n_bands=1))
    kernel, t_lo, t_hi, n_rows, n_cols = _kernel_args(textured.shape, 4, 16)
    single = _dense_raw(textured, kernel, t_lo, t_hi, 4, n_rows, n_cols, 8, 0.2, True, True)
    np.testing.assert_array_equal(
        _dense_raw_parallel(textured, kernel, t_lo, t_hi, 4, n_rows, n_cols, 8, 0.2, True, True, n_bands,
                            np.full(n_bands * _band_scratch_size(4, n_cols, kernel.shape[1], 4, 8), np.nan,
                                    np.float32)), single)


def test_uint8_fast_path_equals_checked_float(textured):
    u8 = (textured / textured.max() * 255).round().astype(np.uint8)
    fast = dense_sift(u8, step=4, rootsift=True)
    checked = dense_sift(u8.astype(np.float32) * np.float32(1 / 255), step=4, rootsift=True)
    np.testing.assert_array_equal(fast[0], checked[0])
    np.testing.assert_array_equal(fast[1], checked[1])
    tiny = np.full((10, 10), 7, np.uint8)                          # the padded-smoothing fallback
    assert dense_sift(tiny, step=4, size=4)[1].shape[1] == 128


def test_workspace_reuse_across_shapes_changes_nothing(textured):
    """The kernels' temporaries are kept per thread between calls: a call after calls on other
    shapes (smaller, then larger buffers) returns what a first call returns."""
    first = dense_sift(textured, step=4, size=16, rootsift=True)[1].copy()
    for shape in ((40, 33), (120, 150), (31, 90)):
        dense_sift(np.random.default_rng(1).random(shape).astype(np.float32), step=3, size=12)
    again = dense_sift(textured, step=4, size=16, rootsift=True)[1]
    np.testing.assert_array_equal(again, first)


def test_plan_addresses_are_each_arrays_own_and_bounded():
    from classicvision._kernels.dense_sift import _PLAN_ADDRESSES, _plan_address
    kept = [np.arange(i + 1, dtype=np.float32) for i in range(300)]      # more than the 256 kept
    for array in kept:
        assert _plan_address(array) == array.ctypes.data
        assert _plan_address(array) == array.ctypes.data               # the remembered one
    assert len(_PLAN_ADDRESSES) <= 256
    for array in kept[:10]:                                              # dropped by the clear: read again
        assert _plan_address(array) == array.ctypes.data
    image = (np.random.default_rng(3).random((96, 80)) * 255).astype(np.uint8)
    _PLAN_ADDRESSES.clear()
    first = dense_sift(image, step=4, size=16)[1]
    np.testing.assert_array_equal(dense_sift(image, step=4, size=16)[1], first)   # through the remembered plan


def _outcome(call):
    try:
        points, descriptors = call()
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)
    return points.tolist(), descriptors.tobytes()


def test_a_repeated_call_skips_only_the_checks_it_passed(monkeypatch):
    """The second call of the same arguments runs from a plan of the first (no Python checks):
    the same values, fresh points; arguments that differ only in type, and limits lowered in
    between, are checked again exactly as without the plan."""
    from classicvision import _limits, io
    from classicvision.features import dense_sift as module

    image = (np.random.default_rng(4).random((200, 230)) * 255).astype(np.uint8)
    module._PLANS.clear()
    first = dense_sift(image, step=6, size=16, rootsift=True)
    assert len(module._PLANS) == 1
    first[0][:] = -1                                             # the caller owns what it got
    again = dense_sift(image, step=6, size=16, rootsift=True)
    np.testing.assert_array_equal(again[0], dense_grid(image.shape, step=6, size=16))
    np.testing.assert_array_equal(again[1], first[1])
    np.testing.assert_allclose(again[1], dense_sift(image.astype(np.float32) / 255, step=6, size=16,
                                                    rootsift=True)[1], atol=1e-6)   # the unplanned path
    variants = [dict(step=6.0), dict(step=True), dict(size=np.float32(16)), dict(clip=float("nan")),
                dict(n_cells=4.0), dict(rootsift=1), dict(sigma=1)]
    for variant in variants:
        arguments = {"step": 6, "size": 16, "rootsift": True, **variant}
        cached = _outcome(lambda: dense_sift(image, **arguments))
        module._PLANS.clear()
        fresh = _outcome(lambda: dense_sift(image, **arguments))
        assert cached == fresh, variant
        dense_sift(image, step=6, size=16, rootsift=True)          # the plan of the valid call again
    for name, value in [("MAX_ARRAY_BYTES", 1000), ("MAX_DESCRIPTOR_DIM", 64), ("KERNEL_RADIUS_RELATIVE", 0.001)]:
        with monkeypatch.context() as patch:
            patch.setattr(_limits, name, value)
            with pytest.raises(ValueError, match=name):
                dense_sift(image, step=6, size=16, rootsift=True)
    with monkeypatch.context() as patch:
        patch.setattr(io, "MAX_IMAGE_PIXELS", 1000)
        with pytest.raises(ValueError, match="pixels"):
            dense_sift(image, step=6, size=16, rootsift=True)
    np.testing.assert_array_equal(dense_sift(image, step=6, size=16, rootsift=True)[1], first[1])
