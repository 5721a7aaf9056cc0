"""The ``bench`` command line: argument forwarding to the runners, ``--data`` resolution, ``--json``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from classicvision.cli import main


@pytest.fixture
def data_root(tmp_path):
    """A data root laid out like ../shared/data: scene15/{train,test}/<class>/ (empty images are fine:
    the runners are replaced by recorders)."""
    for split in ("train", "test"):
        (tmp_path / "scene15" / split / "A").mkdir(parents=True)
    return tmp_path


@pytest.fixture
def calls(monkeypatch):
    """Replace the three runners by recorders returning numpy values (the JSON must encode them)."""
    from classicvision.experiments import cnn, scene

    recorded = []

    def recorder(name):
        def run(data, **options):
            recorded.append((name, Path(data), options))
            return {"accuracy": np.float64(0.5), "mean_per_class_accuracy": np.float32(0.25), "seconds": 1.5,
                    "confusion_matrix": np.eye(2, dtype=np.int64), "path": Path("x")}
        return run

    monkeypatch.setattr(scene, "run_bovw", recorder("bovw"))
    monkeypatch.setattr(cnn, "run_cnn", recorder("cnn"))
    monkeypatch.setattr(cnn, "run_compare", recorder("compare"))
    return recorded


@pytest.mark.parametrize("argv, name, expected", [
    (["bench", "bovw", "--n-words", "50", "--levels", "2", "--seed", "7"], "bovw",
     {"n_words": 50, "levels": 2, "random_state": 7}),
    (["bench", "bovw", "--random-state", "3", "--cache", "C"], "bovw", {"random_state": 3, "cache": Path("C")}),
    (["bench", "cnn", "--epochs", "2"], "cnn", {"epochs": 2, "random_state": 0}),
    (["bench", "compare", "--epochs", "1", "--n-words", "20"], "compare", {"epochs": 1, "n_words": 20}),
])
def test_arguments_are_forwarded(capsys, tmp_path, data_root, calls, argv, name, expected):
    out = tmp_path / "out"
    code = main(argv + ["--data", str(data_root), "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (called, data, options), = calls
    assert called == name and data == data_root / "scene15"
    assert options["out"] == out and options["progress"] is False
    for key, value in expected.items():
        assert options[key] == value
    assert "levels" not in options or "levels" in expected
    report = json.loads(captured.out)
    assert report == {"accuracy": 0.5, "mean_per_class_accuracy": 0.25, "seconds": 1.5,
                      "confusion_matrix": [[1, 0], [0, 1]], "path": "x"}


def test_text_output_without_json(capsys, tmp_path, data_root, calls):
    code = main(["bench", "bovw", "--data", str(data_root), "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 0 and calls[0][2]["progress"] is True
    assert "accuracy: 0.5000" in captured.out and "mean_per_class_accuracy: 0.2500" in captured.out


def test_data_may_name_the_dataset_or_come_from_the_environment(capsys, tmp_path, data_root, calls, monkeypatch):
    assert main(["bench", "bovw", "--data", str(data_root / "scene15"), "--out", str(tmp_path)]) == 0
    monkeypatch.setenv("CLASSICVISION_DATA", str(data_root))
    assert main(["bench", "cnn", "--out", str(tmp_path)]) == 0
    assert [data for _, data, _ in calls] == [data_root / "scene15"] * 2


def test_a_folder_without_the_dataset_is_one_line(capsys, tmp_path, calls):
    code = main(["bench", "bovw", "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and calls == []
    assert err.count("\n") == 1 and "no train/ and test/ folders" in err
