"""Hessian-/Harris-Laplace, affine shape adaptation and normalised patches: analytic blobs, an
affinely warped image, and the matcher on a tilted pair."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from classicvision.features.affine import (PATCH_SIGMA, _sample, _second_moment, _smoothing_matrix, adapt_affine_shape,
                                           detect_and_describe_affine, harris_laplace, hessian_laplace,
                                           normalized_patches)
from classicvision.features.keypoints import Keypoints
from classicvision.matching.evaluation import homography_correct


def _anisotropic_blob(size, covariance, center):
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    d = np.stack([xx - center[0], yy - center[1]], -1)
    inverse = np.linalg.inv(covariance)
    q = np.einsum("...i,ij,...j->...", d, inverse, d)
    return np.exp(-0.5 * q).astype(np.float32)


def _render(image, H, k=4):
    """``image`` through the homography ``H`` (same frame): bilinear at ``k``x, then box-averaged."""
    height, width = image.shape
    S = np.array([[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2], [0, 0, 1.0]])
    high = cv2.warpPerspective(image, S @ H, (k * width, k * height), flags=cv2.INTER_LINEAR)
    return cv2.resize(high, (width, height), interpolation=cv2.INTER_AREA)


def test_smoothing_matrix_equals_opencv():
    rng = np.random.default_rng(0)
    patch = rng.random((17, 17)).astype(np.float32)
    K = _smoothing_matrix(17, 1.4)
    from classicvision.features._gaussian import cached_gaussian_kernel1d
    g = cached_gaussian_kernel1d(1.4)
    expected = cv2.sepFilter2D(patch, cv2.CV_32F, g, g, borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_allclose(K @ patch @ K.T, expected, atol=1e-5)


@pytest.mark.parametrize("sigma", [3.0, 5.0, 8.0])
def test_hessian_laplace_finds_a_blob_at_its_characteristic_scale(sigma):
    # The normalised Laplacian of a Gaussian blob of sigma_b peaks at sigma = sigma_b (Lindeberg 1998).
    image = _anisotropic_blob(128, np.eye(2) * sigma ** 2, (60.4, 66.7))
    kp = hessian_laplace(image)
    assert len(kp) >= 1
    np.testing.assert_allclose(kp.points[0], (60.4, 66.7), atol=0.35)
    assert abs(math.log(kp.scale[0] / sigma)) < math.log(2 ** (1 / 3)) * 0.75   # within one scale step


@pytest.mark.parametrize("sigma", [3.0, 5.0, 8.0])
def test_harris_laplace_finds_a_blob_at_its_scale(sigma):
    image = _anisotropic_blob(128, np.eye(2) * sigma ** 2, (60.4, 66.7))
    kp = harris_laplace(image, threshold=1e-9)
    np.testing.assert_allclose(kp.points[0], (60.4, 66.7), atol=0.35)
    assert abs(math.log(kp.scale[0] / sigma)) < math.log(2 ** (1 / 3)) * 0.75


def test_harris_laplace_finds_the_corners_of_a_small_square():
    image = np.zeros((64, 64), np.float32)
    image[24:36, 24:36] = 1.0      # 12 px: the corners have a Laplacian extremum at about that size
    kp = harris_laplace(image, threshold=1e-9)
    assert len(kp) >= 1
    assert np.all(np.abs(kp.points - 29.5).max(axis=1) <= 8.5)   # on or inside the square's corners


@pytest.mark.parametrize("covariance", [np.diag([64.0, 16.0]), np.array([[30.0, 18.0], [18.0, 30.0]]),
                                        np.diag([9.0, 81.0])])
def test_adaptation_converges_to_isotropy_on_an_anisotropic_blob(covariance):
    # exp(-x^T C^-1 x / 2): the normalised patch is isotropic when S S^T is proportional to C.
    image = _anisotropic_blob(160, covariance, (80.0, 80.0))
    scale = float(np.linalg.det(covariance) ** 0.25)
    index, shapes = adapt_affine_shape(image, Keypoints.from_points([[80.0, 80.0]], scale=scale))
    assert index.tolist() == [0]
    S = shapes[0].astype(np.float64)
    np.testing.assert_allclose(np.linalg.det(S), 1.0, rtol=1e-5)
    # within 8%: the patch is read from an image level blurred by about 1 px (module docstring)
    np.testing.assert_allclose(S @ S.T, covariance / math.sqrt(np.linalg.det(covariance)), rtol=0.08, atol=0.01)
    patch = normalized_patches(image, Keypoints.from_points([[80.0, 80.0]], scale=scale), shapes, radius=8)
    a, b, c = _second_moment(patch)
    eig = np.linalg.eigvalsh(np.array([[a[0], b[0]], [b[0], c[0]]]))
    assert eig[0] / eig[1] > 0.9


def test_adaptation_gives_up_beyond_the_anisotropy_cap():
    image = _anisotropic_blob(200, np.diag([900.0, 4.0]), (100.0, 100.0))   # ratio 15 of the axes
    index, _ = adapt_affine_shape(image, Keypoints.from_points([[100.0, 100.0]], scale=7.7), max_anisotropy=4.0)
    assert index.tolist() == []


def test_affinely_warped_patch_normalises_to_the_same_patch(camera):
    # Warp the image by A (tilt 1.8 with a rotation); adapt at corresponding points in both.
    # S2^-1 A S1 must be a rotation R, and the patches must agree once that rotation is undone.
    image = camera[128:384, 128:384]
    c, s = math.cos(0.6), math.sin(0.6)
    A = np.array([[c, -s], [s, c]]) @ np.diag([1.0, 1.0 / 1.8]) @ np.array([[c, s], [-s, c]]) * 1.1
    center = np.array([127.5, 127.5])
    M = np.c_[A, center - A @ center]
    warped = _render(image, np.vstack([M, [0, 0, 1.0]]))
    kp1 = hessian_laplace(image, max_points=150)
    kp1 = kp1[np.all((kp1.points > 60) & (kp1.points < 196), axis=1) & (kp1.scale < 6)]
    kp2 = Keypoints.from_points(kp1.points @ A.T + M[:, 2], scale=kp1.scale * math.sqrt(abs(np.linalg.det(A))))
    i1, S1 = adapt_affine_shape(image, kp1)
    i2, S2 = adapt_affine_shape(warped, kp2)
    both = np.intersect1d(i1, i2)
    assert len(both) >= 0.5 * len(kp1) and len(both) >= 10
    S1 = S1[np.searchsorted(i1, both)].astype(np.float64)
    S2 = S2[np.searchsorted(i2, both)].astype(np.float64)
    R = np.linalg.inv(S2) @ (A / math.sqrt(np.linalg.det(A))) @ S1
    deviation = np.linalg.norm(np.transpose(R, (0, 2, 1)) @ R - np.eye(2), axis=(1, 2))
    assert np.median(deviation) < 0.1
    # the same patch: sample patch 2 through S2 R (so that the rotation is undone) and compare
    radius = 10
    p1 = normalized_patches(image, kp1[both], S1, radius=radius)
    p2 = normalized_patches(warped, kp2[both], S2 @ R, radius=radius)
    good = deviation < 0.1
    z = lambda p: (p - p.mean((1, 2), keepdims=True)) / (p.std((1, 2), keepdims=True) + 1e-6)
    correlation = (z(p1[good]) * z(p2[good])).mean((1, 2))
    assert np.median(correlation) > 0.9


def test_sample_reads_the_affine_map():
    # a linear ramp image: patch values are exact affine functions of (u, v)
    yy, xx = np.mgrid[:100, :100].astype(np.float32)
    image = (0.004 * xx + 0.002 * yy).astype(np.float32)
    S = np.array([[[1.5, 0.4], [0.4, 0.77]]])
    patch = _sample([image], np.array([[50.0, 40.0]]), np.array([0.5]), S, 4)[0]
    u, v = np.meshgrid(np.arange(-4, 5), np.arange(-4, 5))
    x = 50 + 0.5 * (S[0, 0, 0] * u + S[0, 0, 1] * v)
    y = 40 + 0.5 * (S[0, 1, 0] * u + S[0, 1, 1] * v)
    np.testing.assert_allclose(patch, 0.004 * x + 0.002 * y, atol=1e-5)


def test_hessian_affine_matches_a_tilted_pair(camera):
    image1 = camera[64:448, 64:448]
    c, s = math.cos(0.5), math.sin(0.5)
    A = np.array([[c, -s], [s, c]]) @ np.diag([1.0, 0.5]) @ np.array([[c, s], [-s, c]]) * 1.2
    center = np.array([191.5, 191.5])
    H = np.eye(3)
    H[:2, :2], H[:2, 2] = A, center - A @ center
    image2 = _render(image1, H)
    from classicvision.matching import match_descriptors
    kp1, d1 = detect_and_describe_affine(image1)
    kp2, d2 = detect_and_describe_affine(image2)
    matches, _ = match_descriptors(d1, d2)
    correct = homography_correct(kp1.points, kp2.points, matches[:100], H)
    assert len(matches) >= 50 and correct.mean() >= 0.8
    assert kp1.points.dtype == np.float32 and d1.shape == (len(kp1), 128)


def test_empty_and_bad_inputs():
    flat = np.zeros((40, 40), np.float32)
    kp, d = detect_and_describe_affine(flat)
    assert len(kp) == 0 and d.shape == (0, 128)
    index, shapes = adapt_affine_shape(flat, Keypoints.empty())
    assert index.shape == (0,) and shapes.shape == (0, 2, 2)
    with pytest.raises(ValueError, match="detector"):
        detect_and_describe_affine(flat, detector="dog")
    with pytest.raises(ValueError, match="max_anisotropy"):
        adapt_affine_shape(flat, Keypoints.empty(), max_anisotropy=0.5)
    with pytest.raises(ValueError, match="shapes"):
        normalized_patches(flat, Keypoints.from_points([[5.0, 5.0]]), np.eye(2)[None].repeat(2, 0))


def test_match_images_hessian_affine_and_its_refusals(warped_pair, capsys, tmp_path):
    from classicvision.cli import main
    from classicvision.matching.pipeline import match_images

    image1, image2, H = warped_pair
    r = match_images(image1, image2, detector="hessian-affine", max_points=400)
    correct = homography_correct(r.points1, r.points2, r.matches[:100], H)
    assert len(r.matches) >= 50 and correct.mean() >= 0.9
    with pytest.raises(ValueError, match="tilts"):
        match_images(image1, image2, detector="hessian-affine", tilts=(2.0,))
    with pytest.raises(ValueError, match="detector"):
        match_images(image1, image2, detector="sift")
    assert main(["match", "--detector", "harris-affine", "--tilts"]) == 1
    assert "--tilts applies to" in capsys.readouterr().err
