"""Tests for classicvision.evaluation: ground-truth pairs, homography and disparity criteria."""

from __future__ import annotations

import numpy as np
import pytest

from classicvision.matching.evaluation import (
    disparity_accuracy,
    disparity_check,
    disparity_correct,
    ground_truth_accuracy,
    ground_truth_correct,
    homography_accuracy,
    homography_correct,
    warp_points,
)

# ---------------------------------------------------------------- warp_points


def test_warp_points_against_cv2(warped_pair):
    import cv2

    _, _, H = warped_pair
    rng = np.random.default_rng(0)
    points = (rng.random((50, 2)) * 512).astype(np.float32)
    expected = cv2.perspectiveTransform(points[None].astype(np.float64), H)[0]
    warped = warp_points(points, H)
    assert warped.dtype == np.float32 and warped.shape == (50, 2)
    np.testing.assert_allclose(warped, expected, rtol=1e-6, atol=1e-3)
    assert warp_points(np.zeros((0, 2)), H).shape == (0, 2)


def test_warp_points_errors():
    with pytest.raises(ValueError, match="H must have shape"):
        warp_points([[0, 0]], np.eye(2))
    with pytest.raises(ValueError, match="H contains NaN"):
        warp_points([[0, 0]], np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="points must have shape"):
        warp_points(np.zeros((3, 3)), np.eye(3))


# ---------------------------------------------------------------- ground truth criterion

def synthetic_truth():
    """Two clusters of ground truth with different offsets: (+100, 0) on the left, (-50, +20) right."""
    truth = np.array([[100, 100, 200, 100],
                      [120, 300, 220, 300],
                      [800, 100, 750, 120],
                      [820, 300, 770, 320]], np.float32)
    return truth


def test_ground_truth_offsets_and_tolerances():
    truth = synthetic_truth()
    # matches near truth row 0 (offset x2 - x1 = +100) with errors 0, 24, 30, 39.9, 41 px
    errors = np.array([0.0, 24.0, 30.0, 39.9, 41.0])
    p1 = np.column_stack([np.full(5, 110.0), np.full(5, 110.0)]).astype(np.float32)
    p2 = (p1 + [100.0, 0.0] + np.column_stack([np.zeros(5), errors])).astype(np.float32)
    matches = np.column_stack([np.arange(5), np.arange(5)])
    np.testing.assert_array_equal(ground_truth_correct(p1, p2, matches, truth),
                                  [True, True, True, True, False])
    np.testing.assert_array_equal(ground_truth_correct(p1, p2, matches, truth, tolerance=25.0),
                                  [True, True, False, False, False])
    assert ground_truth_accuracy(p1, p2, matches, truth) == pytest.approx(0.8)
    assert ground_truth_accuracy(p1, p2, matches, truth, tolerance=25.0) == pytest.approx(0.4)
    # near the right cluster the same displacement (+100, 0) is wrong: its offset is (-50, +20)
    q1 = np.array([[810, 200]], np.float32)
    assert not ground_truth_correct(q1, q1 + [100, 0], [[0, 0]], truth)[0]
    assert ground_truth_correct(q1, q1 + [-50, 20], [[0, 0]], truth)[0]


def test_ground_truth_uses_the_nearest_truth_point_only():
    truth = synthetic_truth()
    # (450, 100) is 330 px from row 2 and 350 px from row 0: too far from both
    p1 = np.array([[450, 100], [251, 100], [249, 100]], np.float32)
    p2 = p1 + np.array([[100, 0], [100, 0], [100, 0]], np.float32)
    np.testing.assert_array_equal(ground_truth_correct(p1, p2, [[0, 0], [1, 1], [2, 2]], truth),
                                  [False, False, True])  # 251 is 151 px away; 249 is 149 px away


def test_ground_truth_radius_rule_is_inclusive():
    truth = np.array([[0, 0, 10, 0]], np.float32)
    p1 = np.array([[150, 0], [150.01, 0]], np.float32)
    p2 = p1 + [10, 0]
    np.testing.assert_array_equal(ground_truth_correct(p1, p2, [[0, 0], [1, 1]], truth), [True, False])
    np.testing.assert_array_equal(
        ground_truth_correct(p1, p2, [[0, 0], [1, 1]], truth, radius=200.0), [True, True])


def test_ground_truth_scale():
    truth = synthetic_truth()
    full1 = np.array([[110, 110], [130, 290]], np.float32)
    full2 = full1 + [100, 0]
    matches = [[0, 0], [1, 1]]
    for scale in (0.25, 0.5, 1.0, 2.0):
        assert ground_truth_correct(full1 * scale, full2 * scale, matches, truth, scale=scale).all()
    # an error of 30 scaled-image px at scale 0.5 is 60 full-resolution px: wrong
    wrong2 = full2 * 0.5 + [0, 30]
    assert not ground_truth_correct(full1 * 0.5, wrong2, matches, truth, scale=0.5).any()


def test_ground_truth_top_and_empty():
    truth = synthetic_truth()
    p1 = np.array([[110, 110]] * 4, np.float32)
    p2 = np.array([[210, 110], [210, 110], [0, 0], [0, 0]], np.float32)
    matches = np.column_stack([np.arange(4), np.arange(4)])
    assert ground_truth_accuracy(p1, p2, matches, truth, top=2) == 1.0
    assert ground_truth_accuracy(p1, p2, matches, truth, top=100) == 0.5   # denominator min(top, M)
    assert ground_truth_accuracy(p1, p2, matches, truth, top=None) == 0.5
    assert ground_truth_accuracy(p1, p2, np.zeros((0, 2), np.int64), truth) == 0.0
    assert ground_truth_correct(p1, p2, [], truth).shape == (0,)
    assert not ground_truth_correct(p1, p2, matches, np.zeros((0, 4))).any()


def test_ground_truth_errors():
    truth = synthetic_truth()
    p = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match="ground_truth must have shape"):
        ground_truth_correct(p, p, [[0, 0]], truth[:, :3])
    with pytest.raises(ValueError, match=r"matches\[:, 1\] must index points2"):
        ground_truth_correct(p, p, [[0, 3]], truth)
    with pytest.raises(ValueError, match=r"matches\[:, 0\]"):
        ground_truth_correct(p, p, [[-1, 0]], truth)
    with pytest.raises(TypeError, match="matches must hold integer"):
        ground_truth_correct(p, p, [[0.0, 1.0]], truth)
    with pytest.raises(ValueError, match="matches must have shape"):
        ground_truth_correct(p, p, [0, 1, 2], truth)
    with pytest.raises(ValueError, match="scale"):
        ground_truth_correct(p, p, [[0, 0]], truth, scale=0.0)
    with pytest.raises(ValueError, match="top"):
        ground_truth_accuracy(p, p, [[0, 0]], truth, top=0)


@pytest.mark.data
@pytest.mark.parametrize("name", ["notre_dame", "mt_rushmore", "e_gaudi"])
def test_ground_truth_pairs_accept_their_own_truth(pairs_dir, name):
    from classicvision.datasets import read_ground_truth

    truth = read_ground_truth(pairs_dir / name / "ground_truth.csv")
    matches = np.column_stack([np.arange(len(truth))] * 2)
    for scale in (0.5, 1.0):
        p1, p2 = truth[:, :2] * scale, truth[:, 2:] * scale
        assert ground_truth_accuracy(p1, p2, matches, truth, scale=scale, top=None) == 1.0
    # pairing each point with the next one's partner is mostly wrong
    shuffled = np.column_stack([np.arange(len(truth)), np.roll(np.arange(len(truth)), 7)])
    assert ground_truth_accuracy(truth[:, :2], truth[:, 2:], shuffled, truth, top=None) < 0.5


# ---------------------------------------------------------------- homography

def test_homography_on_warped_pair(warped_pair):
    image1, _, H = warped_pair
    rng = np.random.default_rng(3)
    p1 = (rng.random((200, 2)) * (np.array(image1.shape[::-1]) - 1)).astype(np.float32)
    p2 = warp_points(p1, H)
    matches = np.column_stack([np.arange(200), np.arange(200)])
    assert homography_correct(p1, p2, matches, H).all()
    assert homography_accuracy(p1, p2, matches, H) == 1.0
    angle = rng.random(200) * 2 * np.pi
    perturbed = p2 + (np.column_stack([np.cos(angle), np.sin(angle)]) * 3.5).astype(np.float32)
    assert not homography_correct(p1, perturbed, matches, H).any()
    assert homography_correct(p1, perturbed, matches, H, tolerance=4.0).all()
    shifted = p2 + (np.column_stack([np.cos(angle), np.sin(angle)]) * 2.5).astype(np.float32)
    half = np.vstack([p2[:100], shifted[100:] + 1.0])          # 100 at 0 px, 100 at ~2.5-3.5 px
    assert homography_accuracy(p1, p2[::-1].copy(), matches, H) < 0.05
    assert homography_accuracy(p1, half, matches, H, tolerance=1.0) == 0.5
    assert homography_accuracy(p1, half, matches, H, tolerance=1.0, top=100) == 1.0
    assert homography_accuracy(p1, p2, np.zeros((0, 2), np.int64), H) == 0.0


def test_homography_point_at_infinity_is_wrong():
    H = np.array([[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 0]])   # x = 0 goes to infinity
    p = np.array([[0.0, 5.0]], np.float32)
    assert not homography_correct(p, p, [[0, 0]], H)[0]


# ---------------------------------------------------------------- disparity

def tiny_disparity():
    disparity = np.full((5, 8), 3.0, np.float32)
    disparity[:, 5:] = 1.0
    disparity[0, :] = np.inf                  # unknown row
    disparity[4, 7] = np.nan                  # unknown pixel
    return disparity


def test_disparity_synthetic():
    disparity = tiny_disparity()
    left = np.array([[4, 2], [6, 2], [6.4, 3.4], [4, 0], [7, 4], [4, 2], [4, 2], [20, 2]], np.float32)
    right = np.array([[1, 2], [5, 2], [5.4, 3.4], [1, 0], [6, 4], [3, 2], [1, 4.5], [17, 2]], np.float32)
    matches = np.column_stack([np.arange(8), np.arange(8)])
    correct, known = disparity_check(left, right, matches, disparity)
    np.testing.assert_array_equal(known, [True, True, True, False, False, True, True, False])
    np.testing.assert_array_equal(correct, [True, True, True, False, False, True, False, False])
    np.testing.assert_array_equal(disparity_correct(left, right, matches, disparity), correct)
    correct1, _ = disparity_check(left, right, matches, disparity, tolerance=1.0)
    np.testing.assert_array_equal(correct1, [True, True, True, False, False, False, False, False])
    assert disparity_accuracy(left, right, matches, disparity) == pytest.approx(4 / 5)
    assert disparity_accuracy(left, right, matches, disparity, tolerance=1.0) == pytest.approx(3 / 5)
    assert disparity_accuracy(left, right, matches, disparity, top=3) == 1.0
    assert disparity_accuracy(left, right, matches[3:5], disparity) == 0.0   # nothing known


def test_disparity_nearest_pixel_rounding():
    disparity = np.zeros((3, 3), np.float32)
    disparity[1, 2] = 10.0
    left = np.array([[1.5, 1.0], [1.49, 1.0]], np.float32)   # rounds to column 2, then column 1
    right = np.array([[-8.5, 1.0], [1.49, 1.0]], np.float32)
    correct, known = disparity_check(left, right, [[0, 0], [1, 1]], disparity)
    assert known.all() and correct.all()


def test_disparity_on_motorcycle(motorcycle):
    left, right, disparity = motorcycle
    rng = np.random.default_rng(0)
    height, width = disparity.shape
    xs = rng.integers(0, width, 2000)
    ys = rng.integers(0, height, 2000)
    p1 = np.column_stack([xs, ys]).astype(np.float32)
    d = disparity[ys, xs]
    finite = np.isfinite(d)
    assert 0 < (~finite).sum() < 2000
    p2 = np.column_stack([xs - np.where(finite, d, 0), ys]).astype(np.float32)
    matches = np.column_stack([np.arange(2000), np.arange(2000)])
    correct, known = disparity_check(p1, p2, matches, disparity)
    np.testing.assert_array_equal(known, finite)
    np.testing.assert_array_equal(correct, finite)
    assert disparity_accuracy(p1, p2, matches, disparity) == 1.0
    assert disparity_accuracy(p1, p2 + [2.5, 0], matches, disparity) == 0.0
    assert disparity_accuracy(p1, p2 + [0, 1.5], matches, disparity) == 1.0
    # the truth is photo-consistent: matched right pixels look like the left ones
    xr = np.clip(np.rint(p2[finite, 0]).astype(int), 0, width - 1)
    good = np.abs(left[ys[finite], xs[finite]] - right[ys[finite], xr]).mean()
    bad = np.abs(left[ys[finite], xs[finite]] - right[ys[finite], np.clip(xr + 15, 0, width - 1)]).mean()
    assert good < 0.5 * bad


def test_disparity_errors():
    p = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="disparity must be 2-D"):
        disparity_check(p, p, [[0, 0]], np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="tolerance"):
        disparity_check(p, p, [[0, 0]], np.zeros((2, 2)), tolerance=-1.0)
