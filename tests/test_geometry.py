"""Tests for classicvision.geometry.verify_matches: known models with outliers, too few matches."""

from __future__ import annotations

import numpy as np
import pytest

from classicvision.matching.geometry import MIN_MATCHES, verify_matches

H_TRUE = np.array([[0.9, -0.2, 30.0], [0.25, 1.1, -10.0], [1e-4, -2e-4, 1.0]])


def _homography_data(n=200, n_out=80, seed=0):
    rng = np.random.default_rng(seed)
    p1 = rng.uniform(0, 500, (n, 2))
    q = np.c_[p1, np.ones(n)] @ H_TRUE.T
    p2 = q[:, :2] / q[:, 2:] + rng.normal(0, 0.3, (n, 2))
    outliers = rng.choice(n, n_out, replace=False)
    p2[outliers] = rng.uniform(0, 500, (n_out, 2))
    truth = np.ones(n, bool)
    truth[outliers] = np.linalg.norm(p2[outliers] - q[outliers, :2] / q[outliers, 2:], axis=1) < 3
    matches = np.stack([np.arange(n), np.arange(n)], axis=1)
    return p1.astype(np.float32), p2.astype(np.float32), matches, truth


def _two_view_data(n=200, n_out=60, seed=0):
    rng = np.random.default_rng(seed)
    X = np.c_[rng.uniform(-2, 2, (n, 2)), rng.uniform(4, 8, n)]  # a 3-D cloud, not a plane
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    angle = 0.2
    R = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    t = np.array([-1.0, 0.1, 0.2])
    x1 = X @ K.T
    x2 = (X @ R.T + t) @ K.T
    p1 = x1[:, :2] / x1[:, 2:] + rng.normal(0, 0.3, (n, 2))
    p2 = x2[:, :2] / x2[:, 2:] + rng.normal(0, 0.3, (n, 2))
    outliers = rng.choice(n, n_out, replace=False)
    p2[outliers] = rng.uniform(0, 640, (n_out, 2))
    matches = np.stack([np.arange(n), np.arange(n)], axis=1)
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    F = np.linalg.inv(K).T @ tx @ R @ np.linalg.inv(K)
    return p1.astype(np.float32), p2.astype(np.float32), matches, outliers, F


@pytest.mark.parametrize("method", ["magsac", "ransac"])
def test_homography_with_outliers(method):
    p1, p2, matches, truth = _homography_data()
    inliers, H = verify_matches(p1, p2, matches, method=method)
    assert inliers.dtype == bool and inliers.shape == (len(matches),)
    assert H.dtype == np.float64 and H.shape == (3, 3)
    assert (inliers == truth).mean() > 0.97
    q = np.c_[p1, np.ones(len(p1))] @ (H / H[2, 2]).T
    q_true = np.c_[p1, np.ones(len(p1))] @ H_TRUE.T
    error = np.linalg.norm(q[:, :2] / q[:, 2:] - q_true[:, :2] / q_true[:, 2:], axis=1)
    assert np.median(error) < 0.5


def test_fundamental_with_outliers():
    p1, p2, matches, outliers, F_true = _two_view_data()
    inliers, F = verify_matches(p1, p2, matches, model="fundamental", threshold=1.0)
    assert F.shape == (3, 3)
    assert not inliers[outliers].mean() > 0.1
    assert inliers[np.setdiff1d(np.arange(len(p1)), outliers)].mean() > 0.9
    # Epipolar residuals of the true inliers under the estimate are small.
    h1, h2 = np.c_[p1, np.ones(len(p1))], np.c_[p2, np.ones(len(p2))]
    lines = h1 @ F.T
    distance = np.abs(np.sum(h2 * lines, axis=1)) / np.hypot(lines[:, 0], lines[:, 1])
    good = np.setdiff1d(np.arange(len(p1)), outliers)
    assert np.median(distance[good]) < 1.0
    assert np.linalg.matrix_rank(F, tol=1e-8 * np.abs(F).max()) == 2


@pytest.mark.parametrize("model", ["homography", "fundamental"])
def test_too_few_matches(model):
    p1, p2, matches, _ = _homography_data(n=20, n_out=0)
    n = MIN_MATCHES[model] - 1
    inliers, matrix = verify_matches(p1, p2, matches[:n], model=model)
    assert matrix is None and inliers.shape == (n,) and not inliers.any()
    inliers, matrix = verify_matches(p1, p2, np.zeros((0, 2), np.int64), model=model)
    assert matrix is None and inliers.shape == (0,) and inliers.dtype == bool


def _two_planes(seed=0):
    """300 matches: 100 on H_TRUE, 100 on another homography, 100 outliers. Either plane is an
    equally good answer, so which one a robust fit returns depends on its random samples."""
    rng = np.random.default_rng(seed)
    h_other = np.array([[1.1, 0.1, -40.0], [-0.15, 0.95, 25.0], [-1e-4, 1e-4, 1.0]])
    p1 = rng.uniform(0, 500, (300, 2))
    p2 = rng.uniform(0, 500, (300, 2))
    for rows, h in ((slice(0, 100), H_TRUE), (slice(100, 200), h_other)):
        q = np.c_[p1[rows], np.ones(100)] @ h.T
        p2[rows] = q[:, :2] / q[:, 2:] + rng.normal(0, 0.3, (100, 2))
    return p1.astype(np.float32), p2.astype(np.float32), np.stack([np.arange(300)] * 2, axis=1)


def _plane_of(inliers):
    """0 or 1: which plane the inliers are (all of one and none of the other), else fail."""
    counts = inliers[:100].sum(), inliers[100:200].sum()
    assert sorted(counts) == [0, 100] and inliers[200:].sum() <= 3, counts
    return int(counts[1] == 100)


@pytest.mark.parametrize("method", ["magsac", "ransac"])
def test_reproducible(method):
    p1, p2, matches = _two_planes()
    runs = [verify_matches(p1, p2, matches, method=method, random_state=seed) for seed in range(8)]
    for seed in (0, 5):                     # the same seed repeats exactly
        again = verify_matches(p1, p2, matches, method=method, random_state=seed)
        np.testing.assert_array_equal(again[0], runs[seed][0])
        np.testing.assert_array_equal(again[1], runs[seed][1])
    planes = [_plane_of(inliers) for inliers, _ in runs]
    assert 0 < sum(planes) < len(planes), planes    # other seeds find the other plane
    assert len({matrix.tobytes() for _, matrix in runs}) > 1


def test_matches_index_through_a_permutation():
    p1, p2, matches, truth = _homography_data()
    permutation = np.random.default_rng(0).permutation(len(p2))
    p2_shuffled = np.empty_like(p2)
    p2_shuffled[permutation] = p2  # original point i now sits at row permutation[i]
    m = np.stack([matches[:, 0], permutation], axis=1)
    inliers, _ = verify_matches(p1, p2_shuffled, m)
    assert (inliers == truth).mean() > 0.97


def test_errors():
    p1, p2, matches, _ = _homography_data(n=10, n_out=0)
    with pytest.raises(ValueError, match="model"):
        verify_matches(p1, p2, matches, model="affine")
    with pytest.raises(ValueError, match="threshold"):
        verify_matches(p1, p2, matches, threshold=0)
    with pytest.raises(ValueError, match="confidence"):
        verify_matches(p1, p2, matches, confidence=1.0)
    with pytest.raises(ValueError, match=r"matches\[:, 1\]"):
        verify_matches(p1, p2[:5], matches)
    with pytest.raises(TypeError, match="matches"):
        verify_matches(p1, p2, matches.astype(float))
