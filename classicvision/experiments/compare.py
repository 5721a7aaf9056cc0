"""15-Scene: every scene method measured in one run and reported side by side (``bench compare``).

:func:`run_compare` measures four methods in one run (tiny images + k-NN, bag of words + linear
SVM, the CNN, CNN features + linear SVM) and writes one table; each method also writes its own
report into a sub-folder of ``out``.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from ..datasets import data_dir
from ..recognition.cnn import import_torch
from .reports import write_partial, write_report
from .workers import check_writable_folder, guarded

__all__ = ["run_compare"]


def _say(progress: bool, text: str) -> None:
    if progress:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _percent(value) -> str:
    return value if isinstance(value, str) else f"{value:.1%}"


def _row(name: str, r: dict) -> dict:
    per_image = r.get("predict_seconds_per_image")
    score = r.get("mean_per_class_accuracy")
    return {"method": name, "mean_per_class_accuracy": score if isinstance(score, float) else None,
            "accuracy": r.get("accuracy"), "train_seconds": r.get("train_seconds"),
            "predict_seconds_per_image": per_image, "note": r.get("note", "")}


@guarded
def run_compare(data, *, out, epochs=None, progress=True, random_state=0, cnn_options=None,
                **bovw_options) -> dict:
    """Measure tiny images + k-NN, bag of words + linear SVM, the CNN and CNN features + SVM in one run.

    ``bovw_options`` (``n_words``, ``levels``, ``cache``) go to
    :func:`classicvision.experiments.scene.run_bovw`, ``cnn_options`` (a dict) to
    :func:`classicvision.experiments.cnn.run_cnn`.
    Writes ``out/report.md``, ``out/results.json`` and ``out/confusion.png`` (the winner's), plus
    each method's own folder, and returns the winner's score keys
    (:func:`~classicvision.experiments.reports.scores`) with ``rows`` (one per method),
    ``winner``, ``runner_up``, ``margin``, ``n_test``, ``seconds``, ``stage_seconds`` (each
    method's run), ``environment`` and ``methods`` (each runner's results).
    """
    from . import cnn as cnn_benchmark
    from . import scene

    out = check_writable_folder(out, "out")
    root = data_dir(data)
    import_torch()  # before the classical runs: a missing torch is known at once, not after them
    start = time.perf_counter()
    stage, done = {}, {}

    def finished(name, result):
        done[name] = {"seconds": stage[name], "folder": str(out / name),
                      **{k: result.get(k) for k in ("accuracy", "mean_per_class_accuracy", "n_train", "n_test")}}
        write_partial(out, done, method="compare", data=str(root))

    _say(progress, "running tiny images + k-NN ...")
    tiny = scene.run_tiny_knn(root, out=out / "tiny_knn", progress=progress, random_state=random_state)
    stage["tiny_knn"] = time.perf_counter() - start
    finished("tiny_knn", tiny)
    _say(progress, "running bag of words + linear SVM ...")
    bovw = scene.run_bovw(root, out=out / "bovw", progress=progress, random_state=random_state, **bovw_options)
    stage["bovw"] = time.perf_counter() - start - stage["tiny_knn"]
    finished("bovw", bovw)
    cnn = cnn_benchmark.run_cnn(root, epochs=epochs, out=out / "cnn", progress=progress, random_state=random_state,
                  **(cnn_options or {}))
    stage["cnn"] = time.perf_counter() - start - stage["tiny_knn"] - stage["bovw"]
    finished("cnn", cnn)
    svm = cnn["cnn_features_svm"]
    # like the classical rows, times include reading the image files
    read_train, read_test = cnn["read_train_seconds"], cnn["read_test_seconds"] / max(cnn["n_test"], 1)
    methods = {"tiny_knn": tiny, "bovw": bovw, "cnn": cnn}
    by_name = {"tiny images + k-NN": tiny, "bag of words + linear SVM": bovw, "CNN (from scratch)": cnn,
               "CNN features + linear SVM": svm}
    rows = [_row("tiny images + k-NN", tiny), _row("bag of words + linear SVM", bovw),
            _row("CNN (from scratch)", {
                **cnn, "train_seconds": read_train + cnn["train_seconds"],
                "predict_seconds_per_image": read_test + cnn["predict_seconds_per_image"],
                "note": f"{cnn['settings']['epochs']} epochs, {np.mean(cnn['epoch_seconds']):.1f} s per epoch"}),
            _row("CNN features + linear SVM", {
                **svm, "train_seconds": read_train + cnn["train_seconds"] + svm["train_seconds"],
                "predict_seconds_per_image": read_test + svm["predict_seconds_per_image"],
                "note": f"C={svm['C']:g} by 5-fold CV on train; includes training the CNN"})]
    ranked = sorted((r for r in rows if r["mean_per_class_accuracy"] is not None),
                    key=lambda r: r["mean_per_class_accuracy"], reverse=True)
    winner = ranked[0]["method"] if ranked else None
    score_keys = ("accuracy", "mean_per_class_accuracy", "per_class_accuracy", "per_class_support",
                  "confusion_matrix", "class_names")
    results = {**({k: by_name[winner][k] for k in score_keys if k in by_name[winner]} if winner else {}),
               "rows": rows, "winner": winner,
               "margin": ranked[0]["mean_per_class_accuracy"] - ranked[1]["mean_per_class_accuracy"]
               if len(ranked) > 1 else None,
               "runner_up": ranked[1]["method"] if len(ranked) > 1 else None,
               "n_train": cnn["n_train"], "n_test": cnn["n_test"],
               "seconds": time.perf_counter() - start, "stage_seconds": stage, "environment": cnn["environment"],
               "methods": methods}
    write_report(out, results, f"four methods measured in one run (scores of the winner, {winner})",
                 _compare_report(results))
    return results


def _compare_report(r: dict) -> list:
    def cell(value, fmt):
        return "n/a" if value is None or isinstance(value, str) else format(value, fmt)

    lines = ["## Four methods", "",
             "Standard protocol: 100 training images per class, the whole test folder (2985 images) for testing. "
             "Mean per-class accuracy is the mean of per-class recall. Training time includes feature "
             "extraction and reading the image files; the CNN-features row includes training the CNN. "
             "All settings were chosen on the training split only (cross-validation or a held-out part). "
             "Timings are wall-clock on this machine "
             f"(load average {r['environment']['load_average']} at the CNN's start).", "",
             "| method | mean per-class accuracy | accuracy | training time (s) "
             "| prediction time per image (ms) | note |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in r["rows"]:
        per_image = None if row["predict_seconds_per_image"] is None else row["predict_seconds_per_image"] * 1e3
        lines.append(f"| {row['method']} | {cell(row['mean_per_class_accuracy'], '.1%')} | "
                     f"{cell(row['accuracy'], '.1%')} | {cell(row['train_seconds'], '.0f')} | "
                     f"{cell(per_image, '.2f')} | {row['note']} |")
    lines.append("")
    if r["runner_up"] is not None:
        best = next(row for row in r["rows"] if row["method"] == r["winner"])["mean_per_class_accuracy"]
        noise = 100 * np.sqrt(best * (1 - best) / max(r["n_test"], 1))
        lines.append(f"**Winner: {r['winner']}**, {r['margin'] * 100:.1f} percentage points of mean per-class "
                     f"accuracy ahead of {r['runner_up']} (one binomial standard error on {r['n_test']} test "
                     f"images is about {noise:.1f} points; one training run, one seed).")
    else:
        lines.append(f"Only {r['winner']} produced a result; no comparison is possible.")
    return lines
