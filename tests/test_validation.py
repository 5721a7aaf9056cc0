"""Input checks shared by the public functions."""

from __future__ import annotations

import numbers

import numpy as np
import pytest

from classicvision._validation import check_scalar


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
