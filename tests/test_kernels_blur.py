"""The one blur kernel (classicvision._kernels.blur._blur) against its plain-numpy reference and
OpenCV, for every border mode, both pass orders, bands, the uint8 read and reused buffers."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi

from classicvision._kernels import blur as _bk
from classicvision.features.filters import gaussian_kernel1d

CV_BORDERS = {"mirror": cv2.BORDER_REFLECT_101, "reflect": cv2.BORDER_REFLECT, "nearest": cv2.BORDER_REPLICATE}
SHAPES = [(17, 23), (40, 13), (150, 257), (5, 64)]
SIGMAS = [0.5, 0.8, 1.0, 1.226, 1.545, 3.09]          # radii 2, 3, 4, 5, 6, 12: odd and even


def _image(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


@pytest.mark.parametrize("border", list(_bk.BORDERS))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("sigma", SIGMAS)
@pytest.mark.parametrize("x_first", [False, True])
def test_blur_matches_reference_and_opencv(border, shape, sigma, x_first):
    image = _image(shape, shape[1])
    g = gaussian_kernel1d(sigma)
    got = _bk._blur(image, g, border, x_first=x_first)
    if not _bk._blur_fits(shape, g.size // 2, border):
        assert got is None
        return
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, _bk._blur_reference(image, g, border), atol=1e-6)
    if border != "wrap":                                 # sepFilter2D has no BORDER_WRAP
        opencv = cv2.sepFilter2D(image, cv2.CV_32F, g, g, borderType=CV_BORDERS[border])
        np.testing.assert_allclose(got, opencv, atol=1e-6)


@pytest.mark.parametrize("border", list(_bk.BORDERS))
def test_reference_matches_scipy(border):
    image = _image((31, 44), 3)
    g = gaussian_kernel1d(1.5)
    ref = ndi.correlate1d(ndi.correlate1d(image.astype(np.float64), g.astype(np.float64), axis=0, mode=border),
                          g.astype(np.float64), axis=1, mode=border)
    np.testing.assert_allclose(_bk._blur_reference(image, g, border), ref, atol=1e-6)


def test_radius_limits_per_border():
    image = _image((9, 30))
    r9 = np.full(19, 1 / 19, np.float32)                 # radius 9 = the height
    assert _bk._blur(image, r9, "mirror") is None        # reflect101 repeats no edge: needs r < 9
    for border in ("reflect", "wrap", "nearest"):
        np.testing.assert_allclose(_bk._blur(image, r9, border), _bk._blur_reference(image, r9, border), atol=1e-6)
    r20 = gaussian_kernel1d(5.0)                         # radius 20 > 9
    assert _bk._blur(image, r20, "reflect") is None and _bk._blur(image, r20, "wrap") is None
    np.testing.assert_allclose(_bk._blur(image, r20, "nearest"), _bk._blur_reference(image, r20, "nearest"),
                               atol=1e-6)


def test_radius_zero_and_one_pixel_images():
    image = _image((1, 7))
    one = np.ones(1, np.float32)
    np.testing.assert_array_equal(_bk._blur(image, one, "mirror"), image)
    np.testing.assert_allclose(_bk._blur(image, gaussian_kernel1d(0.3), "reflect"),
                               _bk._blur_reference(image, gaussian_kernel1d(0.3), "reflect"), atol=1e-6)


@pytest.mark.parametrize("x_first", [False, True])
@pytest.mark.parametrize("border", list(_bk.BORDERS))
def test_bands_change_nothing(x_first, border):
    image = _image((150, 257), 1)
    g = gaussian_kernel1d(1.545)
    single = _bk._blur(image, g, border, x_first=x_first, n_bands=1)
    for n_bands in (2, 3, 5, 16):
        scratch = np.full(_bk._blur_scratch_size(image.shape, g.size // 2, n_bands), np.nan, np.float32)
        out = np.full_like(image, np.nan)
        got = _bk._blur(image, g, border, x_first=x_first, n_bands=n_bands, out=out, scratch=scratch)
        assert got is out
        np.testing.assert_array_equal(got, single)


def test_pass_orders_agree_to_rounding():
    image = _image((64, 80), 2)
    g = gaussian_kernel1d(1.6)
    np.testing.assert_allclose(_bk._blur(image, g, "reflect"), _bk._blur(image, g, "reflect", x_first=True),
                               atol=1e-6)


def test_uint8_read_with_scale_is_the_float_conversion():
    u8 = (np.random.default_rng(4).random((70, 90)) * 255).astype(np.uint8)
    g = gaussian_kernel1d(1.0)
    scale = 1.0 / 255.0
    as_float = u8.astype(np.float32) * np.float32(scale)
    for n_bands in (1, 3):
        got = _bk._blur(u8, g, "reflect", scale=scale, x_first=True, n_bands=n_bands)
        np.testing.assert_array_equal(got, _bk._blur(as_float, g, "reflect", x_first=True))
    np.testing.assert_allclose(_bk._blur(as_float, g, "mirror", scale=2.0),
                               _bk._blur_reference(as_float, g, "mirror", scale=2.0), atol=2e-6)


def test_reused_buffers_are_overwritten():
    image = _image((40, 50), 5)
    g = gaussian_kernel1d(1.2)
    fresh = _bk._blur(image, g, "reflect", x_first=True)
    scratch = np.full(_bk._blur_scratch_size(image.shape, g.size // 2, 1) + 7, np.nan, np.float32)
    out = np.full_like(image, np.nan)
    np.testing.assert_array_equal(_bk._blur(image, g, "reflect", x_first=True, out=out, scratch=scratch), fresh)


def test_threads_share_the_serial_build(in_threads):
    assert _bk._blur_bands.targetoptions.get("nogil") and _bk._blur_bands_x_first.targetoptions.get("nogil")  # DenseSIFT(n_jobs) threads run them without the GIL
    image = _image((300, 300), 6)
    g = gaussian_kernel1d(1.0)
    expected = _bk._blur(image, g, "reflect", x_first=True, n_bands=1)
    results = in_threads(lambda i: _bk._blur(image, g, "reflect", x_first=True, n_bands=1), 4)
    for got in results:
        np.testing.assert_array_equal(got, expected)
