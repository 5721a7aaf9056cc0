"""The 15-Scene benchmark with improved Fisher vectors (or VLAD) and a linear SVM: ``bench fisher``.

The model is the composition ::

    make_pipeline(DenseSIFT(step=4, sizes=(16, 24, 32), rootsift=True),  # paths -> multi-size dense RootSIFT
                  FisherVector(n_components=256, n_pca=80, augment=True,  # PCA + GMM learned on train
                               pyramid=((1, 1), (2, 2))),
                  LinearSVC(C))                                         # C by cross-validation on train

run on a ``data/train/<class>/*`` + ``data/test/<class>/*`` folder without ever holding more than
a few images' descriptors (step 4 over three sizes is ~9,900 descriptors per 256 x 256 image, 5 MB
as float32: the whole training split would be 7.5 GB). Each image is read, described and encoded
in one go on a few threads (:func:`~classicvision.experiments.streaming.stream_images`), and only
its vector is kept. The stages, each timed and written to ``out/partial.json`` when done
(:func:`~classicvision.experiments.reports.write_partial`):

1. ``list``: the images (:func:`classicvision.datasets.load_image_folder`);
2. ``features_train``: dense SIFT of every training image (through
   :class:`~classicvision.experiments.cache.CachedFeatures`), keeping a random sample of each
   image's descriptors (``sample_size`` in all, drawn per image from the seed and the image's
   index, so the same on any number of threads); unreadable files are reported and skipped;
3. ``pca_gmm``: the encoder's unsupervised fit on that sample (PCA, then EM of the mixture);
4. ``encode_train``: the training features again (recomputed, or read from the cache) and their
   Fisher vectors, and (``mirror=True``) those of the training images flipped left to right;
5. ``svm_cv_and_fit``: LinearSVC's ``C`` chosen by stratified ``cv``-fold cross-validation on the
   training vectors only (balanced accuracy; an image and its mirror in the same fold), then refit
   on all of them; the SVM works in the coordinates of the training vectors' span
   (:class:`TrainingSpan`: the same linear classifier, ``dimension / n_train`` times cheaper) and
   is then written back as weights on the vectors (:meth:`TrainingSpan.primal`);
6. ``features_encode_predict_test``: the test split, image by image, features -> vector, and the
   labels of each batch of 256 vectors.

As in :func:`classicvision.experiments.scene.run_bovw`, the unsupervised encoder is learned once on
the whole training split and the supervised choice (``C``) by cross-validation on it; the test
split only gives the final numbers. The report files and the JSON keys are those of ``run_bovw``.

The features cache is off by default here (``cache=False``): at step 4 over three sizes an entry
is ~2.6 MB (float16), 11 GB for 15-Scene, and recomputing dense SIFT (~1.5 ms an image and size,
plus the file read) is cheaper than writing and reading it back. Pass a folder to use it anyway.

Cost on 15-Scene (2 cores, quiet): ~25 ms an image for the Fisher vector and ~5 ms for reading
and dense SIFT, so the encoding of 1500 training images, their mirrors and 2985 test images
dominates; ``benchmarks/results/fisher.md`` has the stage times.
"""

from __future__ import annotations

import copy
import logging
import os
import time

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from .._validation import check_choice
from ..recognition.fisher import FisherVector
from ..recognition.transformers import DenseSIFT, ImageFeatures
from ..recognition.vlad import VLAD
from .cache import cached_dense_sift
from .reports import scores, write_partial, write_report
from .scene import PROTOCOL, check_training_classes, list_splits
from .streaming import stream_images
from .workers import check_writable_folder, guarded

__all__ = ["TrainingSpan", "run_fisher", "span_svm"]

logger = logging.getLogger(__name__)

_BATCH = 256  # test images per prediction batch (and per partial.json update)


class TrainingSpan(TransformerMixin, BaseEstimator):
    """Coordinates of vectors in an orthonormal basis of the training vectors' span (an isometry there).

    With ``n`` training vectors of dimension ``d >> n`` (Fisher vectors: ``n = 1500``, ``d`` in the
    hundreds of thousands), an L2-regularized linear model learned on the training vectors has its
    weight vector in their span, and everything it computes depends on inner products only; so
    LinearSVC on these ``r <= n`` coordinates learns the same classifier as on the vectors, ``d / n``
    times cheaper (the dual coordinate descent of liblinear sees the same Gram matrix). This is a
    change of basis, not a kernel: the classifier stays linear in the Fisher vector, with
    ``w = vectors_.T @ projection_ @ w_span``.

    The basis is never formed: with the Gram matrix ``X X^T = V diag(lambda) V^T`` of the training
    vectors ``X``, the coordinates of ``y`` are ``(y X^T) V / sqrt(lambda)``, so the fit keeps a
    reference to ``X`` (no copy) and an ``(n, r)`` matrix, not another ``(d, r)`` one.

    Attributes
    ----------
    vectors_ : (n, d) float32 array
        The training vectors (the array given to ``fit``, not copied when it is C-contiguous float32).
    projection_ : (n, r) float32 array
        ``V / sqrt(lambda)`` over the eigenvalues above ``1e-7`` of the largest.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(5, 40)).astype(np.float32)
    >>> z = TrainingSpan().fit_transform(x)
    >>> z.shape, bool(np.allclose(z @ z.T, x @ x.T, atol=1e-4))
    ((5, 5), True)
    """

    def _fit(self, X) -> np.ndarray:
        x = np.ascontiguousarray(X, np.float32)
        gram = x @ x.T
        values, vectors = np.linalg.eigh(gram.astype(np.float64))
        keep = values > 1e-7 * max(values[-1], 1e-30)
        self.vectors_ = x
        self.projection_ = np.ascontiguousarray((vectors[:, keep] / np.sqrt(values[keep])).astype(np.float32))
        return gram

    def fit(self, X, y=None):
        self._fit(X)
        return self

    def fit_transform(self, X, y=None, **fit_params) -> np.ndarray:
        """``fit(X).transform(X)``, from the Gram matrix the fit computed anyway."""
        return self._fit(X) @ self.projection_

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "projection_")
        return (np.asarray(X, np.float32) @ self.vectors_.T) @ self.projection_

    def primal(self, classifier):
        """A linear classifier fitted on these coordinates, as the same classifier on the vectors.

        ``classifier`` has ``coef_`` ``(c, r)`` and ``intercept_`` (LinearSVC, LogisticRegression,
        ...); the result is a deep copy with ``coef_ = (vectors_.T @ projection_ @ coef_.T).T``, of
        shape ``(c, d)``, so that it decides on a vector ``x`` what ``classifier`` decides on
        ``transform(x)``, at the cost of ``c`` dot products instead of ``n``.
        """
        check_is_fitted(self, "projection_")
        model = copy.deepcopy(classifier)
        weights = self.projection_ @ classifier.coef_.T.astype(np.float32)   # (n, r) @ (r, c)
        model.coef_ = np.ascontiguousarray((self.vectors_.T @ weights).T)
        model.n_features_in_ = self.vectors_.shape[1]
        return model


def span_svm(X, y, *, C=(1.0, 3.0, 10.0, 30.0), cv=3, groups=None, random_state=0, n_jobs=None):
    """LinearSVC with ``C`` chosen by stratified ``cv``-fold cross-validation (balanced accuracy),
    fitted in the coordinates of the training vectors' span (:class:`TrainingSpan`) and written
    back as weights on the vectors: the classifier of :func:`run_fisher` (and of the Dask one).

    ``X`` (n, d) float32 training vectors, ``y`` (n,) labels, ``groups`` (n,) or None: rows of one
    group (an image and its mirror) stay in one fold. Returns ``(model, cv_result)``: a fitted
    LinearSVC on ``d`` features, and ``{"C", "folds", "best_balanced_accuracy"}``.
    """
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold
    from sklearn.svm import LinearSVC

    span = TrainingSpan()
    Z = span.fit_transform(X)
    groups = np.arange(len(Z)) if groups is None else groups
    search = GridSearchCV(LinearSVC(C=1.0, tol=1e-3, random_state=random_state), {"C": list(C)},
                          cv=StratifiedGroupKFold(cv, shuffle=True, random_state=random_state),
                          scoring="balanced_accuracy", n_jobs=n_jobs, refit=True).fit(Z, y, groups=groups)
    model = span.primal(search.best_estimator_)  # the same classifier on the vectors: c, not n, products
    return model, {"C": search.best_params_["C"], "folds": cv, "best_balanced_accuracy": float(search.best_score_)}


class _Tally:
    """What the features stages report: skipped files, cache hits, read and dense-SIFT seconds."""

    def __init__(self):
        self.errors, self.cached, self.calls, self.read_seconds, self.dense_sift_seconds = [], 0, 0, 0.0, 0.0

    def add(self, error, cached, read_seconds, dense_sift_seconds) -> None:
        self.calls += 1
        if error is not None:
            self.errors.append(error)
        self.cached += bool(cached)
        self.read_seconds += read_seconds
        self.dense_sift_seconds += dense_sift_seconds


@guarded
def run_fisher(data, *, encoding="fisher", n_components=256, n_pca=80, augment=True, pyramid=((1, 1), (2, 2)),
               n_words=64, step=4, sizes=(16, 24, 32), rootsift=True, max_side=None, C=(1.0, 3.0, 10.0, 30.0), cv=3,
               mirror=True, sample_size=100_000, max_iter=20, out=None, cache=False, progress=True, random_state=0,
               n_jobs=-1) -> dict:
    """Improved Fisher vectors (or VLAD) + linear SVM on 15-Scene (or any train/test class folder).

    Parameters
    ----------
    data : path
        Folder holding ``train/<class>/*`` and ``test/<class>/*``.
    encoding : {"fisher", "vlad"}
        :class:`~classicvision.recognition.fisher.FisherVector` or
        :class:`~classicvision.recognition.vlad.VLAD` (on the raw descriptors, ``n_words`` words).
    n_components, n_pca, augment, pyramid, sample_size, max_iter :
        :class:`~classicvision.recognition.fisher.FisherVector` settings (``sample_size`` and
        ``max_iter`` also serve VLAD's k-means).
    n_words : int
        VLAD codebook size.
    step, sizes, rootsift, max_side :
        :class:`~classicvision.recognition.transformers.DenseSIFT` settings.
    C : tuple of float
        Candidate LinearSVC ``C``, chosen by ``cv``-fold stratified cross-validation on the
        training vectors only (an image and its mirror always in the same fold).
    mirror : bool
        Train on every training image and its mirror image (flipped left to right, a scene seen
        the other way round): twice the training vectors, for the cost of encoding them.
    out : path or None
        Folder for ``report.md``, ``confusion.png``, ``results.json`` and, while running,
        ``partial.json`` (nothing written if None); checked to be writable before anything runs.
    cache : path, None or False
        Features cache root (None: ``<out>/cache`` as ``run_bovw``; False, the default: no cache,
        see the module docstring).
    progress : bool
        tqdm bars on stderr.
    random_state : int
        Seeds the descriptor sample, the PCA/GMM (or k-means) fit, the CV folds and the SVM.
    n_jobs : int
        Worker processes for reading + dense SIFT, threads for encoding and EM, and processes for
        the cross-validation fits (-1 = all cores).

    Notes
    -----
    The defaults were chosen on the training split only (never the test split): PCA + GMM on a
    sample of train, Fisher vectors of the 1500 training images, 5-fold stratified CV of
    LinearSVC (balanced accuracy, best C; ``benchmarks/select_fisher.py``): sizes (16, 24),
    augmentation, no pyramid 0.851; sizes (16, 24, 32), augmentation + 1x1 + 2x2 pyramid 0.867
    (K = 256, PCA 80, step 4 both), 0.884 with the mirror images added to the training folds,
    0.881 when the test-time decision is also averaged with the mirror's (so it is not: it would
    double the test cost); a 1x1 + 2x2 + 1x3 pyramid with mirrors 0.883 (60% more dimensions).
    A 70/30 split of train with K = 128, PCA 64, sizes (16, 24) gave 0.847.

    Returns
    -------
    results : dict
        The keys of :func:`~classicvision.experiments.scene.run_bovw`'s results: the scores
        (``accuracy``, ``mean_per_class_accuracy``, ``per_class_accuracy``,
        ``confusion_matrix``, ``class_names``, ...), ``y_true``, ``y_pred``, ``seconds``,
        ``stage_seconds``, ``settings``, ``cv`` (chosen ``C``), ``n_train``, ``n_test``,
        ``skipped``, ``protocol``, ``cache``, ``worker_seconds``, ``train_seconds``,
        ``predict_seconds``, ``predict_seconds_per_image``, ``load_average``, ``warnings``, ``files``.
    """

    start_all, started_at = time.perf_counter(), time.time()
    check_choice(encoding, "encoding", ("fisher", "vlad"))
    C = tuple(C)
    if not C:
        raise ValueError(f"C must list at least one candidate, got {C}")
    threads = (os.cpu_count() or 1) if n_jobs == -1 else max(int(n_jobs), 1)
    if encoding == "fisher":
        encoder = FisherVector(n_components=n_components, n_pca=n_pca, augment=augment, pyramid=tuple(pyramid),
                               sample_size=sample_size, max_iter=max_iter, n_jobs=threads,
                               random_state=random_state)
    else:
        encoder = VLAD(n_words=n_words, sample_size=sample_size, max_iter=max_iter, random_state=random_state)
    settings = {"encoding": encoding, "n_components": n_components, "n_pca": n_pca, "augment": augment,
                "pyramid": [list(g) for g in pyramid], "n_words": n_words, "step": step, "sizes": list(sizes),
                "rootsift": rootsift, "max_side": max_side, "C": list(C), "cv": cv, "sample_size": sample_size,
                "max_iter": max_iter, "mirror": mirror, "random_state": random_state, "n_jobs": n_jobs}
    if out is not None:
        out = check_writable_folder(out, "out")
    stage, done = {}, {}

    def finished(name, **info):
        done[name] = info
        write_partial(out, done, method=encoding, data=str(data), settings=settings)

    t = time.perf_counter()
    train_paths, y_train, test_paths, y_test, class_names = list_splits(data)
    stage["list"] = time.perf_counter() - t
    finished("list", seconds=stage["list"], class_names=class_names, train_files=len(train_paths),
             test_files=len(test_paths))

    features = cached_dense_sift(DenseSIFT(step=step, sizes=tuple(sizes), rootsift=rootsift, max_side=max_side),
                                 cache=cache, out=out, n_jobs=n_jobs, started_at=started_at)

    def one_blas_thread():  # threads over images, BLAS one thread in each (streaming); a fresh limit per stage:
        return threadpool_limits(1, user_api="blas")  # threadpool_limits applies on creation, restores on exit

    def encoded(i, path, mirror=False):
        f, error, cached, read_s, sift_s = features.features_of(path, mirror=mirror)
        return (None if f is None else encoder.transform([f])[0]), (error, cached, read_s, sift_s)

    def encoded_train(i, path):
        return [encoded(i, path, m) for m in ((False, True) if mirror else (False,))]

    # 2. training features, keeping a random sample of each image's descriptors
    t = time.perf_counter()
    per_image = -(-int(sample_size) // max(len(train_paths), 1))

    def sampled(i, path):
        f, error, cached, read_s, sift_s = features.features_of(path)
        if f is not None:
            rng = np.random.default_rng([random_state, i])  # per image: the same sample on any number of threads
            take = np.sort(rng.choice(len(f.descriptors), min(per_image, len(f.descriptors)), replace=False))
            f = ImageFeatures(f.points[take], f.descriptors[take], f.shape)
        return f, (error, cached, read_s, sift_s)

    sample, kept_train, train_stats = [], [], _Tally()
    for i, (f, info) in stream_images(train_paths, sampled, threads=threads, progress=progress,
                                      desc="train features"):
        train_stats.add(*info)
        if f is not None:
            sample.append(f)
            kept_train.append(i)
    train_paths = [train_paths[i] for i in kept_train]
    y_train = y_train[np.asarray(kept_train, np.int64)]
    stage["features_train"] = time.perf_counter() - t
    warnings = check_training_classes(y_train, class_names, f"{data}/train", cv=cv, skipped=train_stats.errors)
    finished("features_train", seconds=stage["features_train"], n_train=len(y_train),
             skipped=train_stats.errors, cached=train_stats.cached, warnings=warnings)

    # 3. the unsupervised encoder, on the sample
    t = time.perf_counter()
    encoder.fit(sample)
    del sample
    stage["pca_gmm"] = time.perf_counter() - t
    fit_info = ({"log_likelihood": encoder.log_likelihood_, "n_descriptors": encoder.n_descriptors_fit_}
                if encoding == "fisher" else {"n_descriptors": encoder.n_descriptors_fit_})
    finished("pca_gmm", seconds=stage["pca_gmm"], **fit_info)
    if encoding == "fisher":  # VLAD has no threads of its own
        encoder.set_params(n_jobs=None)  # one image per call from here, the threads are stream_images'

    # 4. training vectors, each image (and its mirror) read, described and encoded in one go (experiments.streaming)
    t = time.perf_counter()
    X_train, again, n_train = None, _Tally(), len(train_paths)
    with one_blas_thread():
        for i, views in stream_images(train_paths, encoded_train, threads=threads, progress=progress,
                                      desc="train encoding"):
            for view, (vector, info) in enumerate(views):
                again.add(*info)
                if vector is None:  # a file changed under us between the two passes
                    raise ValueError(f"training images became unreadable during the run: {info[0]}")
                if X_train is None:
                    X_train = np.empty((len(views) * n_train, len(vector)), np.float32)
                X_train[view * n_train + i] = vector
    copies = len(X_train) // n_train
    y_fit, groups = np.tile(y_train, copies), np.tile(np.arange(n_train), copies)  # an image and its mirror: one group
    dimension = int(X_train.shape[1])
    stage["encode_train"] = time.perf_counter() - t
    finished("encode_train", seconds=stage["encode_train"], dimension=dimension)

    # 5. the SVM's C by cross-validation on train, in the coordinates of the training span (same classifier)
    t = time.perf_counter()
    model, cv_result = span_svm(X_train, y_fit, C=C, cv=cv, groups=groups, random_state=random_state, n_jobs=n_jobs)
    del X_train  # the model's span held it until its weights were written back
    stage["svm_cv_and_fit"] = time.perf_counter() - t
    finished("fit", seconds={k: stage[k] for k in ("pca_gmm", "encode_train", "svm_cv_and_fit")}, cv=cv_result)

    # 6. test, predicted in batches of _BATCH images
    t = time.perf_counter()
    predictions, kept_test, test_stats, batch = [], [], _Tally(), []

    def predict(done):
        if batch:
            predictions.append(model.predict(np.stack(batch)))
            batch.clear()
        finished("test", seconds=time.perf_counter() - t, done=done, of=len(test_paths),
                 skipped=test_stats.errors, y_true=y_test[np.asarray(kept_test, np.int64)].tolist(),
                 y_pred=np.concatenate(predictions).tolist() if predictions else [])

    with one_blas_thread():
        for i, (vector, info) in stream_images(test_paths, encoded, threads=threads, progress=progress,
                                               desc="test encoding"):
            test_stats.add(*info)
            if vector is not None:
                batch.append(vector)
                kept_test.append(i)
            if len(batch) == _BATCH:
                predict(i + 1)
        predict(len(test_paths))
    stage["features_encode_predict_test"] = time.perf_counter() - t
    if not kept_test:
        first = f" (first: {test_stats.errors[0]})" if test_stats.errors else ""
        raise ValueError(f"no usable test image in {data}/test: all {len(test_paths)} files were skipped{first}")
    y_pred = np.concatenate(predictions)
    y_test = y_test[np.asarray(kept_test, np.int64)]

    title = ("improved Fisher vectors + linear SVM" if encoding == "fisher"
             else "VLAD (intra-normalized) + linear SVM")
    results = {
        **scores(y_test, y_pred, class_names), "y_true": y_test.tolist(), "y_pred": y_pred.tolist(),
        "seconds": time.perf_counter() - start_all, "stage_seconds": stage,
        "settings": settings, "n_train": len(y_train), "n_test": len(y_test),
        "skipped": train_stats.errors + test_stats.errors,
        "protocol": PROTOCOL + ("PCA and GMM" if encoding == "fisher" else "codebook")
        + " learned on train; C chosen by cross-validation on train only",
        "cv": cv_result, "warnings": warnings,
        "cache": {"folder": str(features.folder) if features.cache is not None else None,
                  "hits": train_stats.cached + again.cached + test_stats.cached,
                  "computed": sum(s.calls - s.cached for s in (train_stats, again, test_stats))},
        "worker_seconds": {"read": train_stats.read_seconds + again.read_seconds + test_stats.read_seconds,
                           "dense_sift": train_stats.dense_sift_seconds + again.dense_sift_seconds
                           + test_stats.dense_sift_seconds},
        "train_seconds": sum(v for k, v in stage.items() if k not in ("list", "features_encode_predict_test")),
        "predict_seconds": stage["features_encode_predict_test"],
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    results["predict_seconds_per_image"] = results["predict_seconds"] / max(results["n_test"], 1)
    write_report(out, results, title,
                 [(f"Cross-validation on train ({cv} folds, balanced accuracy): C = **{cv_result['C']:g}**, "
                   f"{cv_result['best_balanced_accuracy']:.4f}."),
                  (f"Vectors of {dimension} values per image ({encoding}; dense SIFT step {step}, sizes "
                   f"{list(sizes)})."),
                  f"Training stages (s): {', '.join(f'{k} {v:.1f}' for k, v in stage.items())}."])
    return results
