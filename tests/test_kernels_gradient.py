"""The fused gradient kernel (classicvision._kernels.gradient.gradient_pair) against a plain-numpy
reference: the same two separable correlations on a padded copy, in float64."""

from __future__ import annotations

import numpy as np
import pytest

from classicvision._kernels.gradient import border_map, gradient_pair
from classicvision._kernels.separable import _separable_valid_reference
from classicvision.features.filters import gaussian_derivative_kernel1d, gaussian_kernel1d

PAD = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "constant": "constant", "wrap": "wrap"}
SOBEL = (np.array([0.25, 0.5, 0.25], np.float32), np.array([-0.5, 0.0, 0.5], np.float32))


@pytest.mark.parametrize("mode", list(PAD))
@pytest.mark.parametrize("shape", [(37, 53), (5, 80), (64, 3), (1, 1)])
@pytest.mark.parametrize("kernels", ["sobel", "dog1", "dog2.5"])
def test_gradient_pair_matches_the_padded_reference(mode, shape, kernels):
    image = np.random.default_rng(hash((mode, shape)) % 2**32).random(shape).astype(np.float32)
    if kernels == "sobel":
        symmetric, antisymmetric = SOBEL
    else:
        sigma = float(kernels[3:])
        symmetric, antisymmetric = gaussian_kernel1d(sigma), gaussian_derivative_kernel1d(sigma)
    r = symmetric.size // 2
    if mode == "mirror" and min(shape) == 1:
        pytest.skip("numpy's reflect padding of one sample is the sample itself: covered by 'nearest'")
    gx, gy = gradient_pair(image, border_map(shape[0], r, mode), border_map(shape[1], r, mode), symmetric,
                           antisymmetric)
    padded = np.pad(image, r, mode=PAD[mode])
    np.testing.assert_allclose(gx, _separable_valid_reference(padded, antisymmetric, symmetric), atol=2e-7)
    np.testing.assert_allclose(gy, _separable_valid_reference(padded, symmetric, antisymmetric), atol=2e-7)
    assert gx.dtype == gy.dtype == np.float32


def test_gradient_of_a_ramp_and_threads(monkeypatch):
    ramp = np.tile(np.arange(300, dtype=np.float32), (200, 1)) * 0.01
    expected = None
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("CLASSICVISION_NUM_THREADS", threads)
        gx, gy = gradient_pair(ramp, border_map(200, 1, "reflect"), border_map(300, 1, "reflect"), *SOBEL)
        np.testing.assert_allclose(gx[:, 1:-1], 0.01, rtol=2e-5)   # 0.01 x is rounded to float32 first
        np.testing.assert_array_equal(gy, 0.0)
        if expected is None:
            expected = gx
        np.testing.assert_array_equal(gx, expected)   # the same values on any number of threads
