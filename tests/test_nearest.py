"""Tests for the certified k-nearest engine (classicvision._kernels.nearest) and nearest_neighbors.

Oracles: each numba kernel against its plain-numpy twin, and the engine against a float64 brute
force (scipy cdist, stable sort: ties to the lower index) on random data with duplicates, exact
ties, near ties below float32 resolution, large offsets (cancellation) and tiny values.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from classicvision._kernels.nearest import (
    _all_squared, _all_squared_reference, _rank_candidates, _rank_candidates_reference, _smallest_k,
    _smallest_k_reference, exact_rows, k_nearest, k_nearest_reference, screen_bound_factor)
from classicvision.matching.nearest import nearest_neighbors, nearest_two


def brute_k(a, b, k):
    """float64 cdist oracle: indices (N1, k) and squared distances, -1/inf past N2."""
    n1, n2 = len(a), len(b)
    indices = np.full((n1, k), -1, np.int64)
    sq = np.full((n1, k), np.inf)
    width = min(k, n2)
    if n1 and width:
        dist = cdist(np.asarray(a, np.float64), np.asarray(b, np.float64), "sqeuclidean")
        order = np.argsort(dist, axis=1, kind="stable")[:, :width]
        indices[:, :width] = order
        sq[:, :width] = np.take_along_axis(dist, order, axis=1)
    return indices, sq


def tricky(seed, n1=400, n2=300, d=32):
    """Unit rows plus duplicates, exact copies of queries, and near ties (1e-5 apart)."""
    rng = np.random.default_rng(seed)
    a = rng.random((n1, d), dtype=np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = rng.random((n2, d), dtype=np.float32)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    b[5] = b[6]
    b[40:45] = a[0]
    b[100] = a[1]
    for t in range(30):
        near = a[t + 2].copy()
        near[t % d] += np.float32(0.01)
        far = a[t + 2].copy()
        far[(t + 1) % d] += np.float32(0.01 + 1e-5)
        b[200 + t], b[150 + t] = far, near
    a[3] = a[4]
    return a, b


# ---------------------------------------------------------------- kernels vs numpy twins

@pytest.mark.parametrize("n", [1, 5, 16, 17, 40, 333])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_smallest_k_matches_reference(n, dtype):
    rng = np.random.default_rng(n)
    values = rng.standard_normal((60, n)).astype(dtype)
    offset = rng.standard_normal(n).astype(dtype)
    values[3] = -offset                          # a constant row: all ties
    values[4] = np.round(values[4]) - offset     # many ties
    values[5] = np.round(values[5] * 2) / 2
    for k in sorted({1, 2, 3, 7, 16, 17, n} & set(range(1, n + 1))):
        np.testing.assert_array_equal(_smallest_k(values, offset, k), _smallest_k_reference(values, offset, k))


@pytest.mark.parametrize("dim", [1, 3, 4, 7, 128])
def test_exact_kernels_match_reference(dim):
    rng = np.random.default_rng(dim)
    a = rng.standard_normal((50, dim)).astype(np.float32)
    b = rng.standard_normal((80, dim)).astype(np.float32)
    b[10] = b[11]
    np.testing.assert_allclose(_all_squared(a, b), _all_squared_reference(a, b), rtol=1e-13, atol=1e-12)
    candidates = np.ascontiguousarray(np.argsort(rng.random((50, 80)), axis=1)[:, :6])
    candidates[:, 0], candidates[:, 1] = 11, 10  # a duplicate pair: ties go to the lower index
    for k in (1, 3, 6):
        got_i, got_sq = _rank_candidates(a, b, candidates, k)
        ref_i, ref_sq = _rank_candidates_reference(a, b, candidates, k)
        np.testing.assert_array_equal(got_i, ref_i)
        np.testing.assert_allclose(got_sq, ref_sq, rtol=1e-13, atol=1e-12)


# ---------------------------------------------------------------- the engine vs brute force

@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 10])
def test_engine_matches_brute_force(seed, k):
    a, b = tricky(seed)
    indices, sq = k_nearest(a, b, k, 97)
    expected_i, expected_sq = brute_k(a, b, k)
    np.testing.assert_array_equal(indices, expected_i)
    np.testing.assert_allclose(sq, expected_sq, rtol=1e-12, atol=1e-14)
    assert indices.dtype == np.int64 and sq.dtype == np.float64
    ref_i, ref_sq = k_nearest_reference(a, b, k)
    np.testing.assert_array_equal(indices, ref_i)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_engine_near_ties_at_large_offset(k):
    """Squared distances 1e-6 apart relative, at |a|^2 ~ 1e6: far below float32 GEMM resolution."""
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((60, 64)) * 10 + 100).astype(np.float32)
    b = np.repeat(a, 2, axis=0)
    b[0::2, 0] += np.float32(0.5)
    b[1::2, 1] += np.float32(0.5 + 2 ** -8)
    b = np.vstack([b[1::2], b[0::2]])            # the nearer one has the higher index
    indices, _ = k_nearest(a, b, k, 16)
    np.testing.assert_array_equal(indices, brute_k(a, b, k)[0])
    np.testing.assert_array_equal(indices[:, 0], np.arange(60) + 60)


@pytest.mark.parametrize("k", [1, 2, 6])
def test_engine_duplicates_and_exact_ties(k):
    rng = np.random.default_rng(3)
    b = rng.integers(0, 3, (50, 4)).astype(np.float32)    # many duplicate rows and equal distances
    a = rng.integers(0, 3, (70, 4)).astype(np.float32)
    np.testing.assert_array_equal(k_nearest(a, b, k, 8)[0], brute_k(a, b, k)[0])
    np.testing.assert_array_equal(exact_rows(a, b, k)[0], brute_k(a, b, k)[0])


def test_engine_extreme_magnitudes():
    rng = np.random.default_rng(4)
    a, b = rng.random((40, 16), dtype=np.float32), rng.random((30, 16), dtype=np.float32)
    for scale in (np.float32(1e19), np.float32(1e-21)):   # screen overflow / subnormal products
        indices, _ = k_nearest(a * scale, b * scale, 2, 16)
        np.testing.assert_array_equal(indices, k_nearest_reference(a * scale, b * scale, 2)[0])


@pytest.mark.parametrize("k", [1, 3])
def test_uncertified_within_bound(k):
    a, b = tricky(6)
    indices, sq = k_nearest(a, b, k, 64, certify=False)
    assert indices.dtype == np.int64 and sq.dtype == np.float32
    exact = cdist(a.astype(np.float64), b.astype(np.float64), "sqeuclidean")
    bound = screen_bound_factor(a.shape[1]) * ((a.astype(np.float64) ** 2).sum(1) + (b.astype(np.float64) ** 2).sum(1).max())
    true_sq = np.take_along_axis(exact, indices, axis=1)
    assert (np.abs(sq - true_sq) <= bound[:, None] + 1e-7).all()
    kth = np.sort(exact, axis=1)[:, :k]
    assert (true_sq <= kth + 2 * bound[:, None]).all()


@pytest.mark.parametrize("certify", [True, False])
def test_engine_shapes_and_padding(certify):
    a = np.array([[0.0, 0.0], [3.0, 4.0]], np.float32)
    dtype = np.float64 if certify else np.float32
    for n2 in (0, 1, 2, 3):
        b = np.arange(2 * n2, dtype=np.float32).reshape(n2, 2)
        indices, sq = k_nearest(a, b, 3, 1, certify=certify)
        assert indices.shape == sq.shape == (2, 3) and sq.dtype == dtype
        np.testing.assert_array_equal(indices, brute_k(a, b, 3)[0])
        assert np.isinf(sq[:, n2:]).all()
    indices, sq = k_nearest(np.zeros((0, 2), np.float32), a, 2, 4, certify=certify)
    assert indices.shape == (0, 2) and sq.dtype == dtype


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n1=st.integers(1, 30), n2=st.integers(1, 40),
       dim=st.integers(1, 8), levels=st.integers(2, 4), k=st.integers(1, 8))
def test_engine_property_brute_force(seed, n1, n2, dim, levels, k):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, levels, (n1, dim)).astype(np.float32)
    b = rng.integers(0, levels, (n2, dim)).astype(np.float32)
    indices, sq = k_nearest(a, b, k, int(rng.integers(1, 10)))
    expected_i, expected_sq = brute_k(a, b, k)
    np.testing.assert_array_equal(indices, expected_i)
    np.testing.assert_array_equal(sq, expected_sq)


# ---------------------------------------------------------------- public nearest_neighbors

@pytest.mark.parametrize("k", [1, 2, 4])
def test_nearest_neighbors_public(k):
    a, b = tricky(7, n1=100, n2=240)
    indices, distances = nearest_neighbors(a, b, k=k, chunk_size=33)
    expected_i, expected_sq = brute_k(a, b, k)
    np.testing.assert_array_equal(indices, expected_i)
    np.testing.assert_allclose(distances, np.sqrt(expected_sq), rtol=1e-6, atol=1e-7)
    assert distances.dtype == np.float32 and indices.dtype == np.int64
    if k == 2:
        two = nearest_two(a, b, chunk_size=33)
        np.testing.assert_array_equal(indices, two[0])
        np.testing.assert_array_equal(distances, two[1])


def test_nearest_neighbors_errors():
    good = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="k"):
        nearest_neighbors(good, good, k=0)
    with pytest.raises(TypeError, match="k"):
        nearest_neighbors(good, good, k=1.5)
    with pytest.raises(ValueError, match="descriptors1 and descriptors2"):
        nearest_neighbors(good, np.ones((3, 5), np.float32))
