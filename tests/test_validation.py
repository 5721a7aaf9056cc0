"""Input checks shared by the public functions."""

from __future__ import annotations

import numbers

import numpy as np
import pytest

from classicvision._validation import check_image, check_scalar


@pytest.mark.parametrize("value", [1.5, np.float32(2.0), 3, np.int64(4), 10 ** 400])
def test_check_scalar_accepts_finite_numbers(value):
    assert check_scalar(value, "x") is value


@pytest.mark.parametrize("value", [float("nan"), float("inf"), np.float32("inf"), np.float64("nan")])
def test_check_scalar_refuses_nan_and_infinity(value):
    with pytest.raises(ValueError, match="x must be finite"):
        check_scalar(value, "x")


@pytest.mark.parametrize("value, kind", [(True, numbers.Real), (np.bool_(False), numbers.Integral),
                                         ("1", numbers.Real), (1.0, numbers.Integral)])
def test_check_scalar_refuses_other_types(value, kind):
    with pytest.raises(TypeError, match="x must be"):
        check_scalar(value, "x", kind=kind)


def test_check_scalar_bounds():
    assert check_scalar(0, "x", low=0) == 0
    with pytest.raises(ValueError, match="x must be > 0"):
        check_scalar(0, "x", low=0, low_inclusive=False)
    with pytest.raises(ValueError, match="x must be <= 1"):
        check_scalar(1.5, "x", high=1)


@pytest.mark.parametrize("dtype, value, expected", [
    (np.uint8, 255, 1.0), (np.uint16, 65535, 1.0), (np.uint16, 255, 255 / 65535), (bool, True, 1.0),
    (np.int64, 255, 1.0), (np.int64, 256, 256 / 65535), (np.uint64, 65535, 1.0), (np.int16, 100, 100 / 255),
    (np.float64, 0.5, 0.5), (np.float16, 0.25, 0.25)])
def test_check_image_dtype_policy(dtype, value, expected):
    out = check_image(np.full((2, 3), value, dtype))
    assert out.dtype == np.float32 and out.shape == (2, 3) and out.flags.c_contiguous
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_check_image_keeps_a_contiguous_float32_array_and_names_the_argument():
    image = np.zeros((3, 4), np.float32)
    assert check_image(image) is image
    with pytest.raises(ValueError, match="left must be 2-D"):
        check_image(np.zeros(3), "left")
    with pytest.raises(ValueError, match="left has dtype int64 with negative values"):
        check_image(np.array([[-1, 0]]), "left")
    with pytest.raises(ValueError, match=r"left holds float values in \[0, 200\]"):
        check_image(np.array([[0.0, 200.0]]), "left", check_range=True)
