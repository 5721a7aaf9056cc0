"""Tests for classicvision.features.keypoints: the Keypoints type and the OpenCV conversion."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from classicvision.features.keypoints import Keypoints, from_cv2_keypoints, to_cv2_keypoints, wrap_angle
from classicvision.features.scale_space import dog_keypoints
from classicvision.features.sift import sift_descriptors


def test_from_points_broadcasts_and_checks():
    kp = Keypoints.from_points(np.array([[1, 2], [3, 4]], np.int64), scale=[1.5, 2.5], orientation=0.25)
    assert len(kp) == 2 and kp.points.dtype == kp.scale.dtype == kp.orientation.dtype == np.float32
    assert kp.orientation.tolist() == [0.25, 0.25] and kp.response.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="scale must be > 0"):
        Keypoints.from_points([[1, 2]], scale=0.0)
    with pytest.raises(ValueError, match="orientation"):
        Keypoints.from_points([[1, 2]], orientation=[np.nan])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        Keypoints.from_points([[1, 2], [3, 4]], scale=[1.0, 2.0, 3.0])


def test_indexing_selects_rows_of_every_field():
    kp = Keypoints.from_points([[0, 0], [1, 1], [2, 2]], scale=[1, 2, 3], orientation=[0.1, 0.2, 0.3],
                               response=[3, -5, 1])
    picked = kp[np.array([2, 0])]
    assert picked.points[:, 0].tolist() == [2, 0] and picked.scale.tolist() == [3, 1]
    assert len(kp[kp.scale > 1]) == 2 and len(kp[1]) == 1
    assert kp.strongest(2).response.tolist() == [-5, 3]
    assert len(Keypoints.empty()) == 0 and Keypoints.empty().points.shape == (0, 2)


def test_huge_angles_wrap_without_looping():
    theta = np.array([1e20, -7.0, 3.0, np.pi], np.float64)
    wrapped = wrap_angle(theta)
    assert np.all(np.abs(wrapped) <= np.pi)
    np.testing.assert_allclose(np.cos(wrapped[1:]), np.cos(theta[1:]), atol=1e-12)
    assert wrapped[2] == 3.0 and wrapped[3] == np.pi  # in range: unchanged bit for bit


def test_opencv_round_trip_and_descriptor_support(camera):
    kp = dog_keypoints(camera[::2, ::2], max_points=20)
    kp = Keypoints(kp.points, kp.scale, np.linspace(-3, 3, len(kp)).astype(np.float32), kp.response)
    cv_kp = to_cv2_keypoints(kp)
    assert [k.size for k in cv_kp] == pytest.approx((2 * kp.scale).tolist())
    back = from_cv2_keypoints(cv_kp)
    np.testing.assert_allclose(back.points, kp.points)
    np.testing.assert_allclose(back.scale, kp.scale, rtol=1e-6)
    np.testing.assert_allclose(np.cos(back.orientation - kp.orientation), 1.0, atol=1e-6)
    np.testing.assert_allclose(back.response, kp.response)
    # The same support as OpenCV's descriptor of that KeyPoint: 4 cells of 3 sigma.
    assert to_cv2_keypoints(kp.points, size=12 * kp.scale)[0].size == pytest.approx(cv_kp[0].size)
    assert isinstance(cv_kp[0], cv2.KeyPoint)


def test_sift_reads_scale_and_orientation_from_keypoints(camera):
    image = camera[::2, ::2]
    kp = Keypoints.from_points([[100.0, 120.0], [60.0, 80.0]], scale=[2.0, 3.0], orientation=[0.5, -1.0])
    by_keypoints = sift_descriptors(image, kp)
    by_hand = sift_descriptors(image, kp.points, size=[24.0, 36.0], orientation=[0.5, -1.0])
    np.testing.assert_array_equal(by_keypoints, by_hand)
    other = sift_descriptors(image, kp, magnification=4.0)
    assert not np.allclose(other, by_keypoints)
    np.testing.assert_array_equal(other, sift_descriptors(image, kp.points, size=[32.0, 48.0],
                                                          orientation=[0.5, -1.0]))
