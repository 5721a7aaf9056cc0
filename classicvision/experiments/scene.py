"""The 15-Scene benchmark: bag of words + spatial pyramid + linear SVM, and the tiny-image baseline.

:func:`run_bovw` is the classical pipeline of Lazebnik, Schmid & Ponce (2006), as one
scikit-learn estimator::

    model = Pipeline([("features", CachedFeatures(DenseSIFT(...))),   # paths -> dense SIFT (cached)
                      ("bow", BagOfWords(...)),                          # codebook + pyramid histograms
                      ("map", AdditiveChi2Sampler(sample_steps=2)),      # or sqrt (Hellinger), or none
                      ("svm", LinearSVC())])
    GridSearchCV(model, {"map": [...], "svm__C": [...]}, cv=StratifiedKFold(3)).fit(train_paths, y_train)

run on a ``data/train/<class>/*`` + ``data/test/<class>/*`` folder and timed stage by stage:

1. list the images (:func:`classicvision.datasets.load_image_folder`);
2. compute the dense SIFT of every training image once into the features cache
   (:mod:`classicvision.experiments.cache`); unreadable files are reported and skipped;
3. choose the additive kernel map (Hellinger = square root, or the explicit chi-squared map of
   Vedaldi & Zisserman 2012) and the SVM's ``C`` by stratified cross-validation of the **whole
   pipeline** on the training split only (each fold learns its own codebook; features come from
   the cache);
4. fit the chosen pipeline on the whole training split (codebook on a sample of training
   descriptors, L1-normalized pyramid histograms, map, LinearSVC);
5. predict the whole test folder (the paper's protocol: every remaining image) and report overall
   accuracy and the mean of per-class recall (:func:`classicvision.experiments.reports.scores`).

Without a cache (``cache=False`` or a folder that cannot be written) every cross-validation fit
computes its features again.

Robustness (both runners): ``out`` is checked to be writable before any work (a one-line
ValueError otherwise); ``out/partial.json`` is rewritten after every stage
(:func:`~classicvision.experiments.reports.write_partial`) and replaced by ``results.json`` at the
end; worker processes die with the main process (:mod:`classicvision.experiments.workers`).
Degenerate data is refused up front with one line (:func:`check_training_classes`): no usable
training image, a single class, too few images for the cross-validation folds; a class without
training images is a warning (it can never be predicted), one without test images scores "n/a";
images too small for any dense SIFT patch are skipped and reported like unreadable files; a test
split without any usable image is a ValueError (after training: the training stages are in
``partial.json``).
"""

from __future__ import annotations

import logging
import os
import sys
import time

import numpy as np

from .._validation import check_choice
from ..datasets import load_image_folder, read_images
from ..recognition.encoding import BagOfWords
from ..recognition.transformers import DenseSIFT, TinyImages
from .cache import cached_dense_sift
from .reports import scores, write_partial, write_report
from .workers import check_writable_folder, guarded

__all__ = ["check_training_classes", "kernel_maps", "list_split", "list_splits", "run_bovw", "run_tiny_knn"]

logger = logging.getLogger(__name__)

_TEST_BATCH = 256  # test images encoded per batch (bounds memory)
PROTOCOL = "15-Scene standard: 100 train images per class, the whole test folder as test; "


def list_split(root, split: str, class_names=None):
    """``(paths, labels (n,) int64, class_names)`` of ``root/split``; its classes must equal ``class_names`` if given."""
    paths, labels, names = load_image_folder(root, split)
    if class_names is not None and names != list(class_names):
        raise ValueError(f"{split} classes must match the training classes, got {names} and {list(class_names)}")
    return paths, labels, names


def list_splits(root):
    """``(train_paths, y_train, test_paths, y_test, class_names)`` of ``root/train`` and
    ``root/test`` (:func:`list_split`; the test classes must be the training classes)."""
    train_paths, y_train, class_names = list_split(root, "train")
    test_paths, y_test, _ = list_split(root, "test", class_names)
    return train_paths, y_train, test_paths, y_test, class_names


def check_training_classes(y, class_names, folder, *, cv=None, skipped=()) -> list:
    """Refuse training labels no classifier can learn from; warn about classes it cannot predict.

    Parameters
    ----------
    y : (n,) int array
        Class indices (into ``class_names``) of the usable training images.
    class_names : sequence of str
    folder : path
        The training folder, for the messages.
    cv : int or None
        Cross-validation folds the caller will use.
    skipped : sequence of str
        Messages of the files skipped (the first is quoted when nothing is usable).

    Returns
    -------
    warnings : list of str
        One line per class without training images or with fewer than ``cv`` (also logged).

    Raises
    ------
    ValueError
        No usable image, images of a single class, or no class with ``cv`` images (one line each).

    Examples
    --------
    >>> check_training_classes([0, 0, 1, 1], ["a", "b", "c"], "train")
    ['class c has no usable training image in train: it can never be predicted']
    """
    counts = np.bincount(np.asarray(y, np.int64), minlength=len(class_names))
    if counts.sum() == 0:
        why = f": all {len(skipped)} files were skipped (first: {skipped[0]})" if skipped else ""
        raise ValueError(f"no usable training image in {folder}{why}")
    present = np.flatnonzero(counts)
    if len(present) < 2:
        raise ValueError(f"{folder} has usable training images of one class only ({class_names[present[0]]}, "
                         f"{counts[present[0]]} images): classification needs at least 2 classes")
    if cv is not None and counts.max() < cv:
        raise ValueError(f"cross-validation with {cv} folds needs a class with at least {cv} training images; "
                         f"the largest class in {folder} has {counts.max()}")
    warnings = [f"class {class_names[i]} has no usable training image in {folder}: it can never be predicted"
                for i in np.flatnonzero(counts == 0)]
    if cv is not None:
        warnings += [f"class {class_names[i]} has {counts[i]} usable training images in {folder}, fewer than the "
                     f"{cv} cross-validation folds" for i in present if counts[i] < cv]
    for warning in warnings:
        logger.warning(warning)
    return warnings


def _no_test_images(folder, n_files: int, skipped) -> ValueError:
    first = f" (first: {skipped[0]})" if skipped else ""
    return ValueError(f"no usable test image in {folder}: all {n_files} files were skipped{first}")


def kernel_maps() -> dict:
    """The candidate explicit feature maps by name: ``hellinger`` (square root), ``chi2``, ``linear`` (none)."""
    from sklearn.kernel_approximation import AdditiveChi2Sampler
    from sklearn.preprocessing import FunctionTransformer

    return {"hellinger": FunctionTransformer(np.sqrt), "chi2": AdditiveChi2Sampler(sample_steps=2),
            "linear": "passthrough"}


def _fit_timed(model, X, y, stage: dict, names: dict) -> None:
    """``model.fit(X, y)`` step by step (what :meth:`Pipeline.fit` does), timing each ``fit`` and ``transform``
    into ``stage[names[step, "fit" | "transform"]]``."""
    *transformers, (last, estimator) = model.steps
    for name, step in transformers:
        if step is None or step == "passthrough":
            continue
        t = time.perf_counter()
        step.fit(X, y)
        stage[names[name, "fit"]] = stage.get(names[name, "fit"], 0.0) + time.perf_counter() - t
        t = time.perf_counter()
        X = step.transform(X)
        stage[names[name, "transform"]] = stage.get(names[name, "transform"], 0.0) + time.perf_counter() - t
    t = time.perf_counter()
    estimator.fit(X, y)
    stage[names[last, "fit"]] = time.perf_counter() - t


@guarded
def run_bovw(data, *, n_words=1000, levels=3, step=8, sizes=(16,), rootsift=True, max_side=None,
             encoding="soft", kernels=("chi2",), C=(30.0, 100.0), cv=3,
             sample_size=100_000, max_iter=20, out=None, cache=None, progress=True, random_state=0,
             n_jobs=-1) -> dict:
    """Bag of words + spatial pyramid + linear SVM on 15-Scene (or any train/test class folder).

    Parameters
    ----------
    data : path
        Folder holding ``train/<class>/*`` and ``test/<class>/*``.
    n_words, levels, encoding, sample_size, max_iter :
        :class:`~classicvision.recognition.encoding.BagOfWords` settings (histograms are
        L1-normalized here; the additive kernel map plays the role of ``normalize``).
    step, sizes, rootsift, max_side :
        :class:`~classicvision.recognition.transformers.DenseSIFT` settings.
    kernels : tuple of {"hellinger", "chi2", "linear"}
        Candidate explicit feature maps before the linear SVM (:func:`kernel_maps`).
    C : tuple of float
        Candidate LinearSVC ``C``; kernel and ``C`` are chosen by ``cv``-fold stratified
        cross-validation of the whole pipeline on the training split only.
    out : path or None
        Folder for ``report.md``, ``confusion.png``, ``results.json`` and, while running,
        ``partial.json`` (nothing written if None); checked to be writable before anything runs.
    cache : path, None or False
        Features cache root (default ``<out>/cache``, or ``~/.cache/classicvision`` without
        ``out``); False: no cache. See :mod:`classicvision.experiments.cache`.
    progress : bool
        tqdm bars on stderr.
    random_state : int
        Seeds the descriptor sample, k-means, the CV folds and the SVM's coordinate descent.
    n_jobs : int
        Worker processes for reading + dense SIFT and for the cross-validation fits (joblib;
        -1 = all cores).

    Notes
    -----
    Defaults (1000 words, RootSIFT, soft assignment, chi-squared feature map, ``C`` in
    {30, 100} by 3-fold CV) were chosen by cross-validation on the training split, never on
    test (3-fold CV balanced accuracy: 400 words SIFT + Hellinger 0.763, 1000 words RootSIFT +
    Hellinger 0.787, + chi-squared 0.789, 1500 words 0.781, sizes (12, 16, 24) with 600 words
    0.771, step 4 0.757). ``kernels=("hellinger",)`` is three times cheaper in the SVM stage.

    Returns
    -------
    results : dict
        The keys of :func:`~classicvision.experiments.reports.scores` (``accuracy``,
        ``mean_per_class_accuracy``, ``per_class_accuracy``, ``confusion_matrix``,
        ``class_names``, ...), ``y_true`` and ``y_pred`` (test class indices), ``seconds``,
        ``stage_seconds``, ``settings``, ``cv``, ``n_train``, ``n_test``, ``skipped``,
        ``protocol``, ``cache``, ``worker_seconds``, ``train_seconds``, ``predict_seconds``,
        ``predict_seconds_per_image``, ``load_average``, ``warnings``, ``files``.
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.svm import LinearSVC

    start_all, started_at = time.perf_counter(), time.time()
    kernels, C = tuple(kernels), tuple(C)
    if not kernels or not C:
        raise ValueError(f"kernels and C must list at least one candidate, got {kernels} and {C}")
    for kernel in kernels:
        check_choice(kernel, "kernels", ("hellinger", "chi2", "linear"))
    settings = {"n_words": n_words, "levels": levels, "step": step, "sizes": list(sizes), "rootsift": rootsift,
                "max_side": max_side, "encoding": encoding, "kernels": list(kernels), "C": list(C), "cv": cv,
                "sample_size": sample_size, "max_iter": max_iter, "random_state": random_state, "n_jobs": n_jobs}
    if out is not None:
        out = check_writable_folder(out, "out")
    stage, done = {}, {}

    def finished(name, **info):
        done[name] = info
        write_partial(out, done, method="bovw", data=str(data), settings=settings)

    t = time.perf_counter()
    train_paths, y_train, test_paths, y_test, class_names = list_splits(data)
    stage["list"] = time.perf_counter() - t
    finished("list", seconds=stage["list"], class_names=class_names, train_files=len(train_paths),
             test_files=len(test_paths))

    features = cached_dense_sift(DenseSIFT(step=step, sizes=tuple(sizes), rootsift=rootsift, max_side=max_side),
                                 cache=cache, out=out, n_jobs=n_jobs, started_at=started_at)
    maps = kernel_maps()
    # The codebook is unsupervised and learned once on the whole training split; the supervised
    # choices (kernel map and C) are made by cross-validation on the training split only.
    search = GridSearchCV(Pipeline([("map", "passthrough"), ("svm", LinearSVC(C=1.0, tol=1e-3,
                                                                              random_state=random_state))]),
                          {"map": [maps[k] for k in kernels], "svm__C": list(C)},
                          cv=StratifiedKFold(cv, shuffle=True, random_state=random_state),
                          scoring="balanced_accuracy", n_jobs=n_jobs, refit=True)
    model = Pipeline([("features", features),
                      ("bow", BagOfWords(n_words=n_words, levels=levels, encoding=encoding, normalize="l1",
                                         sample_size=sample_size, max_iter=max_iter, random_state=random_state)),
                      ("classifier", search)])

    # the training features, once: into the cache (the fit below reads them there)
    t = time.perf_counter()
    _, kept, train_stats = features.extract(train_paths, progress=progress, desc="train features")
    train_paths, y_train = [train_paths[i] for i in kept], y_train[kept]
    stage["features_train"] = time.perf_counter() - t
    warnings = check_training_classes(y_train, class_names, f"{data}/train", cv=cv, skipped=train_stats["errors"])
    finished("features_train", seconds=stage["features_train"], n_train=len(y_train),
             skipped=train_stats["errors"], cached=train_stats["cached"], warnings=warnings)
    _fit_timed(model, train_paths, y_train, stage,
               {("features", "fit"): "features_train_reload", ("features", "transform"): "features_train_reload",
                ("bow", "fit"): "codebook", ("bow", "transform"): "encode_train",
                ("classifier", "fit"): "svm_cv_and_fit"})
    best = search.best_params_
    best_kernel = kernels[[maps[k] for k in kernels].index(best["map"])]
    cv_result = {"kernel": best_kernel, "C": best["svm__C"], "folds": cv,
                 "best_balanced_accuracy": float(search.best_score_)}
    finished("fit", seconds={k: stage[k] for k in ("features_train_reload", "codebook", "encode_train",
                                                    "svm_cv_and_fit") if k in stage}, cv=cv_result)

    t = time.perf_counter()
    predictions, kept_test, errors_test, cached_test, read_test, sift_test = [], [], [], 0, 0.0, 0.0
    for begin in range(0, len(test_paths), _TEST_BATCH):
        batch = test_paths[begin:begin + _TEST_BATCH]
        feats, kept_b, stats = features.extract(
            batch, progress=progress, desc=f"test features {begin + 1}-{begin + len(batch)}/{len(test_paths)}")
        kept_test.extend((kept_b + begin).tolist())
        errors_test += stats["errors"]
        cached_test += stats["cached"]
        read_test += stats["read_seconds"]
        sift_test += stats["dense_sift_seconds"]
        if feats:
            predictions.append(model[1:].predict(feats))  # the fitted pipeline after its features step
        finished("test", seconds=time.perf_counter() - t, done=begin + len(batch), of=len(test_paths),
                 skipped=errors_test, y_true=y_test[np.asarray(kept_test, np.int64)].tolist(),
                 y_pred=np.concatenate(predictions).tolist() if predictions else [])
    stage["features_encode_predict_test"] = time.perf_counter() - t
    if not kept_test:
        raise _no_test_images(f"{data}/test", len(test_paths), errors_test)
    y_pred = np.concatenate(predictions)
    y_test = y_test[np.asarray(kept_test, np.int64)]

    results = {
        **scores(y_test, y_pred, class_names), "y_true": y_test.tolist(), "y_pred": y_pred.tolist(),
        "seconds": time.perf_counter() - start_all, "stage_seconds": stage,
        "settings": settings, "n_train": len(y_train), "n_test": len(y_test),
        "skipped": train_stats["errors"] + errors_test,
        "protocol": PROTOCOL + "codebook learned on train; kernel map and C chosen by cross-validation on train only",
        "cv": cv_result, "warnings": warnings,
        "cache": {"folder": str(features.folder) if features.cache is not None else None,
                  "hits": train_stats["cached"] + cached_test,
                  "computed": len(y_train) + len(y_test) - train_stats["cached"] - cached_test},
        "worker_seconds": {"read": train_stats["read_seconds"] + read_test,
                           "dense_sift": train_stats["dense_sift_seconds"] + sift_test},
        "train_seconds": sum(v for k, v in stage.items() if k not in ("list", "features_encode_predict_test")),
        "predict_seconds": stage["features_encode_predict_test"],
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    results["predict_seconds_per_image"] = results["predict_seconds"] / max(results["n_test"], 1)
    write_report(out, results, "bag of words + spatial pyramid + linear SVM",
                 [f"Cross-validation on train ({cv} folds, balanced accuracy): kernel **{best_kernel}**, "
                  f"C = **{best['svm__C']:g}**, {search.best_score_:.4f}."])
    return results


@guarded
def run_tiny_knn(data, *, size=16, k=(1, 3, 5, 7, 10, 15, 20), cv=3, out=None, progress=True,
                 random_state=0) -> dict:
    """Tiny images (``size x size``, zero mean, unit norm) + k-NN, ``k`` chosen by CV on train.

    Candidates ``k`` larger than a cross-validation training part are left out (a warning); none
    left is a ValueError. Returns the same kind of dict as :func:`run_bovw` (``cv`` holds the
    chosen ``k``).
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from tqdm.auto import tqdm

    start_all = time.perf_counter()
    settings = {"size": size, "k": list(k), "cv": cv, "random_state": random_state}
    if out is not None:
        out = check_writable_folder(out, "out")
    stage, done = {}, {}
    train_paths, y_train, test_paths, y_test, class_names = list_splits(data)
    model = Pipeline([("tiny", TinyImages(size=size)), ("knn", KNeighborsClassifier())])
    images, skipped, warnings = {}, [], []
    for split, paths in (("train", train_paths), ("test", test_paths)):
        t = time.perf_counter()
        with tqdm(total=len(paths), desc=f"{split} images", disable=not progress, file=sys.stderr) as bar:
            images[split], kept, errors = read_images(paths, progress=lambda done, total: bar.update(1))
        skipped += errors
        if split == "train":
            y_train = y_train[kept]
            warnings = check_training_classes(y_train, class_names, f"{data}/train", cv=cv, skipped=errors)
        else:
            if not len(kept):
                raise _no_test_images(f"{data}/test", len(paths), errors)
            y_test = y_test[kept]
        stage[f"read_{split}"] = time.perf_counter() - t
        done[f"read_{split}"] = {"seconds": stage[f"read_{split}"], "images": len(kept), "skipped": errors}
        write_partial(out, done, method="tiny_knn", data=str(data), settings=settings)
    fold_size = len(y_train) - -(-len(y_train) // cv)  # the smallest training part of a fold
    candidates = [n for n in k if n <= fold_size]
    if not candidates:
        raise ValueError(f"k must hold a value of at most {fold_size} (the training part of a {cv}-fold split of "
                         f"{len(y_train)} images), got {list(k)}")
    if len(candidates) < len(k):
        warnings.append(f"k candidates {[n for n in k if n > fold_size]} left out: larger than the {fold_size} "
                        f"training images of a cross-validation fold")
        logger.warning(warnings[-1])
    t = time.perf_counter()
    search = GridSearchCV(model, {"knn__n_neighbors": candidates}, scoring="balanced_accuracy",
                          cv=StratifiedKFold(cv, shuffle=True, random_state=random_state))
    search.fit(images["train"], y_train)
    stage["knn_cv_and_fit"] = time.perf_counter() - t
    cv_result = {"k": int(search.best_params_["knn__n_neighbors"]), "folds": cv,
                 "best_balanced_accuracy": float(search.best_score_)}
    done["knn_cv_and_fit"] = {"seconds": stage["knn_cv_and_fit"], "cv": cv_result}
    write_partial(out, done, method="tiny_knn", data=str(data), settings=settings)
    t = time.perf_counter()
    y_pred = search.predict(images["test"])
    stage["predict"] = time.perf_counter() - t
    results = {**scores(y_test, y_pred, class_names), "y_true": y_test.tolist(), "y_pred": y_pred.tolist(),
               "seconds": time.perf_counter() - start_all, "stage_seconds": stage, "settings": settings,
               "n_train": len(y_train), "n_test": len(y_test), "skipped": skipped,
               "protocol": PROTOCOL + "k chosen by cross-validation on train only", "cv": cv_result,
               "warnings": warnings,
               "train_seconds": stage["read_train"] + stage["knn_cv_and_fit"],
               "predict_seconds": stage["read_test"] + stage["predict"],
               "load_average": [round(v, 2) for v in os.getloadavg()]}
    results["predict_seconds_per_image"] = results["predict_seconds"] / max(results["n_test"], 1)
    write_report(out, results, f"tiny images {size}x{size} + k-NN",
                 [f"Cross-validation on train ({cv} folds, balanced accuracy): k = **{results['cv']['k']}**."])
    return results
