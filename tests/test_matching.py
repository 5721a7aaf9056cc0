"""Tests for classicvision.matching.nearest.nearest_two and classicvision.matching.ratio.

Oracles: a float64 brute force (scipy cdist, ties to the lower index) and cv2.BFMatcher. The
engine and its kernels are tested against their numpy twins in tests/test_nearest.py.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from classicvision.matching.nearest import nearest_two
from classicvision.matching.ratio import match_descriptors


def brute_nearest_two(d1, d2):
    """float64 oracle: indices (N1, 2) and distances (N1, 2), ties broken by lower index."""
    dist = cdist(np.asarray(d1, np.float64), np.asarray(d2, np.float64))
    columns = np.broadcast_to(np.arange(dist.shape[1]), dist.shape)
    order = np.lexsort((columns, dist), axis=1)[:, :2]
    return order, np.take_along_axis(dist, order, axis=1)


def unit_rows(rng, n, d):
    x = rng.random((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def tricky_pair(seed=0, n1=300, n2=400, d=32):
    """Random SIFT-like rows plus duplicates and near-ties below float32 GEMM resolution."""
    rng = np.random.default_rng(seed)
    d1 = unit_rows(rng, n1, d)
    d2 = unit_rows(rng, n2, d)
    d2[5] = d2[6]                      # duplicate reference rows
    d2[40:45] = d1[0]                  # five exact copies of a query: d1 = d2 = 0
    d2[100] = d1[1]
    for t, row in enumerate(range(200, 230)):
        # near-ties: two references differing from query t+2 by ~1e-3 in one coordinate, so that
        # their squared distances differ by ~1e-7 relative: below float32 GEMM cancellation.
        base = d1[t + 2].copy()
        base[t % d] += np.float32(0.01)
        other = d1[t + 2].copy()
        other[(t + 1) % d] += np.float32(0.01 + 1e-5)
        d2[row] = other
        d2[row + 100] = base
    d1[3] = d1[4]                      # duplicate queries
    return d1, d2


# ---------------------------------------------------------------- nearest_two

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nearest_two_matches_brute_force(seed):
    d1, d2 = tricky_pair(seed)
    indices, distances = nearest_two(d1, d2)
    expected_idx, expected_dist = brute_nearest_two(d1, d2)
    np.testing.assert_array_equal(indices, expected_idx)
    np.testing.assert_allclose(distances, expected_dist, rtol=1e-6, atol=1e-7)
    assert indices.dtype == np.int64 and distances.dtype == np.float32
    assert indices.shape == distances.shape == (len(d1), 2)


def test_near_ties_are_resolved_exactly():
    # Query at a large offset, two references at squared distances differing by ~1e-6 relative.
    rng = np.random.default_rng(5)
    d1 = (rng.standard_normal((50, 64)) * 10 + 100).astype(np.float32)
    d2 = np.repeat(d1, 2, axis=0)
    d2[0::2, 0] += np.float32(0.5)
    d2[1::2, 1] += np.float32(0.5 + 2 ** -8)    # farther by a hair
    d2 = np.vstack([d2[1::2], d2[0::2]])        # the nearer one has the higher index
    indices, _ = nearest_two(d1, d2)
    expected_idx, _ = brute_nearest_two(d1, d2)
    np.testing.assert_array_equal(indices, expected_idx)
    np.testing.assert_array_equal(indices[:, 0], np.arange(50) + 50)


def test_duplicates_tie_to_lower_index():
    d2 = np.tile(np.array([[1.0, 2.0, 3.0]], np.float32), (20, 1))
    d1 = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], np.float32)
    indices, distances = nearest_two(d1, d2, chunk_size=1)
    np.testing.assert_array_equal(indices, [[0, 1], [0, 1]])
    np.testing.assert_allclose(distances[0], [0.0, 0.0])


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 10_000])
def test_chunk_size_invariance(chunk_size):
    d1, d2 = tricky_pair(3, n1=150)
    reference = nearest_two(d1, d2)
    indices, distances = nearest_two(d1, d2, chunk_size=chunk_size)
    np.testing.assert_array_equal(indices, reference[0])
    np.testing.assert_array_equal(distances, reference[1])


def test_against_cv2_bfmatcher():
    rng = np.random.default_rng(7)
    d1, d2 = unit_rows(rng, 500, 128), unit_rows(rng, 700, 128)
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(d1, d2, k=2)
    cv_idx = np.array([[m.trainIdx for m in pair] for pair in knn])
    cv_dist = np.array([[m.distance for m in pair] for pair in knn])
    indices, distances = nearest_two(d1, d2)
    np.testing.assert_array_equal(indices, cv_idx)
    np.testing.assert_allclose(distances, cv_dist, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.uint8, np.float64, np.float32])
def test_input_dtypes(dtype):
    rng = np.random.default_rng(1)
    d1 = (rng.random((30, 8)) * 200).astype(dtype)
    d2 = (rng.random((40, 8)) * 200).astype(dtype)
    indices, _ = nearest_two(d1, d2)
    np.testing.assert_array_equal(indices, brute_nearest_two(d1.astype(np.float32), d2.astype(np.float32))[0])


def test_few_reference_rows():
    d1 = np.array([[0.0, 0.0], [3.0, 4.0]], np.float32)
    indices, distances = nearest_two(d1, np.array([[0.0, 0.0]], np.float32))
    np.testing.assert_array_equal(indices, [[0, -1], [0, -1]])
    np.testing.assert_allclose(distances, [[0.0, np.inf], [5.0, np.inf]])
    indices, distances = nearest_two(d1, np.zeros((0, 2), np.float32))
    assert indices.shape == (2, 2) and (indices == -1).all() and np.isinf(distances).all()
    indices, distances = nearest_two(np.zeros((0, 2), np.float32), d1)
    assert indices.shape == (0, 2) and indices.dtype == np.int64 and distances.dtype == np.float32


# ---------------------------------------------------------------- match_descriptors

def test_ratio_test_semantics():
    rng = np.random.default_rng(2)
    d1, d2 = unit_rows(rng, 200, 16), unit_rows(rng, 250, 16)
    expected_idx, expected_dist = brute_nearest_two(d1, d2)
    ratio = expected_dist[:, 0] / expected_dist[:, 1]
    for max_ratio in (0.5, 0.8, 0.95, 1.0):
        matches, confidence = match_descriptors(d1, d2, max_ratio=max_ratio)
        keep = np.flatnonzero(ratio <= max_ratio)
        assert sorted(matches[:, 0].tolist()) == keep.tolist()
        np.testing.assert_array_equal(matches[:, 1], expected_idx[matches[:, 0], 0])
        np.testing.assert_allclose(confidence, 1 - ratio[matches[:, 0]], atol=1e-6)
        assert np.all(np.diff(confidence) <= 0)
        assert matches.dtype == np.int64 and confidence.dtype == np.float32
        assert np.all((confidence >= 0) & (confidence <= 1))


def test_sorted_by_confidence_then_index():
    d2 = np.array([[0.0], [10.0]], np.float32)
    d1 = np.array([[1.0], [9.0], [1.0], [5.0]], np.float32)      # rows 0, 1, 2 tie at ratio 1/9
    matches, confidence = match_descriptors(d1, d2, max_ratio=1.0)
    np.testing.assert_array_equal(matches, [[0, 0], [1, 1], [2, 0], [3, 0]])
    np.testing.assert_allclose(confidence, [8 / 9, 8 / 9, 8 / 9, 0.0], atol=1e-6)


def test_degenerate_ratios():
    d1 = np.array([[1.0, 1.0], [5.0, 5.0]], np.float32)
    # two exact copies of query 0: ambiguous (ratio 1); query 1 exact once (ratio 0)
    d2 = np.array([[1.0, 1.0], [1.0, 1.0], [5.0, 5.0]], np.float32)
    matches, confidence = match_descriptors(d1, d2, max_ratio=0.8)
    np.testing.assert_array_equal(matches, [[1, 2]])
    np.testing.assert_array_equal(confidence, [1.0])
    matches, confidence = match_descriptors(d1, d2, max_ratio=1.0)
    np.testing.assert_array_equal(matches, [[1, 2], [0, 0]])
    np.testing.assert_array_equal(confidence, [1.0, 0.0])
    # a single reference row: no competitor, confidence 1 (as scikit-image)
    matches, confidence = match_descriptors(d1, d2[:1])
    np.testing.assert_array_equal(matches, [[0, 0], [1, 0]])
    np.testing.assert_array_equal(confidence, [1.0, 1.0])


def test_cross_check_is_mutual_nearest_neighbour():
    d1, d2 = tricky_pair(4)
    matches, _ = match_descriptors(d1, d2, max_ratio=1.0, cross_check=True)
    forward, _ = brute_nearest_two(d1, d2)
    backward, _ = brute_nearest_two(d2, d1)
    expected = {(i, forward[i, 0]) for i in range(len(d1)) if backward[forward[i, 0], 0] == i}
    assert set(map(tuple, matches.tolist())) == expected
    plain, _ = match_descriptors(d1, d2, max_ratio=0.8)
    checked, _ = match_descriptors(d1, d2, max_ratio=0.8, cross_check=True)
    assert set(map(tuple, checked.tolist())) <= set(map(tuple, plain.tolist()))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n1=st.integers(0, 25), n2=st.integers(0, 25),
       dim=st.integers(1, 6), levels=st.integers(2, 5))
def test_cross_check_symmetry(seed, n1, n2, dim, levels):
    """Swapping the inputs swaps the mutual matches (coarse values force ties and duplicates)."""
    rng = np.random.default_rng(seed)
    d1 = rng.integers(0, levels, (n1, dim)).astype(np.float32)
    d2 = rng.integers(0, levels, (n2, dim)).astype(np.float32)
    forward, _ = match_descriptors(d1, d2, max_ratio=1.0, cross_check=True)
    backward, _ = match_descriptors(d2, d1, max_ratio=1.0, cross_check=True)
    assert set(map(tuple, forward.tolist())) == set(map(tuple, backward[:, ::-1].tolist()))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n1=st.integers(1, 30), n2=st.integers(1, 30),
       dim=st.integers(1, 8), levels=st.integers(2, 4))
def test_nearest_two_property_brute_force(seed, n1, n2, dim, levels):
    rng = np.random.default_rng(seed)
    d1 = rng.integers(0, levels, (n1, dim)).astype(np.float32)
    d2 = rng.integers(0, levels, (n2, dim)).astype(np.float32)
    indices, distances = nearest_two(d1, d2, chunk_size=int(rng.integers(1, 10)))
    expected_idx, expected_dist = brute_nearest_two(d1, d2)
    width = min(2, n2)
    np.testing.assert_array_equal(indices[:, :width], expected_idx[:, :width])
    np.testing.assert_allclose(distances[:, :width], expected_dist[:, :width], rtol=1e-6)


def test_empty_inputs():
    for d1, d2 in [(np.zeros((0, 8)), np.ones((5, 8))), (np.ones((5, 8)), np.zeros((0, 8))),
                   ([], []), (np.zeros((0, 8)), np.zeros((0, 8)))]:
        matches, confidence = match_descriptors(d1, d2, cross_check=True)
        assert matches.shape == (0, 2) and matches.dtype == np.int64
        assert confidence.shape == (0,) and confidence.dtype == np.float32


def test_errors():
    good = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match="descriptors1 and descriptors2.*4 and 5"):
        nearest_two(good, np.ones((3, 5), np.float32))
    with pytest.raises(ValueError, match="descriptors1 and descriptors2"):
        match_descriptors(good, np.ones((3, 5), np.float32))
    bad = good.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="descriptors2.*NaN"):
        match_descriptors(good, bad)
    with pytest.raises(ValueError, match="descriptors1.*shape"):
        nearest_two(np.ones(4, np.float32), good)
    with pytest.raises(ValueError, match="descriptors2.*shape"):
        nearest_two(good, np.ones((2, 3, 4), np.float32))
    with pytest.raises(TypeError, match="descriptors1"):
        nearest_two(np.array([["a"]]), good)
    with pytest.raises(ValueError, match="max_ratio"):
        match_descriptors(good, good, max_ratio=0.0)
    with pytest.raises(ValueError, match="max_ratio"):
        match_descriptors(good, good, max_ratio=1.5)
    with pytest.raises(ValueError, match="chunk_size"):
        nearest_two(good, good, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size"):
        nearest_two(good, good, chunk_size=2.5)
    with pytest.raises(TypeError, match="cross_check"):
        match_descriptors(good, good, cross_check="yes")
