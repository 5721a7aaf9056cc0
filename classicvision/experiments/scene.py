"""The 15-Scene benchmark: bag of words + spatial pyramid + linear SVM, and the tiny-image baseline.

:func:`run_bovw` runs the whole classical pipeline of Lazebnik, Schmid & Ponce (2006) on a
``data/train/<class>/*`` + ``data/test/<class>/*`` folder, timed stage by stage:

1. list the images (:func:`classicvision.datasets.load_image_folder`);
2. read each image and compute its dense SIFT (:class:`classicvision.bovw.DenseSIFT`), or load
   it from the features cache; unreadable files are reported and skipped;
3. learn the codebook on a sample of training descriptors and encode every image as a
   spatial-pyramid histogram (:class:`classicvision.bovw.BagOfWords`, L1-normalized);
4. choose, by stratified cross-validation **on the training split only**, the additive kernel
   (Hellinger = square root, or an explicit chi-squared feature map, Vedaldi & Zisserman 2012)
   and the ``C`` of a :class:`sklearn.svm.LinearSVC`; refit on the whole training split;
5. predict the whole test folder (the paper's protocol: every remaining image) and report
   overall accuracy and the mean of per-class recall.

Features cache: one ``.npz`` per image under ``<cache>/dsift-<settings hash>/``, named by a
hash of the file's absolute path, size and modification time; descriptors are stored as
float16 (and used rounded to float16 on the first run too, so cached and fresh runs agree).
The settings hash includes the DenseSIFT parameters and the source of ``dense_sift.py``, so a
change of either starts a new cache. Each entry is written to a temporary name and moved in
place with ``os.replace``: a killed run leaves at most a ``*.tmp`` file, which is ignored.
The cache defaults to ``<out>/cache`` when ``out`` is given, else ``~/.cache/classicvision``;
``cache=False`` disables it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from .._validation import check_choice
from ..recognition.encoding import BagOfWords
from ..recognition.transformers import DenseSIFT, ImageFeatures, TinyImages
from .reports import json_default
from ..datasets import load_image_folder, read_images

__all__ = ["run_bovw", "run_tiny_knn", "features_cache_dir"]

logger = logging.getLogger(__name__)

_CACHE_FORMAT = 1
_TEST_BATCH = 256  # test images encoded per batch (bounds memory)


# ------------------------------------------------------------------------------------- cache
def features_cache_dir(cache, out, dsift: DenseSIFT) -> Path | None:
    """The cache folder for ``dsift``'s settings (None when ``cache is False``)."""
    if cache is False:
        return None
    if cache is None:
        cache = Path(out) / "cache" if out is not None else Path.home() / ".cache" / "classicvision"
    from ..features import dense_sift as module

    source = Path(inspect.getfile(module)).read_bytes()
    params = json.dumps({"format": _CACHE_FORMAT, **{k: (list(v) if isinstance(v, tuple) else v)
                                                     for k, v in dsift.get_params().items() if k != "n_jobs"}},
                        sort_keys=True)
    key = hashlib.sha256(params.encode() + hashlib.sha256(source).digest()).hexdigest()[:16]
    return Path(cache) / f"dsift-{key}"


def _entry(folder: Path, path: Path) -> Path:
    stat = os.stat(path)
    key = f"{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}"
    return folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".npz")


def _load_entry(entry: Path) -> ImageFeatures | None:
    try:
        with np.load(entry) as f:
            return ImageFeatures(f["points"], f["descriptors"].astype(np.float32), tuple(int(v) for v in f["shape"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # corrupt or unreadable entry: recompute it
        return None


def _store_entry(entry: Path, features: ImageFeatures) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, points=features.points, descriptors=features.descriptors.astype(np.float16),
                 shape=np.asarray(features.shape, np.int64))
    os.replace(tmp, entry)


def _rounded(features: ImageFeatures) -> ImageFeatures:
    return features._replace(descriptors=features.descriptors.astype(np.float16).astype(np.float32))


def _features_one(path: Path, dsift: DenseSIFT, folder: Path | None):
    """(features or None, error or None, cached, read seconds, dense-SIFT seconds) of one file."""
    entry = None
    if folder is not None:
        try:
            entry = _entry(folder, path)
        except OSError:
            entry = None
        if entry is not None and entry.is_file():
            features = _load_entry(entry)
            if features is not None:
                return features, None, True, 0.0, 0.0
    start = time.perf_counter()
    images, _, errors = read_images([path])
    read_s = time.perf_counter() - start
    if errors:
        return None, errors[0], False, read_s, 0.0
    start = time.perf_counter()
    features = _rounded(dsift.transform(images)[0])
    sift_s = time.perf_counter() - start
    if entry is not None:
        _store_entry(entry, features)
    return features, None, False, read_s, sift_s


def _features(paths, dsift: DenseSIFT, folder: Path | None, n_jobs, progress, desc: str):
    """Features of ``paths`` (cache or compute), in order; skipped files are reported.

    Cache hits are loaded in this process; only misses go to the ``n_jobs`` worker processes.
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    results = [None] * len(paths)
    with tqdm(total=len(paths), desc=desc, disable=not progress, file=sys.stderr) as bar:
        if folder is not None:
            for i, path in enumerate(paths):
                try:
                    entry = _entry(folder, path)
                except OSError:
                    continue
                features = _load_entry(entry) if entry.is_file() else None
                if features is not None:
                    results[i] = (features, None, True, 0.0, 0.0)
                    bar.update(1)
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            jobs = (delayed(_features_one)(paths[i], dsift, folder) for i in missing)
            parallel = Parallel(n_jobs=n_jobs if len(missing) > 1 else 1, return_as="generator", batch_size=4)
            for i, result in zip(missing, parallel(jobs)):
                results[i] = result
                bar.update(1)
    kept = [i for i, r in enumerate(results) if r[0] is not None]
    stats = {"errors": [r[1] for r in results if r[1] is not None],
             "cached": sum(r[2] for r in results),
             "read_seconds": sum(r[3] for r in results),
             "dense_sift_seconds": sum(r[4] for r in results)}
    return [results[i][0] for i in kept], np.asarray(kept, np.int64), stats


# ---------------------------------------------------------------------------------- reporting
def _scores(y_true, y_pred, n_classes: int) -> dict:
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))
    support = matrix.sum(axis=1)
    recall = np.divide(np.diag(matrix), support, out=np.zeros(n_classes), where=support > 0)
    return {"accuracy": float(np.mean(y_true == y_pred)),
            "mean_per_class_accuracy": float(recall[support > 0].mean()),
            "per_class_accuracy": recall, "confusion_matrix": matrix}


def _save_confusion(path: Path, matrix, class_names, title: str) -> Path | None:
    try:
        from ..viz import save_confusion_matrix
    except ImportError as exc:  # matplotlib missing: the report still gets written
        logger.warning("confusion matrix picture not written: %s", exc)
        return None
    return save_confusion_matrix(path, matrix, class_names, title=title)


def _write_outputs(out, results: dict, title: str) -> None:
    if out is None:
        return
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _save_confusion(out / "confusion.png", np.asarray(results["confusion_matrix"]), results["class_names"], title)
    results["files"] = {"report": str(out / "report.md"), "confusion": str(out / "confusion.png"),
                        "results": str(out / "results.json")}
    serial = json.loads(json.dumps(results, default=json_default))
    (out / "results.json").write_text(json.dumps(serial, indent=2))
    lines = [f"# 15-Scene: {title}", "",
             f"- accuracy: **{results['accuracy']:.4f}**",
             f"- mean per-class accuracy (mean of per-class recall): **{results['mean_per_class_accuracy']:.4f}**",
             f"- protocol: {results['protocol']}",
             f"- train / test images: {results['n_train']} / {results['n_test']}"
             f" (skipped unreadable: {len(results['skipped'])})",
             f"- total seconds: {results['seconds']:.1f} (load average at end: {results['load_average']})",
             f"- cross-validation on train: {results['cv']}", "", "## Seconds per stage", "",
             "| stage | seconds |", "| --- | --- |"]
    lines += [f"| {k} | {v:.2f} |" for k, v in results["stage_seconds"].items()]
    lines += ["", "## Settings", "", "```", json.dumps(serial["settings"], indent=2), "```", "",
              "## Per-class accuracy", "", "| class | recall |", "| --- | --- |"]
    lines += [f"| {c} | {a:.3f} |" for c, a in zip(results["class_names"], results["per_class_accuracy"])]
    if results["skipped"]:
        lines += ["", "## Skipped files", ""] + [f"- {e}" for e in results["skipped"]]
    lines += ["", "![confusion matrix](confusion.png)", ""]
    (out / "report.md").write_text("\n".join(lines))



def _split(root: Path, split: str):
    paths, labels, names = load_image_folder(root, split)
    return paths, labels, names


# ---------------------------------------------------------------------------------- benchmarks
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
        :class:`classicvision.bovw.BagOfWords` settings (histograms are L1-normalized here; the
        additive kernel below plays the role of ``normalize``).
    step, sizes, rootsift, max_side :
        :class:`classicvision.bovw.DenseSIFT` settings.
    kernels : tuple of {"hellinger", "chi2", "linear"}
        Candidate explicit feature maps before the linear SVM: square root (Hellinger),
        ``AdditiveChi2Sampler(sample_steps=2)`` (chi-squared), or none.
    C : tuple of float
        Candidate LinearSVC ``C``; kernel and ``C`` are chosen by ``cv``-fold stratified
        cross-validation on the training split only.
    out : path or None
        Folder for ``report.md``, ``confusion.png``, ``results.json`` (nothing written if None).
    cache : path, None or False
        Features cache folder (see the module docstring).
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
        ``accuracy``, ``mean_per_class_accuracy``, ``per_class_accuracy``, ``confusion_matrix``,
        ``class_names``, ``seconds``, ``stage_seconds``, ``settings``, ``cv``, ``n_train``,
        ``n_test``, ``skipped``, ``protocol``, ``train_seconds``, ``predict_seconds``, ...
    """
    from sklearn.kernel_approximation import AdditiveChi2Sampler
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.svm import LinearSVC

    start_all = time.perf_counter()
    kernels, C = tuple(kernels), tuple(C)
    if not kernels or not C:
        raise ValueError(f"kernels and C must list at least one candidate, got {kernels} and {C}")
    for kernel in kernels:
        check_choice(kernel, "kernels", ("hellinger", "chi2", "linear"))
    settings = {"n_words": n_words, "levels": levels, "step": step, "sizes": list(sizes), "rootsift": rootsift,
                "max_side": max_side, "encoding": encoding, "kernels": list(kernels), "C": list(C), "cv": cv,
                "sample_size": sample_size, "max_iter": max_iter, "random_state": random_state, "n_jobs": n_jobs}
    stage = {}
    root = Path(data)
    t = time.perf_counter()
    train_paths, y_train, class_names = _split(root, "train")
    test_paths, y_test, test_names = _split(root, "test")
    if test_names != class_names:
        raise ValueError(f"train and test class folders differ: {class_names} vs {test_names}")
    stage["list"] = time.perf_counter() - t

    dsift = DenseSIFT(step=step, sizes=tuple(sizes), rootsift=rootsift, max_side=max_side).fit()
    folder = features_cache_dir(cache, out, dsift)
    t = time.perf_counter()
    train_features, kept, train_stats = _features(train_paths, dsift, folder, n_jobs, progress, "train features")
    y_train = y_train[kept]
    stage["features_train"] = time.perf_counter() - t

    bow = BagOfWords(n_words=n_words, levels=levels, encoding=encoding, normalize="l1",
                     sample_size=sample_size, max_iter=max_iter, random_state=random_state)
    t = time.perf_counter()
    bow.fit(train_features)
    stage["codebook"] = time.perf_counter() - t
    t = time.perf_counter()
    x_train = bow.transform(train_features)
    del train_features
    stage["encode_train"] = time.perf_counter() - t

    maps = {"hellinger": FunctionTransformer(np.sqrt), "chi2": AdditiveChi2Sampler(sample_steps=2),
            "linear": "passthrough"}
    model = Pipeline([("map", "passthrough"), ("svm", LinearSVC(C=1.0, tol=1e-3, random_state=random_state))])
    grid = {"map": [maps[k] for k in kernels], "svm__C": list(C)}
    search = GridSearchCV(model, grid, cv=StratifiedKFold(cv, shuffle=True, random_state=random_state),
                          scoring="balanced_accuracy", n_jobs=n_jobs, refit=True)
    t = time.perf_counter()
    search.fit(x_train, y_train)
    stage["svm_cv_and_fit"] = time.perf_counter() - t
    best = search.best_params_
    best_kernel = kernels[[maps[k] for k in kernels].index(best["map"])] if len(kernels) else "linear"

    t = time.perf_counter()
    predictions, kept_test, errors_test, cached_test, read_test, sift_test = [], [], [], 0, 0.0, 0.0
    for begin in range(0, len(test_paths), _TEST_BATCH):
        batch = test_paths[begin:begin + _TEST_BATCH]
        feats, kept_b, stats = _features(batch, dsift, folder, n_jobs, progress,
                                         f"test features {begin + 1}-{begin + len(batch)}/{len(test_paths)}")
        kept_test.extend((kept_b + begin).tolist())
        errors_test += stats["errors"]
        cached_test += stats["cached"]
        read_test += stats["read_seconds"]
        sift_test += stats["dense_sift_seconds"]
        if feats:
            predictions.append(search.predict(bow.transform(feats)))
    stage["features_encode_predict_test"] = time.perf_counter() - t
    y_pred = np.concatenate(predictions) if predictions else np.zeros(0, np.int64)
    y_test = y_test[np.asarray(kept_test, np.int64)]

    scores = _scores(y_test, y_pred, len(class_names))
    seconds = time.perf_counter() - start_all
    results = {
        **scores, "class_names": class_names, "seconds": seconds, "stage_seconds": stage,
        "settings": settings, "n_train": int(len(y_train)), "n_test": int(len(y_test)),
        "skipped": train_stats["errors"] + errors_test,
        "protocol": "15-Scene standard: 100 train images per class, the whole test folder as test; "
                    "hyper-parameters chosen by cross-validation on train only",
        "cv": {"kernel": best_kernel, "C": best["svm__C"], "folds": cv,
               "best_balanced_accuracy": float(search.best_score_)},
        "cache": {"folder": str(folder) if folder else None,
                  "hits": train_stats["cached"] + cached_test,
                  "computed": int(len(y_train)) + int(len(y_test)) - train_stats["cached"] - cached_test},
        "worker_seconds": {"read": train_stats["read_seconds"] + read_test,
                           "dense_sift": train_stats["dense_sift_seconds"] + sift_test},
        "train_seconds": stage["features_train"] + stage["codebook"] + stage["encode_train"]
        + stage["svm_cv_and_fit"],
        "predict_seconds": stage["features_encode_predict_test"],
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    results["predict_seconds_per_image"] = results["predict_seconds"] / max(results["n_test"], 1)
    _write_outputs(out, results, "bag of words + spatial pyramid + linear SVM")
    return results


def run_tiny_knn(data, *, size=16, k=(1, 3, 5, 7, 10, 15, 20), cv=3, out=None, progress=True,
                 random_state=0) -> dict:
    """Tiny images (``size x size``, zero mean, unit norm) + k-NN, ``k`` chosen by CV on train.

    Returns the same kind of dict as :func:`run_bovw` (``cv`` holds the chosen ``k``).
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier
    from tqdm.auto import tqdm

    start_all = time.perf_counter()
    settings = {"size": size, "k": list(k), "cv": cv, "random_state": random_state}
    stage, root, tiny = {}, Path(data), TinyImages(size=size)
    train_paths, y_train, class_names = _split(root, "train")
    test_paths, y_test, _ = _split(root, "test")
    features, skipped = {}, []
    for split, paths in (("train", train_paths), ("test", test_paths)):
        t = time.perf_counter()
        bar = tqdm(total=len(paths), desc=f"{split} tiny images", disable=not progress, file=sys.stderr)
        images, kept, errors = read_images(paths, progress=lambda done, total: bar.update(1))
        bar.close()
        skipped += errors
        features[split] = (tiny.transform(images), kept)
        stage[f"read_features_{split}"] = time.perf_counter() - t
    x_train, kept = features["train"]
    y_train = y_train[kept]
    t = time.perf_counter()
    search = GridSearchCV(KNeighborsClassifier(), {"n_neighbors": list(k)}, scoring="balanced_accuracy",
                          cv=StratifiedKFold(cv, shuffle=True, random_state=random_state)).fit(x_train, y_train)
    stage["knn_cv_and_fit"] = time.perf_counter() - t
    x_test, kept = features["test"]
    y_test = y_test[kept]
    t = time.perf_counter()
    y_pred = search.predict(x_test)
    stage["predict"] = time.perf_counter() - t
    results = {**_scores(y_test, y_pred, len(class_names)), "class_names": class_names,
               "seconds": time.perf_counter() - start_all, "stage_seconds": stage, "settings": settings,
               "n_train": int(len(y_train)), "n_test": int(len(y_test)), "skipped": skipped,
               "protocol": "15-Scene standard: 100 train images per class, the whole test folder as test; "
                           "k chosen by cross-validation on train only",
               "cv": {"k": int(search.best_params_["n_neighbors"]), "folds": cv,
                      "best_balanced_accuracy": float(search.best_score_)},
               "train_seconds": stage["read_features_train"] + stage["knn_cv_and_fit"],
               "predict_seconds": stage["read_features_test"] + stage["predict"],
               "load_average": [round(v, 2) for v in os.getloadavg()]}
    results["predict_seconds_per_image"] = results["predict_seconds"] / max(results["n_test"], 1)
    _write_outputs(out, results, f"tiny images {size}x{size} + k-NN")
    return results
