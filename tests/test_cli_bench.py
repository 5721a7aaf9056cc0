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
    from classicvision.experiments import cnn, compare, fisher, scene

    recorded = []

    def recorder(name):
        def run(data, **options):
            recorded.append((name, Path(data), options))
            return {"accuracy": np.float64(0.5), "mean_per_class_accuracy": np.float32(0.25), "seconds": 1.5,
                    "confusion_matrix": np.eye(2, dtype=np.int64), "path": Path("x")}
        return run

    monkeypatch.setattr(scene, "run_bovw", recorder("bovw"))
    monkeypatch.setattr(fisher, "run_fisher", recorder("fisher"))
    monkeypatch.setattr(cnn, "run_cnn", recorder("cnn"))
    monkeypatch.setattr(compare, "run_compare", recorder("compare"))
    return recorded


@pytest.mark.parametrize("argv, name, expected", [
    (["bench", "bovw", "--n-words", "50", "--levels", "2", "--seed", "7"], "bovw",
     {"n_words": 50, "levels": 2, "random_state": 7}),
    (["bench", "bovw", "--random-state", "3", "--cache", "C"], "bovw", {"random_state": 3, "cache": Path("C")}),
    (["bench", "fisher", "--n-components", "64", "--n-pca", "40", "--encoding", "vlad", "--cache", "C"], "fisher",
     {"n_components": 64, "n_pca": 40, "encoding": "vlad", "cache": Path("C"), "random_state": 0}),
    (["bench", "fisher", "--seed", "5"], "fisher", {"random_state": 5}),
    (["bench", "fisher", "--no-mirror"], "fisher", {"mirror": False}),
    (["bench", "cnn", "--epochs", "2"], "cnn", {"epochs": 2, "random_state": 0}),
    (["bench", "cnn", "--device", "cpu", "--max-seconds", "600", "--threads", "auto", "--image-size", "96",
      "--tta", "crops", "--test-size", "128", "--precision", "bfloat16"], "cnn",
     {"device": "cpu", "max_seconds": 600.0, "n_threads": "auto", "image_size": 96, "tta": "crops",
      "test_size": 128, "precision": "bfloat16"}),
    (["bench", "cnn", "--max-seconds", "0", "--threads", "2"], "cnn", {"max_seconds": None, "n_threads": 2}),
    (["bench", "compare", "--epochs", "1", "--n-words", "20"], "compare",
     {"epochs": 1, "bovw_options": {"n_words": 20}, "vlad_options": {}, "fisher_options": {}}),
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


def test_bench_cnn_defaults_are_the_runners_and_bad_threads_is_one_line(capsys, tmp_path, data_root, calls):
    assert main(["bench", "cnn", "--data", str(data_root), "--out", str(tmp_path)]) == 0
    (_, _, options), = calls
    assert not {"device", "max_seconds", "n_threads", "image_size", "tta", "test_size",
                 "precision"} & set(options)  # run_cnn's defaults
    code = main(["bench", "cnn", "--data", str(data_root), "--threads", "many"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "--threads must be a positive integer or auto" in err


def test_a_folder_without_the_dataset_is_one_line(capsys, tmp_path, calls):
    code = main(["bench", "bovw", "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and calls == []
    assert err.count("\n") == 1 and "no train/ and test/ folders" in err


def test_bench_fisher_end_to_end_equals_the_pipeline_built_by_hand(capsys, tmp_path, write_textures):
    """The real runner through the command line on a tiny folder: the report files, the JSON keys of
    bench bovw, and the same predictions as DenseSIFT -> FisherVector -> LinearSVC composed by hand."""
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    from classicvision.datasets import load_image_folder, read_images
    from classicvision.recognition.fisher import FisherVector
    from classicvision.recognition.transformers import DenseSIFT

    data = write_textures(tmp_path / "data")
    out = tmp_path / "out"
    code = main(["bench", "fisher", "--data", str(data), "--out", str(out), "--json", "--n-components", "4",
                 "--n-pca", "16"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    for key in ("accuracy", "mean_per_class_accuracy", "per_class_accuracy", "per_class_support", "confusion_matrix",
                "class_names", "y_true", "y_pred", "seconds", "stage_seconds", "settings", "n_train", "n_test",
                "skipped", "protocol", "cv", "warnings", "cache", "worker_seconds", "train_seconds",
                "predict_seconds", "predict_seconds_per_image", "load_average", "files"):
        assert key in result, key
    assert set(result["stage_seconds"]) == {"list", "features_train", "pca_gmm", "encode_train", "svm_cv_and_fit",
                                            "features_encode_predict_test"}
    assert result["n_train"] == result["n_test"] == 12 and result["mean_per_class_accuracy"] >= 0.9
    assert json.loads((out / "results.json").read_text())["y_pred"] == result["y_pred"]
    assert (out / "report.md").is_file() and not (out / "partial.json").exists()
    # by hand: the runner keeps every descriptor when there are fewer than sample_size, as fit does
    rounded = lambda feats: [f._replace(descriptors=f.descriptors.astype(np.float16).astype(np.float32))
                             for f in feats]
    dsift = DenseSIFT(step=4, sizes=(16, 24), rootsift=True)
    train_paths, y_train, _ = load_image_folder(data, "train")
    test_paths, y_test, _ = load_image_folder(data, "test")
    train_images = read_images(train_paths)[0]
    train = rounded(dsift.transform(train_images))
    mirrors = rounded(dsift.transform([image[:, ::-1] for image in train_images]))
    test = rounded(dsift.transform(read_images(test_paths)[0]))
    # the encoder learns from the training images; the SVM also sees their mirror images (mirror=True)
    encoder = FisherVector(n_components=4, n_pca=16, random_state=0).fit(train)
    svm = LinearSVC(C=result["cv"]["C"], tol=1e-3, random_state=0).fit(
        np.concatenate([encoder.transform(train), encoder.transform(mirrors)]), np.tile(y_train, 2))
    by_hand = make_pipeline(encoder, svm)
    assert result["y_pred"] == by_hand.predict(test).tolist() and result["y_true"] == y_test.tolist()


def test_bench_fisher_with_vlad_end_to_end(capsys, tmp_path, write_textures):
    """--encoding vlad through the real runner (VLAD has no n_jobs to reset after its fit)."""
    data = write_textures(tmp_path / "data")
    code = main(["bench", "fisher", "--data", str(data), "--out", str(tmp_path / "out"), "--json",
                 "--encoding", "vlad"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["settings"]["encoding"] == "vlad" and result["n_test"] == 12
    assert np.sum(result["confusion_matrix"]) == 12   # (64 words on 12 images is not a fair test of accuracy)
