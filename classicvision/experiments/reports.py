"""Reports of the 15-Scene experiments: one JSON encoder (:func:`json_default`), one score dict
(:func:`scores`) and one report writer (:func:`write_report`: ``report.md``, ``results.json``,
``confusion.png``), shared by every ``classicvision bench`` runner.

Accuracy is the fraction of test images classified right; mean per-class accuracy is the mean of
the per-class recalls (the confusion matrix's diagonal, rows normalized), the number reported by
Lazebnik, Schmid & Ponce (CVPR 2006) on 15-Scene.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

__all__ = ["NOT_AVAILABLE", "PARTIAL", "json_default", "scores", "write_partial", "write_report"]

logger = logging.getLogger(__name__)

NOT_AVAILABLE = "n/a"  # the score of a class without test images (never None or NaN)
PARTIAL = "partial.json"  # the stages finished so far, rewritten after each stage; removed by the final report


def json_default(value):
    """``json.dumps(default=...)`` for numpy scalars and arrays and paths; anything else raises.

    Examples
    --------
    >>> json.dumps({"n": np.int64(3), "a": np.arange(2), "p": Path("x")}, default=json_default)
    '{"n": 3, "a": [0, 1], "p": "x"}'
    """
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def scores(y_true, y_pred, class_names) -> dict:
    """Accuracy, mean per-class accuracy, per-class accuracy and confusion matrix of a test split.

    Parameters
    ----------
    y_true, y_pred : (n,) int arrays
        True and predicted class indices into ``class_names``.
    class_names : sequence of str

    Returns
    -------
    dict
        ``accuracy`` (float), ``mean_per_class_accuracy`` (mean recall over the classes that have
        test images), ``per_class_accuracy`` (list: recall of each class, ``"n/a"`` for a class
        without test images), ``per_class_support`` (test images per class), ``confusion_matrix``
        (list of lists of int; row = true class, column = predicted) and ``class_names``. With no
        test image at all, ``accuracy`` and ``mean_per_class_accuracy`` are ``"n/a"``.

    Examples
    --------
    >>> r = scores([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b", "c"])
    >>> r["accuracy"], r["mean_per_class_accuracy"], r["per_class_accuracy"]
    (0.75, 0.75, [0.5, 1.0, 'n/a'])
    """
    y_true = np.asarray(y_true, np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, np.int64).reshape(-1)
    n_classes = len(class_names)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {len(y_true)} and {len(y_pred)}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"{name} must hold class indices in [0, {n_classes}), got {y.min()}..{y.max()}")
    matrix = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    support = matrix.sum(axis=1)
    present = support > 0
    recall = np.diag(matrix)[present] / support[present]
    per_class = [NOT_AVAILABLE] * n_classes
    for i, value in zip(np.flatnonzero(present), recall):
        per_class[i] = float(value)
    return {"accuracy": float(np.mean(y_true == y_pred)) if y_true.size else NOT_AVAILABLE,
            "mean_per_class_accuracy": float(recall.mean()) if recall.size else NOT_AVAILABLE,
            "per_class_accuracy": per_class, "per_class_support": support.tolist(),
            "confusion_matrix": matrix.tolist(), "class_names": list(class_names)}


def _number(value, fmt: str = ".4f") -> str:
    return NOT_AVAILABLE if value is None or isinstance(value, str) else format(value, fmt)


def _save_confusion(path: Path, matrix, class_names, title: str) -> bool:
    try:
        from ..viz import save_confusion_matrix

        save_confusion_matrix(path, np.asarray(matrix), list(class_names), title=title)
    except (ImportError, OSError, ValueError, RuntimeError) as exc:  # the report and results are still written
        logger.warning("confusion matrix picture %s not written: %s", path, exc)
        return False
    return True


def _write_json(path: Path, payload) -> None:
    """Write ``payload`` as JSON to ``path`` atomically (a temporary file moved in place)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=2, default=json_default))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_partial(out, stages: dict, **context) -> Path | None:
    """Write ``out/partial.json``: what a run has finished so far, so that a late failure or a kill
    keeps it (nothing is written if ``out`` is None).

    Parameters
    ----------
    out : path or None
    stages : dict
        ``{stage name: that stage's results}`` in the order they finished (seconds, counts,
        the cross-validation choice, ...); the runners call this after every stage.
    **context
        Other keys for the file (``settings``, ``data``, ``method``).

    Returns
    -------
    pathlib.Path or None
        The file written. :func:`write_report` removes it once ``results.json`` is written.

    Examples
    --------
    >>> import tempfile
    >>> path = write_partial(tempfile.mkdtemp(), {"list": {"seconds": 0.1}}, method="demo")
    >>> json.loads(path.read_text())["finished"]
    ['list']
    """
    if out is None:
        return None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / PARTIAL
    _write_json(path, {"complete": False, **context, "finished": list(stages), "stages": stages})
    return path


def write_report(out, results: dict, title: str, body=()) -> dict | None:
    """Write ``out/results.json``, ``out/report.md`` and ``out/confusion.png`` (nothing if ``out`` is None).

    ``results.json`` is written first (atomically) and ``partial.json`` then removed; a picture
    that cannot be drawn is logged as a warning and the report is still written.

    Parameters
    ----------
    out : path or None
    results : dict
        A runner's results: the keys of :func:`scores` (the summary, per-class table and
        confusion picture come from them), and optionally ``n_train``, ``n_test``, ``seconds``,
        ``protocol``, ``stage_seconds``, ``settings``, ``skipped``, ``load_average``.
        ``results["files"]`` is set to the paths written.
    title : str
        The method, for the headline and the picture.
    body : sequence of str
        Markdown lines of the runner's own sections, placed after the summary.

    Returns
    -------
    dict or None
        ``{"report", "results", "confusion"}`` paths (``confusion`` None when not drawn).
    """
    if out is None:
        return None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    picture = "confusion_matrix" in results and "class_names" in results
    results["files"] = {"report": str(out / "report.md"), "results": str(out / "results.json"),
                        "confusion": str(out / "confusion.png") if picture else None}
    serial = json.loads(json.dumps(results, default=json_default))
    _write_json(out / "results.json", serial)  # first: the numbers survive a failure below
    (out / PARTIAL).unlink(missing_ok=True)
    drawn = picture and _save_confusion(out / "confusion.png", results["confusion_matrix"],
                                        results["class_names"], title)
    if picture and not drawn:
        results["files"]["confusion"] = serial["files"]["confusion"] = None
        _write_json(out / "results.json", serial)
    lines = [f"# 15-Scene: {title}", ""]
    if "accuracy" in results:
        lines += [f"- accuracy: **{_number(results['accuracy'])}**",
                  f"- mean per-class accuracy (mean of per-class recall): "
                  f"**{_number(results['mean_per_class_accuracy'])}**"]
    if "protocol" in results:
        lines.append(f"- protocol: {results['protocol']}")
    if "n_train" in results or "n_test" in results:
        lines.append(f"- train / test images: {results.get('n_train', NOT_AVAILABLE)} / "
                     f"{results.get('n_test', NOT_AVAILABLE)} (skipped unreadable: {len(results.get('skipped', []))})")
    if "seconds" in results:
        load = f" (load average at end: {results['load_average']})" if "load_average" in results else ""
        lines.append(f"- total seconds: {results['seconds']:.1f}{load}")
    lines.append("")
    lines += list(body)
    if results.get("stage_seconds"):
        lines += ["", "## Seconds per stage", "", "| stage | seconds |", "| --- | --- |"]
        lines += [f"| {k} | {_number(v, '.2f')} |" for k, v in results["stage_seconds"].items()]
    if "settings" in results:
        lines += ["", "## Settings", "", "```", json.dumps(serial["settings"], indent=2), "```"]
    if "per_class_accuracy" in results:
        lines += ["", "## Per-class accuracy", "", "| class | recall | test images |", "| --- | --- | --- |"]
        support = results.get("per_class_support", [NOT_AVAILABLE] * len(results["class_names"]))
        lines += [f"| {c} | {_number(a, '.3f')} | {n} |"
                  for c, a, n in zip(results["class_names"], results["per_class_accuracy"], support)]
    if results.get("skipped"):
        lines += ["", "## Skipped files", ""] + [f"- {e}" for e in results["skipped"]]
    if drawn:
        lines += ["", "![confusion matrix](confusion.png)"]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return results["files"]
