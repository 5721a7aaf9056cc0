"""Tests for classicvision.experiments.compare (``bench compare``) and experiments.significance:
the standard errors against hand-computed values, the verdict on made-up results, the arguments
each runner receives, the report files, and one run of every real runner on tiny generated data."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from classicvision.cli import main
from classicvision.experiments import compare, reports
from classicvision.experiments.significance import (
    binomial_se,
    paired_class_mean_se,
    paired_se,
    winner_margin,
    winner_sentence,
)

NAMES = ["a", "b", "c"]
HAS_TORCH = importlib.util.find_spec("torch") is not None


# ------------------------------------------------------------------------------- standard errors
def test_binomial_se_by_hand():
    assert binomial_se(0.8, 100) == pytest.approx(0.04)
    assert binomial_se(0.5, 2985) == pytest.approx(0.5 / np.sqrt(2985))
    assert binomial_se(1.0, 10) == 0.0 and binomial_se(0, 1) == 0.0
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 1.5"):
        binomial_se(1.5, 10)
    with pytest.raises(ValueError, match="n must be at least 1, got 0"):
        binomial_se(0.5, 0)


def test_paired_se_by_hand():
    # a - b = 0, 1, -1, 0: mean 0, variance (0 + 1 + 1 + 0) / 4 = 0.5, SE sqrt(0.5 / 4)
    assert paired_se([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(np.sqrt(0.125))
    # a - b = 1, 1, 0, 0, 0: mean 0.4, variance 0.24, SE sqrt(0.24 / 5)
    assert paired_se([True, True, True, False, False], [False, False, True, False, False]) == \
        pytest.approx(np.sqrt(0.24 / 5))
    assert paired_se([1, 0, 1], [1, 0, 1]) == 0.0    # the same answers: no uncertainty in the difference
    with pytest.raises(ValueError, match="same length"):
        paired_se([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="0/1"):
        paired_se([1, 2], [1, 0])


def test_paired_class_mean_se_by_hand():
    # class 0: a - b = 1, 0, 0 (variance 2/9, over n_0 = 3); class 1: a - b = 1 (variance 0)
    se = paired_class_mean_se([1, 1, 0, 1], [0, 1, 0, 0], [0, 0, 0, 1])
    assert se == pytest.approx(np.sqrt(2 / 9 / 3 + 0) / 2)
    # balanced classes whose mean differences are equal: the stratified SE is the plain paired one
    a, b, y = [1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 1, 1]
    assert paired_class_mean_se(a, b, y) == pytest.approx(paired_se(a, b))
    # ... and smaller when the classes' mean differences differ (between-class variance left out)
    a, b = [1, 1, 0, 0], [0, 0, 0, 0]
    assert paired_class_mean_se(a, b, y) == 0.0 < paired_se(a, b)
    with pytest.raises(ValueError, match="y_true must have the length"):
        paired_class_mean_se([1, 0], [1, 0], [0])


# ------------------------------------------------------------------------------------ the verdict
def made_up(key, y_true, y_pred, **extra):
    """A row as run_compare builds it, from made-up predictions."""
    s = reports.scores(y_true, y_pred, NAMES)
    n = len(y_true)
    return {"key": key, "method": compare.METHODS[key], "n_test": n, "accuracy": s["accuracy"],
            "accuracy_se": binomial_se(s["accuracy"], n), "mean_per_class_accuracy": s["mean_per_class_accuracy"],
            "mean_per_class_accuracy_se": binomial_se(s["mean_per_class_accuracy"], n), **extra}


@pytest.fixture
def three():
    """300 test images (100 per class). Fisher vectors: 10 wrong in each class (90.0%); VLAD: the
    same 30 and 15 more of class 2 (85.0%); tiny images: everything predicted as class 0 (1/3)."""
    y = np.repeat(np.arange(3), 100)
    fisher = y.copy()
    for c in range(3):
        fisher[100 * c:100 * c + 10] = (c + 1) % 3
    vlad = fisher.copy()
    vlad[210:225] = 0
    predictions = {"fisher": (y, fisher), "vlad": (y, vlad), "tiny_knn": (y, np.zeros_like(y))}
    rows = [made_up(k, y, p) for k, (_, p) in predictions.items()]
    return rows, predictions


def test_winner_margin_is_paired_on_the_same_images(three):
    rows, predictions = three
    r = winner_margin(rows, predictions)
    assert r["winner"] == "improved Fisher vectors + linear SVM" and r["runner_up"] == "VLAD + linear SVM"
    assert (r["winner_key"], r["runner_up_key"], r["se_method"], r["n_test"]) == ("fisher", "vlad", "paired", 300)
    fisher_row, vlad_row = rows[0], rows[1]
    assert r["margin"] == pytest.approx(fisher_row["mean_per_class_accuracy"] - vlad_row["mean_per_class_accuracy"])
    assert r["margin"] == pytest.approx(15 / 100 / 3)          # 15 images of class 2, each 1/(3 * 100)
    assert r["accuracy_margin"] == pytest.approx(15 / 300)
    y = predictions["fisher"][0]
    a, b = predictions["fisher"][1] == y, predictions["vlad"][1] == y
    d = a.astype(float) - b
    assert r["accuracy_margin_se"] == pytest.approx(np.sqrt(d.var() / 300))
    assert r["margin_se"] == pytest.approx(np.sqrt(d[200:].var() / 100) / 3)   # only class 2 differs
    assert r["exceeds_2se"] == (r["margin"] > 2 * r["margin_se"]) is True
    # the paired SE is far below the independent one (both methods fail on the same 30 images)
    assert r["margin_se"] < 0.5 * np.hypot(fisher_row["mean_per_class_accuracy_se"],
                                           vlad_row["mean_per_class_accuracy_se"])


def test_winner_sentence_on_made_up_results(three):
    rows, predictions = three
    r = winner_margin(rows, predictions)
    text = winner_sentence(r, rows)
    assert text.startswith("improved Fisher vectors + linear SVM wins on mean per-class accuracy: 90.0% against "
                           "85.0% for VLAD + linear SVM (the runner-up), a margin of 5.0 points, with a standard "
                           f"error of {100 * r['margin_se']:.1f} points (paired on the same 300 test images")
    assert f"the margin is {r['margin'] / r['margin_se']:.1f} SE, more than 2 SE" in text
    assert "In accuracy the margin is 5.0 points" in text and "sqrt(var(a - b) / n)" in text
    assert "**" not in text


def test_winner_margin_falls_back_to_independent_errors(three):
    rows, predictions = three
    del predictions["vlad"]                      # the runner-up's per-image predictions are unknown
    r = winner_margin(rows, predictions)
    assert r["se_method"] == "independent"
    assert r["margin_se"] == pytest.approx(np.hypot(rows[0]["mean_per_class_accuracy_se"],
                                                    rows[1]["mean_per_class_accuracy_se"]))
    text = winner_sentence(r, rows)
    assert "independent, sqrt(SE_1^2 + SE_2^2)" in text and "not more than 2 SE" in text
    # other test images (a different y_true) are not paired either
    y, p = predictions["fisher"]
    shifted = {"fisher": (y, p), "vlad": (np.roll(y, 1), p)}
    assert winner_margin(rows, shifted)["se_method"] == "independent"


def test_a_tie_is_said_to_be_one(three):
    rows, predictions = three
    y, fisher = predictions["fisher"]
    other = fisher.copy()
    other[0], other[50] = 0, 1                     # image 0 right, image 50 wrong: the same recalls
    rows = rows[:1] + [made_up("bovw", y, other)] + rows[1:]
    r = winner_margin(rows, {**predictions, "bovw": (y, other)})
    assert r["tied"] == ["improved Fisher vectors + linear SVM", "bag of words + linear SVM"]
    assert r["margin"] == 0.0 and r["exceeds_2se"] is False
    assert winner_sentence(r, rows) == ("improved Fisher vectors + linear SVM and bag of words + linear SVM tie on "
                                        "mean per-class accuracy at 90.0%; improved Fisher vectors + linear SVM is "
                                        "named first (table order).")
    assert winner_margin(rows[1:], predictions)["tied"] == []


def test_winner_sentence_without_a_comparison(three):
    rows, _ = three
    assert winner_sentence(winner_margin(rows[:1]), rows[:1]).startswith("Only improved Fisher vectors")
    assert winner_sentence(winner_margin([]), []).startswith("No method produced a score")
    na = [{**rows[0], "mean_per_class_accuracy": "n/a"}]
    assert winner_margin(na)["winner"] is None


# ------------------------------------------------------------------------------- the runner, faked
@pytest.fixture
def fakes(monkeypatch):
    """Every runner replaced by a recorder returning made-up results on 6 test images; torch faked."""
    from classicvision.experiments import cnn, fisher, scene

    calls = []
    y = [0, 0, 1, 1, 2, 2]
    answers = {"tiny_knn": [1, 1, 1, 1, 1, 1], "bovw": [0, 0, 1, 1, 2, 1], "vlad": [0, 1, 1, 1, 2, 0],
               "fisher": [0, 0, 1, 1, 2, 2], "cnn": [0, 0, 1, 0, 2, 2]}

    def result(name):
        return {**reports.scores(y, answers[name], NAMES), "y_true": y, "y_pred": answers[name], "n_train": 9,
                "n_test": 6, "train_seconds": 2.0, "predict_seconds": 0.6}

    def recorder(name):
        def run(data, **options):
            key = options.get("encoding", name)
            calls.append((key, Path(data), options))
            r = result(key)
            reports.write_report(options["out"], r, key)
            return r
        return run

    def run_cnn(data, **options):
        calls.append(("cnn", Path(data), options))
        r = {**result("cnn"), "read_train_seconds": 1.0, "read_test_seconds": 0.3, "epoch_seconds": [0.5, 0.5],
             "predict_seconds_per_image": 0.01,
             "cnn_features_svm": {**reports.scores(y, [0, 0, 1, 1, 2, 0], NAMES), "C": 0.1, "train_seconds": 0.5,
                                  "predict_seconds_per_image": 0.02}}
        return r

    monkeypatch.setattr(scene, "run_tiny_knn", recorder("tiny_knn"))
    monkeypatch.setattr(scene, "run_bovw", recorder("bovw"))
    monkeypatch.setattr(fisher, "run_fisher", recorder("fisher"))
    monkeypatch.setattr(cnn, "run_cnn", run_cnn)
    monkeypatch.setattr(compare, "import_torch", lambda: SimpleNamespace(__version__="0.fake"))
    return calls


@pytest.fixture
def data_root(tmp_path):
    for split in ("train", "test"):
        (tmp_path / "data" / "scene15" / split / "a").mkdir(parents=True)
    return tmp_path / "data"


def test_cli_forwards_each_option_to_its_runner(capsys, tmp_path, data_root, fakes):
    out = tmp_path / "out"
    code = main(["bench", "compare", "--data", str(data_root), "--out", str(out), "--json", "--seed", "3",
                 "--n-words", "20", "--levels", "1", "--cache", "C", "--vlad-words", "8", "--n-components", "4",
                 "--n-pca", "16", "--epochs", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    by_name = {name: (data, options) for name, data, options in fakes}
    assert [name for name, _, _ in fakes] == ["tiny_knn", "bovw", "vlad", "fisher", "cnn"]
    for name, (data, options) in by_name.items():
        assert data == data_root / "scene15" and options["out"] == out / name
        assert options["random_state"] == 3 and options["progress"] is False
    assert set(by_name["tiny_knn"][1]) == {"out", "progress", "random_state"}
    assert {k: by_name["bovw"][1][k] for k in ("n_words", "levels", "cache")} == \
        {"n_words": 20, "levels": 1, "cache": Path("C")}
    assert by_name["vlad"][1]["encoding"] == "vlad" and by_name["vlad"][1]["n_words"] == 8
    assert "n_components" not in by_name["vlad"][1]
    assert {k: by_name["fisher"][1][k] for k in ("encoding", "n_components", "n_pca")} == \
        {"encoding": "fisher", "n_components": 4, "n_pca": 16}
    assert by_name["cnn"][1]["epochs"] == 2

    printed = json.loads(captured.out)                    # --json: one object, the whole results
    assert [row["key"] for row in printed["rows"]] == list(compare.METHODS)
    assert printed["winner"] == "improved Fisher vectors + linear SVM" and printed["runner_up"] == \
        "bag of words + linear SVM"
    assert printed["mean_per_class_accuracy"] == 1.0 and printed["se_method"] == "paired"
    assert printed["margin"] == pytest.approx(1 - 5 / 6)
    saved = json.loads((out / "results.json").read_text())
    assert saved["rows"] == printed["rows"] and saved["files"]["confusion"] == str(out / "confusion.png")
    assert set(saved["methods"]) == {"tiny_knn", "bovw", "vlad", "fisher", "cnn"}
    for row in saved["rows"]:
        assert row["class_names"] == NAMES and np.sum(row["confusion_matrix"]) == 6
        assert row["accuracy_se"] == pytest.approx(binomial_se(row["accuracy"], 6))
        assert row["mean_per_class_accuracy_se"] == pytest.approx(binomial_se(row["mean_per_class_accuracy"], 6))
    cnn_row, svm_row = saved["rows"][4], saved["rows"][5]
    assert cnn_row["train_seconds"] == pytest.approx(1.0 + 2.0)           # reading + training
    assert svm_row["train_seconds"] == pytest.approx(1.0 + 2.0 + 0.5)     # ... + the SVM
    assert svm_row["predict_seconds"] == pytest.approx(0.3 + 0.02 * 6)
    assert (out / "confusion.png").stat().st_size > 10_000 and not (out / "partial.json").exists()
    import cv2

    picture = cv2.imread(str(out / "confusion.png"))
    assert picture is not None and picture.shape[1] > picture.shape[0]   # 2 rows of 3 panels
    report = (out / "report.md").read_text()
    assert "**Winner: improved Fisher vectors + linear SVM.** improved Fisher vectors + linear SVM wins" in report
    assert sum(line.startswith("| " + name + " |") for line in report.splitlines()
               for name in compare.METHODS.values()) == 6
    assert "| 100.0% ± 0.0 | 100.0% ± 0.0 |" in report and "![confusion matrices](confusion.png)" in report
    assert "| class | tiny images + k-NN |" in report


def test_methods_choose_the_runs(capsys, tmp_path, data_root, fakes, monkeypatch):
    def no_torch():
        raise AssertionError("torch must not be needed")

    monkeypatch.setattr(compare, "import_torch", no_torch)
    code = main(["bench", "compare", "--data", str(data_root), "--out", str(tmp_path / "out"),
                 "--methods", "bovw,tiny_knn"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert [name for name, _, _ in fakes] == ["tiny_knn", "bovw"]
    assert "mean_per_class_accuracy: 0.8333" in captured.out            # the winner's, bag of words
    assert "bag of words + linear SVM wins on mean per-class accuracy" in captured.out
    fakes.clear()
    monkeypatch.setattr(compare, "import_torch", lambda: SimpleNamespace(__version__="0.fake"))
    results = compare.run_compare(data_root / "scene15", out=tmp_path / "svm", methods=["cnn_svm"], progress=False)
    assert [name for name, _, _ in fakes] == ["cnn"] and [row["key"] for row in results["rows"]] == ["cnn_svm"]
    assert results["summary"].startswith("Only CNN features + linear SVM")


def test_bad_arguments_are_refused_before_any_run(capsys, tmp_path, data_root, fakes):
    code = main(["bench", "compare", "--data", str(data_root), "--out", str(tmp_path), "--methods", "bovw,sift"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "methods must be a non-empty list of tiny_knn" in err
    with pytest.raises(ValueError, match="fisher_options must not set encoding"):
        compare.run_compare(data_root, out=tmp_path, fisher_options={"encoding": "vlad"})
    with pytest.raises(TypeError, match="cnn_options must be a dict"):
        compare.run_compare(data_root, out=tmp_path, cnn_options=[1])
    assert fakes == []


# --------------------------------------------------------------------------- end to end, tiny data
@pytest.mark.slow
def test_every_real_runner_on_tiny_data(tmp_path, write_textures):
    """The real runners, small settings: each sub-folder's report, the table, the figure, paired SEs."""
    data = write_textures(tmp_path / "data", n=6)
    methods = list(compare.METHODS) if HAS_TORCH else ["tiny_knn", "bovw", "vlad", "fisher"]
    out = tmp_path / "out"
    start = time.perf_counter()
    results = compare.run_compare(
        data, out=out, methods=methods, epochs=2, progress=False, random_state=0,
        bovw_options={"n_words": 16, "levels": 2, "kernels": ("hellinger",), "C": (1.0,), "n_jobs": 1},
        vlad_options={"n_words": 8, "sizes": (16,), "C": (1.0,), "n_jobs": 1},
        fisher_options={"n_components": 4, "n_pca": 16, "sizes": (16,), "C": (1.0,), "n_jobs": 1},
        cnn_options={"image_size": 16, "channels": (4, 8), "val_fraction": 0.2, "n_threads": 1})
    seconds = time.perf_counter() - start
    assert [row["key"] for row in results["rows"]] == methods, seconds
    for run in results["stage_seconds"]:
        assert (out / run / "report.md").is_file() and (out / run / "results.json").is_file(), run
    for name in ("report.md", "results.json", "confusion.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text())
    assert saved["n_test"] == 18 and saved["class_names"] == ["blobs", "stripes_h", "stripes_v"]
    for row in saved["rows"]:
        assert np.asarray(row["confusion_matrix"]).shape == (3, 3) and np.sum(row["confusion_matrix"]) == 18
        assert 0 <= row["accuracy"] <= 1 and row["train_seconds"] > 0 and row["predict_seconds"] > 0
    best = max(row["mean_per_class_accuracy"] for row in saved["rows"])
    assert saved["mean_per_class_accuracy"] == best >= 0.9                  # stripes and blobs are easy
    assert saved["summary"] == results["summary"] and saved["winner"] in compare.METHODS.values()
    if {saved["winner_key"], saved["runner_up_key"]} <= {"tiny_knn", "bovw", "vlad", "fisher", "cnn"}:
        assert saved["se_method"] == "paired"
    assert "**Winner" in (out / "report.md").read_text()
