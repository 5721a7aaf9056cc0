"""Tests for classicvision.recognition.encoding: BagOfWords (spatial pyramid, hard and soft),
pyramid_level_weights, the estimator contract, and a Pipeline that generalizes to unseen images."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from classicvision.recognition.encoding import BagOfWords, pyramid_level_weights
from classicvision.recognition.transformers import DenseSIFT, ImageFeatures


def _grating(kind: int, seed: int, size: int = 48) -> np.ndarray:
    """A noisy sine grating of class ``kind``: stripes at 60 * kind degrees (+-10), random
    frequency, phase and contrast. The classes differ only by orientation."""
    rng = np.random.default_rng(seed)
    angle = np.radians(60 * kind + rng.uniform(-10, 10))
    frequency = rng.uniform(0.5, 0.9)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    image = 0.5 + rng.uniform(0.2, 0.4) * np.sin(frequency * (xx * np.cos(angle) + yy * np.sin(angle))
                                                 + rng.uniform(0, 2 * np.pi))
    return np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def gratings():
    """(train images, train labels, test images, test labels): 6 and 10 per class, disjoint seeds."""
    train = [_grating(k, 100 * k + i) for k in range(3) for i in range(6)]
    test = [_grating(k, 10_000 + 100 * k + i) for k in range(3) for i in range(10)]
    return train, np.repeat(np.arange(3), 6), test, np.repeat(np.arange(3), 10)


@pytest.fixture(scope="module")
def random_features():
    rng = np.random.default_rng(1)
    return [ImageFeatures(rng.random((50, 2), dtype=np.float32) * 20, rng.random((50, 16), dtype=np.float32),
                          (20, 20)) for _ in range(4)]


def _features(words_xy, shape=(40, 40)):
    """ImageFeatures whose descriptors are one-hot vectors of given words at given (x, y)."""
    words = np.array([w for w, _, _ in words_xy])
    points = np.array([[x, y] for _, x, y in words_xy], np.float32).reshape(-1, 2)
    return ImageFeatures(points, np.eye(4, dtype=np.float32)[words].reshape(-1, 4), shape)


def _one_hot_bow(**params):
    bow = BagOfWords(n_words=4, **params)
    bow.codebook_ = np.eye(4, dtype=np.float32)  # fitted by hand: words are the unit vectors
    bow.soft_sigma_ = params.get("soft_sigma")
    return bow


def test_pyramid_dimension_and_level_weights():
    assert pyramid_level_weights(1).tolist() == [1.0]
    assert pyramid_level_weights(3).tolist() == [0.25, 0.25, 0.5]
    assert pyramid_level_weights(4).tolist() == [0.125, 0.125, 0.25, 0.5]
    for levels in (1, 2, 3):
        x = _one_hot_bow(levels=levels, normalize="l1").transform([_features([(1, 5, 5)])])
        assert x.shape == (1, 4 * (4 ** levels - 1) // 3) and x.dtype == np.float32


def test_hard_histogram_cells_and_weights():
    # word 0 top-left, word 1 twice bottom-right, in a 40x40 image; levels=3 -> weights 1/4, 1/4, 1/2
    feats = _features([(0, 2, 3), (1, 35, 36), (1, 30, 38)])
    x = _one_hot_bow(levels=3, normalize="l1").transform([feats])[0]
    raw = np.zeros(4 * 21)
    raw[[0, 1]] = np.array([1, 2]) / 3 * 0.25                      # level 0
    raw[4 + 0 * 4 + 0] = 1 / 3 * 0.25                              # level 1, cell (0, 0)
    raw[4 + 3 * 4 + 1] = 2 / 3 * 0.25                              # level 1, cell (1, 1)
    raw[20 + 0 * 4 + 0] = 1 / 3 * 0.5                              # level 2, cell (0, 0)
    raw[20 + 15 * 4 + 1] = 2 / 3 * 0.5                             # level 2, cell (3, 3)
    np.testing.assert_allclose(x, raw / raw.sum(), rtol=1e-6)


@pytest.mark.parametrize("normalize", ["l1", "sqrt", "l2"])
def test_normalizations(normalize):
    rng = np.random.default_rng(0)
    feats = [ImageFeatures(rng.random((60, 2), dtype=np.float32) * 30, rng.random((60, 4), dtype=np.float32),
                           (30, 30)) for _ in range(3)]
    l1 = _one_hot_bow(levels=2, normalize="l1").transform(feats)
    x = _one_hot_bow(levels=2, normalize=normalize).transform(feats)
    assert (x >= 0).all()
    if normalize == "l1":
        np.testing.assert_allclose(x.sum(axis=1), 1.0, rtol=1e-5)
    elif normalize == "sqrt":
        np.testing.assert_allclose(x, np.sqrt(l1), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    else:
        np.testing.assert_allclose(x, l1 / np.linalg.norm(l1, axis=1, keepdims=True), rtol=1e-5)


def test_level0_is_word_count_histogram():
    rng = np.random.default_rng(5)
    codebook = rng.random((6, 8), dtype=np.float32)
    desc = rng.random((100, 8), dtype=np.float32)
    bow = BagOfWords(n_words=6, levels=1, normalize="l1")
    bow.codebook_, bow.soft_sigma_ = codebook, None
    x = bow.transform([ImageFeatures(rng.random((100, 2), dtype=np.float32), desc, (1, 1))])[0]
    nearest = ((desc[:, None] - codebook[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_allclose(x, np.bincount(nearest, minlength=6) / 100, rtol=1e-6)


def test_soft_assignment_weights():
    # a descriptor equidistant from words 0 and 1 splits its vote; far words get ~0
    bow = _one_hot_bow(levels=1, normalize="l1", encoding="soft", soft_sigma=0.1)
    feats = ImageFeatures(np.zeros((1, 2), np.float32), np.array([[0.5, 0.5, 0, 0]], np.float32), (4, 4))
    np.testing.assert_allclose(bow.transform([feats])[0], [0.5, 0.5, 0, 0], atol=1e-6)
    wide = _one_hot_bow(levels=1, normalize="l1", encoding="soft", soft_sigma=100.0)
    np.testing.assert_allclose(wide.transform([feats])[0], 0.25, atol=1e-3)


def test_empty_feature_set_gives_zero_row():
    empty = ImageFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 4), np.float32), (10, 10))
    for normalize in ("l1", "sqrt", "l2"):
        x = _one_hot_bow(levels=2, normalize=normalize).transform([empty, _features([(2, 1, 1)], (10, 10))])
        assert x.shape == (2, 20) and not x[0].any() and x[1].any() and np.isfinite(x).all()
    assert _one_hot_bow(levels=2).transform([]).shape == (0, 20)


def test_fit_learns_codebook_and_sigma():
    rng = np.random.default_rng(1)
    feats = [ImageFeatures(rng.random((50, 2), dtype=np.float32), rng.random((50, 16), dtype=np.float32), (1, 1))
             for _ in range(4)]
    bow = BagOfWords(n_words=7, levels=2, encoding="soft", sample_size=120, random_state=0).fit(feats)
    assert bow.codebook_.shape == (7, 16) and bow.codebook_.dtype == np.float32
    assert bow.n_descriptors_fit_ == 120 and bow.soft_sigma_ > 0
    np.testing.assert_array_equal(bow.codebook_, clone(bow).fit(feats).codebook_)
    with pytest.raises(ValueError, match="n_words"):
        BagOfWords(n_words=500).fit(feats)


def test_estimator_contract():
    bow = BagOfWords(n_words=10, levels=2, random_state=3)
    params = bow.get_params()
    assert params["n_words"] == 10 and params["random_state"] == 3 and params["normalize"] == "sqrt"
    assert clone(bow).get_params() == params
    assert bow.set_params(levels=1, encoding="soft").levels == 1 and bow.get_params()["encoding"] == "soft"
    with pytest.raises(ValueError, match="encoding"):
        BagOfWords(encoding="fisher").fit([])
    with pytest.raises(TypeError, match="ImageFeatures"):
        BagOfWords(n_words=2).fit([np.zeros((4, 4))])


def test_not_fitted_before_fit(random_features):
    for bow in (BagOfWords(n_words=4), clone(BagOfWords(n_words=4).fit(random_features))):
        with pytest.raises(NotFittedError):
            bow.transform(random_features)


@pytest.mark.parametrize("encoding", ["hard", "soft"])
def test_fit_transform_pickle_and_clone(random_features, encoding):
    bow = BagOfWords(n_words=6, levels=2, encoding=encoding, sample_size=150, random_state=0)
    x = bow.fit(random_features).transform(random_features)
    np.testing.assert_array_equal(clone(bow).fit_transform(random_features), x)
    restored = pickle.loads(pickle.dumps(bow))
    np.testing.assert_array_equal(restored.codebook_, bow.codebook_)
    assert restored.soft_sigma_ == bow.soft_sigma_ and restored.get_params() == bow.get_params()
    np.testing.assert_array_equal(restored.transform(random_features), x)
    # set_params changes what is learned: another seed draws another sample and another codebook.
    other = clone(bow).set_params(random_state=1).fit(random_features)
    assert not np.array_equal(other.codebook_, bow.codebook_)
    # A clone carries the parameters but nothing learned.
    fresh = clone(bow)
    assert fresh.get_params() == bow.get_params() and not hasattr(fresh, "codebook_")


def test_pipeline_and_grid_search_generalize(gratings):
    # Trained on 18 gratings, scored on 30 the model never saw (other seeds: other orientations
    # within the class, frequencies, phases, contrasts and noise).
    train, y_train, test, y_test = gratings
    pipe = make_pipeline(DenseSIFT(step=8, sizes=(16,)), BagOfWords(n_words=8, levels=2, random_state=0),
                         LinearSVC(C=10.0))
    assert pipe.fit(train, y_train).score(test, y_test) >= 0.9
    search = GridSearchCV(clone(pipe), {"bagofwords__n_words": [4, 8], "bagofwords__encoding": ["hard", "soft"]},
                          cv=3).fit(train, y_train)
    assert search.best_score_ >= 0.8
    assert search.score(test, y_test) >= 0.9
