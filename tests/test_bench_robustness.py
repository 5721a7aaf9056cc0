"""``bench`` under hostile conditions: unwritable folders, late failures, killed runs, degenerate
datasets. Small generated folders; the kill tests start a real ``classicvision bench bovw``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from classicvision.experiments import scene
from classicvision.experiments.scene import check_training_classes, run_bovw, run_tiny_knn
from classicvision.experiments.workers import check_writable_folder, guard_worker

SMALL = {"n_words": 8, "rootsift": False, "levels": 1, "C": (1.0,), "cv": 2, "n_jobs": 1, "progress": False}


def _image(kind: int, seed: int, size: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    wave = np.sin((yy if kind == 0 else xx) * 0.8 + rng.uniform(0, 6)) if kind < 2 else rng.random((size, size))
    return (np.clip(0.5 + 0.4 * wave, 0, 1) * 255).astype(np.uint8)


def make_folder(root: Path, classes=("h", "v"), n_train=4, n_test=2, size=40) -> Path:
    for split, n in (("train", n_train), ("test", n_test)):
        for kind, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                cv2.imwrite(str(root / split / name / f"{i}.png"), _image(kind, 100 * (split == "test") + i, size))
    return root


# ----------------------------------------------------------------------------- folders and partial results
def _not_a_folder(tmp_path) -> Path:
    (tmp_path / "file.txt").write_text("x")
    return tmp_path / "file.txt" / "out"  # unwritable even for root


def test_unwritable_out_fails_at_once(tmp_path, monkeypatch):
    called = []
    monkeypatch.setattr(scene, "list_split", lambda *a, **k: called.append(1))
    for runner in (run_bovw, run_tiny_knn):
        with pytest.raises(ValueError, match=r"out must be a folder that can be written, got .*file.txt/out"):
            runner(tmp_path / "data", out=_not_a_folder(tmp_path), progress=False)
    assert called == []  # refused before listing the data
    with pytest.raises(ValueError, match="cache must be a folder"):
        check_writable_folder(_not_a_folder(tmp_path), "cache")


def test_unwritable_cache_runs_uncached_with_a_warning(tmp_path, caplog):
    data = make_folder(tmp_path / "data")
    result = run_bovw(data, out=tmp_path / "out", cache=_not_a_folder(tmp_path), **SMALL)
    assert result["cache"]["folder"] is None and result["n_test"] == 4
    assert any("cannot be written" in r.getMessage() and "without a cache" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "out" / "results.json").is_file()


def test_a_late_failure_keeps_the_finished_stages(tmp_path, monkeypatch):
    data = make_folder(tmp_path / "data")
    out = tmp_path / "out"

    def fail(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(scene, "scores", fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        run_bovw(data, out=out, cache=tmp_path / "cache", **SMALL)
    partial = json.loads((out / "partial.json").read_text())
    assert partial["complete"] is False and partial["method"] == "bovw"
    assert partial["finished"] == ["list", "features_train", "fit", "test"]
    assert partial["stages"]["fit"]["cv"]["C"] == 1.0 and partial["stages"]["test"]["done"] == 4
    assert len(partial["stages"]["test"]["y_pred"]) == 4
    assert not (out / "results.json").exists()
    monkeypatch.undo()
    run_bovw(data, out=out, cache=tmp_path / "cache", **SMALL)  # a finished run replaces it by results.json
    assert (out / "results.json").is_file() and not (out / "partial.json").exists()
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []


def test_stale_temporary_entries_are_removed_by_the_next_run(tmp_path):
    data = make_folder(tmp_path / "data")
    run_bovw(data, out=tmp_path / "out", cache=tmp_path / "cache", **SMALL)
    folder = next((tmp_path / "cache").glob("dsift-*"))
    stale = folder / "abc.npz.12345.tmp"  # what a killed worker leaves
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 60, time.time() - 60))
    run_bovw(data, out=tmp_path / "out", cache=tmp_path / "cache", **SMALL)
    assert not stale.exists()


# ----------------------------------------------------------------------------- degenerate datasets
def test_images_too_small_for_a_patch_are_skipped_and_reported(tmp_path):
    data = make_folder(tmp_path / "data")
    cv2.imwrite(str(data / "train" / "h" / "tiny.png"), np.zeros((4, 4), np.uint8))
    cv2.imwrite(str(data / "test" / "v" / "tiny.png"), np.zeros((4, 4), np.uint8))
    result = run_bovw(data, cache=False, **SMALL)
    assert result["n_train"] == 8 and result["n_test"] == 4
    tiny = [s for s in result["skipped"] if "tiny.png" in s]
    assert len(tiny) == 2 and all("no dense SIFT patch fits in 4x4 pixels" in s for s in tiny)


def test_all_images_too_small_is_refused(tmp_path):
    data = make_folder(tmp_path / "data", size=8)
    with pytest.raises(ValueError, match=r"no usable training image in .*train: all 8 files were skipped "
                                         r"\(first: .*no dense SIFT patch fits in 8x8 pixels"):
        run_bovw(data, cache=False, **SMALL)


def test_single_class_is_refused(tmp_path):
    data = make_folder(tmp_path / "data", classes=("only",))
    for runner, options in ((run_bovw, {**SMALL, "cache": False}), (run_tiny_knn, {"progress": False, "cv": 2})):
        with pytest.raises(ValueError, match=r"one class only \(only, 4 images\): classification needs at least 2"):
            runner(data, **options)


def test_class_without_training_images_warns_and_one_without_test_images_is_na(tmp_path):
    data = make_folder(tmp_path / "data", classes=("h", "v", "w"))
    for f in (data / "train" / "w").iterdir():
        f.unlink()
    for f in (data / "test" / "v").iterdir():
        f.unlink()
    result = run_bovw(data, cache=False, **SMALL)
    assert result["warnings"] == [f"class w has no usable training image in {data}/train: it can never be predicted"]
    assert result["per_class_accuracy"][1] == "n/a" and result["per_class_support"] == [2, 0, 2]
    assert result["per_class_accuracy"][2] == 0.0  # never predicted: its recall is 0, not hidden


def test_unreadable_test_folder_is_refused_in_one_line(tmp_path):
    data = make_folder(tmp_path / "data")
    for f in (data / "test").rglob("*.png"):
        f.write_bytes(b"not a png")
    for runner, options in ((run_bovw, {**SMALL, "cache": False}), (run_tiny_knn, {"progress": False, "cv": 2})):
        with pytest.raises(ValueError, match=r"no usable test image in .*test: all 4 files were skipped \(first: "):
            runner(data, **options)


def test_too_few_images_for_the_folds(tmp_path):
    data = make_folder(tmp_path / "data", n_train=2)
    with pytest.raises(ValueError, match="cross-validation with 3 folds needs a class with at least 3 training"):
        run_bovw(data, cache=False, **{**SMALL, "cv": 3})
    result = run_tiny_knn(data, progress=False, cv=2)  # k > the 2 images of a fold's training part: left out
    assert result["cv"]["k"] == 1 and "left out" in result["warnings"][0]


def test_check_training_classes_messages():
    assert check_training_classes([0, 1, 1, 0], ["a", "b"], "t", cv=2) == []
    assert check_training_classes([0, 0, 0, 1], ["a", "b"], "t", cv=3) == [
        "class b has 1 usable training images in t, fewer than the 3 cross-validation folds"]
    with pytest.raises(ValueError, match="no usable training image in t$"):
        check_training_classes([], ["a", "b"], "t")


# ----------------------------------------------------------------------------- killed runs
def _process_table() -> dict:
    """``{pid: (ppid, state)}`` of every process, from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            table[int(entry)] = (int(fields[1]), fields[0])
    return table


def _descendants(pid: int) -> set:
    table, found, todo = _process_table(), set(), [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _) in table.items():
            if ppid == parent and child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pids) -> set:
    table = _process_table()
    return {p for p in pids if p in table and table[p][1] != "Z"}


def test_guard_worker_is_a_no_op_in_the_main_process():
    guard_worker(os.getpid())  # must neither exit nor set a death signal here


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_bench_leaves_no_worker_behind(tmp_path, sig):
    data = make_folder(tmp_path / "data", classes=("h", "v", "w"), n_train=40, n_test=2, size=320)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    bench = subprocess.Popen([sys.executable, "-m", "classicvision", "bench", "bovw", "--data", str(data),
                              "--out", str(out), "--n-words", "8", "--levels", "1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    seen, deadline = set(), time.monotonic() + 120
    try:
        while time.monotonic() < deadline and bench.poll() is None:
            seen |= _descendants(bench.pid)
            finished = json.loads((out / "partial.json").read_text())["finished"] \
                if (out / "partial.json").is_file() else []
            if len(_alive(seen)) >= 1 and finished == ["list"]:  # workers up, training features under way
                time.sleep(0.5)
                seen |= _descendants(bench.pid)
                break
            time.sleep(0.05)
        assert bench.poll() is None, f"bench ended before it could be killed: {bench.stderr.read().decode()[-2000:]}"
        assert seen, "no worker process was started"
        bench.send_signal(sig)
        bench.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(seen) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _alive(seen) == set(), f"processes left behind after {sig.name}: {sorted(_alive(seen))}"
    finally:
        if bench.poll() is None:
            bench.kill()
        for pid in _alive(seen):  # only the processes this test started
            os.kill(pid, signal.SIGKILL)
        bench.stderr.close()
    assert json.loads((out / "partial.json").read_text())["finished"][0] == "list"


def test_dead_runs_temporaries_are_removed_from_out(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".results.json.{int(dead.stdout)}.tmp"
    mine = tmp_path / f".results.json.{os.getpid()}.tmp"
    stale.write_text("{")
    mine.write_text("{")
    check_writable_folder(tmp_path, "out")
    assert not stale.exists() and mine.exists()
