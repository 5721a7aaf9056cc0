"""Tests for classicvision.scale_space: kernels against references, blobs, OpenCV's SIFT detector."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from classicvision._kernels import blur as _bk
from classicvision._kernels import dog as _k
from classicvision._kernels.jit import parallel_for
from classicvision.features.filters import gaussian, gaussian_kernel1d
from classicvision.features.scale_space import (GaussianPyramid, _blur, dog_extrema,
                                       dog_keypoints, gaussian_pyramid, level_of_scale)


def _frames(keypoints):
    """``(points, scales, responses)`` of DoG keypoints (orientation 0 before assignment)."""
    assert np.all(keypoints.orientation == 0)
    return keypoints.points, keypoints.scale, keypoints.response


def _blob(size, x, y, sigma):
    yy, xx = np.mgrid[:size, :size]
    return np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2)).astype(np.float32)


@pytest.fixture(scope="module")
def small_camera(camera):
    return np.ascontiguousarray(camera[::2, ::2])


def test_upsample_and_blur_match_references(small_camera):
    up = _bk._upsample2(small_camera)
    assert up.shape == (512, 512)
    np.testing.assert_array_equal(up, _bk._upsample2_reference(small_camera))
    for shape in ((1, 1), (1, 5), (4, 1), (3, 7)):
        tiny = np.random.default_rng(0).random(shape).astype(np.float32)
        np.testing.assert_array_equal(_bk._upsample2(tiny), _bk._upsample2_reference(tiny))
    np.testing.assert_array_equal(up[::2, ::2], small_camera)  # base pixel 2x is input pixel x
    np.testing.assert_allclose(_blur(up, 1.3), gaussian(up, 1.3, mode="mirror"), atol=1e-5)


@pytest.mark.parametrize("shape", [(17, 23), (40, 13), (150, 257)])
@pytest.mark.parametrize("sigma", [0.8, 1.226, 1.545, 3.09])
def test_pyramid_blur_matches_references(shape, sigma):
    image = np.random.default_rng(shape[1]).random(shape).astype(np.float32)
    g = gaussian_kernel1d(sigma)
    got = _bk._blur(image, g, "mirror")       # r = 2..12: odd and even radii, r close to the side
    np.testing.assert_allclose(got, _bk._blur_reference(image, g, "mirror"), atol=1e-6)
    opencv = cv2.sepFilter2D(image, cv2.CV_32F, g, g, borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_allclose(got, opencv, atol=1e-6)
    np.testing.assert_array_equal(_blur(image, sigma), got)
    serial = _bk._blur(image, g, "mirror", n_bands=1)
    threaded = _bk._blur(image, g, "mirror", n_bands=5)
    np.testing.assert_array_equal(serial, threaded)  # bands change nothing


def test_blur_falls_back_to_opencv_on_levels_smaller_than_the_kernel():
    image = np.random.default_rng(1).random((9, 30)).astype(np.float32)
    assert _bk._blur(image, gaussian_kernel1d(3.0), "mirror") is None     # radius 12 >= 9 rows
    np.testing.assert_allclose(_blur(image, 3.0), gaussian(image, 3.0, mode="mirror"), atol=1e-6)


def test_extrema_kernel_matches_reference():
    rng = np.random.default_rng(0)
    dog = rng.normal(0, 0.02, (5, 40, 50)).astype(np.float32)
    dog[2, 20, 20] = 0.5  # a plateau tie still counts as an extremum
    dog[2, 20, 21] = 0.5
    gauss = np.concatenate([np.zeros((1, 40, 50), np.float32), np.cumsum(dog, axis=0)])  # diff(gauss) == dog
    dog = np.diff(gauss, axis=0)
    slow = np.argwhere(_k._extrema_mask_reference(dog, np.float32(0.005), 5))
    for threads in (1, 2, 3):
        for band in (1, 7, 32):  # bands that split the rows unevenly, and one band for all
            columns = np.empty((3 * 30, 50), np.int32)
            counts = np.zeros(3 * 30, np.int64)
            rings = np.full((2, 11, 5, 50), np.nan, np.float32)    # fewer rows than threads: a thread idles
            flags = np.zeros((2, 56), np.uint8)
            parallel_for(_k._extrema_bands, (30 + band - 1) // band, gauss, np.float32(0.005), 5, band, columns,
                         counts, rings, flags, flags.view(np.uint64), threads=threads)
            fast = _k._gather_candidates(columns, counts, 40 - 10, 5)
            np.testing.assert_array_equal(fast, slow)
            np.testing.assert_array_equal(_k._gather_candidates_reference(columns, counts, 40 - 10, 5), slow)
    np.testing.assert_array_equal(_k._extrema(gauss, 0.005, 5), slow)
    assert [2, 20, 20] in slow.tolist() and [2, 20, 21] in slow.tolist() and len(slow) > 10


def test_refine_kernel_matches_reference(small_camera):
    pyramid = gaussian_pyramid(small_camera)
    stack = pyramid.octaves[1]
    dog = np.subtract(stack[1:], stack[:-1])
    candidates = _k._extrema(stack, 0.005, 5)
    assert len(candidates) > 50
    keep, values, layers = _k._refine(stack, candidates, 3, 0.03, 10.0, 5, 5)
    keep_r, values_r, layers_r = _k._refine_reference(dog, candidates, 3, 0.03, 10.0, 5, 5)
    assert (keep != keep_r).sum() <= 1  # float32 vs float64 at a threshold
    both = keep & keep_r
    assert both.sum() > 20
    np.testing.assert_allclose(values[both], values_r[both], atol=1e-3)
    np.testing.assert_array_equal(layers[both], layers_r[both])


def test_pyramid_shapes_and_blur():
    pyramid = gaussian_pyramid(np.zeros((100, 60), np.float32), n_scales=2)
    assert isinstance(pyramid, GaussianPyramid)
    assert pyramid.octaves[0].shape == (5, 200, 120)
    assert pyramid.octaves[1].shape == (5, 100, 60)
    assert all(o.dtype == np.float32 for o in pyramid.octaves)
    assert float(pyramid.octave_factor(0)) == 0.5 and float(pyramid.octave_factor(3)) == 4.0
    assert gaussian_pyramid(np.zeros((64, 64)), upsample=False, n_octaves=2).octaves[0].shape == (6, 64, 64)


@pytest.mark.parametrize("upsample", [True, False])
def test_pyramid_levels_have_the_blur_they_claim(upsample):
    # A delta at input pixel (128, 120): level l of octave o claims blur sigma 2**(l/s) octave px in
    # all, of which assumed_blur = 0.5 input px was in the input already. The kernels it went
    # through therefore have variance sigma_l**2 - (0.5 / f)**2 octave px**2 (f = input px per
    # octave px); the doubling's linear interpolation adds the tent [1/4, 1/2, 1/4] of the base,
    # variance 1/2 base px**2 = 1/8 input px**2. Variances of the spread of the delta add up.
    image = np.zeros((240, 256), np.float32)
    image[120, 128] = 1.0
    pyramid = gaussian_pyramid(image, n_scales=3, upsample=upsample, n_octaves=3)
    assert len(pyramid.octaves) == 3
    for o, stack in enumerate(pyramid.octaves):
        f = float(pyramid.octave_factor(o))
        yy, xx = np.mgrid[:stack.shape[1], :stack.shape[2]]
        for level_index, level in enumerate(stack.astype(np.float64)):
            mass = level.sum()
            np.testing.assert_allclose(mass * f * f, 1.0, rtol=1e-4)          # kernels sum to 1
            cx, cy = (level * xx).sum() / mass, (level * yy).sum() / mass
            np.testing.assert_allclose([cx * f, cy * f], [128, 120], atol=1e-3)  # pixel x = input f x
            claimed = ((1.6 * 2 ** (level_index / 3)) ** 2 - (0.5 / f) ** 2
                       + (0.125 / f ** 2 if upsample else 0.0))
            variance = [(level * (xx - cx) ** 2).sum() / mass, (level * (yy - cy) ** 2).sum() / mass]
            np.testing.assert_allclose(variance, claimed, rtol=2e-3)          # 4-sigma truncation: -0.05%


def test_pyramid_levels_equal_one_gaussian_of_the_input(small_camera):
    # Without doubling, octave o level l is the input blurred by one Gaussian of
    # sqrt((2**o sigma_l)**2 - 0.5**2) input px (scipy.ndimage), then sampled every 2**o pixels
    # (away from the border, where octave o reflects its own, sampled, edge).
    pyramid = gaussian_pyramid(small_camera, upsample=False, n_octaves=2)
    for o in range(2):
        for level_index in range(6):
            total = 2 ** o * 1.6 * 2 ** (level_index / 3)
            want = ndimage.gaussian_filter(small_camera.astype(np.float64), np.sqrt(total ** 2 - 0.25),
                                           mode="mirror")[::2 ** o, ::2 ** o]
            inner = (slice(16 * o, want.shape[0] - 16 * o), slice(16 * o, want.shape[1] - 16 * o))
            np.testing.assert_allclose(pyramid.octaves[o][level_index][inner], want[inner], atol=2e-4)


@pytest.mark.parametrize("sigma, upsample", [(2.0, True), (3.0, True), (5.0, True), (3.0, False), (5.0, False)])
def test_blob_position_and_scale(sigma, upsample):
    image = _blob(96, 40.3, 51.7, sigma)
    points, scales, responses = _frames(dog_keypoints(image, upsample=upsample))
    assert points.dtype == scales.dtype == responses.dtype == np.float32
    np.testing.assert_allclose(points[0], [40.3, 51.7], atol=0.25)
    # A bright Gaussian blob: a DoG minimum at a scale proportional to the blob's (about 0.9 sigma).
    assert responses[0] < 0
    assert 0.75 * sigma < scales[0] < 1.1 * sigma


def test_small_blob_needs_upsampling():
    # Scale 1.8 lies below the first DoG layer without the initial doubling (Lowe 2004, section 3.3).
    assert len(dog_keypoints(_blob(64, 30, 30, 2.0), upsample=False).points) == 0


def test_scale_covariance():
    small = dog_keypoints(_blob(128, 64, 64, 3.0)).scale[0]
    large = dog_keypoints(_blob(128, 64, 64, 6.0)).scale[0]
    assert large / small == pytest.approx(2.0, rel=0.06)


def test_sorted_and_max_points(small_camera):
    points, scales, responses = _frames(dog_keypoints(small_camera))
    assert len(points) > 100
    assert np.all(np.diff(np.abs(responses)) <= 0)
    assert np.all(np.abs(responses) * 3 >= 0.03 - 1e-6)
    top = dog_keypoints(small_camera, max_points=10)
    np.testing.assert_array_equal(top.points, points[:10])
    fewer = dog_keypoints(small_camera, contrast_threshold=0.06).points
    assert len(fewer) < len(points)


def test_agrees_with_opencv_sift_detector(small_camera):
    points, scales, _ = _frames(dog_keypoints(small_camera))
    sift = cv2.SIFT.create(contrastThreshold=0.03)  # OpenCV's threshold is also divided by n_scales
    keypoints = sift.detect((small_camera * 255).round().astype(np.uint8), None)
    theirs = np.unique(np.array([(k.pt[0], k.pt[1], k.size / 2) for k in keypoints]), axis=0)
    # OpenCV upsamples with half-pixel centres and halves the coordinates: a 0.25 px shift.
    distance, index = cKDTree(theirs[:, :2] - 0.25).query(points)
    agree = (distance < 1.0) & (np.abs(np.log(theirs[index, 2] / scales)) < 0.2)
    assert agree.mean() > 0.65
    assert 0.7 < len(points) / len(theirs) < 1.3


def test_level_of_scale_recovers_detection_level(small_camera):
    pyramid = gaussian_pyramid(small_camera)
    found = dog_extrema(pyramid)
    octaves, levels = level_of_scale(pyramid, found.scales)
    detected_level = np.rint(found.layers).astype(int)
    same = (octaves == found.octaves) & (levels == detected_level)
    # Ambiguous only on the boundary between octaves (layer 0.5 of o == layer s + 0.5 of o - 1).
    assert same.mean() > 0.95
    assert levels.min() >= 0 and levels.max() <= pyramid.n_scales + 2


@pytest.mark.parametrize("shape", [(1, 1), (8, 8), (5, 300)])
def test_tiny_and_flat_images_give_empty(shape):
    points, scales, responses = _frames(dog_keypoints(np.full(shape, 0.5, np.float32)))
    assert points.shape == (0, 2) and scales.shape == (0,) and responses.shape == (0,)
    assert points.dtype == np.float32


def test_dtypes(small_camera):
    as_uint8 = (small_camera * 255).round().astype(np.uint8)
    a = dog_keypoints(as_uint8).points
    b = dog_keypoints(as_uint8.astype(np.float64) / 255).points
    np.testing.assert_allclose(a, b, atol=2e-3)


def test_errors():
    with pytest.raises(ValueError, match="n_scales"):
        gaussian_pyramid(np.zeros((32, 32)), n_scales=0)
    with pytest.raises(ValueError, match="sigma"):
        dog_keypoints(np.zeros((32, 32)), sigma=-1.0)
    with pytest.raises(TypeError, match="pyramid"):
        dog_extrema(np.zeros((32, 32)))
    with pytest.raises(ValueError, match="edge_threshold"):
        dog_extrema(gaussian_pyramid(np.zeros((32, 32))), edge_threshold=1.0)
    with pytest.raises(ValueError, match="max_points"):
        dog_keypoints(np.zeros((32, 32)), max_points=0)
    with pytest.raises(ValueError, match="2-D"):
        dog_keypoints(np.zeros((3, 32, 32)))
