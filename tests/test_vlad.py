"""VLAD: the estimator against a direct implementation of Jegou et al. 2010's eq. 1 (nearest word by
brute force, residual sums by a loop) with each normalization, and the estimator contract."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone

from classicvision.recognition.transformers import ImageFeatures
from classicvision.recognition.vlad import VLAD, vlad


def direct_vlad(x, codebook, normalize):
    x, c = np.asarray(x, np.float64), np.asarray(codebook, np.float64)
    v = np.zeros_like(c)
    for xt in x:
        nearest = np.argmin(((c - xt) ** 2).sum(axis=1))
        v[nearest] += xt - c[nearest]
    if normalize == "intra":
        for k in range(len(c)):
            norm = np.linalg.norm(v[k])
            if norm > 0:
                v[k] /= norm
    v = v.ravel()
    if normalize == "ssr":
        v = np.sign(v) * np.sqrt(np.abs(v))
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else v


def _features(n_images=4, n=50, width=6, seed=0):
    rng = np.random.default_rng(seed)
    return [ImageFeatures(rng.random((n, 2), dtype=np.float32) * 9, rng.normal(i % 2, 1, (n, width)).astype(np.float32),
                          (10, 10)) for i in range(n_images)]


@pytest.mark.parametrize("normalize", ["intra", "ssr", "l2"])
def test_vlad_matches_the_direct_formula(normalize):
    feats = _features()
    model = VLAD(n_words=5, normalize=normalize, random_state=0).fit(feats)
    out = model.transform(feats)
    assert out.dtype == np.float32 and out.shape == (4, 30)
    for f, row in zip(feats, out):
        np.testing.assert_allclose(row, direct_vlad(f.descriptors, model.codebook_, normalize), rtol=1e-5, atol=1e-6)
        assert np.linalg.norm(row) == pytest.approx(1.0, abs=1e-5)


def test_the_function_matches_the_direct_formula():
    rng = np.random.default_rng(4)
    codebook = rng.normal(0, 1, (3, 4)).astype(np.float32)
    x = rng.normal(0, 1, (40, 4)).astype(np.float32)
    words = np.argmin(((x[:, None] - codebook[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(vlad(x, codebook, words), direct_vlad(x, codebook, "intra"), rtol=1e-5, atol=1e-6)


def test_intra_normalization_gives_equal_weight_to_every_used_word():
    feats = _features(n_images=2)
    out = VLAD(n_words=4, normalize="intra", random_state=0).fit(feats).transform(feats)
    blocks = np.linalg.norm(out.reshape(2, 4, 6), axis=2)
    used = blocks > 0
    np.testing.assert_allclose(blocks[used], (1 / np.sqrt(used.sum(axis=1)))[np.nonzero(used)[0]], rtol=1e-5)


def test_an_image_without_descriptors_gives_zeros():
    feats = _features(n_images=3)
    feats.append(ImageFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 6), np.float32), (10, 10)))
    out = VLAD(n_words=3, random_state=0).fit(feats).transform(feats)
    assert not out[3].any() and out.shape == (4, 18)


def test_estimator_contract():
    feats = _features()
    model = VLAD(n_words=4, random_state=0)
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(Exception, match="not fitted"):
        model.transform(feats)
    a = model.fit_transform(feats)
    np.testing.assert_array_equal(a, clone(model).fit(feats).transform(feats))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).transform(feats), a)


@pytest.mark.parametrize("params, message", [({"n_words": 0}, "n_words must be >= 1"),
                                             ({"normalize": "l1"}, "normalize must be one of"),
                                             ({"n_words": 1000}, "n_words must be <=")])
def test_bad_parameters_are_one_line_errors(params, message):
    with pytest.raises(ValueError, match=message):
        VLAD(**params).fit(_features())


def test_transform_refuses_another_width():
    model = VLAD(n_words=3, random_state=0).fit(_features())
    with pytest.raises(ValueError, match="must have 6 columns"):
        model.transform(_features(width=5))
