"""15-Scene benchmark of the CNN: ``bench cnn``.

:func:`run_cnn` trains :class:`classicvision.recognition.cnn.CNNClassifier` from scratch on ``data/train``,
evaluates it on ``data/test``, then fits a linear SVM on its penultimate features ("CNN features +
linear classifier", C chosen by 5-fold cross-validation on the training split only). The
side-by-side comparison of all scene methods is :mod:`classicvision.experiments.compare`.

It writes ``report.md`` and ``results.json`` under ``out`` (checked to be writable before anything
runs) and, while running, ``partial.json`` after every stage; the test split is used only for the
final numbers, never to choose settings. Degenerate data (no usable training image, one class,
no usable test image) is refused with one line, as in :mod:`classicvision.experiments.scene`. Accuracy is the fraction of test images classified
right; mean per-class accuracy is the mean of the per-class recalls (the confusion matrix's
diagonal, rows normalized), the number reported by Lazebnik et al. 2006. Timings are wall-clock
seconds on this machine, including the CPU load of whatever else runs (the load average is
recorded next to them).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from ..datasets import data_dir, read_images
from ..recognition.cnn import CNNClassifier, CNNFeatures, import_torch
from .reports import scores as class_scores
from .reports import write_partial, write_report
from .scene import check_training_classes, list_split
from .workers import check_writable_folder, guarded

__all__ = ["run_cnn"]

# One torch thread: on a shared 2-core machine two OpenMP threads ran 4 to 30 s per epoch depending
# on the other load, one thread a steady ~7.5 s; pass n_threads=2 on a quiet machine.
CNN_DEFAULTS = dict(epochs=30, batch_size=64, lr=3e-3, weight_decay=5e-4, image_size=64,
                    channels=(32, 64, 128, 256), val_fraction=0.1, n_threads=1)
SVM_C_GRID = (0.001, 0.01, 0.1, 1.0)


def _say(progress: bool, text: str) -> None:
    if progress:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _read_split(root, split: str, class_names=None):
    """``root/split`` as (images, labels (n,) int64, class_names, errors); unreadable files are skipped."""
    paths, labels, names = list_split(root, split, class_names)
    images, kept, errors = read_images(paths)
    return images, labels[kept], names, errors


def _save_curves(out: Path, history) -> None:
    from ..viz import save_training_curves

    curves = {"loss": history["loss"], "train accuracy (augmented)": history["train_accuracy"],
              "held-out accuracy (from the training split)": history["val_accuracy"]}
    save_training_curves(out / "training_curves.png", curves, title="CNN on 15-Scene")


def _environment() -> dict:
    torch = import_torch()
    return {"torch": torch.__version__, "cpus": os.cpu_count(), "machine": platform.machine(),
            "load_average": [round(v, 2) for v in os.getloadavg()]}


def _features_svm(clf, train_images, y_train, test_images, y_test, class_names, random_state):
    """LinearSVC on the CNN's penultimate features; C by 5-fold CV on the training split."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    start = time.perf_counter()
    features = CNNFeatures(classifier=clf).fit()
    train_features = features.transform(train_images)
    search = GridSearchCV(make_pipeline(StandardScaler(), LinearSVC(dual="auto", max_iter=5000)),
                          {"linearsvc__C": list(SVM_C_GRID)},
                          cv=StratifiedKFold(5, shuffle=True, random_state=random_state))
    search.fit(train_features, y_train)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    predicted = search.predict(features.transform(test_images))
    predict_seconds = time.perf_counter() - start
    return {"method": "CNN features + linear SVM", **class_scores(y_test, predicted, class_names),
            "C": float(search.best_params_["linearsvc__C"]), "cv_accuracy": float(search.best_score_),
            "train_seconds": train_seconds,
            "predict_seconds_per_image": predict_seconds / max(len(test_images), 1),
            "n_features": int(train_features.shape[1])}


@guarded
def run_cnn(data, *, epochs=None, out=None, progress=True, random_state=0, **options) -> dict:
    """Train the CNN on ``data/train``, test on ``data/test``, and write a report.

    Parameters
    ----------
    data : path
        Folder with ``train/<class>/*`` and ``test/<class>/*``.
    epochs : int or None
        Training epochs (default ``CNN_DEFAULTS['epochs']``).
    out : path or None
        Output folder for ``report.md``, ``results.json``, ``confusion.png``,
        ``training_curves.png`` and ``weights.pt`` (+ ``weights.pt.json``); nothing is written if None.
    progress : bool
        Print one line per epoch (loss, train accuracy, held-out accuracy) on stderr.
    random_state : int
    **options
        Other :class:`~classicvision.recognition.cnn.CNNClassifier` parameters (``lr``, ``image_size``, ...).

    Returns
    -------
    dict
        ``accuracy``, ``mean_per_class_accuracy``, ``per_class_accuracy``, ``confusion_matrix``,
        ``class_names`` (:func:`~classicvision.experiments.reports.scores`), ``y_true``, ``y_pred``,
        ``seconds`` (whole run), ``stage_seconds``, ``read_train_seconds``, ``read_test_seconds``, ``train_seconds``,
        ``predict_seconds_per_image``, ``epoch_seconds``, ``history``, ``settings``, ``skipped``
        (unreadable files), ``environment`` and ``cnn_features_svm`` (the same keys for the
        linear SVM on CNN features, plus its ``C``).
    """
    start_all = time.perf_counter()
    if out is not None:
        out = check_writable_folder(out, "out")
    root = data_dir(data)
    environment = _environment()
    settings = {**CNN_DEFAULTS, **options, "random_state": random_state}
    if epochs is not None:
        settings["epochs"] = epochs
    done = {}

    def finished(name, **info):
        done[name] = info
        write_partial(out, done, method="cnn", data=str(root), settings=settings)

    start = time.perf_counter()
    train_images, y_train, class_names, train_errors = _read_split(root, "train")
    read_train_seconds = time.perf_counter() - start
    warnings = check_training_classes(y_train, class_names, root / "train", skipped=train_errors)
    test_images, y_test, _, test_errors = _read_split(root, "test", class_names)
    read_test_seconds = time.perf_counter() - start - read_train_seconds
    if not test_images:
        raise ValueError(f"no usable test image in {root / 'test'}: all {len(test_errors)} files were skipped"
                         + (f" (first: {test_errors[0]})" if test_errors else ""))
    finished("read", seconds={"train": read_train_seconds, "test": read_test_seconds}, n_train=len(train_images),
             n_test=len(test_images), skipped=train_errors + test_errors, warnings=warnings)
    for message in train_errors + test_errors:
        _say(progress, f"skipped unreadable image {message}")
    _say(progress, f"CNN: {len(train_images)} training, {len(test_images)} test images, "
                   f"{len(class_names)} classes, {settings['epochs']} epochs, load {environment['load_average']}")

    def report_epoch(epoch, total, record):
        _say(progress, f"epoch {epoch:3d}/{total}  loss {record['loss']:.3f}  train acc {record['train_accuracy']:.3f}"
                       f"  held-out acc {record['val_accuracy']:.3f}  {record['seconds']:.1f} s")

    clf = CNNClassifier(**settings, progress=report_epoch)
    start = time.perf_counter()
    clf.fit(train_images, y_train)
    train_seconds = time.perf_counter() - start
    finished("train", seconds=train_seconds, history={k: [float(v) for v in values]
                                                      for k, values in clf.history_.items()})
    start = time.perf_counter()
    predicted = clf.predict(test_images)
    predict_seconds = time.perf_counter() - start
    scores = class_scores(y_test, predicted, class_names)
    finished("predict", seconds=predict_seconds, y_true=y_test.tolist(), y_pred=np.asarray(predicted).tolist(),
             accuracy=scores["accuracy"], mean_per_class_accuracy=scores["mean_per_class_accuracy"])
    _say(progress, f"CNN: accuracy {scores['accuracy']:.3f}, mean per-class {scores['mean_per_class_accuracy']:.3f}, "
                   f"training {train_seconds:.0f} s")
    svm = _features_svm(clf, train_images, y_train, test_images, y_test, class_names, random_state)
    _say(progress, f"CNN features + linear SVM (C={svm['C']:g}): accuracy {svm['accuracy']:.3f}, "
                   f"mean per-class {svm['mean_per_class_accuracy']:.3f}")
    history = {k: [float(v) for v in values] for k, values in clf.history_.items()}
    results = {"method": "CNN (from scratch)", **scores, "y_true": y_test.tolist(), "y_pred": predicted.tolist(),
               "n_train": len(train_images), "n_test": len(test_images),
               "read_train_seconds": read_train_seconds, "read_test_seconds": read_test_seconds,
               "train_seconds": train_seconds, "predict_seconds": predict_seconds,
               "predict_seconds_per_image": predict_seconds / max(len(test_images), 1),
               "stage_seconds": {"read_train": read_train_seconds, "read_test": read_test_seconds,
                                 "train": train_seconds, "predict": predict_seconds,
                                 "cnn_features_svm": svm["train_seconds"]},
               "protocol": "15-Scene standard: 100 train images per class, the whole test folder as test; "
                           "settings chosen on a held-out part of train only",
               "epoch_seconds": history["seconds"], "history": history,
               "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
               "skipped": train_errors + test_errors, "warnings": warnings, "environment": environment,
               "cnn_features_svm": svm}
    results["environment"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    results["seconds"] = time.perf_counter() - start_all
    if out is not None:
        write_report(out, results, "CNN (from scratch)", _cnn_report(results))  # the numbers first
        clf.save_weights(out / "weights.pt")
        _save_curves(out, history)
    return results


def _cnn_report(r: dict) -> list:
    """The CNN report's own sections (markdown lines); :func:`write_report` adds the summary and per-class table."""
    s, h, svm = r["settings"], r["history"], r["cnn_features_svm"]
    lines = [
        f"{len(r['class_names'])} classes; torch {r['environment']['torch']} on {r['environment']['cpus']} CPU "
        f"cores, load average {r['environment']['load_average']} at the start and "
        f"{r['environment']['load_average_end']} at the end (timings include whatever else ran).", "",
        "| method | mean per-class accuracy | accuracy | training time | prediction time per image |",
        "| --- | --- | --- | --- | --- |",
        f"| CNN | {_percent(r['mean_per_class_accuracy'])} | {_percent(r['accuracy'])} | {r['train_seconds']:.0f} s | "
        f"{r['predict_seconds_per_image'] * 1e3:.2f} ms |",
        f"| CNN features + linear SVM (C={svm['C']:g}, 5-fold CV on train) | "
        f"{_percent(svm['mean_per_class_accuracy'])} | {_percent(svm['accuracy'])} | + {svm['train_seconds']:.0f} s | "
        f"{svm['predict_seconds_per_image'] * 1e3:.2f} ms |",
        "",
        f"The SVM's cross-validation accuracy on the training split ({svm['cv_accuracy']:.1%}) is optimistic: the CNN "
        "was trained on most of those images, so their features fit it better than unseen ones.", "",
        f"Held-out part: {s['val_fraction']:.0%} of the training split (stratified), used to choose the settings; "
        "the test split is used only for the numbers above.", "",
        "## Training", "",
        f"Mean epoch time {np.mean(h['seconds']):.1f} s (min {np.min(h['seconds']):.1f}, "
        f"max {np.max(h['seconds']):.1f}); final held-out accuracy {h['val_accuracy'][-1]:.1%}.", "",
        "| epoch | loss | train acc (augmented) | held-out acc | seconds |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {i + 1} | {h['loss'][i]:.3f} | {h['train_accuracy'][i]:.3f} | {h['val_accuracy'][i]:.3f} | "
              f"{h['seconds'][i]:.1f} |" for i in range(len(h["loss"]))]
    lines += ["", "![training curves](training_curves.png)"]
    return lines


def _percent(value) -> str:
    return value if isinstance(value, str) else f"{value:.1%}"
