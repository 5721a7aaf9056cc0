"""15-Scene: every scene method measured in one run and reported side by side (``bench compare``).

:func:`run_compare` runs, in this order, tiny images + k-NN and bag of words + linear SVM
(:mod:`classicvision.experiments.scene`), VLAD and improved Fisher vectors + linear SVM
(:func:`classicvision.experiments.fisher.run_fisher`), and the CNN trained from scratch, whose run
also gives CNN features + linear SVM (:func:`classicvision.experiments.cnn.run_cnn`). Each method
writes its own report into ``out/<method>/``; ``out`` gets one table (``report.md``), every number
(``results.json``, with each method's confusion matrix and class names) and all the confusion
matrices side by side (``confusion.png``).

The scores come with their binomial standard errors and the verdict (winner, runner-up, margin
and its paired standard error) from :mod:`classicvision.experiments.significance`.

References
----------
Lazebnik, Schmid & Ponce, "Beyond bags of features", CVPR 2006 (15-Scene, mean per-class accuracy).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from ..datasets import data_dir
from ..recognition.cnn import import_torch
from .reports import NOT_AVAILABLE, json_default, write_partial, write_report
from .significance import binomial_se, winner_margin, winner_sentence
from .workers import check_writable_folder, guarded

__all__ = ["METHODS", "run_compare"]

logger = logging.getLogger(__name__)

#: The rows of the comparison, in report order: key -> method.
METHODS = {"tiny_knn": "tiny images + k-NN", "bovw": "bag of words + linear SVM", "vlad": "VLAD + linear SVM",
           "fisher": "improved Fisher vectors + linear SVM", "cnn": "CNN (from scratch)",
           "cnn_svm": "CNN features + linear SVM"}
_RESERVED = ("out", "progress", "random_state", "encoding")  # set by run_compare itself


def _float(value):
    """``value`` if it is a number (not a bool), else None (a score may be ``"n/a"``)."""
    return value if isinstance(value, (float, int)) and not isinstance(value, bool) else None


def _say(progress: bool, text: str) -> None:
    if progress:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _methods(methods) -> list:
    """``methods`` (a comma-separated str or a sequence of keys of METHODS) as keys in report order."""
    given = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    unknown = [m for m in given if m not in METHODS]
    if unknown or not given:
        raise ValueError(f"methods must be a non-empty list of {', '.join(METHODS)}, got {methods!r}")
    return [m for m in METHODS if m in given]


def _options(options, name: str) -> dict:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"{name} must be a dict of keyword arguments or None, got {type(options).__name__}")
    reserved = sorted(set(options) & set(_RESERVED))
    if reserved:
        raise ValueError(f"{name} must not set {', '.join(reserved)}: run_compare sets them")
    return dict(options)


def _cv_note(result: dict) -> str:
    cv = result.get("cv") or {}
    chosen = ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}" for k, v in cv.items()
                       if k in ("k", "kernel", "C"))
    return f"{chosen} by {cv['folds']}-fold CV on train" if chosen and "folds" in cv else chosen


def _note(key: str, result: dict) -> str:
    settings = result.get("settings") or {}
    parts = []
    if key == "bovw" and "n_words" in settings:
        parts.append(f"{settings['n_words']} words, {settings.get('levels')} pyramid levels")
    elif key == "vlad" and "n_words" in settings:
        parts.append(f"{settings['n_words']} words")
    elif key == "fisher" and "n_components" in settings:
        parts.append(f"{settings['n_components']} Gaussians, PCA {settings.get('n_pca')}")
    elif key == "cnn" and result.get("epoch_seconds"):
        parts.append(f"{len(result['epoch_seconds'])} epochs, {np.mean(result['epoch_seconds']):.1f} s per epoch")
    elif key == "cnn_svm":
        parts.append(f"C = {result['C']:g} by 5-fold CV on train" if "C" in result else "")
        parts.append("training time includes the CNN's")
    if key not in ("cnn", "cnn_svm"):  # the CNN's settings are chosen on a held-out part, not by CV
        parts.append(_cv_note(result))
    return "; ".join(p for p in parts if p)


def _row(key: str, result: dict, train_seconds=None, predict_seconds=None) -> dict:
    """One line of the table: the scores with their binomial SEs, the times, the confusion matrix."""
    matrix = result.get("confusion_matrix")
    n_test = result.get("n_test", int(np.sum(matrix)) if matrix is not None else None)
    row = {"key": key, "method": METHODS[key], "n_test": n_test}
    for name in ("accuracy", "mean_per_class_accuracy"):
        value = _float(result.get(name))
        row[name] = NOT_AVAILABLE if value is None else float(value)
        row[f"{name}_se"] = binomial_se(value, n_test) if value is not None and n_test else None
    train_seconds = result.get("train_seconds") if train_seconds is None else train_seconds
    if predict_seconds is None:
        predict_seconds = result.get("predict_seconds")
        if predict_seconds is None and result.get("predict_seconds_per_image") is not None and n_test:
            predict_seconds = result["predict_seconds_per_image"] * n_test
    row.update(train_seconds=train_seconds, predict_seconds=predict_seconds,
               predict_seconds_per_image=None if predict_seconds is None or not n_test else predict_seconds / n_test,
               note=result.get("note", _note(key, result)), confusion_matrix=matrix,
               class_names=result.get("class_names"), per_class_accuracy=result.get("per_class_accuracy"))
    return row


@guarded
def run_compare(data, *, out, methods=tuple(METHODS), epochs=None, progress=True, random_state=0,
                bovw_options=None, vlad_options=None, fisher_options=None, cnn_options=None) -> dict:
    """Measure the scene methods in one run and write one table, the verdict and the confusion matrices.

    Parameters
    ----------
    data : path
        Folder holding ``train/<class>/*`` and ``test/<class>/*`` (``scene15/`` of the data folder).
    out : path
        Output folder: ``report.md``, ``results.json``, ``confusion.png`` (every method's matrix side
        by side) and, while running, ``partial.json``; each method's own run goes to
        ``out/<key>/`` (``tiny_knn``, ``bovw``, ``vlad``, ``fisher``, ``cnn``). Checked to be
        writable before anything runs.
    methods : str or sequence of str
        Keys of :data:`METHODS` (a comma-separated string is accepted), default all; the rows keep
        the order of :data:`METHODS`. ``cnn`` and ``cnn_svm`` come from one CNN run; either one
        needs torch, which is imported first (a missing torch fails at once, not after the others).
    epochs : int or None
        CNN training epochs (default :data:`classicvision.experiments.cnn.CNN_DEFAULTS`).
    progress : bool
        Progress on stderr (one line per method, and each runner's own).
    random_state : int
        Passed to every runner.
    bovw_options, vlad_options, fisher_options, cnn_options : dict or None
        Other keyword arguments of :func:`~classicvision.experiments.scene.run_bovw` (``n_words``,
        ``levels``, ``cache``, ...), of :func:`~classicvision.experiments.fisher.run_fisher` with
        ``encoding="vlad"`` (``n_words``, ...) and ``encoding="fisher"`` (``n_components``,
        ``n_pca``, ...), and of :func:`~classicvision.experiments.cnn.run_cnn`; they may not set
        ``out``, ``progress``, ``random_state`` or ``encoding``.

    Returns
    -------
    dict
        ``rows`` (one dict per method: ``key``, ``method``, ``accuracy``, ``accuracy_se``,
        ``mean_per_class_accuracy``, ``mean_per_class_accuracy_se`` (:func:`binomial_se` on
        ``n_test``), ``n_test``, ``train_seconds``, ``predict_seconds``,
        ``predict_seconds_per_image`` (both including reading the image files), ``note``,
        ``confusion_matrix`` ((C, C) list of int), ``class_names``, ``per_class_accuracy``); the
        keys of :func:`winner_margin` (``winner``, ``runner_up``, ``margin``, ``margin_se``,
        ``accuracy_margin``, ``accuracy_margin_se``, ``se_method``, ``exceeds_2se``, ...) and
        ``summary`` (:func:`winner_sentence`); ``accuracy`` and ``mean_per_class_accuracy`` (the
        winner's); ``methods_run``, ``class_names``, ``n_train``, ``n_test``, ``seconds``,
        ``stage_seconds`` (each run's), ``environment``, ``methods`` (each runner's full results, by
        run key) and ``files``.
    """
    from . import cnn as cnn_benchmark
    from . import fisher, scene

    keys = _methods(methods)
    options = {name: _options(given, f"{name}_options") for name, given in
               (("bovw", bovw_options), ("vlad", vlad_options), ("fisher", fisher_options), ("cnn", cnn_options))}
    out = check_writable_folder(out, "out")
    root = data_dir(data)
    run_cnn = "cnn" in keys or "cnn_svm" in keys
    torch = import_torch() if run_cnn else None  # before the classical runs: a missing torch is known at once
    environment = {"cpus": os.cpu_count(), "machine": platform.machine(),
                   "load_average": [round(v, 2) for v in os.getloadavg()],
                   **({"torch": torch.__version__} if torch is not None else {})}
    start = time.perf_counter()
    stage, done, runs = {}, {}, {}
    runners = {
        "tiny_knn": lambda: scene.run_tiny_knn(root, out=out / "tiny_knn", progress=progress,
                                               random_state=random_state),
        "bovw": lambda: scene.run_bovw(root, out=out / "bovw", progress=progress, random_state=random_state,
                                       **options["bovw"]),
        "vlad": lambda: fisher.run_fisher(root, encoding="vlad", out=out / "vlad", progress=progress,
                                          random_state=random_state, **options["vlad"]),
        "fisher": lambda: fisher.run_fisher(root, encoding="fisher", out=out / "fisher", progress=progress,
                                            random_state=random_state, **options["fisher"]),
        "cnn": lambda: cnn_benchmark.run_cnn(root, epochs=epochs, out=out / "cnn", progress=progress,
                                             random_state=random_state, **options["cnn"]),
    }
    for run in [k for k in runners if k in keys or (k == "cnn" and run_cnn)]:
        _say(progress, f"running {METHODS[run]} ...")
        t = time.perf_counter()
        runs[run] = result = runners[run]()
        stage[run] = time.perf_counter() - t
        done[run] = {"seconds": stage[run], "folder": str(out / run),
                     **{k: result.get(k) for k in ("accuracy", "mean_per_class_accuracy", "n_train", "n_test")}}
        write_partial(out, done, method="compare", data=str(root), methods=keys)

    rows, predictions = [], {}
    for key in keys:
        if key in ("cnn", "cnn_svm"):
            cnn = runs["cnn"]
            # like the classical rows, the times include reading the image files
            read_train, read_test = cnn.get("read_train_seconds", 0.0), cnn.get("read_test_seconds", 0.0)
            result = cnn if key == "cnn" else {**cnn.get("cnn_features_svm", {}), "n_test": cnn.get("n_test")}
            train = read_train + cnn.get("train_seconds", 0.0) + (result.get("train_seconds", 0.0)
                                                                   if key == "cnn_svm" else 0.0)
            n_test = cnn.get("n_test") or 0
            per_image = result.get("predict_seconds_per_image")
            predict = None if per_image is None else read_test + per_image * n_test
            rows.append(_row(key, result, train_seconds=train, predict_seconds=predict))
            y_true = cnn.get("y_true")
        else:
            result = runs[key]
            rows.append(_row(key, result))
            y_true = result.get("y_true")
        if y_true is not None and result.get("y_pred") is not None:
            predictions[key] = (y_true, result["y_pred"])
    summary = winner_margin(rows, predictions)
    best = next((row for row in rows if row["method"] == summary["winner"]), {})
    first = next(iter(runs.values()))
    environment["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    results = {"accuracy": best.get("accuracy", NOT_AVAILABLE),
               "mean_per_class_accuracy": best.get("mean_per_class_accuracy", NOT_AVAILABLE),
               **summary, "summary": winner_sentence(summary, rows), "rows": rows, "methods_run": keys,
               "class_names": first.get("class_names"), "n_train": first.get("n_train"),
               "n_test": first.get("n_test"), "seconds": time.perf_counter() - start, "stage_seconds": stage,
               "environment": environment, "methods": runs}
    drawn = _save_confusions(out / "confusion.png", rows)
    write_report(out, results, f"{len(rows)} methods measured in one run (scores of the winner, "
                               f"{summary['winner']})", _compare_report(results, drawn))
    if drawn:  # write_report only knows single-matrix pictures
        results["files"]["confusion"] = str(out / "confusion.png")
        tmp = out / f".results.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(results, indent=2, default=json_default))
        os.replace(tmp, out / "results.json")
    return results


def _save_confusions(path: Path, rows) -> bool:
    """Every row's confusion matrix side by side; a picture that cannot be drawn is a logged warning."""
    shown = [row for row in rows if row.get("confusion_matrix") is not None and row.get("class_names")]
    if not shown:
        return False
    try:
        from ..viz import save_confusion_matrices

        titles = [f"{row['method']}\nmean per-class accuracy {row['mean_per_class_accuracy']:.1%}"
                  if _float(row.get("mean_per_class_accuracy")) is not None else row["method"] for row in shown]
        save_confusion_matrices(path, [row["confusion_matrix"] for row in shown], shown[0]["class_names"],
                                titles=titles, ncols=3, dpi=80)
    except (ImportError, OSError, ValueError, RuntimeError) as exc:  # the report and results are still written
        logger.warning("confusion matrices picture %s not written: %s", path, exc)
        return False
    return True


def _cell(value, se=None) -> str:
    if value is None or isinstance(value, str):
        return NOT_AVAILABLE
    return f"{value:.1%}" + ("" if se is None else f" ± {100 * se:.1f}")


def _number(value, scale=1.0, fmt=".1f") -> str:
    return NOT_AVAILABLE if value is None else format(value * scale, fmt)


def _compare_report(r: dict, drawn: bool) -> list:
    """The comparison's own sections (markdown lines); :func:`write_report` adds the summary."""
    env = r["environment"]
    lines = ["## The methods", "",
             f"Protocol: the {r['n_train']} images of the training folder for training (15-Scene's standard is 100 "
             f"per class), the whole test folder ({r['n_test']} images) for testing; every setting was chosen on "
             "the training split only (cross-validation or a held-out part). Mean per-class accuracy is the mean of the per-class recalls. After each "
             "score, ± one binomial standard error sqrt(p (1 - p) / n_test) in points (for the mean per-class "
             "accuracy an approximation that treats it as a proportion of the n_test images). Training and "
             "prediction times are wall-clock seconds including feature extraction and reading the image files; "
             "the CNN-features row includes training the CNN. "
             f"Load average {env['load_average']} at the start, {env['load_average_end']} at the end, on "
             f"{env['cpus']} CPU cores (the timings include whatever else ran).", "",
             "| method | mean per-class accuracy ± SE | accuracy ± SE | training (s) | prediction (s) "
             "| prediction per image (ms) | note |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in r["rows"]:
        lines.append(f"| {row['method']} | {_cell(row['mean_per_class_accuracy'], row['mean_per_class_accuracy_se'])}"
                     f" | {_cell(row['accuracy'], row['accuracy_se'])} | {_number(row['train_seconds'])} | "
                     f"{_number(row['predict_seconds'])} | {_number(row['predict_seconds_per_image'], 1e3, '.2f')} | "
                     f"{row['note']} |")
    verdict = "Winners (tied)" if r.get("tied") else "Winner"
    lines += ["", f"**{verdict}: {', '.join(r['tied']) or r['winner']}.** {r['summary']}" if r["winner"]
              else r["summary"]]
    names = r.get("class_names") or []
    if names and all(row.get("per_class_accuracy") for row in r["rows"]):
        lines += ["", "## Per-class accuracy", "", "| class | " + " | ".join(row["method"] for row in r["rows"])
                  + " |", "| --- |" + " --- |" * len(r["rows"])]
        lines += [f"| {name} | " + " | ".join(_cell(row["per_class_accuracy"][i]) for row in r["rows"]) + " |"
                  for i, name in enumerate(names)]
    if drawn:
        lines += ["", "## Confusion matrices", "", "![confusion matrices](confusion.png)"]
    lines += ["", "Each method's own report (settings, cross-validation, stages): "
              + ", ".join(f"[{key}]({key}/report.md)" for key in r["stage_seconds"]) + "."]
    return lines
