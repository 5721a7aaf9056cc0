"""Tests for classicvision.recognition.codebook: k-means++ codebooks and exact nearest-word assignment."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans

from classicvision.recognition.codebook import nearest_words as _nearest, assign_words, inertia, learn_codebook


def _brute_force(descriptors, codebook):
    d = ((descriptors[:, None, :].astype(np.float64) - codebook[None].astype(np.float64)) ** 2).sum(-1)
    return d.argmin(axis=1)


def test_recovers_well_separated_centres():
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 10, (8, 16)).astype(np.float32)
    labels = rng.integers(0, 8, 4000)
    data = (centres[labels] + rng.normal(0, 0.3, (4000, 16))).astype(np.float32)
    codebook = learn_codebook(data, 8, random_state=0)
    assert codebook.shape == (8, 16) and codebook.dtype == np.float32
    cost = ((codebook[:, None] - centres[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    assert np.sqrt(cost[rows, cols]).max() < 0.1


def test_inertia_close_to_sklearn():
    rng = np.random.default_rng(2)
    data = rng.random((3000, 32), dtype=np.float32)
    ours = inertia(data, learn_codebook(data, 20, max_iter=30, random_state=0))
    theirs = KMeans(20, init="k-means++", n_init=1, max_iter=30, random_state=0).fit(data).inertia_
    assert ours < 1.03 * theirs


def test_deterministic_with_random_state():
    data = np.random.default_rng(3).random((500, 8), dtype=np.float32)
    first = learn_codebook(data, 5, random_state=7)
    np.testing.assert_array_equal(first, learn_codebook(data, 5, random_state=7))
    np.testing.assert_array_equal(first, learn_codebook(data, 5, random_state=np.random.RandomState(7)))
    other = learn_codebook(data, 5, random_state=8)
    assert not np.array_equal(first, other)      # another seed seeds elsewhere, ends elsewhere


def test_duplicates_and_empty_clusters():
    # 3 distinct points, many copies: more words than distinct points forces empty clusters
    data = np.repeat(np.eye(3, dtype=np.float32), 20, axis=0)
    codebook = learn_codebook(data, 5, random_state=0)
    assert codebook.shape == (5, 3) and np.isfinite(codebook).all()
    assert inertia(data, codebook) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_assign_words_matches_float64_brute_force(seed):
    rng = np.random.default_rng(seed)
    codebook = rng.random((50, 128), dtype=np.float32)
    descriptors = rng.random((3000, 128), dtype=np.float32)
    # near ties: points half-way between two words, and points on words; offset far from 0 (cancellation)
    mid = 0.5 * (codebook[rng.integers(0, 50, 300)] + codebook[rng.integers(0, 50, 300)])
    descriptors = np.concatenate([descriptors, mid, codebook]) + np.float32(100.0)
    codebook = codebook + np.float32(100.0)
    words = assign_words(descriptors, codebook, chunk_size=517)
    assert words.dtype == np.int32
    np.testing.assert_array_equal(words, _brute_force(descriptors, codebook))


@pytest.mark.parametrize("n_words", [1, 2, 7, 300])
def test_assign_words_brute_force_duplicate_words(n_words):
    rng = np.random.default_rng(n_words)
    codebook = rng.integers(0, 3, (n_words, 6)).astype(np.float32)    # duplicate words, exact ties
    descriptors = rng.integers(0, 3, (500, 6)).astype(np.float32)
    np.testing.assert_array_equal(assign_words(descriptors, codebook, chunk_size=64),
                                  _brute_force(descriptors, codebook))


def test_lloyd_labels_match_sklearn_predict_on_separated_data():
    rng = np.random.default_rng(9)
    data = rng.random((2000, 16), dtype=np.float32)
    codebook = learn_codebook(data, 12, random_state=0)
    km = KMeans(12, init=codebook, n_init=1, max_iter=1).fit(data)
    km.cluster_centers_ = codebook
    np.testing.assert_array_equal(assign_words(data, codebook), km.predict(data))


def test_assign_words_exact_ties_go_to_lowest_index():
    codebook = np.array([[1, 0], [-1, 0], [1, 0]], np.float32)
    np.testing.assert_array_equal(assign_words(np.array([[0, 0], [2, 0]], np.float32), codebook), [0, 0])


def test_nearest_sorted_and_consistent():
    rng = np.random.default_rng(4)
    codebook = rng.random((30, 16), dtype=np.float32)
    descriptors = rng.random((200, 16), dtype=np.float32)
    idx, dist = _nearest(descriptors, codebook, 5, chunk_size=64)
    full = ((descriptors[:, None] - codebook[None]) ** 2).sum(-1)
    np.testing.assert_allclose(dist, np.sort(full, axis=1)[:, :5], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dist, np.take_along_axis(full, idx, axis=1), rtol=1e-4, atol=1e-5)
    assert (np.diff(dist, axis=1) >= 0).all()
    assert idx.dtype == np.int64 and dist.dtype == np.float32
    np.testing.assert_array_equal(idx[:, 0], assign_words(descriptors, codebook))


def test_empty_and_errors():
    codebook = np.eye(4, dtype=np.float32)
    out = assign_words(np.zeros((0, 4), np.float32), codebook)
    assert out.shape == (0,) and out.dtype == np.int32
    with pytest.raises(ValueError, match="same number of columns"):
        assign_words(np.zeros((3, 5), np.float32), codebook)
    with pytest.raises(ValueError, match="n_words"):
        learn_codebook(np.zeros((3, 4), np.float32), 5)
    with pytest.raises(TypeError, match="n_words"):
        learn_codebook(np.zeros((3, 4), np.float32), 2.5)
    with pytest.raises(ValueError, match="NaN"):
        assign_words(np.full((2, 4), np.nan, np.float32), codebook)
