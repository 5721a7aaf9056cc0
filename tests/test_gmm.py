"""The diagonal Gaussian mixture against scikit-learn's GaussianMixture(covariance_type="diag"):
posteriors and densities for the same parameters, and the EM fit (log-likelihood, parameters)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from classicvision.recognition.gmm import GaussianMixtureDiag, fit_gmm, gmm_posteriors


def _sklearn_with(gmm: GaussianMixtureDiag) -> GaussianMixture:
    """A scikit-learn mixture holding exactly ``gmm``'s parameters."""
    model = GaussianMixture(len(gmm.weights), covariance_type="diag")
    model.weights_ = gmm.weights.astype(np.float64)
    model.means_ = gmm.means.astype(np.float64)
    model.covariances_ = gmm.variances.astype(np.float64)
    model.precisions_cholesky_ = 1.0 / np.sqrt(model.covariances_)
    return model


def _blobs(seed=0, n=600, d=5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (3, d))
    scales = rng.random((3, d)) + 0.3
    label = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    return (centres[label] + rng.normal(0, 1, (n, d)) * scales[label]).astype(np.float32)


def test_posteriors_and_densities_match_scikit_learn():
    rng = np.random.default_rng(1)
    weights = rng.random(4) + 0.1
    gmm = GaussianMixtureDiag((weights / weights.sum()).astype(np.float32), rng.normal(0, 2, (4, 6)).astype(np.float32),
                              (rng.random((4, 6)) + 0.2).astype(np.float32))
    x = rng.normal(0, 2, (300, 6)).astype(np.float32)
    q, log_density = gmm_posteriors(x, gmm)
    reference = _sklearn_with(gmm)
    assert q.dtype == np.float32 and q.shape == (300, 4)
    np.testing.assert_allclose(q, reference.predict_proba(x), atol=1e-5)
    np.testing.assert_allclose(log_density, reference.score_samples(x), rtol=1e-5, atol=1e-4)


def test_em_reaches_scikit_learns_fit():
    x = _blobs()
    ours, loglik = fit_gmm(x, 3, max_iter=100, tol=1e-6, random_state=0)
    theirs = GaussianMixture(3, covariance_type="diag", max_iter=200, tol=1e-8, n_init=3, random_state=0).fit(x)
    assert loglik == pytest.approx(theirs.score(x), abs=1e-3)
    assert _sklearn_with(ours).score(x) == pytest.approx(theirs.score(x), abs=1e-3)
    order = np.argsort(ours.means[:, 0])
    ref = np.argsort(theirs.means_[:, 0])
    np.testing.assert_allclose(ours.means[order], theirs.means_[ref], atol=1e-3)
    np.testing.assert_allclose(ours.variances[order], theirs.covariances_[ref], rtol=1e-2)
    np.testing.assert_allclose(ours.weights[order], theirs.weights_[ref], atol=1e-4)
    assert ours.means.dtype == ours.variances.dtype == ours.weights.dtype == np.float32


def test_em_threads_change_nothing():
    x = np.repeat(_blobs(n=300), 60, axis=0)  # 18,000 rows: two E-step blocks
    a, la = fit_gmm(x, 3, max_iter=5, random_state=0)
    b, lb = fit_gmm(x, 3, max_iter=5, random_state=0, n_jobs=2)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
    assert la == pytest.approx(lb, rel=1e-9)


def test_variances_are_floored():
    x = np.concatenate([np.zeros((50, 2)), np.random.default_rng(0).normal(5, 1, (50, 2))]).astype(np.float32)
    gmm, _ = fit_gmm(x, 2, variance_floor=1e-2, random_state=0)
    assert gmm.variances.min() >= 1e-2 * x.var(axis=0).max() * (1 - 1e-6)
    assert np.all(np.isfinite(gmm.means))


@pytest.mark.parametrize("kwargs, message", [({"n_components": 0}, "n_components must be >= 1"),
                                             ({"n_components": 200}, "n_components must be <="),
                                             ({"n_components": 2, "max_iter": 0}, "max_iter must be >= 1")])
def test_bad_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_gmm(_blobs(n=100), **kwargs)
