"""Tests for classicvision.harris: analytic corners, scipy/OpenCV/scikit-image oracles,
invariances, selection parameters, numba kernels against their numpy references, bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.feature

from classicvision._kernels import harris as hk
from classicvision.features.filters import _pad, gaussian_kernel1d
from classicvision.features.harris import _subpixel, harris, harris_response

MODES = ("reflect", "mirror", "nearest", "constant", "wrap")


def _points_responses(keypoints):
    """``(points, responses)`` of Harris keypoints, checking the Keypoints contract on the way."""
    n = len(keypoints)
    assert keypoints.scale.shape == keypoints.orientation.shape == (n,)
    assert np.all(keypoints.orientation == 0) and keypoints.scale.dtype == np.float32
    return keypoints.points, keypoints.response


def _smooth_random(shape, seed=0, blur=1.5):
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.random(shape), blur).astype(np.float32)


def _nearest_distance(points, others):
    """For each of ``points`` (N, 2), the distance to the nearest of ``others`` (M, 2)."""
    d = np.sqrt(((points[:, None, :].astype(np.float64) - others[None, :, :]) ** 2).sum(-1))
    return d.min(axis=1)


# --------------------------------------------------------------------------- analytic cases
def test_square_has_one_corner_at_last_bright_pixel(square):
    # The geometric corner of im[:25, :25] = 1 is at (x, y) = (24.5, 24.5). Sobel's [1, 2, 1]
    # smoothing puts 3/4 of an edge's gradient energy on the bright side, so the response peaks
    # at the last bright pixel, (24, 24), and by transpose symmetry the peak lies on x == y.
    points, responses = _points_responses(harris(square))
    assert points.tolist() == [[24.0, 24.0]]
    assert responses.shape == (1,) and responses[0] > 0
    refined, _ = _points_responses(harris(square, subpixel=True))
    assert refined.shape == (1, 2)
    assert refined[0, 0] == pytest.approx(refined[0, 1], abs=1e-6)
    assert np.abs(refined[0] - 24.0).max() <= 0.5
    assert np.hypot(*(refined[0] - 24.5)) <= 1.5


def test_constant_image_has_zero_response_and_no_points():
    image = np.full((40, 30), 0.7, np.float32)
    assert np.array_equal(harris_response(image), np.zeros((40, 30), np.float32))
    assert np.abs(harris_response(image, sigma_d=1.0)).max() < 1e-30  # float32 DoG kernel sums to ~1e-9
    points, responses = _points_responses(harris(image))
    assert points.shape == (0, 2) and points.dtype == np.float32
    assert responses.shape == (0,) and responses.dtype == np.float32


def test_response_is_finite_and_edges_are_negative(step_edge):
    response = harris_response(_smooth_random((64, 80)) * 1000.0)
    assert np.isfinite(response).all()
    edge = harris_response(step_edge)
    assert edge[32, 31] < 0 and edge[32, 32] < 0  # an edge: one large eigenvalue
    assert np.abs(edge[:, :25]).max() == 0.0  # flat far from the edge


def test_rotated_square_gives_its_four_corners(rotated_square):
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    u = np.array([20, 20, -20, -20])
    v = np.array([20, -20, 20, -20])
    corners = np.stack([50 + c * u - s * v, 50 + s * u + c * v], axis=1)  # (x, y), inverse rotation
    points, responses = _points_responses(harris(rotated_square))
    assert len(points) == 4
    # Each detected point is within 2 px of a distinct analytic corner (Harris at sigma=1
    # sits about 1.4 px inside a sharp corner).
    d = np.sqrt(((points[:, None, :] - corners[None]) ** 2).sum(-1))
    assert sorted(d.argmin(axis=1).tolist()) == [0, 1, 2, 3]
    assert d.min(axis=1).max() <= 2.0
    assert responses.min() > 0.9 * responses.max()  # the four corners look alike


# --------------------------------------------------------------------------- oracles
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sigma_d", [None, 1.2])
def test_response_matches_scipy_build(mode, sigma_d):
    image = _smooth_random((45, 61), seed=1).astype(np.float64)
    sigma = 1.5
    if sigma_d is None:
        gx = ndi.sobel(image, axis=1, mode=mode) / 8.0
        gy = ndi.sobel(image, axis=0, mode=mode) / 8.0
    else:
        gx = ndi.gaussian_filter(image, sigma_d, order=(0, 1), mode=mode)
        gy = ndi.gaussian_filter(image, sigma_d, order=(1, 0), mode=mode)
    a, b, c = (ndi.gaussian_filter(p, sigma, mode=mode) for p in (gx * gx, gx * gy, gy * gy))
    expected = a * c - b * b - 0.05 * (a + c) ** 2
    got = harris_response(image.astype(np.float32), k=0.05, sigma=sigma, sigma_d=sigma_d, mode=mode)
    assert got.dtype == np.float32 and got.shape == image.shape
    # Each stage pads its own input as scipy does, so the whole image agrees, border included.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_locations_agree_with_skimage(camera):
    points, _ = _points_responses(harris(camera, max_points=100))
    response = skimage.feature.corner_harris(camera, method="k", k=0.04, sigma=1)  # skimage default k=0.05
    peaks = skimage.feature.corner_peaks(response, min_distance=3, threshold_rel=0.01)[:, ::-1]  # (x, y)
    distance = _nearest_distance(points, peaks.astype(np.float64))
    assert len(points) == 100
    assert (distance <= 1.0).mean() >= 0.95


@pytest.mark.parametrize("block_size", [2, 3])
def test_locations_agree_with_opencv(camera, block_size):
    points, _ = _points_responses(harris(camera, max_points=100))
    response = cv2.cornerHarris(camera, block_size, 3, 0.04)  # box window, not Gaussian
    is_peak = (response == cv2.dilate(response, np.ones((7, 7), np.uint8))) & (response > 0.01 * response.max())
    peaks = np.argwhere(is_peak)[:, ::-1].astype(np.float64)  # (x, y)
    assert (_nearest_distance(points, peaks) <= 2.0).mean() >= 0.85


# --------------------------------------------------------------------------- invariance
def test_transpose_transposes_response():
    image = _smooth_random((37, 52), seed=2)
    for sigma_d in (None, 1.0):
        np.testing.assert_allclose(harris_response(image.T, sigma_d=sigma_d),
                                   harris_response(image, sigma_d=sigma_d).T, rtol=1e-5, atol=1e-9)


def test_rotation_by_90_degrees_permutes_points(camera):
    height, width = camera.shape
    points, responses = _points_responses(harris(camera, max_points=200))
    rotated, rotated_responses = _points_responses(harris(np.rot90(camera), max_points=200))
    # np.rot90 (counter-clockwise) sends (x, y) to (y, width - 1 - x).
    expected = np.stack([points[:, 1], width - 1 - points[:, 0]], axis=1)
    found = {tuple(p) for p in rotated.tolist()}
    assert np.mean([tuple(p) in found for p in expected.tolist()]) >= 0.97
    np.testing.assert_allclose(rotated_responses[:50], responses[:50], rtol=1e-4)


# --------------------------------------------------------------------------- dtypes, empty
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_dtypes_give_float32(dtype, square):
    scale = np.iinfo(dtype).max if np.dtype(dtype).kind == "u" else 1.0
    image = (square * scale).astype(dtype)
    response = harris_response(image)
    assert response.dtype == np.float32
    np.testing.assert_allclose(response, harris_response(square), rtol=1e-6, atol=1e-12)
    points, responses = _points_responses(harris(image))
    assert points.dtype == np.float32 and responses.dtype == np.float32
    assert points.tolist() == [[24.0, 24.0]]


@pytest.mark.parametrize("shape", [(0, 0), (0, 5), (1, 1), (2, 3), (5, 5), (16, 16)])
def test_tiny_and_empty_images(shape):
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    assert harris_response(image).shape == shape
    assert np.isfinite(harris_response(image)).all()
    points, responses = _points_responses(harris(image))  # exclude_border=8 leaves nothing
    assert points.shape == (0, 2) and points.dtype == np.float32
    assert responses.shape == (0,) and responses.dtype == np.float32


def test_max_points_zero_and_threshold_above_everything(camera):
    for kwargs in ({"max_points": 0}, {"threshold_abs": 1e9}):
        points, responses = _points_responses(harris(camera, **kwargs))
        assert points.shape == (0, 2) and responses.shape == (0,)


# --------------------------------------------------------------------------- selection
def test_points_sorted_and_inside_border(camera):
    points, responses = _points_responses(harris(camera, exclude_border=20))
    assert len(points) > 50
    assert np.all(np.diff(responses) <= 0)
    height, width = camera.shape
    assert points.min() >= 20 and points[:, 0].max() < width - 20 and points[:, 1].max() < height - 20
    response = harris_response(camera)
    x, y = points.astype(int).T
    np.testing.assert_array_equal(responses, response[y, x])


def test_thresholds(camera):
    points, responses = _points_responses(harris(camera))
    assert responses.min() >= 0.01 * responses.max()
    strict, strict_responses = _points_responses(harris(camera, threshold_rel=0.2))
    assert 0 < len(strict) < len(points)
    np.testing.assert_array_equal(strict, points[: len(strict)])  # a prefix of the sorted list
    assert strict_responses.min() >= 0.2 * responses[0]
    cut = float(responses[30])
    absolute, absolute_responses = _points_responses(harris(camera, threshold_abs=cut))
    np.testing.assert_array_equal(absolute_responses, responses[responses >= cut])
    none_rel, _ = _points_responses(harris(camera, threshold_rel=0.0, threshold_abs=None))
    assert len(none_rel) > len(points)


def test_max_points_keeps_the_strongest(camera):
    points, responses = _points_responses(harris(camera))
    top, top_responses = _points_responses(harris(camera, max_points=25))
    np.testing.assert_array_equal(top, points[:25])
    np.testing.assert_array_equal(top_responses, responses[:25])


@pytest.mark.parametrize("min_distance", [0, 1, 3, 8])
def test_min_distance_separates_points(camera, min_distance):
    points, _ = _points_responses(harris(camera, min_distance=min_distance, threshold_rel=0.001, max_points=1500))
    assert len(points) > 50
    chebyshev = np.abs(points[:, None, :] - points[None, :, :]).max(-1)
    np.fill_diagonal(chebyshev, np.inf)
    assert chebyshev.min() > min_distance


def test_nms_kernel_matches_reference_with_ties():
    rng = np.random.default_rng(3)
    response = rng.integers(-2, 6, size=(40, 57)).astype(np.float32)  # many exact ties
    for radius, border, threshold in ((1, 0, 1.0), (3, 2, 0.0), (2, 5, 4.0)):
        got = hk._nms_mask(response, radius, border, np.float32(threshold))
        expected = hk._nms_mask_reference(response, radius, border, threshold)
        np.testing.assert_array_equal(got, expected)
    plateau = np.zeros((12, 12), np.float32)
    plateau[3:8, 2:9] = 1.0  # one plateau: the first pixel in raster order wins
    assert np.argwhere(hk._nms_mask(plateau, 2, 0, np.float32(0.5))).tolist() == [[3, 2]]


def test_anms_kernel_matches_reference():
    rng = np.random.default_rng(4)
    for n in (0, 1, 2, 7, 300, 1500):
        xy = rng.integers(0, 400, size=(n, 2)).astype(np.float32)
        values = np.sort(rng.random(n).astype(np.float32))[::-1].copy()
        values[n // 3: n // 2] = values[n // 3] if n else values[n // 3: n // 2]  # ties
        np.testing.assert_array_equal(hk._anms_radii(xy, values, 0.9), hk._anms_radii_reference(xy, values, 0.9))
    xy = np.array([[0, 0], [10, 0], [3, 4]], np.float32)
    radii = hk._anms_radii(xy, np.array([3.0, 2.0, 1.0], np.float32), 0.9)
    np.testing.assert_array_equal(radii, [np.inf, 100.0, 25.0])  # squared radii


def test_anms_spreads_points(camera):
    n = 40
    top, top_responses = _points_responses(harris(camera, max_points=n))
    spread, spread_responses = _points_responses(harris(camera, max_points=n, anms=True))
    assert spread.shape == (n, 2) and np.all(np.diff(spread_responses) <= 0)
    assert spread[0].tolist() == top[0].tolist()  # the strongest point has an infinite radius
    everything, _ = _points_responses(harris(camera))
    # Spatial spread: mean distance to the nearest other chosen point, and the worst covering radius.
    def nearest_other(p):
        d = np.sqrt(((p[:, None] - p[None]) ** 2).sum(-1))
        np.fill_diagonal(d, np.inf)
        return d.min(1).mean()
    assert nearest_other(spread) > 1.5 * nearest_other(top)
    assert _nearest_distance(everything, spread).max() < _nearest_distance(everything, top).max()


# --------------------------------------------------------------------------- kernels and sub-pixel
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (7, 40), (70, 33)])
def test_fused_kernel_matches_numpy_reference(mode, shape):
    image = np.random.default_rng(5).random(shape).astype(np.float32)
    window = gaussian_kernel1d(1.3)
    r = window.size // 2
    maps = [hk._border_index(n, radius, mode) for radius in (1, r) for n in shape]
    got = hk._harris_kernel(image, image, True, window, *maps, np.float32(0.04), 16)
    gx, gy = hk._sobel_reference(_pad(image, 1, mode))
    expected = hk._response_reference(gx, gy, window, 0.04, mode)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-7 * np.abs(expected).max() + 1e-12)
    gx, gy = gx.astype(np.float32), gy.astype(np.float32)
    got = hk._harris_kernel(gx, gy, False, window, *maps, np.float32(0.04), 5)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-7 * np.abs(expected).max() + 1e-12)


def test_subpixel_recovers_quadratic_peak():
    yy, xx = np.mgrid[0:20, 0:20].astype(np.float64)
    x0, y0 = 9.3, 10.8
    response = (5.0 - (xx - x0) ** 2 - 2.0 * (yy - y0) ** 2 + 0.5 * (xx - x0) * (yy - y0)).astype(np.float32)
    offsets = _subpixel(response, np.array([[9, 11]], np.float32))
    np.testing.assert_allclose(offsets[0], [x0 - 9, y0 - 11], atol=1e-4)
    assert np.array_equal(_subpixel(np.zeros((5, 5), np.float32), np.array([[2, 2]], np.float32)), [[0, 0]])


def test_subpixel_moves_points_by_at_most_half_a_pixel(camera):
    points, responses = _points_responses(harris(camera, max_points=50))
    refined, refined_responses = _points_responses(harris(camera, max_points=50, subpixel=True))
    assert refined.dtype == np.float32
    assert np.abs(refined - points).max() <= 0.5
    assert np.abs(refined - points).max() > 0
    np.testing.assert_array_equal(refined_responses, responses)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("kwargs", "error", "text"), [
    ({"image": np.zeros((4, 4, 3))}, ValueError, "image must be 2-D"),
    ({"image": np.full((4, 4), np.nan)}, ValueError, "NaN"),
    ({"image": "not an image"}, TypeError, "image"),
    ({"sigma": -1.0}, ValueError, "sigma"),
    ({"sigma": 0}, ValueError, "sigma"),
    ({"sigma_d": -0.5}, ValueError, "sigma_d"),
    ({"k": 0.3}, ValueError, "k must be < 0.25"),
    ({"k": -0.01}, ValueError, "k must be >= 0"),
])
def test_bad_response_input(kwargs, error, text, square):
    kwargs = {"image": square, **kwargs}
    with pytest.raises(error, match=text):
        harris_response(**kwargs)
    with pytest.raises(error, match=text):
        harris(**kwargs)


@pytest.mark.parametrize(("kwargs", "error", "text"), [
    ({"min_distance": -1}, ValueError, "min_distance must be >= 0, got -1"),
    ({"min_distance": 2.5}, TypeError, "min_distance must be an integer"),
    ({"threshold_rel": 1.5}, ValueError, "threshold_rel"),
    ({"threshold_abs": float("nan")}, ValueError, "threshold_abs"),
    ({"exclude_border": -2}, ValueError, "exclude_border"),
    ({"max_points": -1}, ValueError, "max_points"),
    ({"anms": "yes"}, TypeError, "anms must be a bool"),
    ({"subpixel": 1}, TypeError, "subpixel must be a bool"),
])
def test_bad_selection_input(kwargs, error, text, square):
    with pytest.raises(error, match=text):
        harris(square, **kwargs)


def test_bad_mode(square):
    with pytest.raises(ValueError, match="mode must be one of"):
        harris_response(square, mode="circular")
