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


def test_files_with_ground_truth(capsys, tmp_path, warped_pair):
    image1, image2, H = warped_pair
    cv2.imwrite(str(tmp_path / "a.png"), np.round(image1 * 255).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.round(image2 * 255).astype(np.uint8))
    # Ground truth in the customary CSV form: a grid of points and their images under H.
    grid = np.stack(np.meshgrid(np.arange(60, 460, 40.0), np.arange(60, 460, 40.0)), -1).reshape(-1, 2)
    mapped = np.c_[grid, np.ones(len(grid))] @ H.T
    mapped = mapped[:, :2] / mapped[:, 2:]
    rows = "\n".join(",".join(f"{v:.4f}" for v in r) for r in np.c_[grid, mapped])
    (tmp_path / "gt.csv").write_text("x1,y1,x2,y2\n" + rows + "\n")
    code, out, err = run(capsys, "match", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--ground-truth",
                         str(tmp_path / "gt.csv"), "--scale", "1", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["accuracy"] is not None and "accuracy_25px" in report


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
def test_scale_invariant_detector_on_episcopal_gaudi(capsys, pairs_dir):
    code, out, err = run(capsys, "match", "--pair", "e_gaudi", "--data", str(pairs_dir.parent), "--detector", "dog",
                         "--json")
    assert code == 0, err
    assert json.loads(out)["accuracy"] >= 0.85


def test_verify_keeps_only_inliers(capsys):
    code, out, err = run(capsys, "match", "--detector", "dog", "--verify", "fundamental", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["n_inliers"] == report["n_matches"] > 0
    assert report["accuracy"] >= 0.95


def test_no_upsample_gives_fewer_points_on_the_dog_detector(capsys):
    reports = {}
    for flag in ("--upsample", "--no-upsample"):
        code, out, err = run(capsys, "match", "--detector", "dog", flag, "--json")
        assert code == 0, err
        reports[flag] = json.loads(out)
    assert reports["--no-upsample"]["n_points1"] < reports["--upsample"]["n_points1"] / 2
    assert reports["--no-upsample"]["accuracy"] >= 0.9


def test_upsample_flag_needs_the_dog_detector(capsys):
    code, out, err = run(capsys, "match", "--no-upsample")
    assert code == 1
    assert err.count("\n") == 1 and "--detector dog only" in err
