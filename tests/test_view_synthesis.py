"""View synthesis (ASIFT tilts): the view grid, exact geometry of the simulated views, the pooled
features, match_images(tilts=...) on a strongly tilted pair, unique_matches and the CLI flag."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from scipy import ndimage

from classicvision.cli import main
from classicvision.features.extract import detect_and_describe
from classicvision.features.keypoints import Keypoints
from classicvision.features.view_synthesis import (ANTIALIAS, detect_and_describe_views, map_to_image, simulate_view,
                                                   view_grid)
from classicvision.matching.evaluation import homography_correct, warp_points
from classicvision.matching.pipeline import match_images, unique_matches

SQRT2 = math.sqrt(2.0)


def test_view_grid_counts_are_asift_counts():
    # Morel & Yu's grid (tilts sqrt(2)**k, longitudes every 72/t degrees): OpenCV AffineFeature
    # simulates 18 views with maxTilt=3 and 43 with its default maxTilt=5.
    assert len(view_grid([SQRT2 ** k for k in range(1, 4)])) == 18
    assert len(view_grid([SQRT2 ** k for k in range(1, 6)])) == 43
    grid = view_grid([4.0])
    assert grid[0].tolist() == [1.0, 0.0]
    np.testing.assert_allclose(np.degrees(grid[1:, 1]), np.arange(10) * 18.0)
    assert len(view_grid([1.0, 1.0])) == 1


@pytest.mark.parametrize("bad", [[0.5], [100.0], "2,4", [float("nan")]])
def test_view_grid_refuses_bad_tilts(bad):
    with pytest.raises((TypeError, ValueError), match="tilts"):
        view_grid(bad)


def _blob(shape, center, sigma=3.0):
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(np.float64)
    return np.exp(-((xx - center[0]) ** 2 + (yy - center[1]) ** 2) / (2 * sigma ** 2)).astype(np.float32)


def _centroid(image):
    yy, xx = np.mgrid[:image.shape[0], :image.shape[1]]
    w = image.astype(np.float64)
    return np.array([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()])


@pytest.mark.parametrize("tilt, longitude", [(1.0, 0.7), (2.0, 0.0), (2.0, 1.2), (4.0, 2.5), (2 * SQRT2, math.pi / 2)])
def test_view_moves_a_blob_to_its_affine_image(tilt, longitude):
    # A blob's centroid is preserved by the symmetric blur and by bilinear resampling: it must land
    # at affine @ (x, y, 1), and map_to_image must bring it back.
    center = (70.3, 41.8)
    view = simulate_view(_blob((96, 128), center), tilt, longitude)
    expected = view.affine @ [center[0], center[1], 1.0]
    np.testing.assert_allclose(_centroid(view.image), expected, atol=0.03)
    back = map_to_image(expected[None].astype(np.float32), view.affine).points[0]
    np.testing.assert_allclose(back, center, atol=1e-4)
    np.testing.assert_allclose(abs(np.linalg.det(view.affine[:, :2])), 1.0 / tilt)


@pytest.mark.parametrize("longitude", [0.0, 0.4, 1.3, 2.9])
def test_view_compresses_the_longitude_direction_by_the_tilt(longitude):
    A = simulate_view(np.zeros((50, 70), np.float32), 3.0, longitude).affine[:, :2]
    along = np.array([math.cos(longitude), math.sin(longitude)])
    across = np.array([-math.sin(longitude), math.cos(longitude)])
    np.testing.assert_allclose(A @ along, [1.0 / 3.0, 0.0], atol=1e-12)   # onto the view's x axis
    np.testing.assert_allclose(np.linalg.norm(A @ across), 1.0)


def test_tilt_view_equals_scipy_blur_then_subsampling(camera):
    # Longitude 0: the view is the image blurred along x by 0.8 sqrt(t^2 - 1) (replicated border)
    # then read at x = t x' by linear interpolation (scipy as the oracle).
    image = camera[::2, ::2]
    tilt = 2.5
    view = simulate_view(image, tilt, 0.0)
    blurred = ndimage.gaussian_filter1d(image.astype(np.float64), ANTIALIAS * math.sqrt(tilt ** 2 - 1), axis=1,
                                        mode="nearest", truncate=4.0)
    yy, xx = np.mgrid[:view.image.shape[0], :view.image.shape[1]].astype(np.float64)
    oracle = ndimage.map_coordinates(blurred, [yy, tilt * xx], order=1, mode="nearest")
    inner = np.s_[:, 3:-3]
    np.testing.assert_allclose(view.image[inner], oracle[inner], atol=2e-3)


def test_map_to_image_round_trips_scale_and_orientation():
    view = simulate_view(np.zeros((64, 80), np.float32), 4.0, 0.9)
    A = view.affine
    rng = np.random.default_rng(0)
    original = Keypoints.from_points(rng.uniform(5, 60, (20, 2)), scale=2.0, orientation=rng.uniform(-3, 3, 20))
    in_view = (original.points.astype(np.float64) @ A[:, :2].T + A[:, 2]).astype(np.float32)
    theta = original.orientation.astype(np.float64)
    direction = np.stack([np.cos(theta), np.sin(theta)], 1) @ A[:, :2].T
    view_kp = Keypoints(in_view, original.scale, np.arctan2(direction[:, 1], direction[:, 0]).astype(np.float32),
                        original.response)
    back = map_to_image(view_kp, A)
    np.testing.assert_allclose(back.points, original.points, atol=1e-4)
    np.testing.assert_allclose(np.cos(back.orientation - original.orientation), 1.0, atol=1e-5)
    np.testing.assert_allclose(back.scale, 2.0 * math.sqrt(4.0), rtol=1e-6)


def test_detect_and_describe_views_pools_views_inside_the_image(camera):
    image = camera[::2, ::2]
    kp, d, view = detect_and_describe_views(image, [2.0], max_points=200)
    alone_kp, alone_d = detect_and_describe(image, max_points=200)
    frontal = view == 0
    np.testing.assert_array_equal(kp.points[frontal], alone_kp.points)
    np.testing.assert_array_equal(d[frontal], alone_d)
    assert set(view.tolist()) == set(range(len(view_grid([2.0]))))
    height, width = image.shape
    assert (kp.points >= 0).all() and (kp.points[:, 0] <= width - 1).all() and (kp.points[:, 1] <= height - 1).all()
    assert d.shape == (len(kp), 128) and d.dtype == np.float32


def _tilted_pair(image, tilt=4.0, longitude=0.5, k=4):
    """``image`` and its view compressed by ``tilt`` across the axis at ``longitude`` (about the
    centre, then zoomed by 1.2 to fill the frame), rendered at ``k``x and box-averaged; exact H."""
    height, width = image.shape
    c, s = math.cos(longitude), math.sin(longitude)
    R = np.array([[c, s], [-s, c]])
    A = 1.2 * R.T @ np.diag([1.0 / tilt, 1.0]) @ R
    center = np.array([(width - 1) / 2, (height - 1) / 2])
    H = np.eye(3)
    H[:2, :2], H[:2, 2] = A, center - A @ center
    S = np.array([[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2], [0, 0, 1.0]])
    high = cv2.warpPerspective(image, S @ H, (k * width, k * height), flags=cv2.INTER_LINEAR)
    return cv2.resize(high, (width, height), interpolation=cv2.INTER_AREA), H


def test_match_images_with_tilts_recovers_a_tilt_of_four(camera):
    image1 = camera[64:448, 64:448]
    image2, H = _tilted_pair(image1)
    plain = match_images(image1, image2)
    tilted = match_images(image1, image2, tilts=(2.0, 4.0))
    top = tilted.matches[:100]
    assert len(top) == 100
    correct = homography_correct(tilted.points1, tilted.points2, top, H, tolerance=3.0)
    assert correct.mean() >= 0.9
    plain_correct = homography_correct(plain.points1, plain.points2, plain.matches[:100], H, tolerance=3.0)
    assert correct.sum() > 3 * plain_correct.sum()   # the plain DoG path fails at this tilt
    # each pair of positions once
    assert len(unique_matches(tilted.points1, tilted.points2, tilted.matches)) == len(tilted.matches)
    error = np.linalg.norm(warp_points(tilted.points1[top[correct, 0]], H) - tilted.points2[top[correct, 1]], axis=1)
    assert np.median(error) < 1.0
    assert "views" in tilted.seconds


def test_match_images_tilts_none_is_the_plain_path(warped_pair):
    image1, image2, _ = warped_pair
    a = match_images(image1, image2)
    b = match_images(image1, image2, tilts=None)
    np.testing.assert_array_equal(a.matches, b.matches)
    with pytest.raises(ValueError, match="tilts"):
        match_images(image1, image2, tilts=[0.5])


def test_unique_matches_equals_the_brute_force_definition():
    rng = np.random.default_rng(1)
    p1 = rng.uniform(0, 12, (40, 2)).astype(np.float32)
    p2 = rng.uniform(0, 12, (30, 2)).astype(np.float32)
    matches = np.stack([rng.integers(0, 40, 200), rng.integers(0, 30, 200)], 1)
    keep = unique_matches(p1, p2, matches, cell=2.0)
    cells = np.floor(np.c_[p1[matches[:, 0]], p2[matches[:, 1]]] / 2.0)
    expected = [i for i in range(len(matches)) if not any((cells[j] == cells[i]).all() for j in range(i))]
    assert keep.tolist() == expected
    assert unique_matches(p1, p2, np.zeros((0, 2), np.int64)).shape == (0,)


def test_cli_tilts_flag(capsys, tmp_path, camera):
    image1 = camera[64:448, 64:448]
    image2, _ = _tilted_pair(image1)
    for name, image in (("a.png", image1), ("b.png", image2)):
        cv2.imwrite(str(tmp_path / name), np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
    files = [str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--scale", "1", "--json"]
    assert main(["match", *files]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(["match", *files, "--tilts"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tilts"] == [2.0, 4.0] and plain["tilts"] is None
    assert report["n_points1"] > 5 * plain["n_points1"]
    assert report["n_matches"] > 3 * plain["n_matches"]
    assert main(["match", *files, "--tilts", "0.5,2"]) == 1
    assert "--tilts must be" in capsys.readouterr().err
