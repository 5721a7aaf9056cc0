"""Filters against OpenCV and scipy.ndimage (oracles), analytic ramps, and the numba/numpy twins."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

from classicvision.features import filters
from classicvision._kernels.separable import _separable_valid, _separable_valid_reference

CV_BORDERS = {"reflect": cv2.BORDER_REFLECT, "mirror": cv2.BORDER_REFLECT_101, "nearest": cv2.BORDER_REPLICATE,
              "constant": cv2.BORDER_CONSTANT, "wrap": cv2.BORDER_WRAP}


def test_gaussian_kernel_sums_to_one_and_matches_scipy_radius():
    for sigma in (0.5, 1.0, 1.6, 3.2):
        k = filters.gaussian_kernel1d(sigma)
        assert k.dtype == np.float32
        assert k.size == 2 * int(4.0 * sigma + 0.5) + 1
        assert abs(float(k.sum()) - 1.0) < 1e-6
        np.testing.assert_allclose(k, k[::-1])


def test_derivative_kernel_is_antisymmetric_and_differentiates_a_ramp():
    d = filters.gaussian_derivative_kernel1d(2.0)
    np.testing.assert_allclose(d, -d[::-1])
    t = np.arange(d.size) - d.size // 2
    assert abs(float((t * d).sum()) - 1.0) < 1e-3  # truncation of the tails only


@pytest.mark.parametrize("mode", ["reflect", "mirror", "nearest", "constant"])
def test_sobel_equals_opencv_over_eight(camera, mode):
    gx, gy = filters.sobel(camera, mode=mode)
    border = CV_BORDERS[mode]
    ref_x = cv2.Sobel(camera, cv2.CV_32F, 1, 0, ksize=3, borderType=border) / 8
    ref_y = cv2.Sobel(camera, cv2.CV_32F, 0, 1, ksize=3, borderType=border) / 8
    # Everywhere, border included: both sides implement the same border rule.
    np.testing.assert_allclose(gx, ref_x, atol=1e-6)
    np.testing.assert_allclose(gy, ref_y, atol=1e-6)


def test_sobel_equals_skimage_up_to_its_scale(camera):
    from skimage.filters import sobel_h, sobel_v

    gx, gy = filters.sobel(camera)
    inner = (slice(1, -1), slice(1, -1))
    # skimage correlates with [1, 2, 1]/4 and [1, 0, -1]: gx = -sobel_v / 2 away from the border.
    np.testing.assert_allclose(gx[inner], sobel_v(camera)[inner] / 2, atol=1e-6)
    np.testing.assert_allclose(gy[inner], sobel_h(camera)[inner] / 2, atol=1e-6)


@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.5])
@pytest.mark.parametrize("mode", ["reflect", "mirror", "nearest", "wrap"])
def test_gaussian_equals_scipy(camera, sigma, mode):
    out = filters.gaussian(camera, sigma, mode=mode)
    ref = ndi.gaussian_filter(camera.astype(np.float64), sigma, mode=mode)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=2e-6)


@pytest.mark.parametrize("mode", filters.BORDER_MODES)
@pytest.mark.parametrize("shape, sigma", [((6, 40), 2.0), ((40, 6), 1.4), ((33, 47), 1.0), ((7, 7), 1.75)])
def test_gaussian_equals_scipy_for_every_mode_and_kernels_wider_than_the_image(shape, sigma, mode):
    # The blur kernel where it has the mode and the kernel fits; the padded separable filter otherwise.
    image = np.random.default_rng(shape[0]).random(shape).astype(np.float32)
    ref = ndi.gaussian_filter(image.astype(np.float64), sigma, mode=mode)
    np.testing.assert_allclose(filters.gaussian(image, sigma, mode=mode), ref, atol=2e-6)
    as_uint8 = (image * 255).astype(np.uint8)
    ref8 = ndi.gaussian_filter(as_uint8 / 255.0, sigma, mode=mode)
    np.testing.assert_allclose(filters.gaussian(as_uint8, sigma, mode=mode), ref8, atol=2e-6)


def test_gaussian_agrees_with_opencv_away_from_border(camera):
    sigma = 1.6
    radius = int(4 * sigma + 0.5)
    ours = filters.gaussian(camera, sigma)
    ref = cv2.GaussianBlur(camera, (2 * radius + 1, 2 * radius + 1), sigma, borderType=cv2.BORDER_REFLECT)
    np.testing.assert_allclose(ours[radius:-radius, radius:-radius], ref[radius:-radius, radius:-radius], atol=1e-5)


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_gaussian_gradient_equals_scipy(camera, sigma):
    gx, gy = filters.gaussian_gradient(camera, sigma)
    ref_x = ndi.gaussian_filter(camera.astype(np.float64), sigma, order=(0, 1))
    ref_y = ndi.gaussian_filter(camera.astype(np.float64), sigma, order=(1, 0))
    np.testing.assert_allclose(gx, ref_x, atol=2e-6)
    np.testing.assert_allclose(gy, ref_y, atol=2e-6)


def test_ramp_gradients_are_exact():
    height, width = 40, 50
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = (0.01 * xx - 0.02 * yy).astype(np.float32)
    for gx, gy in (filters.sobel(image), filters.gaussian_gradient(image, 1.0)):
        inner = (slice(8, -8), slice(8, -8))
        np.testing.assert_allclose(gx[inner], 0.01, atol=1e-5)
        np.testing.assert_allclose(gy[inner], -0.02, atol=1e-5)


def test_magnitude_orientation_against_numpy_and_convention():
    gx = np.array([[1.0, 0.0, -1.0, 0.0]], np.float32)
    gy = np.array([[0.0, 1.0, 0.0, -1.0]], np.float32)
    magnitude, orientation = filters.magnitude_orientation(gx, gy)
    np.testing.assert_allclose(magnitude, 1.0)
    # +y points down the rows: a gradient towards the bottom is +pi/2.
    np.testing.assert_allclose(orientation, [[0.0, np.pi / 2, np.pi, -np.pi / 2]], atol=1e-6)
    assert magnitude.dtype == orientation.dtype == np.float32


def test_step_edge_orientation(step_edge):
    gx, gy = filters.sobel(step_edge)
    magnitude, orientation = filters.magnitude_orientation(gx, gy)
    edge = magnitude > 0.1
    assert edge[:, 31:33].all() and not edge[:, :30].any() and not edge[:, 34:].any()
    np.testing.assert_allclose(orientation[edge], 0.0, atol=1e-6)  # dark -> bright along +x


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 3), st.floats(0.5, 3.0))
def test_gradient_rotates_with_the_image(quarter_turns, sigma):
    rng = np.random.default_rng(quarter_turns)
    image = ndi.gaussian_filter(rng.random((48, 48)), 2).astype(np.float32)
    gx, gy = filters.gaussian_gradient(image, sigma, mode="wrap")
    rot = np.rot90(image, quarter_turns).copy()
    rgx, rgy = filters.gaussian_gradient(rot, sigma, mode="wrap")
    # np.rot90 turns counter-clockwise on screen: (gx, gy) -> (gy, -gx) per quarter turn.
    ex, ey = gx, gy
    for _ in range(quarter_turns):
        ex, ey = ey, -ex
    np.testing.assert_allclose(rgx, np.rot90(ex, quarter_turns), atol=1e-5)
    np.testing.assert_allclose(rgy, np.rot90(ey, quarter_turns), atol=1e-5)


def test_numba_kernel_matches_numpy_reference():
    rng = np.random.default_rng(0)
    padded = rng.random((37, 53)).astype(np.float32)
    for n in (3, 7, 13):
        kx = rng.standard_normal(n).astype(np.float32)
        ky = rng.standard_normal(n).astype(np.float32)
        np.testing.assert_allclose(_separable_valid(padded, kx, ky), _separable_valid_reference(padded, kx, ky),
                                   atol=1e-4)


def test_separable_filter_matches_cv2_sepfilter(camera):
    rng = np.random.default_rng(1)
    kx = rng.standard_normal(5).astype(np.float32)
    ky = rng.standard_normal(3).astype(np.float32)
    ours = filters.separable_filter(camera, kx, ky, mode="mirror")
    ref = cv2.sepFilter2D(camera, cv2.CV_32F, kx, ky, borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


@pytest.mark.parametrize("dtype, scale", [(np.uint8, 255), (np.uint16, 65535), (np.float32, 1), (np.float64, 1)])
def test_input_dtypes_give_float32(camera, dtype, scale):
    image = (camera * scale).astype(dtype) if scale > 1 else camera.astype(dtype)
    gx, gy = filters.sobel(image)
    assert gx.dtype == gy.dtype == np.float32
    np.testing.assert_allclose(gx, filters.sobel(camera)[0], atol=2.0 / scale if scale > 1 else 1e-6)
    assert filters.gaussian(image, 1.0).dtype == np.float32


def test_tiny_images_are_filtered():
    for shape in ((1, 1), (1, 5), (2, 2)):
        image = np.ones(shape, np.float32)
        np.testing.assert_allclose(filters.gaussian(image, 3.0), 1.0, atol=1e-6)
        gx, gy = filters.sobel(image)
        assert gx.shape == shape and not gx.any() and not gy.any()


@pytest.mark.parametrize("bad, error, text", [
    (np.zeros((3, 4, 5), np.float32), ValueError, "image must be 2-D, got shape (3, 4, 5)"),
    (np.zeros((0, 4), np.float32), ValueError, "at least 1x1"),
    (np.array([[np.nan, 0.0]], np.float32), ValueError, "NaN"),
    ("not an image", TypeError, "numpy array"),
    (np.array([["a"]]), TypeError, "numeric dtype"),
])
def test_bad_images_are_refused_with_a_clear_message(bad, error, text):
    with pytest.raises(error, match=None) as info:
        filters.sobel(bad)
    assert text in str(info.value)


def test_bad_parameters_are_refused():
    image = np.zeros((8, 8), np.float32)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        filters.gaussian(image, 0.0)
    with pytest.raises(TypeError, match="sigma must be a number"):
        filters.gaussian(image, "1")
    with pytest.raises(ValueError, match="mode must be one of"):
        filters.gaussian(image, 1.0, mode="bogus")
    with pytest.raises(ValueError, match="odd length"):
        filters.separable_filter(image, np.ones(4), np.ones(3))
    with pytest.raises(ValueError, match="same shape"):
        filters.magnitude_orientation(np.zeros((2, 2)), np.zeros((2, 3)))
