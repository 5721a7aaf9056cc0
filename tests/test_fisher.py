"""Fisher vectors: the encoding against a direct float64 implementation of Sanchez et al. 2013's
formulas (eq. 16-17), the pyramid against per-cell encodings, and the estimator contract."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.special import logsumexp
from sklearn.base import clone

from classicvision.recognition.fisher import FisherVector, fisher_vector, learn_pca
from classicvision.recognition.gmm import GaussianMixtureDiag
from classicvision.recognition.transformers import ImageFeatures


def direct_fisher(x, weights, means, variances, improved=True):
    """Sanchez et al. 2013, eq. 16-17, one descriptor and one Gaussian at a time, in float64."""
    x, w, mu, var = (np.asarray(a, np.float64) for a in (x, weights, means, variances))
    k, d = mu.shape
    if len(x) == 0:
        return np.zeros(2 * k * d)
    log = np.array([[np.log(w[j]) - 0.5 * np.sum(np.log(2 * np.pi * var[j]) + (xt - mu[j]) ** 2 / var[j])
                     for j in range(k)] for xt in x])
    gamma = np.exp(log - logsumexp(log, axis=1, keepdims=True))
    g_mu, g_sigma = np.zeros((k, d)), np.zeros((k, d))
    for t, xt in enumerate(x):
        for j in range(k):
            u = (xt - mu[j]) / np.sqrt(var[j])
            g_mu[j] += gamma[t, j] * u
            g_sigma[j] += gamma[t, j] * (u ** 2 - 1)
    g_mu /= len(x) * np.sqrt(w)[:, None]
    g_sigma /= len(x) * np.sqrt(2 * w)[:, None]
    fv = np.concatenate([g_mu.ravel(), g_sigma.ravel()])
    if improved:
        fv = np.sign(fv) * np.sqrt(np.abs(fv))
        fv /= max(np.linalg.norm(fv), 1e-30)
    return fv


@pytest.fixture
def gmm():
    rng = np.random.default_rng(1)
    k, d = 4, 3
    weights = rng.random(k) + 0.2
    return GaussianMixtureDiag((weights / weights.sum()).astype(np.float32),
                               rng.normal(0, 1, (k, d)).astype(np.float32),
                               (rng.random((k, d)) + 0.3).astype(np.float32))


@pytest.mark.parametrize("improved", [False, True])
def test_fisher_vector_matches_the_formula(gmm, improved):
    x = np.random.default_rng(2).normal(0, 1.2, (50, 3)).astype(np.float32)
    expected = direct_fisher(x, *gmm, improved=improved)
    got = fisher_vector(x, gmm, improved=improved)
    assert got.dtype == np.float32 and got.shape == (24,)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-5)


def test_fisher_vector_of_nothing_is_zero(gmm):
    out = fisher_vector(np.zeros((0, 3), np.float32), gmm)
    assert out.shape == (24,) and not out.any()


def test_fisher_vector_refuses_the_wrong_width(gmm):
    with pytest.raises(ValueError, match="descriptors must have 3 columns"):
        fisher_vector(np.zeros((5, 4), np.float32), gmm)


def _features(n_images=5, n=60, width=8, seed=0, size=(30, 40)):
    rng = np.random.default_rng(seed)
    height, w = size
    return [ImageFeatures(np.column_stack([rng.random(n) * (w - 1), rng.random(n) * (height - 1)]).astype(np.float32),
                          rng.normal(i % 2, 1, (n, width)).astype(np.float32), size) for i in range(n_images)]


def test_estimator_matches_the_formula_after_pca_and_augmentation():
    feats = _features()
    model = FisherVector(n_components=3, n_pca=5, augment=True, random_state=0).fit(feats)
    out = model.transform(feats)
    assert out.dtype == np.float32 and out.shape == (5, 2 * 3 * 7)
    for f, row in zip(feats, out):
        x = (f.descriptors.astype(np.float64) - model.pca_mean_) @ model.pca_projection_
        pos = (f.points.astype(np.float64) + 0.5) / np.array([f.shape[1], f.shape[0]]) - 0.5
        np.testing.assert_allclose(row, direct_fisher(np.column_stack([x, pos]), *model.gmm_), rtol=1e-3, atol=1e-4)


def test_pyramid_cells_are_the_fisher_vectors_of_their_descriptors():
    feats = _features(n_images=3, n=120)
    grids = ((1, 1), (2, 2), (1, 3))
    model = FisherVector(n_components=2, n_pca=4, augment=False, pyramid=grids, random_state=0).fit(feats)
    out = model.transform(feats)
    width = 2 * 2 * 4
    assert out.shape == (3, 8 * width)
    for f, row in zip(feats, out):
        x = (f.descriptors.astype(np.float64) - model.pca_mean_) @ model.pca_projection_
        fx = (f.points[:, 0] + 0.5) / f.shape[1]
        fy = (f.points[:, 1] + 0.5) / f.shape[0]
        expected = []
        for c, r in grids:
            cell = np.floor(fy * r).astype(int) * c + np.floor(fx * c).astype(int)
            expected += [direct_fisher(x[cell == j], *model.gmm_) for j in range(c * r)]
        expected = np.concatenate(expected) / np.sqrt(8)
        np.testing.assert_allclose(row, expected, rtol=1e-3, atol=1e-4)
        assert np.linalg.norm(row) == pytest.approx(1.0, abs=1e-5)


def test_an_image_without_descriptors_gives_zeros():
    feats = _features(n_images=3)
    feats.append(ImageFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 8), np.float32), (30, 40)))
    out = FisherVector(n_components=2, n_pca=3, random_state=0).fit(feats).transform(feats)
    assert not out[3].any() and np.all(np.linalg.norm(out[:3], axis=1) > 0.99)


def test_learn_pca_matches_scikit_learn():
    from sklearn.decomposition import PCA

    x = np.random.default_rng(3).normal(0, 1, (400, 6)).astype(np.float32) * np.arange(1, 7, dtype=np.float32)
    mean, projection = learn_pca(x, 3)
    ours = (x - mean) @ projection
    theirs = PCA(3).fit_transform(x)
    np.testing.assert_allclose(np.abs(ours), np.abs(theirs), rtol=1e-3, atol=1e-3)
    white = (x - mean) @ learn_pca(x, 3, whiten=True)[1]
    np.testing.assert_allclose(white.var(axis=0, ddof=1), 1.0, rtol=1e-3)


def test_estimator_contract():
    feats = _features()
    model = FisherVector(n_components=2, n_pca=4, pyramid=((1, 1), (2, 2)), random_state=0)
    assert clone(model).get_params() == model.get_params()
    with pytest.raises(Exception, match="not fitted"):
        model.transform(feats)
    a = model.fit_transform(feats)
    b = clone(model).fit(feats).transform(feats)
    np.testing.assert_array_equal(a, b)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.transform(feats), a)


@pytest.mark.parametrize("params, message", [
    ({"n_components": 0}, "n_components must be >= 1"),
    ({"pyramid": ()}, "at least one"),
    ({"pyramid": ((0, 1),)}, "pairs of integers"),
    ({"n_pca": 9}, "n_pca must be <= the descriptor width"),
    ({"n_components": 10_000}, "n_components must be <="),
])
def test_bad_parameters_are_one_line_errors(params, message):
    with pytest.raises(ValueError, match=message):
        FisherVector(**params).fit(_features())


def test_transform_refuses_another_width():
    model = FisherVector(n_components=2, n_pca=3, random_state=0).fit(_features())
    with pytest.raises(ValueError, match="must have 8 columns"):
        model.transform(_features(width=6))


def test_pipeline_with_dense_sift_and_a_linear_svm():
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    from classicvision.recognition.transformers import DenseSIFT

    rng = np.random.default_rng(0)
    ramps = [np.tile(np.linspace(0, 1, 48, dtype=np.float32), (48, 1)) for _ in range(4)]
    images = [np.clip(r + rng.normal(0, 0.05, r.shape), 0, 1).astype(np.float32) for r in ramps]
    images += [np.clip(r.T + rng.normal(0, 0.05, r.shape), 0, 1).astype(np.float32) for r in ramps]
    y = [0] * 4 + [1] * 4
    model = make_pipeline(DenseSIFT(step=8, sizes=(16,)), FisherVector(n_components=4, n_pca=16, random_state=0),
                          LinearSVC())
    assert model.fit(images, y).score(images, y) == 1.0


def test_linear_svm_in_the_training_span_is_the_same_classifier():
    """experiments.fisher.TrainingSpan: LinearSVC on the span coordinates decides as LinearSVC on the vectors."""
    from sklearn.svm import LinearSVC

    from classicvision.experiments.fisher import TrainingSpan

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 120)
    x = rng.normal(size=(120, 3000)).astype(np.float32)
    x[np.arange(120), y] += 3
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    test = rng.normal(size=(50, 3000)).astype(np.float32)
    test[np.arange(50), np.arange(50) % 4] += 3
    direct = LinearSVC(C=1.0, tol=1e-6, max_iter=10_000, random_state=0).fit(x, y)
    span = TrainingSpan().fit(x)
    basis = span.vectors_.T @ span.projection_   # the basis the span never forms
    assert basis.shape == (3000, 120)
    np.testing.assert_allclose(basis.T @ basis, np.eye(120), atol=1e-4)
    np.testing.assert_allclose(span.fit_transform(x), span.transform(x), atol=1e-5)
    in_span = LinearSVC(C=1.0, tol=1e-6, max_iter=10_000, random_state=0).fit(span.transform(x), y)
    np.testing.assert_allclose(in_span.decision_function(span.transform(test)), direct.decision_function(test),
                               atol=1e-4)
    np.testing.assert_array_equal(in_span.predict(span.transform(test)), direct.predict(test))
    primal = span.primal(in_span)   # back on the vectors: the same decisions, coef_ (classes, 3000)
    assert primal.coef_.shape == (4, 3000) and in_span.coef_.shape == (4, 120)
    np.testing.assert_allclose(primal.decision_function(test), direct.decision_function(test), atol=1e-4)


def test_fit_sample_is_fit_after_its_sampling_step():
    from classicvision.recognition.sampling import sample_features

    features = _features()
    fitted = FisherVector(3, n_pca=4, max_iter=5, sample_size=200, random_state=np.random.RandomState(7)).fit(features)
    rng = np.random.RandomState(7)  # the generator in the state fit leaves it after drawing its sample
    sample, positions = sample_features(features, 200, rng)
    again = FisherVector(3, n_pca=4, max_iter=5, random_state=rng).fit_sample(sample, positions)
    for a, b in ((fitted.gmm_.means, again.gmm_.means), (fitted.gmm_.variances, again.gmm_.variances),
                 (fitted.pca_projection_, again.pca_projection_)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fitted.transform(features), again.transform(features))
    other = FisherVector(3, n_pca=4, max_iter=5, random_state=1).fit_sample(sample, positions)
    assert not np.allclose(other.gmm_.means, fitted.gmm_.means)  # another seed starts the EM elsewhere


@pytest.mark.parametrize("args, message", [
    ((np.zeros((2, 8), np.float32), np.zeros((2, 2))), "N >= n_components"),
    ((np.full((50, 8), np.nan, np.float32), np.zeros((50, 2))), "NaN"),
    ((np.zeros((50, 8), np.float32), None), "positions are required"),
    ((np.zeros((50, 8), np.float32), np.zeros((49, 2))), r"positions must be finite with shape \(50, 2\)"),
])
def test_fit_sample_refuses_bad_samples(args, message):
    with pytest.raises(ValueError, match=message):
        FisherVector(3, n_pca=4).fit_sample(*args)
