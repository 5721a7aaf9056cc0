"""The command line: the embedded default, one-line errors, JSON, pictures, and the real pairs."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from classicvision.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_embedded_default_reports_accuracy_as_json(capsys):
    code, out, err = run(capsys, "match", "--json")
    assert code == 0, err
    report = json.loads(out)
    for key in ("n_points1", "n_points2", "n_matches", "accuracy", "seconds"):
        assert key in report
    assert report["n_matches"] >= 100
    assert report["accuracy"] >= 0.9  # motorcycle stereo pair scored against its disparity map
    assert report["seconds"] > 0


def test_text_output_and_picture(capsys, tmp_path):
    picture = tmp_path / "m.png"
    code, out, err = run(capsys, "match", "--top", "50", "--out", str(picture))
    assert code == 0, err
    assert "accuracy of the top 50" in out and "time:" in out
    image = cv2.imread(str(picture))
    assert image is not None and image.shape[1] > image.shape[0]


def _write_pair(tmp_path, warped_pair, H=None):
    """The embedded warped pair as PNG files and a ground-truth CSV made from ``H`` (default: the true one)."""
    image1, image2, true_H = warped_pair
    H = true_H if H is None else H
    cv2.imwrite(str(tmp_path / "a.png"), np.round(image1 * 255).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.round(image2 * 255).astype(np.uint8))
    # Ground truth in the customary CSV form: a grid of points and their images under H.
    grid = np.stack(np.meshgrid(np.arange(60, 460, 40.0), np.arange(60, 460, 40.0)), -1).reshape(-1, 2)
    mapped = np.c_[grid, np.ones(len(grid))] @ H.T
    mapped = mapped[:, :2] / mapped[:, 2:]
    rows = "\n".join(",".join(f"{v:.4f}" for v in r) for r in np.c_[grid, mapped])
    (tmp_path / "gt.csv").write_text("x1,y1,x2,y2\n" + rows + "\n")
    return [str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--ground-truth", str(tmp_path / "gt.csv"),
            "--scale", "1"]


def _library_accuracy(warped_pair, tolerance=40.0, top=100, **options):
    """The accuracy the CLI should report, computed with the library directly (files round to uint8)."""
    from classicvision.matching.evaluation import ground_truth_correct, warp_points
    from classicvision.matching.pipeline import match_images

    image1, image2, H = warped_pair
    image1 = np.round(image1 * 255).astype(np.uint8)
    image2 = np.round(image2 * 255).astype(np.uint8)
    grid = np.stack(np.meshgrid(np.arange(60, 460, 40.0), np.arange(60, 460, 40.0)), -1).reshape(-1, 2)
    truth = np.c_[grid, warp_points(grid, H)].astype(np.float32)
    result = match_images(image1, image2, **options).verified()
    return ground_truth_correct(result.points1, result.points2, result.matches[:top], truth,
                                tolerance=tolerance).mean()


def test_files_with_ground_truth(capsys, tmp_path, warped_pair):
    code, out, err = run(capsys, "match", *_write_pair(tmp_path, warped_pair), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["accuracy"] == pytest.approx(_library_accuracy(warped_pair), abs=1e-6)
    assert report["accuracy"] >= 0.95 and report["evaluated"] == 100


def test_a_wrong_ground_truth_gives_a_low_accuracy(capsys, tmp_path, warped_pair):
    wrong = warped_pair[2] @ np.array([[1, 0, 60.0], [0, 1, -50.0], [0, 0, 1]])  # truth shifted by 78 px
    code, out, err = run(capsys, "match", *_write_pair(tmp_path, warped_pair, wrong), "--json")
    assert code == 0, err
    assert json.loads(out)["accuracy"] <= 0.05


def test_tolerance_flag_is_used(capsys, tmp_path, warped_pair):
    code, out, err = run(capsys, "match", *_write_pair(tmp_path, warped_pair), "--tolerance", "1.5", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["accuracy"] == report["accuracy_1.5px"]
    assert report["accuracy"] == pytest.approx(_library_accuracy(warped_pair, tolerance=1.5), abs=1e-6)
    assert report["accuracy"] < report["accuracy_40px"]  # a 1.5 px tolerance rejects some 40 px hits


def test_verify_removes_outliers(capsys, tmp_path, warped_pair):
    files = _write_pair(tmp_path, warped_pair)
    reports = {}
    for verify in ([], ["--verify", "homography"]):
        code, out, err = run(capsys, "match", *files, "--max-ratio", "0.95", "--top", "100000",
                             "--json", *verify)
        assert code == 0, err
        reports[bool(verify)] = json.loads(out)
    loose, verified = reports[False], reports[True]
    assert verified["n_inliers"] == verified["n_matches"] < loose["n_matches"]
    assert loose["accuracy"] < verified["accuracy"] and verified["accuracy"] >= 0.95


@pytest.mark.parametrize("flag, value", [("--ratio", "0.6"), ("--max-ratio", "0.6")])
def test_ratio_flag_and_its_alias(capsys, tmp_path, warped_pair, flag, value):
    files = _write_pair(tmp_path, warped_pair)
    code, out, err = run(capsys, "match", *files, "--json")
    default = json.loads(out)
    code, out, err = run(capsys, "match", *files, flag, value, "--json")
    assert code == 0, err
    strict = json.loads(out)
    assert strict["max_ratio"] == 0.6 and default["max_ratio"] == 0.8
    assert 0 < strict["n_matches"] < default["n_matches"]


def test_max_points_descriptor_and_detector_flags(capsys, tmp_path, warped_pair):
    files = _write_pair(tmp_path, warped_pair)
    reports = {}
    for name, extra in (("dog", []), ("upright", ["--max-points", "150", "--upright"]),
                        ("sift", ["--descriptor", "sift"]), ("harris", ["--detector", "harris", "--max-points", "200"])):
        code, out, err = run(capsys, "match", *files, "--json", *extra)
        assert code == 0, err
        reports[name] = json.loads(out)
    assert reports["upright"]["n_points1"] == reports["upright"]["n_points2"] == 150
    assert reports["dog"]["n_points1"] > 150
    assert reports["harris"]["n_points1"] == 200 and reports["harris"]["detector"] == "harris"
    assert reports["sift"]["descriptor"] == "sift" and reports["sift"]["n_matches"] != reports["dog"]["n_matches"]
    assert reports["dog"]["accuracy"] >= 0.95 and reports["harris"]["accuracy"] >= 0.8


def test_unexpected_errors_say_they_are_bugs(capsys, monkeypatch):
    from classicvision.matching import pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(pipeline, "match_images", broken)
    code, out, err = run(capsys, "match")
    assert code == 3
    assert err.count("\n") == 1 and "internal error" in err and "--debug" in err and "boom second line" in err
    with pytest.raises(RuntimeError, match="boom"):
        main(["match", "--debug"])


@pytest.mark.parametrize("setup, text", [
    ("missing", "not found"),
    ("corrupt", "cannot decode"),
    ("tiny", "too small"),
    ("flat", "no matches"),
    ("one", "IMAGE2 is missing"),
])
def test_errors_are_one_line_without_traceback(capsys, tmp_path, setup, text):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), (np.random.default_rng(0).random((200, 200)) * 255).astype(np.uint8))
    other = tmp_path / "other.png"
    if setup == "corrupt":
        other.write_bytes(b"\x89PNG garbage")
    elif setup == "tiny":
        cv2.imwrite(str(other), np.zeros((20, 20), np.uint8))
    elif setup == "flat":
        cv2.imwrite(str(good), np.zeros((128, 128), np.uint8))
        cv2.imwrite(str(other), np.zeros((128, 128), np.uint8))
    argv = ["match", str(good)] if setup == "one" else ["match", str(good), str(other), "--scale", "1"]
    code, out, err = run(capsys, *argv)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("classicvision: error:") and text in err
    assert "Traceback" not in err


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "classicvision", "match", "--json", "--top", "20"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["n_matches"] > 0


@pytest.mark.data
@pytest.mark.parametrize("pair, minimum", [("notre_dame", 0.95), ("mt_rushmore", 0.95)])
def test_real_pairs_reach_the_target(capsys, pairs_dir, pair, minimum):
    code, out, err = run(capsys, "match", "--pair", pair, "--data", str(pairs_dir.parent), "--scale", "0.5",
                         "--top", "100", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["accuracy"] >= minimum, report


@pytest.mark.data
def test_defaults_are_scale_invariant_on_episcopal_gaudi(capsys, pairs_dir):
    code, out, err = run(capsys, "match", "--pair", "e_gaudi", "--data", str(pairs_dir.parent), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["detector"] == "dog" and report["accuracy"] >= 0.85


@pytest.mark.data
def test_data_may_name_the_pairs_folder_or_come_from_the_environment(capsys, pairs_dir, monkeypatch):
    code, out, err = run(capsys, "match", "--pair", "notre_dame", "--data", str(pairs_dir), "--json")
    assert code == 0, err
    monkeypatch.setenv("CLASSICVISION_DATA", str(pairs_dir.parent))
    code, again, err = run(capsys, "match", "--pair", "notre_dame", "--json")
    assert code == 0, err
    assert json.loads(again)["accuracy"] == json.loads(out)["accuracy"]


def test_no_upsample_gives_fewer_points_on_the_dog_detector(capsys):
    reports = {}
    for flag in ("--upsample", "--no-upsample"):
        code, out, err = run(capsys, "match", flag, "--json")
        assert code == 0, err
        reports[flag] = json.loads(out)
    assert reports["--no-upsample"]["n_points1"] < reports["--upsample"]["n_points1"] / 2
    assert reports["--no-upsample"]["accuracy"] >= 0.9


def test_upsample_flag_needs_the_dog_detector(capsys):
    code, out, err = run(capsys, "match", "--detector", "harris", "--no-upsample")
    assert code == 1
    assert err.count("\n") == 1 and "--detector dog only" in err


def test_an_unknown_picture_format_is_refused_before_any_work(capsys, monkeypatch, tmp_path):
    from classicvision.matching import pipeline

    def never(*args, **kwargs):
        raise AssertionError("matching ran before the --out check")

    monkeypatch.setattr(pipeline, "match_images", never)
    code, out, err = run(capsys, "match", "--out", str(tmp_path / "m.xyz"))
    assert code == 1 and err.count("\n") == 1 and "unknown extension '.xyz'" in err
