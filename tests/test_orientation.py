"""Tests for classicvision.orientation: kernel vs reference, analytic ramps, rotation covariance."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from classicvision._kernels import dog as _k, orientation as _ko
from classicvision.features.orientation import dominant_orientations, orientation_histograms
from classicvision.features.scale_space import dog_extrema, gaussian_pyramid


_SMOOTH = np.array([1, 4, 6, 4, 1], np.float32) / 16   # Lowe's / OpenCV's circular smoothing


def _peaks(hist, peak_ratio):
    return _ko._peaks(hist, peak_ratio, _SMOOTH)


def _angle_difference(a, b):
    return np.abs(np.mod(np.asarray(a) - np.asarray(b) + np.pi, 2 * np.pi) - np.pi)


def _ramp(angle, size=96):
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    return (0.5 + 0.004 * (np.cos(angle) * xx + np.sin(angle) * yy)).astype(np.float32)


@pytest.fixture(scope="module")
def camera_points(camera):
    image = np.ascontiguousarray(camera[::2, ::2])
    pyramid = gaussian_pyramid(image)
    found = dog_extrema(pyramid)
    return image, pyramid, found


def test_histogram_kernel_matches_reference(camera_points, monkeypatch):
    _, pyramid, found = camera_points
    rng = np.random.default_rng(1)
    levels = rng.integers(0, 6, 40)
    stack = pyramid.octaves[0]
    xs = rng.uniform(-3, stack.shape[2] + 3, 40).astype(np.float32)  # some windows cut by the border
    ys = rng.uniform(-3, stack.shape[1] + 3, 40).astype(np.float32)
    sigmas = rng.uniform(1.6, 3.2, 40).astype(np.float32)
    slow = _ko._orientation_histograms_reference(stack, levels, xs, ys, sigmas, 36, 1.5, 3.0)
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("CLASSICVISION_NUM_THREADS", threads)
        fast = _ko._orientation_histograms(stack, levels, xs, ys, sigmas, 36, 1.5, 3.0)
        # The kernel's arctan2 is a polynomial good to 1.2e-5 rad: 7e-5 of a bin per vote.
        np.testing.assert_allclose(fast, slow, rtol=0, atol=2e-4 * slow.max())
    assert (slow.sum(axis=1) > 0).mean() > 0.5


@pytest.mark.parametrize("degrees", [0, 30, 90, 135, 180, -60, -90])
def test_ramp_orientation(degrees):
    angle = np.deg2rad(degrees)
    index, theta = dominant_orientations(_ramp(angle), [[48.0, 48.0]], [3.0])
    assert index.tolist() == [0]
    assert theta.dtype == np.float32 and -np.pi <= theta[0] < np.pi
    assert _angle_difference(theta[0], angle) < np.deg2rad(1.0)


def test_rotation_by_90_degrees_shifts_orientations(camera_points):
    image, _, found = camera_points
    keep = np.argsort(-np.abs(found.responses))[:60]
    points, scales = found.points[keep], found.scales[keep]
    height, width = image.shape
    rotated = np.ascontiguousarray(np.rot90(image))  # counter-clockwise on screen
    # np.rot90 sends (x, y) to (y, width - 1 - x) and the gradient angle theta to theta - pi / 2.
    moved = np.stack([points[:, 1], width - 1 - points[:, 0]], axis=1)
    index, theta = dominant_orientations(image, points, scales)
    index_r, theta_r = dominant_orientations(rotated, moved, scales)
    first = np.unique(index, return_index=True)[1]
    first_r = np.unique(index_r, return_index=True)[1]
    error = _angle_difference(theta_r[first_r], theta[first] - np.pi / 2)
    assert np.mean(error < np.deg2rad(3)) > 0.9


def test_agrees_with_opencv_sift_orientations(camera_points):
    image, _, _ = camera_points
    keypoints = cv2.SIFT.create().detect((image * 255).round().astype(np.uint8), None)
    table = np.array([(k.pt[0] - 0.25, k.pt[1] - 0.25, k.size / 2, np.deg2rad(k.angle)) for k in keypoints])
    _, first = np.unique(table[:, :3], axis=0, return_index=True)
    index, theta = dominant_orientations(image, table[first, :2], table[first, 2])
    # Each of our orientations should be one of OpenCV's for the same point (to a few degrees).
    same_point = np.all(table[first][index][:, None, :3] == table[None, :, :3], axis=2)
    error = np.where(same_point, _angle_difference(theta[:, None], table[None, :, 3]), np.inf).min(axis=1)
    assert np.mean(error < np.deg2rad(5)) > 0.85


def test_peaks_interpolation_and_ratio():
    hist = np.zeros((3, 36), np.float32)
    hist[0, 10] = hist[0, 11] = 1.0  # symmetric: the peak is at bin 10.5
    hist[1, 5], hist[1, 20] = 1.0, 0.9  # two peaks within 80%
    hist[2, 5], hist[2, 20] = 1.0, 0.5  # the second is too low
    rows, angle = _peaks(hist, 0.8)
    assert rows.tolist() == [0, 1, 1, 2]
    assert angle[0] == pytest.approx(2 * np.pi * 10.5 / 36, abs=1e-5)
    assert angle[1] == pytest.approx(2 * np.pi * 5 / 36, abs=1e-5)  # the strongest first
    assert angle[2] == pytest.approx(2 * np.pi * 20 / 36 - 2 * np.pi, abs=1e-5)  # wrapped to [-pi, pi)


def test_peak_kernel_matches_reference(camera_points):
    _, pyramid, found = camera_points
    real = orientation_histograms(pyramid, found.points, found.scales)
    rng = np.random.default_rng(3)
    ties = rng.integers(0, 3, (200, 36)).astype(np.float32)          # plateaus and equal peaks
    spiky = (rng.random((200, 36)) ** 8).astype(np.float32)          # many peaks within the ratio
    flat = np.zeros((3, 36), np.float32)
    odd = rng.random((50, 7)).astype(np.float32)                     # another bin count
    for hist in (real, ties, spiky, flat, odd, np.zeros((0, 36), np.float32)):
        for ratio in (0.0, 0.5, 0.8, 1.0):
            rows, angle = _peaks(hist, ratio)
            slow_rows, slow_angle = _ko._peaks_reference(hist, ratio, _SMOOTH)
            np.testing.assert_array_equal(rows, slow_rows)
            np.testing.assert_array_equal(angle, slow_angle)
            assert rows.dtype == np.int64 and angle.dtype == np.float32
    assert np.bincount(_peaks(spiky, 0.0)[0]).max() > 3 and len(real) > 100


def test_multiple_orientations_are_common(camera_points):
    _, pyramid, found = camera_points
    index, theta = dominant_orientations(pyramid, found.points, found.scales)
    counts = np.bincount(index, minlength=len(found.points))
    assert counts.min() >= 1 and np.all(np.diff(index) >= 0)
    assert 0.05 < (counts > 1).mean() < 0.4  # Lowe: about 15% of points


def test_flat_and_empty():
    index, theta = dominant_orientations(np.zeros((40, 40), np.float32), [[20.0, 20.0]], [2.0])
    assert index.tolist() == [0] and theta.tolist() == [0.0]
    index, theta = dominant_orientations(np.zeros((40, 40), np.float32), np.zeros((0, 2)), np.zeros(0))
    assert index.shape == (0,) and index.dtype == np.int64 and theta.dtype == np.float32
    assert orientation_histograms(np.zeros((40, 40)), [], []).shape == (0, 36)


def test_errors():
    image = np.zeros((40, 40), np.float32)
    with pytest.raises(ValueError, match="scales"):
        dominant_orientations(image, [[1.0, 2.0]], [1.0, 2.0])
    with pytest.raises(ValueError, match="scales"):
        dominant_orientations(image, [[1.0, 2.0]], [-1.0])
    with pytest.raises(ValueError, match="peak_ratio"):
        dominant_orientations(image, [[1.0, 2.0]], [1.0], peak_ratio=1.5)
    with pytest.raises(ValueError, match="points"):
        dominant_orientations(image, [[1.0, 2.0, 3.0]], [1.0])
