"""Standard errors of the 15-Scene scores, and the verdict of a comparison: who wins, by how much, how sure.

How sure is the ranking? Every number is measured once, on one test split of ``n`` images, so the
report gives the test-set sampling error (not the training run's variance: one run, one seed):

* a score ``p`` (accuracy, and mean per-class accuracy taken as a proportion of the same ``n``
  images) has the binomial standard error ``sqrt(p (1 - p) / n)`` (:func:`binomial_se`);
* the winner (best mean per-class accuracy) and the runner-up classified *the same* test images,
  so their difference is measured paired: with ``a_i, b_i`` in {0, 1} the correctness of image
  ``i`` under each method, the difference of accuracies ``mean(a - b)`` has the standard error
  ``sqrt(var(a - b) / n)`` (:func:`paired_se`, ``var`` with divisor ``n``), and the difference of
  mean per-class accuracies ``(1/C) sum_c mean_c(a - b)`` has
  ``(1/C) sqrt(sum_c var_c(a - b) / n_c)`` over the ``C`` classes with ``n_c`` test images each
  (:func:`paired_class_mean_se`; with balanced classes it is ``sqrt(var(a - b) / n)`` less the
  part of the variance between the classes' means). Pairing leaves out the images both methods
  get right (or both wrong), so it is usually much smaller than the independent
  ``sqrt(SE_1^2 + SE_2^2)``, which is used only when a method's per-image predictions are
  missing or were made on other images.

References
----------
Lazebnik, Schmid & Ponce, "Beyond bags of features", CVPR 2006 (15-Scene, mean per-class accuracy).
Dietterich, "Approximate statistical tests for comparing supervised classification learning
algorithms", Neural Computation 10(7), 1998 (paired tests on one test set, McNemar).
"""

from __future__ import annotations

import numpy as np

__all__ = ["binomial_se", "paired_se", "paired_class_mean_se", "winner_margin", "winner_sentence"]

_TIE = 1e-12  # scores closer than this are a tie (the same counts summed in another order)


def binomial_se(p, n) -> float:
    """Binomial standard error ``sqrt(p (1 - p) / n)`` of a proportion ``p`` measured on ``n`` items.

    Parameters
    ----------
    p : float in [0, 1]
        The proportion (an accuracy).
    n : int >= 1
        The number of test images it was measured on.

    Returns
    -------
    float

    Examples
    --------
    >>> round(binomial_se(0.8, 100), 12)
    0.04
    """
    p, n = float(p), int(n)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return float(np.sqrt(p * (1.0 - p) / n))


def _correctness(correct1, correct2):
    a, b = (np.asarray(c) for c in (correct1, correct2))
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"correct1 and correct2 must be non-empty 1-D arrays of the same length, got shapes "
                         f"{a.shape} and {b.shape}")
    if not (np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all()):
        raise ValueError("correct1 and correct2 must hold 0/1 (or bool) per test image")
    return a.astype(np.float64), b.astype(np.float64)


def paired_se(correct1, correct2) -> float:
    """Standard error ``sqrt(var(a - b) / n)`` of the difference of two accuracies on the same images.

    Parameters
    ----------
    correct1, correct2 : (n,) bool or 0/1 arrays
        Whether each test image was classified right by the first and the second method, in the
        same image order.

    Returns
    -------
    float
        The standard error of ``mean(a) - mean(b)``; ``var`` has divisor ``n`` (the binomial
        convention of :func:`binomial_se`).

    Examples
    --------
    >>> round(paired_se([1, 1, 0, 0], [1, 0, 1, 0]), 6)   # a - b = 0, 1, -1, 0: var 0.5
    0.353553
    """
    a, b = _correctness(correct1, correct2)
    return float(np.sqrt(np.var(a - b) / a.size))


def paired_class_mean_se(correct1, correct2, y_true) -> float:
    """Standard error of the difference of two mean per-class accuracies on the same images.

    ``(1/C) sqrt(sum_c var_c(a - b) / n_c)`` over the ``C`` classes present in ``y_true``, with
    ``var_c`` (divisor ``n_c``) over the ``n_c`` test images of class ``c``: the mean per-class
    accuracy weighs class ``c``'s images by ``1 / (C n_c)``.

    Parameters
    ----------
    correct1, correct2 : (n,) bool or 0/1 arrays
        Per-image correctness of the two methods, in the same image order.
    y_true : (n,) int array
        The true class of each image.

    Returns
    -------
    float

    Examples
    --------
    >>> paired_class_mean_se([1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 1, 1])   # (1/2) sqrt(0.25/2 + 0.25/2)
    0.25
    """
    a, b = _correctness(correct1, correct2)
    y = np.asarray(y_true).reshape(-1)
    if y.shape != a.shape:
        raise ValueError(f"y_true must have the length of correct1 ({a.size}), got {y.size}")
    classes = np.unique(y)
    variance = sum(np.var((a - b)[y == c]) / np.count_nonzero(y == c) for c in classes)
    return float(np.sqrt(variance) / classes.size)


# ------------------------------------------------------------------------------------ the ranking
def _score(row, key):
    value = row.get(key)
    return value if isinstance(value, (float, int)) and not isinstance(value, bool) else None


def winner_margin(rows, predictions=None) -> dict:
    """The winner (best mean per-class accuracy), the runner-up, the margin and its standard error.

    Parameters
    ----------
    rows : sequence of dict
        One per method, with ``key``, ``method``, ``accuracy``, ``mean_per_class_accuracy`` and
        their ``accuracy_se`` and ``mean_per_class_accuracy_se`` (rows whose mean per-class
        accuracy is not a number are left out of the ranking; ties keep the row order).
    predictions : dict or None
        ``{key: (y_true, y_pred)}`` test labels per method. When both the winner's and the
        runner-up's are given, with the same ``y_true``, the margin's standard errors are the
        paired ones (:func:`paired_class_mean_se`, :func:`paired_se`); otherwise the independent
        ``sqrt(SE_1^2 + SE_2^2)``.

    Returns
    -------
    dict
        ``winner``, ``runner_up`` (method names; None when there are fewer rows), ``winner_key``,
        ``runner_up_key``, ``margin`` (difference of mean per-class accuracies, a fraction),
        ``margin_se``, ``accuracy_margin``, ``accuracy_margin_se``, ``se_method`` (``"paired"`` or
        ``"independent"``), ``n_test`` (the winner's), ``exceeds_2se`` (``margin > 2 margin_se``) and
        ``tied`` (the methods sharing the best score, winner first, when two or more do; else ``[]``).

    Examples
    --------
    >>> rows = [{"key": "a", "method": "A", "accuracy": 0.5, "accuracy_se": 0.25,
    ...          "mean_per_class_accuracy": 0.5, "mean_per_class_accuracy_se": 0.25},
    ...         {"key": "b", "method": "B", "accuracy": 1.0, "accuracy_se": 0.0,
    ...          "mean_per_class_accuracy": 1.0, "mean_per_class_accuracy_se": 0.0}]
    >>> r = winner_margin(rows, {"a": ([0, 0, 1, 1], [0, 1, 0, 1]), "b": ([0, 0, 1, 1], [0, 0, 1, 1])})
    >>> r["winner"], r["runner_up"], r["margin"], r["se_method"], r["margin_se"]
    ('B', 'A', 0.5, 'paired', 0.25)
    """
    ranked = sorted((row for row in rows if _score(row, "mean_per_class_accuracy") is not None),
                    key=lambda row: row["mean_per_class_accuracy"], reverse=True)
    result = {"winner": None, "runner_up": None, "winner_key": None, "runner_up_key": None, "margin": None,
              "margin_se": None, "accuracy_margin": None, "accuracy_margin_se": None, "se_method": None,
              "n_test": None, "exceeds_2se": None, "tied": []}
    if not ranked:
        return result
    best = ranked[0]
    result.update(winner=best["method"], winner_key=best.get("key"), n_test=best.get("n_test"))
    if len(ranked) < 2:
        return result
    second = ranked[1]
    result.update(runner_up=second["method"], runner_up_key=second.get("key"),
                  margin=best["mean_per_class_accuracy"] - second["mean_per_class_accuracy"],
                  tied=[row["method"] for row in ranked
                        if abs(row["mean_per_class_accuracy"] - best["mean_per_class_accuracy"]) <= _TIE])
    accuracies = _score(best, "accuracy") is not None and _score(second, "accuracy") is not None
    if accuracies:
        result["accuracy_margin"] = best["accuracy"] - second["accuracy"]
    pair = [(predictions or {}).get(row.get("key")) for row in (best, second)]
    if all(p is not None and p[1] is not None for p in pair) \
            and np.array_equal(np.asarray(pair[0][0]), np.asarray(pair[1][0])) and len(pair[0][0]):
        y_true = np.asarray(pair[0][0])
        a, b = (np.asarray(y_pred) == y_true for _, y_pred in pair)
        result.update(se_method="paired", margin_se=paired_class_mean_se(a, b, y_true),
                      accuracy_margin_se=paired_se(a, b))
    else:
        def independent(key):
            ses = [_score(row, f"{key}_se") for row in (best, second)]
            return None if None in ses else float(np.hypot(*ses))

        result.update(se_method="independent", margin_se=independent("mean_per_class_accuracy"),
                      accuracy_margin_se=independent("accuracy") if accuracies else None)
    if len(result["tied"]) < 2:
        result["tied"] = []
    else:
        result["margin"] = 0.0
    if result["margin_se"] is not None:
        result["exceeds_2se"] = bool(result["margin"] > 2 * result["margin_se"])
    return result


def winner_sentence(summary: dict, rows) -> str:
    """The report's verdict: the winner, the runner-up, the margin in points and its standard error.

    Parameters
    ----------
    summary : dict
        :func:`winner_margin`'s result.
    rows : sequence of dict
        The rows it was computed from (for the two scores).

    Returns
    -------
    str
        One paragraph of plain text (no markdown).

    Examples
    --------
    >>> rows = [{"key": "a", "method": "A", "mean_per_class_accuracy": 0.80, "mean_per_class_accuracy_se": 0.01,
    ...          "n_test": 1000}, {"key": "b", "method": "B", "mean_per_class_accuracy": 0.75,
    ...          "mean_per_class_accuracy_se": 0.01, "n_test": 1000}]
    >>> winner_sentence(winner_margin(rows), rows)[:89]
    'A wins on mean per-class accuracy: 80.0% against 75.0% for B (the runner-up), a margin of'
    """
    if summary.get("winner") is None:
        return "No method produced a score; nothing to compare."
    if summary.get("runner_up") is None:
        return f"Only {summary['winner']} produced a score; nothing to compare it with."
    score = {row["method"]: row["mean_per_class_accuracy"] for row in rows
             if _score(row, "mean_per_class_accuracy") is not None}
    margin, se = summary["margin"], summary["margin_se"]
    n_test = summary.get("n_test")
    if summary.get("tied"):
        tied = summary["tied"]
        text = (f"{', '.join(tied[:-1])} and {tied[-1]} tie on mean per-class accuracy at "
                f"{score[summary['winner']]:.1%}; {summary['winner']} is named first (table order).")
        if summary.get("accuracy_margin") and summary.get("accuracy_margin_se") is not None:
            text += (f" In accuracy {summary['winner']} is {100 * summary['accuracy_margin']:.1f} points ahead of "
                     f"{summary['runner_up']}, SE {100 * summary['accuracy_margin_se']:.1f} ({summary['se_method']}).")
        return text
    text = (f"{summary['winner']} wins on mean per-class accuracy: {score[summary['winner']]:.1%} against "
            f"{score[summary['runner_up']]:.1%} for {summary['runner_up']} (the runner-up), a margin of "
            f"{100 * margin:.1f} points")
    if se is None:
        return text + " (no standard error: a score's standard error is missing)."
    if summary["se_method"] == "paired":
        how = (f"paired on the same {n_test} test images and stratified by class, (1/C) sqrt(sum_c var_c(a - b) / "
               "n_c) with a, b each image's 0/1 correctness under the two methods")
    else:
        how = ("independent, sqrt(SE_1^2 + SE_2^2) of the two binomial SEs, since per-image predictions on the "
               "same images are missing for one of them; an overestimate when the methods fail on the same images")
    if se > 0:
        times = f"the margin is {margin / se:.1f} SE, {'more' if margin > 2 * se else 'not more'} than 2 SE"
    else:
        times = ("the SE is 0 (the two differ the same way on every image of a class), so the margin "
                 + ("exceeds 2 SE" if margin > 0 else "is 0"))
    text += f", with a standard error of {100 * se:.1f} points ({how}): {times}."
    if summary.get("accuracy_margin") is not None and summary.get("accuracy_margin_se") is not None:
        formula = "paired, sqrt(var(a - b) / n)" if summary["se_method"] == "paired" else "independent"
        text += (f" In accuracy the margin is {100 * summary['accuracy_margin']:.1f} points, SE "
                 f"{100 * summary['accuracy_margin_se']:.1f} ({formula}).")
    return text + " One training run and one seed each: the SEs measure the test sample only."
