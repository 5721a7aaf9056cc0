"""15-Scene benchmarks of the CNN, and the side-by-side comparison of all scene methods.

* :func:`run_cnn` trains :class:`classicvision.cnn.CNNClassifier` from scratch on ``data/train``,
  evaluates it on ``data/test``, then fits a linear SVM on its penultimate features ("CNN features +
  linear classifier", C chosen by 5-fold cross-validation on the training split only).
* :func:`run_compare` measures four methods in one run (tiny images + k-NN, bag of words + linear
  SVM, the CNN, CNN features + linear SVM) and writes one table.

Both write ``report.md`` and ``results.json`` under ``out``; the test split is used only for the
final numbers, never to choose settings. Accuracy is the fraction of test images classified
right; mean per-class accuracy is the mean of the per-class recalls (the confusion matrix's
diagonal, rows normalized), the number reported by Lazebnik et al. 2006. Timings are wall-clock
seconds on this machine, including the CPU load of whatever else runs (the load average is
recorded next to them).
"""

from __future__ import annotations

import inspect
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from ..recognition.cnn import CNNClassifier, CNNFeatures, import_torch
from ..datasets import data_dir, load_image_folder, read_images
from .reports import json_default

__all__ = ["run_cnn", "run_compare", "load_split", "class_scores"]

# One torch thread: on a shared 2-core machine two OpenMP threads ran 4 to 30 s per epoch depending
# on the other load, one thread a steady ~7.5 s; pass n_threads=2 on a quiet machine.
CNN_DEFAULTS = dict(epochs=30, batch_size=64, lr=3e-3, weight_decay=5e-4, image_size=64,
                    channels=(32, 64, 128, 256), val_fraction=0.1, n_threads=1)
SVM_C_GRID = (0.001, 0.01, 0.1, 1.0)


def _say(progress: bool, text: str) -> None:
    if progress:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def load_split(root, split: str, class_names=None):
    """Read ``root/split`` as (images, labels (n,) int64, class_names, errors); unreadable files are skipped."""
    paths, labels, names = load_image_folder(root, split)
    if class_names is not None and names != list(class_names):
        raise ValueError(f"{split} classes must match the training classes, got {names} and {list(class_names)}")
    images, kept, errors = read_images(paths)
    return images, labels[kept], names, errors


def class_scores(y_true, y_pred, n_classes: int) -> dict:
    """Accuracy, mean per-class accuracy (mean recall), per-class recall and the confusion matrix."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))
    counts = matrix.sum(1)
    recall = np.divide(np.diag(matrix), counts, out=np.zeros(n_classes), where=counts > 0)
    return {"accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred))),
            "mean_per_class_accuracy": float(recall[counts > 0].mean()),
            "per_class_accuracy": recall.tolist(), "confusion": matrix.tolist()}


def _save_pictures(out: Path, matrix, class_names, history) -> None:
    from ..viz import save_confusion_matrix, save_training_curves

    save_confusion_matrix(out / "confusion.png", np.asarray(matrix), list(class_names), title="CNN (from scratch)")
    curves = {"loss": history["loss"], "train accuracy (augmented)": history["train_accuracy"],
              "held-out accuracy (from the training split)": history["val_accuracy"]}
    save_training_curves(out / "training_curves.png", curves, title="CNN on 15-Scene")


def _environment() -> dict:
    torch = import_torch()
    return {"torch": torch.__version__, "cpus": os.cpu_count(), "machine": platform.machine(),
            "load_average": [round(v, 2) for v in os.getloadavg()]}


def _features_svm(clf, train_images, y_train, test_images, y_test, n_classes, random_state):
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
    return {"method": "CNN features + linear SVM", **class_scores(y_test, predicted, n_classes),
            "C": float(search.best_params_["linearsvc__C"]), "cv_accuracy": float(search.best_score_),
            "train_seconds": train_seconds,
            "predict_seconds_per_image": predict_seconds / max(len(test_images), 1),
            "n_features": int(train_features.shape[1])}


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
        Other :class:`~classicvision.cnn.CNNClassifier` parameters (``lr``, ``image_size``, ...).

    Returns
    -------
    dict
        ``accuracy``, ``mean_per_class_accuracy``, ``per_class_accuracy``, ``confusion``,
        ``class_names``, ``seconds`` (whole run), ``read_train_seconds``, ``read_test_seconds``, ``train_seconds``,
        ``predict_seconds_per_image``, ``epoch_seconds``, ``history``, ``settings``, ``skipped``
        (unreadable files), ``environment`` and ``cnn_features_svm`` (the same keys for the
        linear SVM on CNN features, plus its ``C``).
    """
    start_all = time.perf_counter()
    root = data_dir(data)
    environment = _environment()
    settings = {**CNN_DEFAULTS, **options, "random_state": random_state}
    if epochs is not None:
        settings["epochs"] = epochs
    start = time.perf_counter()
    train_images, y_train, class_names, train_errors = load_split(root, "train")
    read_train_seconds = time.perf_counter() - start
    test_images, y_test, _, test_errors = load_split(root, "test", class_names)
    read_test_seconds = time.perf_counter() - start - read_train_seconds
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
    start = time.perf_counter()
    predicted = clf.predict(test_images)
    predict_seconds = time.perf_counter() - start
    scores = class_scores(y_test, predicted, len(class_names))
    _say(progress, f"CNN: accuracy {scores['accuracy']:.3f}, mean per-class {scores['mean_per_class_accuracy']:.3f}, "
                   f"training {train_seconds:.0f} s")
    svm = _features_svm(clf, train_images, y_train, test_images, y_test, len(class_names), random_state)
    _say(progress, f"CNN features + linear SVM (C={svm['C']:g}): accuracy {svm['accuracy']:.3f}, "
                   f"mean per-class {svm['mean_per_class_accuracy']:.3f}")
    history = {k: [float(v) for v in values] for k, values in clf.history_.items()}
    results = {"method": "CNN (from scratch)", **scores, "class_names": class_names,
               "n_train": len(train_images), "n_test": len(test_images),
               "read_train_seconds": read_train_seconds, "read_test_seconds": read_test_seconds,
               "train_seconds": train_seconds,
               "predict_seconds_per_image": predict_seconds / max(len(test_images), 1),
               "epoch_seconds": history["seconds"], "history": history,
               "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
               "skipped": train_errors + test_errors, "environment": environment,
               "cnn_features_svm": svm}
    results["environment"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    results["seconds"] = time.perf_counter() - start_all
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        clf.save_weights(out / "weights.pt")
        _save_pictures(out, scores["confusion"], class_names, history)
        (out / "results.json").write_text(json.dumps(results, indent=2))
        (out / "report.md").write_text(_cnn_report(results))
    return results


def _cnn_report(r: dict) -> str:
    s, h, svm = r["settings"], r["history"], r["cnn_features_svm"]
    lines = [
        "# 15-Scene: CNN trained from scratch", "",
        f"{r['n_train']} training and {r['n_test']} test images (whole test folder), {len(r['class_names'])} classes; "
        f"torch {r['environment']['torch']} on {r['environment']['cpus']} CPU cores, load average "
        f"{r['environment']['load_average']} at the start and {r['environment']['load_average_end']} at the end "
        "(timings include whatever else ran).", "",
        "| method | mean per-class accuracy | accuracy | training time | prediction time per image |",
        "| --- | --- | --- | --- | --- |",
        f"| CNN | {r['mean_per_class_accuracy']:.1%} | {r['accuracy']:.1%} | {r['train_seconds']:.0f} s | "
        f"{r['predict_seconds_per_image'] * 1e3:.2f} ms |",
        f"| CNN features + linear SVM (C={svm['C']:g}, 5-fold CV on train) | {svm['mean_per_class_accuracy']:.1%} | "
        f"{svm['accuracy']:.1%} | + {svm['train_seconds']:.0f} s | {svm['predict_seconds_per_image'] * 1e3:.2f} ms |",
        "",
        f"The SVM's cross-validation accuracy on the training split ({svm['cv_accuracy']:.1%}) is optimistic: the CNN "
        "was trained on most of those images, so their features fit it better than unseen ones.",
        "", "## Settings", "",
        ", ".join(f"{k}={v}" for k, v in s.items()), "",
        f"Held-out part: {s['val_fraction']:.0%} of the training split (stratified), used to choose the settings; "
        "the test split is used only for the numbers above.", "",
        "## Training", "",
        f"Mean epoch time {np.mean(h['seconds']):.1f} s (min {np.min(h['seconds']):.1f}, "
        f"max {np.max(h['seconds']):.1f}); "
        f"final held-out accuracy {h['val_accuracy'][-1]:.1%}.", "",
        "| epoch | loss | train acc (augmented) | held-out acc | seconds |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {i + 1} | {h['loss'][i]:.3f} | {h['train_accuracy'][i]:.3f} | {h['val_accuracy'][i]:.3f} | "
              f"{h['seconds'][i]:.1f} |" for i in range(len(h["loss"]))]
    lines += ["", "## Per-class accuracy (CNN)", "", "| class | recall |", "| --- | --- |"]
    lines += [f"| {name} | {acc:.1%} |" for name, acc in zip(r["class_names"], r["per_class_accuracy"])]
    lines += ["", "![confusion](confusion.png)", "", "![training curves](training_curves.png)", ""]
    return "\n".join(lines)


def _call(function, data, **kwargs) -> dict:
    """Call a scene_benchmark runner with the keyword arguments it accepts."""
    accepted = inspect.signature(function).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    return function(data, **kwargs)


def _row(name: str, r: dict) -> dict:
    train = r.get("train_seconds", r.get("fit_seconds", r.get("seconds")))
    per_image = r.get("predict_seconds_per_image")
    if per_image is None and r.get("predict_seconds") is not None and r.get("n_test"):
        per_image = r["predict_seconds"] / r["n_test"]
    return {"method": name, "mean_per_class_accuracy": r.get("mean_per_class_accuracy"),
            "accuracy": r.get("accuracy"), "train_seconds": train, "predict_seconds_per_image": per_image,
            "note": r.get("note", "")}


def run_compare(data, *, out, epochs=None, progress=True, random_state=0, cnn_options=None,
                **bovw_options) -> dict:
    """Measure tiny images + k-NN, bag of words + linear SVM, the CNN and CNN features + SVM in one run.

    ``bovw_options`` (``n_words``, ``levels``, ``cache``) go to ``scene_benchmark.run_bovw``,
    ``cnn_options`` (a dict) to :func:`run_cnn`.
    Writes ``out/report.md`` and ``out/results.json`` (plus each method's own folder) and returns
    ``{"rows": [...], "winner": ..., "margin": ..., "methods": {...}}`` with one row per method.
    """
    root = data_dir(data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    methods, rows = {}, []
    # ---- call site: classical methods from classicvision.scene_benchmark (another module) ----
    missing = "not run: classicvision.scene_benchmark.{} missing"
    try:
        from . import scene as scene_benchmark
    except ImportError as exc:
        scene_benchmark = None
        missing = f"not run: classicvision.scene_benchmark could not be imported ({exc})"
        _say(progress, missing)
    for key, name, function_name, kwargs in (
            ("tiny_knn", "tiny images + k-NN", "run_tiny_knn", {"out": out / "tiny_knn", "random_state": random_state}),
            ("bovw", "bag of words + linear SVM", "run_bovw",
             {"out": out / "bovw", "random_state": random_state, **bovw_options})):
        function = getattr(scene_benchmark, function_name, None)
        if function is None:
            rows.append({**_row(name, {}), "note": missing.format(function_name)})
            continue
        _say(progress, f"running {name} ...")
        methods[key] = _call(function, root, progress=progress, **kwargs)
        rows.append(_row(name, methods[key]))
    # -----------------------------------------------------------------------------------------
    cnn = run_cnn(root, epochs=epochs, out=out / "cnn", progress=progress, random_state=random_state,
                  **(cnn_options or {}))
    methods["cnn"] = cnn
    # like the classical rows, times include reading the image files
    read_train, read_test = cnn["read_train_seconds"], cnn["read_test_seconds"] / max(cnn["n_test"], 1)
    svm = cnn["cnn_features_svm"]
    rows.append(_row("CNN (from scratch)", {
        **cnn, "train_seconds": read_train + cnn["train_seconds"],
        "predict_seconds_per_image": read_test + cnn["predict_seconds_per_image"],
        "note": f"{cnn['settings']['epochs']} epochs, {np.mean(cnn['epoch_seconds']):.1f} s per epoch"}))
    rows.append(_row("CNN features + linear SVM", {
        **svm, "train_seconds": read_train + cnn["train_seconds"] + svm["train_seconds"],
        "predict_seconds_per_image": read_test + svm["predict_seconds_per_image"],
        "note": f"C={svm['C']:g} by 5-fold CV on train; includes training the CNN"}))
    ranked = sorted((r for r in rows if r["mean_per_class_accuracy"] is not None),
                    key=lambda r: r["mean_per_class_accuracy"], reverse=True)
    results = {"rows": rows, "winner": ranked[0]["method"],
               "margin": ranked[0]["mean_per_class_accuracy"] - ranked[1]["mean_per_class_accuracy"]
               if len(ranked) > 1 else None,
               "runner_up": ranked[1]["method"] if len(ranked) > 1 else None,
               "n_test": cnn["n_test"],
               "seconds": time.perf_counter() - start, "environment": cnn["environment"],
               "methods": methods}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=json_default))
    (out / "report.md").write_text(_compare_report(results))
    return results


def _compare_report(r: dict) -> str:
    def cell(value, fmt):
        return "n/a" if value is None else format(value, fmt)

    lines = ["# 15-Scene: four methods measured in one run", "",
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
    lines.append("")
    return "\n".join(lines)
