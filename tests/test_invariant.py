"""Tests for classicvision.invariant: exact accuracy under known rotations and scales."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from classicvision.evaluation import ground_truth_correct, homography_correct
from classicvision.invariant import InvariantMatches, detect_and_describe_invariant, match_images_invariant


def _warp(image, degrees, scale):
    height, width = image.shape
    M = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), degrees, scale)
    warped = cv2.warpAffine(image, M, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return np.ascontiguousarray(warped, np.float32), np.vstack([M, [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def small(camera):
    return np.ascontiguousarray(cv2.resize(camera, (256, 256), interpolation=cv2.INTER_AREA))


@pytest.mark.parametrize("degrees, scale", [(0, 1.0), (30, 1.0), (90, 1.0), (150, 1.0), (45, 0.7), (0, 1.5)])
def test_exact_accuracy_under_rotation_and_scale(small, degrees, scale):
    warped, H = _warp(small, degrees, scale)
    result = match_images_invariant(small, warped)
    assert isinstance(result, InvariantMatches) and result.inliers is None
    correct = homography_correct(result.points1, result.points2, result.matches, H, tolerance=3.0)
    assert len(correct) >= 40
    assert correct[:50].mean() >= 0.95
    assert correct.mean() >= 0.8


def test_upright_is_not_rotation_invariant(small):
    warped, H = _warp(small, 90, 1.0)
    upright = match_images_invariant(small, warped, upright=True)
    assert np.all(upright.orientations1 == 0)
    rotating = match_images_invariant(small, warped)
    good_upright = homography_correct(upright.points1, upright.points2, upright.matches, H).sum()
    good_rotating = homography_correct(rotating.points1, rotating.points2, rotating.matches, H).sum()
    assert good_rotating > 3 * max(good_upright, 1)


def test_verification_keeps_correct_matches(small):
    warped, H = _warp(small, 60, 0.8)
    result = match_images_invariant(small, warped, verify="homography", max_ratio=0.9)
    assert result.inliers.shape == (len(result.matches),) and result.inliers.dtype == bool
    correct = homography_correct(result.points1, result.points2, result.matches, H)
    assert correct[result.inliers].mean() > 0.98
    assert correct[result.inliers].mean() > correct.mean()
    np.testing.assert_allclose(result.matrix / result.matrix[2, 2], H, atol=0.05 * np.abs(H).max())


def test_outputs_and_frames(small):
    points, scales, orientations, descriptors = detect_and_describe_invariant(small, max_points=100)
    n = len(points)
    assert 100 <= n <= 200  # several orientations per point sometimes
    assert points.dtype == scales.dtype == orientations.dtype == descriptors.dtype == np.float32
    assert scales.shape == orientations.shape == (n,) and descriptors.shape == (n, 128)
    assert np.all(np.abs(orientations) <= np.pi) and np.all(scales > 0)
    np.testing.assert_allclose(np.linalg.norm(descriptors, axis=1), 1.0, atol=1e-3)
    rootsift = detect_and_describe_invariant(small, max_points=100, rootsift=True)[3]
    assert np.all(rootsift >= 0)


def test_flat_images_give_empty_answers():
    flat = np.full((64, 64), 0.5, np.float32)
    points, scales, orientations, descriptors = detect_and_describe_invariant(flat)
    assert points.shape == (0, 2) and descriptors.shape == (0, 128) and descriptors.dtype == np.float32
    result = match_images_invariant(flat, flat, verify="fundamental")
    assert result.matches.shape == (0, 2) and result.inliers.shape == (0,) and result.matrix is None


def test_errors(small):
    with pytest.raises(ValueError, match="verify"):
        match_images_invariant(small, small, verify="affine")
    with pytest.raises(ValueError, match="max_points"):
        detect_and_describe_invariant(small, max_points=0)


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("name, rootsift, minimum", [
    ("e_gaudi", False, 0.75),  # 0.80 measured; OpenCV's SIFT + ratio test: 0.84
    ("e_gaudi", True, 0.85),  # 0.87 measured
    ("notre_dame", False, 0.95),
    ("mt_rushmore", False, 0.95),
])
def test_ground_truth_pairs(pairs_dir, name, rootsift, minimum):
    from classicvision.datasets import load_pair

    image1, image2, truth = load_pair(name, root=pairs_dir.parent, scale=0.5)
    result = match_images_invariant(image1, image2, rootsift=rootsift)
    correct = ground_truth_correct(result.points1, result.points2, result.matches[:100], truth, scale=0.5)
    assert len(correct) == 100
    assert correct.mean() >= minimum
