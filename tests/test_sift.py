"""Tests for classicvision.sift: analytic cases, invariances, kernels vs numpy, OpenCV as an oracle."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from classicvision._kernels.gradient import _orientation_field, _orientation_field_reference
from classicvision._kernels.sift import _describe, _describe_reference, _normalize_rows, _normalize_rows_reference
from classicvision.features._gaussian import smooth_symmetric as _smooth
from classicvision.features.keypoints import Keypoints, to_cv2_keypoints
from classicvision.features.sift import sift_descriptors

CV2_BIN = (-np.arange(8)) % 8     # OpenCV counts orientations with y up: its bin -b is our bin b


def _cv2_descriptors(image_u8, points, size, orientation=None):
    keypoints = to_cv2_keypoints(points, size=size, orientation=orientation)
    kept, desc = cv2.SIFT.create().compute(image_u8, keypoints)
    assert len(kept) == len(points)
    desc = desc.reshape(-1, 16, 8)[:, :, CV2_BIN].reshape(-1, 128).astype(np.float64)
    return desc / np.linalg.norm(desc, axis=1, keepdims=True)


def _random_image(seed, shape=(48, 56)):
    rng = np.random.default_rng(seed)
    return _smooth(rng.random(shape).astype(np.float32), 1.0)


# ---- shapes, dtypes, validation -------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_dtypes_give_float32(camera, dtype):
    scale = {np.uint8: 255, np.uint16: 65535}.get(dtype, 1)
    image = (camera[:64, :64] * scale).astype(dtype)
    d = sift_descriptors(image, [[30.0, 30.0], [10.5, 40.25]])
    assert d.dtype == np.float32 and d.shape == (2, 128)
    np.testing.assert_allclose(d, sift_descriptors(camera[:64, :64], [[30.0, 30.0], [10.5, 40.25]]),
                               atol=2e-3)


def test_empty_points():
    for points in ([], np.zeros((0, 2), np.float32)):
        d = sift_descriptors(np.ones((8, 8)), points)
        assert d.shape == (0, 128) and d.dtype == np.float32
    assert sift_descriptors(np.ones((8, 8)), [], n_cells=2, n_orientations=4).shape == (0, 16)


def test_flat_patch_gives_zero_row():
    d = sift_descriptors(np.full((20, 20), 0.5, np.float32), [[10.0, 10.0]], rootsift=True)
    assert d.shape == (1, 128) and not d.any()


@pytest.mark.parametrize("kwargs, match", [
    (dict(points=np.zeros((3, 3))), "points must have shape"),
    (dict(points=[[np.nan, 1.0]]), "points contains NaN"),
    (dict(size=0.0), "size must be > 0"),
    (dict(size=[16.0, 16.0, 16.0]), r"size must be a number or have shape \(2,\)"),
    (dict(orientation=[0.1]), r"orientation must be a number or have shape \(2,\)"),
    (dict(orientation=[np.nan, 0.0]), "orientation contains NaN"),
    (dict(clip=0.0), "clip must be > 0"),
    (dict(n_cells=0), "n_cells must be >= 1"),
])
def test_validation_names_the_argument(kwargs, match):
    args = dict(image=np.zeros((10, 10)), points=[[1.0, 2.0], [3.0, 4.0]])
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        sift_descriptors(args.pop("image"), args.pop("points"), **args)


def test_type_errors():
    with pytest.raises(TypeError, match="rootsift"):
        sift_descriptors(np.zeros((10, 10)), [[1.0, 2.0]], rootsift="yes")
    with pytest.raises(ValueError, match="image must be 2-D"):
        sift_descriptors(np.zeros((10, 10, 3)), [[1.0, 2.0]])


# ---- analytic behaviour ----------------------------------------------------------------------

@pytest.mark.parametrize("angle_deg, expected_bin", [(0, 0), (90, 2), (180, 4), (-90, 6), (45, 1), (-135, 5)])
def test_step_edge_energy_only_in_edge_bin(angle_deg, expected_bin):
    # A straight edge whose gradient points along angle_deg (y down): f = 1 where (x, y) . n > 0.
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float64)
    n = np.round([np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))], 12)  # cos 45 == sin 45
    image = ((xx - 31.5) * n[0] + (yy - 31.5) * n[1] > 0).astype(np.float32)
    d = sift_descriptors(image, [[31.5, 31.5], [30.0, 33.0]]).reshape(2, 16, 8)
    others = np.delete(d, expected_bin, axis=2)
    assert np.abs(others).max() < 1e-5
    assert d[:, :, expected_bin].sum(axis=1).min() > 1.0


def test_unit_norm_and_clip(camera):
    rng = np.random.default_rng(0)
    points = rng.uniform(-20, 530, (200, 2)).astype(np.float32)
    d = sift_descriptors(camera, points)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    # Undo the renormalization: each row is min(unit raw, 0.2) up to a positive scale.
    unclipped = sift_descriptors(camera, points, clip=1.0)     # plain L2-normalized raw
    np.testing.assert_allclose(np.linalg.norm(unclipped, axis=1), 1.0, atol=1e-5)
    clipped = np.minimum(unclipped, 0.2)
    expected = clipped / np.linalg.norm(clipped, axis=1, keepdims=True)
    np.testing.assert_allclose(d, expected, atol=1e-5)
    assert (unclipped.max(axis=1) > 0.2).mean() > 0.5          # clipping really happened
    # The largest value after renormalization is 0.2 / ||min(u, 0.2)||, never more.
    assert np.all(d.max(axis=1) <= 0.2 / np.linalg.norm(clipped, axis=1) + 1e-5)


def test_rootsift(camera):
    points = np.array([[100.0, 100.0], [200.5, 300.0], [0.0, 0.0]], np.float32)
    d = sift_descriptors(camera, points)
    r = sift_descriptors(camera, points, rootsift=True)
    np.testing.assert_allclose(np.linalg.norm(r, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(r, np.sqrt(d / d.sum(axis=1, keepdims=True)), atol=1e-5)


def test_border_points_keep_rows_aligned(camera):
    height, width = camera.shape
    points = np.array([[-5.0, -5.0], [100.0, 100.0], [width + 3.0, 10.0], [0.0, height - 1.0],
                       [250.0, 250.0], [1000.0, -400.0]], np.float32)
    d = sift_descriptors(camera, points)
    assert d.shape == (6, 128)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    for i in (1, 4):
        np.testing.assert_allclose(d[i], sift_descriptors(camera, points[i:i + 1])[0], atol=1e-6)
    assert np.linalg.norm(d[1] - d[4]) > 0.1


def test_border_point_is_described_on_the_mirrored_image():
    image = _random_image(3)
    big = np.pad(image, 30, mode="symmetric")
    points = np.array([[-4.0, 3.0], [50.0, -7.5], [-2.0, 52.0]], np.float32)
    for orientation in (None, np.array([0.3, -2.0, 1.0])):
        d = sift_descriptors(image, points, sigma=0.0, orientation=orientation)
        e = sift_descriptors(big, points + 30, sigma=0.0, orientation=orientation)
        np.testing.assert_allclose(d, e, atol=2e-5)


@pytest.mark.parametrize("n_cells, n_orientations", [(4, 8), (3, 6)])
def test_orientation_zero_equals_upright_reference(n_cells, n_orientations):
    # orientation=0 given explicitly (overriding the keypoints' own, or as 2 pi, which wraps to 0)
    # is the upright descriptor of the numpy reference: scipy's Gaussian (symmetric border), the
    # gradients of the padded image, explicit triangle weights; then the numpy normalization.
    image = _random_image(4)
    points = np.array([[20.0, 20.0], [25.3, 17.8], [30.0, 31.0], [-3.0, 44.5]], np.float32)
    sizes = np.array([16.0, 9.0, 24.0, 13.0])
    smoothed = ndimage.gaussian_filter(image.astype(np.float64), 1.0, mode="reflect", truncate=4.0)
    raw = _describe_reference(smoothed, points[:, 0], points[:, 1], sizes, np.zeros(4), n_cells, n_orientations)
    want = _normalize_rows_reference(raw, 0.2, False)
    assert want.shape == (4, n_cells ** 2 * n_orientations)
    keypoints = Keypoints.from_points(points, scale=sizes / (4 * 3.0), orientation=[1.0, -2.0, 3.0, 0.5])
    for keys, orientation in ((points, 0.0), (points, np.full(4, 2 * np.pi)), (keypoints, np.zeros(4))):
        got = sift_descriptors(image, keys, size=sizes, orientation=orientation, n_cells=n_cells,
                               n_orientations=n_orientations)
        np.testing.assert_allclose(got, want, atol=2e-5)
    # The keypoints' own orientation is used when orientation is None: not the upright descriptor.
    turned = sift_descriptors(image, keypoints, size=sizes, n_cells=n_cells, n_orientations=n_orientations)
    assert np.abs(turned - want).max(axis=1).min() > 0.05


def test_orientation_zero_overrides_keypoints_like_opencv(camera):
    # OpenCV describes the same KeyPoints with angle 0 (to_cv2_keypoints with orientation=0).
    image_u8 = (camera * 255).round().astype(np.uint8)
    rng = np.random.default_rng(7)
    points = rng.integers(30, 480, (100, 2)).astype(np.float32)
    keypoints = Keypoints.from_points(points, scale=16.0 / 12, orientation=rng.uniform(-np.pi, np.pi, 100))
    ours = sift_descriptors(image_u8, keypoints, orientation=0.0, sigma=1.52)
    theirs = _cv2_descriptors(image_u8, points, 16.0, np.zeros(100))
    cosine = (ours * theirs).sum(axis=1)
    assert np.median(cosine) > 0.995 and cosine.min() > 0.97


def _waves(shape, zoom, seed=0):
    """A smooth analytic image (a sum of 12 plane waves, wavelengths >= 8 px at zoom 1) sampled
    so that pixel (x, y) sits at (x / zoom, y / zoom) of the zoom-1 image."""
    rng = np.random.default_rng(seed)
    waves = rng.normal(size=(12, 2)) * 0.12
    phases = rng.uniform(0, 2 * np.pi, 12)
    amplitudes = rng.uniform(0.02, 0.05, 12)
    yy, xx = np.mgrid[:shape[0], :shape[1]] / zoom
    image = 0.5 + sum(a * np.cos(w[0] * xx + w[1] * yy + p) for w, p, a in zip(waves, phases, amplitudes))
    return image.astype(np.float32)


@pytest.mark.parametrize("oriented", [False, True])
def test_sizes_follow_the_image_scale(oriented):
    # The same scene sampled twice as densely: point 2p with support 2s and smoothing 2 sigma
    # sees what p with s and sigma sees. Each point keeps its own size in one call.
    rng = np.random.default_rng(1)
    points = rng.uniform(18, 46, (20, 2)).astype(np.float32)
    sizes = rng.uniform(8, 24, 20)
    orientation = rng.uniform(-np.pi, np.pi, 20) if oriented else None
    small = sift_descriptors(_waves((64, 64), 1), points, size=sizes, orientation=orientation, sigma=1.0)
    large_image = _waves((128, 128), 2)
    large = sift_descriptors(large_image, 2 * points, size=2 * sizes, orientation=orientation, sigma=2.0)
    cosine = (small * large).sum(axis=1)
    assert cosine.min() > 0.999
    # A support that does not follow the image (1.6 s instead of 2 s), or sizes given to the wrong
    # points, describe something else.
    wrong = sift_descriptors(large_image, 2 * points, size=1.6 * sizes, orientation=orientation, sigma=2.0)
    assert np.median((small * wrong).sum(axis=1)) < 0.99 and (small * wrong).sum(axis=1).max() < 0.9992
    swapped = sift_descriptors(large_image, 2 * points, size=2 * sizes[::-1], orientation=orientation, sigma=2.0)
    assert np.median((small * swapped).sum(axis=1)) < 0.98 and (small * swapped).sum(axis=1).min() < 0.9


# ---- rotation: 90 degrees permutes cells and bins ------------------------------------------------

def _rotate_cw(image, points):
    """np.rot90(image, -1) (clockwise on screen) and the points' new (x, y)."""
    height = image.shape[0]
    return np.rot90(image, -1).copy(), np.stack([height - 1 - points[:, 1], points[:, 0]], axis=1)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), size=st.sampled_from([8.0, 12.0, 16.0, 20.0]))
def test_rotation_by_90_degrees(seed, size):
    rng = np.random.default_rng(seed)
    image = rng.random((30, 36)).astype(np.float32)
    points = rng.integers(-6, 40, (5, 2)).astype(np.float32)
    rotated, points_r = _rotate_cw(image, points)
    d = sift_descriptors(image, points, size=size)
    # With orientation = pi/2 the rotated image gives back the upright descriptor exactly.
    e = sift_descriptors(rotated, points_r, size=size, orientation=np.full(5, np.pi / 2))
    np.testing.assert_allclose(e, d, atol=1e-5)
    # Upright on the rotated image: cell (cy, cx) moves to (cx, 3 - cy), bin b to b + 2.
    u = sift_descriptors(rotated, points_r, size=size).reshape(5, 4, 4, 8)
    expected = np.roll(np.rot90(d.reshape(5, 4, 4, 8), k=-1, axes=(1, 2)), 2, axis=3)
    np.testing.assert_allclose(u, expected, atol=1e-5)


# ---- kernels against plain numpy --------------------------------------------------------------

def test_orientation_field_matches_numpy():
    image = _random_image(5)
    magnitude, bins = _orientation_field(image, 8)
    ref_magnitude, ref_bins, _, _ = _orientation_field_reference(image, 8)
    np.testing.assert_allclose(magnitude, ref_magnitude, atol=1e-6)
    diff = np.abs(bins - ref_bins)
    assert np.minimum(diff, 8 - diff).max() < 1e-5


@pytest.mark.parametrize("n_cells, n_ori", [(4, 8), (3, 6), (2, 5)])
def test_describe_kernel_matches_numpy(n_cells, n_ori):
    rng = np.random.default_rng(n_cells)
    image = _random_image(n_cells)
    xs, ys = rng.uniform(-12, 62, (2, 25))
    sizes = rng.uniform(4, 22, 25)
    thetas = rng.uniform(-7, 7, 25)
    thetas[:4] = 0.0
    thetas[4:6] = np.pi / 2
    magnitude, bins = _orientation_field(image, n_ori)
    got = _describe(magnitude, bins, xs, ys, sizes, thetas, n_cells, n_ori)
    want = _describe_reference(image, xs, ys, sizes, thetas, n_cells, n_ori)
    np.testing.assert_allclose(got, want, atol=2e-5 * np.abs(want).max())


@pytest.mark.parametrize("rootsift", [False, True])
def test_normalize_kernel_matches_numpy(rootsift):
    raw = np.random.default_rng(1).random((40, 128)).astype(np.float32) ** 4
    raw[3] = 0.0
    np.testing.assert_allclose(_normalize_rows(raw, 0.2, rootsift),
                               _normalize_rows_reference(raw, 0.2, rootsift), atol=1e-6)


# ---- OpenCV as an oracle ---------------------------------------------------------------------

def test_matches_opencv_upright(camera):
    # OpenCV smooths its octave-0 image by sqrt(1.6^2 - 0.5^2) = 1.52 px before differencing.
    image_u8 = (camera * 255).round().astype(np.uint8)
    rng = np.random.default_rng(0)
    points = rng.integers(20, 490, (300, 2)).astype(np.float32)   # OpenCV rounds the centre
    ours = sift_descriptors(image_u8, points, size=16.0, sigma=1.52)
    theirs = _cv2_descriptors(image_u8, points, 16.0)
    cosine = (ours * theirs).sum(axis=1)
    assert np.median(cosine) > 0.995 and cosine.min() > 0.97
    assert (np.argmax(ours @ theirs.T, axis=1) == np.arange(300)).mean() > 0.99
    # A wrong bin convention or size mapping would not agree.
    assert np.median((ours.reshape(-1, 16, 8)[:, :, ::-1].reshape(-1, 128) * theirs).sum(1)) < 0.9
    larger = sift_descriptors(image_u8, points, size=24.0, sigma=1.52)
    assert np.median((larger * theirs).sum(axis=1)) < 0.95


def test_matches_opencv_oriented(camera):
    image_u8 = (camera * 255).round().astype(np.uint8)
    rng = np.random.default_rng(1)
    points = rng.integers(30, 480, (200, 2)).astype(np.float32)
    orientation = rng.uniform(-np.pi, np.pi, 200)
    ours = sift_descriptors(image_u8, points, size=16.0, orientation=orientation, sigma=1.52)
    theirs = _cv2_descriptors(image_u8, points, 16.0, orientation)
    cosine = (ours * theirs).sum(axis=1)
    assert np.median(cosine) > 0.98
    assert (np.argmax(ours @ theirs.T, axis=1) == np.arange(200)).mean() > 0.97


def test_default_descriptor_matches_on_warped_pair(warped_pair):
    image1, image2, homography = warped_pair
    points1 = cv2.goodFeaturesToTrack((image1 * 255).astype(np.uint8), 400, 0.01, 8).reshape(-1, 2)
    points2 = cv2.perspectiveTransform(points1[None].astype(np.float64), homography)[0]
    ahead = cv2.perspectiveTransform((points1 + [1.0, 0.0])[None].astype(np.float64), homography)[0]
    step = ahead - points2
    inside = np.all((points2 > 12) & (points2 < np.array(image2.shape[::-1]) - 12), axis=1)
    points1, points2, step = points1[inside], points2[inside], step[inside]
    d1 = sift_descriptors(image1, points1)
    d2 = sift_descriptors(image2, points2, size=16.0 * np.hypot(*step.T),
                          orientation=np.arctan2(step[:, 1], step[:, 0]))
    assert (np.argmax(d1 @ d2.T, axis=1) == np.arange(len(d1))).mean() > 0.9


@pytest.mark.parametrize("n_bins", [8, 36])
def test_bin_of_matches_numpy_arctan2(n_bins):
    from numba import njit

    from classicvision._kernels.gradient import _bin_of

    bin_of = njit(lambda y, x: _bin_of(x, y, n_bins / (2 * np.pi), n_bins))
    rng = np.random.default_rng(2)
    values = np.concatenate([rng.normal(size=(4000, 2)), [[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0],
                                                         [1.0, 1.0], [-1.0, -1.0], [-1e-9, -1.0], [1e-30, 1e-30]]])
    got = np.array([bin_of(y, x) for y, x in values])
    want = np.mod(np.arctan2(values[:, 0], values[:, 1]) * n_bins / (2 * np.pi), n_bins)
    assert np.all((got >= 0) & (got < n_bins))
    diff = np.abs(got - want)
    assert np.minimum(diff, n_bins - diff).max() < 1e-6
    assert bin_of(0.0, 0.0) == 0.0
