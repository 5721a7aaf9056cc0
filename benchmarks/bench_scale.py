"""Scaling the Dask scene pipeline: N generated images on 1 and 2 workers (``run_bovw_dask``, SGD classifier).

Training set: ``--n-images`` random crops and left-right flips of the 15-Scene training images
(:func:`classicvision.experiments.crops.write_crops`: side 60-100%, aspect 3/4 to 4/3, flip with
probability 1/2, seeded by ``--seed``), written as JPEG into a temporary folder outside the
repository (``--tmp``, default the system's) and deleted at the end, also on Ctrl-C or SIGTERM
(``--keep-images`` keeps the images and prints where; ``--images DIR`` reuses such a folder and
generates nothing). Test set: the real 15-Scene test split (2985 images, linked, not copied), or
with ``--n-test N`` N crops of it. The accuracy is reported, but the scaling is the point.

Each worker count of ``--workers`` runs the whole pipeline from nothing (extraction, reservoir
sample, codebook, encoding, SGD, prediction: the library's defaults, 1000 words, 3-level pyramid,
chi-squared map) on a new ``LocalCluster`` (one thread and one kernel thread per worker) with a
new output folder, removed after the run, so no partition is reused. Recorded per run:

* total and stage seconds (``run_bovw_dask``'s ``stage_seconds``) and the speed-up over the first
  worker count;
* the peak RSS of every worker process and of the client process (scheduler, nannies, client,
  codebook and SGD; its high-water mark is reset at the start of each run), from ``VmHWM``;
* the CPU seconds of the workers and of the client, the bytes the run stored (features and
  encodings), and stalls: a thread in every process wakes every 0.25 s and counts the gaps over
  2 s (the process was stopped or got no core that long; on a shared machine other jobs' timing
  runs may SIGSTOP niced processes). A run with stalls is not a timing.

Timing: one run per worker count, timed by :func:`_timing.measure` (``repeat=1``, no warm-up:
each run is minutes long); the kernels are compiled (or loaded) once in this process first, so
the workers find numba's cache warm. The machine line records the load average at the end.

Run: ``python benchmarks/bench_scale.py [--n-images 50000] [--workers 1,2] [--partition-size 32]
[--n-test 0] [--epochs 5] [--kernel chi2] [--seed 0] [--keep-images] [--images DIR] [--tmp DIR]
[--data DIR] [--out benchmarks/results]``; writes ``scale.md`` and ``scale.json``. Quick check:
``--n-images 300 --n-test 150 --out /tmp/bench``. Worker counts run in separate calls (each is
minutes to an hour long) are put into one table by ``--merge A/scale.json B/scale.json --out DIR``,
which runs nothing and refuses files of different setups.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from _timing import add_out_argument, machine_info, machine_line, measure, write_results
from classicvision.datasets import find_data_dir, load_image_folder
from classicvision.distributed.classifier import ALPHA
from classicvision.distributed.cluster import connect
from classicvision.distributed.scene import run_bovw_dask
from classicvision.distributed.tasks import encoder
from classicvision.experiments.crops import write_crops
from classicvision.recognition.codebook import learn_codebook
from classicvision.recognition.transformers import DenseSIFT

REPO = Path(__file__).resolve().parent.parent
# Stored per image (float16 descriptors + float32 encodings + JPEG): 240 KB measured on the crops,
# 330 KB on the full-size test images; the disk check asks for this, one and a half times over.
BYTES_PER_IMAGE = 330_000


# ----------------------------------------------------------------------------- what every process measures
def _peak_rss_bytes() -> int:
    """This process's resident high-water mark (VmHWM; ru_maxrss where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Monitor:
    """CPU seconds, peak RSS and stalls of the process it is started in (a daemon thread)."""

    def __init__(self, period: float = 0.25, stall: float = 2.0):
        self.period, self.stall = period, stall
        self.stalls: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="bench-scale-monitor")

    def start(self) -> Monitor:
        try:  # "5": reset the peak RSS to the current RSS (Linux >= 4.0)
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        self._cpu0 = _cpu_seconds()
        self._thread.start()
        return self

    def _loop(self):
        last = time.monotonic()
        while not self._stop.wait(self.period):
            now = time.monotonic()
            if now - last > self.stall:
                self.stalls.append(now - last - self.period)
            last = now

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {"pid": os.getpid(), "peak_rss_mb": _peak_rss_bytes() / 2**20,
                "cpu_seconds": _cpu_seconds() - self._cpu0, "stalls": len(self.stalls),
                "stalled_seconds": float(sum(self.stalls))}


def _start_worker_monitor(dask_worker):
    dask_worker.bench_scale_monitor = Monitor().start()


def _stop_worker_monitor(dask_worker):
    return dask_worker.bench_scale_monitor.stop()


# ----------------------------------------------------------------------------- data
def _folder_bytes(folder: Path) -> int:
    total = 0
    for base, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                pass
    return total


def _progress(label: str, total: int, quiet: bool):
    if quiet:
        return None
    from tqdm.auto import tqdm

    bar = tqdm(desc=label, total=total, unit="image", file=sys.stderr)

    def update(done, total):
        bar.update(done - bar.n)  # tqdm redraws at most every 0.1 s
        if done >= total:
            bar.close()
    return update


def make_images(source: Path, data: Path, n_images: int, n_test: int, seed: int, quiet: bool) -> dict:
    """``data/train`` (``n_images`` crops) and ``data/test`` (a link to the real test split, or crops)."""
    t = time.perf_counter()
    write_crops(source, data / "train", n_images, seed=seed, progress=_progress("crops (train)", n_images, quiet))
    if n_test > 0:
        write_crops(source, data / "test", n_test, split="test", seed=seed + 1,
                    progress=_progress("crops (test)", n_test, quiet))
        test = f"{n_test} crops of the 15-Scene test images (seed {seed + 1})"
    else:
        os.symlink(source / "test", data / "test", target_is_directory=True)
        test = "the 15-Scene test split (linked)"
    return {"generate_seconds": time.perf_counter() - t, "test_set": test,
            "jpeg_bytes": _folder_bytes(data / "train") + (_folder_bytes(data / "test") if n_test > 0 else 0)}


def warm_kernels(data: Path) -> float:
    """Compile or load every kernel of the pipeline once in this process (numba's cache, shared by the workers)."""
    t = time.perf_counter()
    paths, _, _ = load_image_folder(data, "train")
    features = DenseSIFT(step=8, sizes=(16,), rootsift=True).transform(paths[:1])
    codebook = learn_codebook(features[0].descriptors, 8, max_iter=2, random_state=0)
    encoder(codebook, 0.5, {"n_words": 8, "levels": 3, "encoding": "soft", "normalize": "l1"}).transform(features)
    return time.perf_counter() - t


# ----------------------------------------------------------------------------- one run
def run_once(data: Path, workdir: Path, n_workers: int, args) -> dict:
    """The whole pipeline on a new local cluster of ``n_workers``; its timings and memory."""
    out = workdir / f"run-{n_workers}-workers"
    shutil.rmtree(out, ignore_errors=True)
    try:
        with connect(f"local:{n_workers}") as client:
            client.wait_for_workers(n_workers, timeout=120)
            client.run(_start_worker_monitor)
            monitor = Monitor().start()
            timing = measure(lambda: run_bovw_dask(data, client=client, classifier="sgd", out=out,
                                                   partition_size=args.partition_size, kernels=(args.kernel,),
                                                   epochs=args.epochs, alpha=args.alpha, random_state=args.seed,
                                                   progress=not args.quiet), 1, warmup=0)
            client_stats = monitor.stop()
            workers = sorted(client.run(_stop_worker_monitor).values(), key=lambda w: w["pid"])
        stored = _folder_bytes(out / "dask")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    result = timing.result
    stages = result["stage_seconds"]
    return {
        "workers": n_workers, "n_train": result["n_train"], "n_test": result["n_test"],
        "seconds": timing.times[0], "runner_seconds": result["seconds"],
        "stage_seconds": {"extract": stages["features"], "sample": stages["sample"], "codebook": stages["codebook"],
                          "encode": stages["encode"], "classifier": stages["classifier"], "predict": stages["predict"],
                          "list": stages["list"]},
        "worker_seconds": result["worker_seconds"], "worker_processes": workers, "client_process": client_stats,
        "peak_rss_mb_per_worker": [w["peak_rss_mb"] for w in workers],
        "client_peak_rss_mb": client_stats["peak_rss_mb"],
        "worker_cpu_seconds": sum(w["cpu_seconds"] for w in workers), "client_cpu_seconds": client_stats["cpu_seconds"],
        "stalled_seconds": max([client_stats["stalled_seconds"]] + [w["stalled_seconds"] for w in workers]),
        "stored_bytes": stored, "accuracy": result["accuracy"],
        "mean_per_class_accuracy": result["mean_per_class_accuracy"], "cache": result["cache"],
        "skipped": len(result["skipped"]), "load_average_end": [round(v, 2) for v in os.getloadavg()],
    }


# ----------------------------------------------------------------------------- report
def markdown(runs: list, info: dict, setup: dict, command: str) -> str:
    first = runs[0]["seconds"]
    lines = ["# Scaling: the Dask scene pipeline on 1 and 2 workers", "",
             f"Command: `{command}`. Training set: {setup['n_images']} random crops and flips of the 15-Scene "
             f"training images (side 60-100%, aspect 3/4 to 4/3, seed {setup['seed']}; "
             f"{setup['jpeg_bytes'] / 2**20:.0f} MB of JPEG made in {setup['generate_seconds']:.0f} s, deleted "
             f"afterwards); test set: {setup['test_set']}. `run_bovw_dask(classifier=\"sgd\")` with the library's "
             f"defaults (dense SIFT step 8, size 16, RootSIFT; 100,000-descriptor reservoir sample; 1000 words, "
             f"soft assignment, 3-level pyramid; {setup['kernel']} map, SGD hinge alpha {setup['alpha']:g}, "
             f"{setup['epochs']} epochs), partitions of {setup['partition_size']} images, each worker count from "
             "nothing on a new local cluster (one thread per worker). One run each.", machine_line(info), "",
             "| workers | images (train + test) | extract (s) | sample (s) | codebook (s) | encode (s) | "
             "classifier (s) | predict (s) | total (s) | speed-up | peak RSS per worker (MB) | client peak RSS (MB) "
             "| CPU s (workers + client) | stalled (s) | accuracy (mean per class) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in runs:
        s = r["stage_seconds"]
        rss = ", ".join(f"{v:.0f}" for v in r["peak_rss_mb_per_worker"])
        lines.append(
            f"| {r['workers']} | {r['n_train']} + {r['n_test']} | {s['extract']:.1f} | {s['sample']:.1f} | "
            f"{s['codebook']:.1f} | {s['encode']:.1f} | {s['classifier']:.1f} | {s['predict']:.1f} | "
            f"{r['seconds']:.1f} | {first / r['seconds']:.2f} | {rss} | {r['client_peak_rss_mb']:.0f} | "
            f"{r['worker_cpu_seconds']:.0f} + {r['client_cpu_seconds']:.0f} | {r['stalled_seconds']:.0f} | "
            f"{100 * r['mean_per_class_accuracy']:.2f}% |")
    r = runs[-1]
    per_image = (r["worker_seconds"]["read_cpu"] + r["worker_seconds"]["dense_sift_cpu"]) / (r["n_train"] + r["n_test"])
    lines += ["", "Extract, encode and predict run on the workers; sample is small tasks plus the merge on the "
              "client; codebook and classifier run on the client alone, so they do not scale with the workers. "
              "Speed-up: the first row's total over each row's. Peak RSS: the high-water mark of each process "
              "(a worker holds one partition at a time). Stalled: the longest time any process of the run did "
              "not run at all (over 2 s gaps of a 0.25 s timer); a run with stalls measures the machine, not the "
              "code.", "",
              f"Last row: worker CPU per image, read + dense SIFT {1e3 * per_image:.1f} ms, encoding "
              f"{1e3 * r['worker_seconds']['encode_cpu'] / (r['n_train'] + r['n_test']):.1f} ms; stored "
              f"{r['stored_bytes'] / 2**20:.0f} MB ({r['stored_bytes'] / (r['n_train'] + r['n_test']) / 1e3:.0f} KB "
              "per image: float16 descriptors and float32 encodings), removed after the run."]
    return "\n".join(lines) + "\n"


def merge(paths, out) -> dict:
    """One results file from the runs of several ``scale.json`` files of the same setup."""
    import json

    results = [json.loads(Path(path).read_text()) for path in paths]
    keys = ("n_images", "seed", "partition_size", "epochs", "kernel", "alpha")
    for path, r in zip(paths, results):
        if any(r["setup"].get(k) != results[0]["setup"].get(k) for k in keys):
            raise SystemExit(f"{path}: a different setup ({', '.join(keys)}) from {paths[0]}")
    runs = sorted((run for r in results for run in r["runs"]), key=lambda run: run["workers"])
    for run in runs:
        run["speed_up"] = runs[0]["seconds"] / run["seconds"]
    setup = {**results[0]["setup"], "workers": [run["workers"] for run in runs]}
    dates = ", ".join(r["machine"]["date"] for r in results)
    info = {**results[-1]["machine"], "date": dates}
    command = "python benchmarks/bench_scale.py --merge " + " ".join(str(p) for p in paths) + \
        " (runs of: " + "; ".join(r.get("command", "?") for r in results) + ")"
    text = markdown(runs, info, setup, command)
    result = {"setup": setup, "runs": runs, "machine": info, "merged_from": [str(p) for p in paths],
              "per_worker_rss_bounded_note": results[0]["per_worker_rss_bounded_note"]}
    write_results(out, "scale", text, result)
    print(text)
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=50_000, help="training crops to generate")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts, run in this order")
    parser.add_argument("--partition-size", type=int, default=32, help="images per partition (task)")
    parser.add_argument("--n-test", type=int, default=0,
                        help="test crops to generate (0: the real 15-Scene test split, linked)")
    parser.add_argument("--epochs", type=int, default=5, help="SGD epochs (run_bovw_dask's default)")
    parser.add_argument("--kernel", default="chi2", choices=("chi2", "hellinger", "linear"),
                        help="feature map before the SGD (run_bovw_dask's default: chi2)")
    parser.add_argument("--alpha", type=float, default=ALPHA, help=f"SGD alpha (default {ALPHA:g}, the library's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-images", action="store_true", help="keep the generated images (path printed)")
    parser.add_argument("--images", type=Path, default=None,
                        help="a folder kept by --keep-images (train/, test/) to use instead of generating")
    parser.add_argument("--tmp", type=Path, default=None, help="where the temporary folder goes (outside the repo)")
    parser.add_argument("--data", default=None, help="data folder holding scene15/ (default: the shared data)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, metavar="JSON",
                        help="run nothing: write one table from the runs of earlier scale.json files (worker "
                             "counts measured in separate calls, same setup), ordered by worker count")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out)
    counts = [int(c) for c in args.workers.split(",") if c.strip()]
    if not counts or min(counts) < 1:
        parser.error(f"--workers must list positive worker counts, got {args.workers!r}")
    source = Path(args.data or find_data_dir() or "") / "scene15"
    if args.images is None and not (source / "train").is_dir():
        parser.error(f"no 15-Scene training folder at {source / 'train'}: pass --data DIR (the folder holding scene15/)")
    base = Path(args.tmp or tempfile.gettempdir()).resolve()
    if base == REPO or REPO in base.parents:
        parser.error(f"--tmp must be outside the repository, got {base}")
    base.mkdir(parents=True, exist_ok=True)
    need = int(1.5 * BYTES_PER_IMAGE * (args.n_images + (args.n_test or 2985)))
    if shutil.disk_usage(base).free < need:
        parser.error(f"{base} has {shutil.disk_usage(base).free / 2**30:.1f} GiB free, the run needs about "
                     f"{need / 2**30:.1f} GiB: pass --tmp DIR on a larger disk")

    def stop(signum, frame):  # SIGTERM / SIGHUP: unwind, so the finally below deletes the folder
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    workdir = Path(tempfile.mkdtemp(prefix="classicvision-scale-", dir=base))
    keep = None
    try:
        if args.images is None:
            data = workdir / "images"
            data.mkdir()
            setup = make_images(source, data, args.n_images, args.n_test, args.seed, args.quiet)
            keep = data if args.keep_images else None
        else:
            data = args.images.resolve()
            setup = {"generate_seconds": 0.0, "test_set": f"the test folder of {data}",
                     "jpeg_bytes": _folder_bytes(data / "train")}
            args.n_images = len(load_image_folder(data, "train")[0])
        setup.update({"n_images": args.n_images, "seed": args.seed, "partition_size": args.partition_size,
                      "epochs": args.epochs, "kernel": args.kernel, "alpha": args.alpha, "workers": counts,
                      "warm_seconds": warm_kernels(data)})
        runs = []
        for n in counts:
            runs.append(run_once(data, workdir, n, args))
            print(f"{n} workers: {runs[-1]['seconds']:.1f} s, peak RSS per worker "
                  f"{[round(v) for v in runs[-1]['peak_rss_mb_per_worker']]} MB", file=sys.stderr)
    finally:
        if keep is not None:
            kept = base / f"classicvision-scale-images-{os.getpid()}"
            shutil.move(str(keep), kept)
            print(f"images kept in {kept} (reuse with --images {kept}; delete it when done)", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
    info = machine_info()
    command = "python benchmarks/bench_scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(runs, info, setup, command.strip())
    for r in runs:
        r["speed_up"] = runs[0]["seconds"] / r["seconds"]
    result = {"setup": setup, "runs": runs, "machine": info, "command": command.strip(),
              "per_worker_rss_bounded_note": "peak RSS per worker process (VmHWM), one partition in memory at a time"}
    write_results(args.out, "scale", text, result)
    print(text)
    return result


if __name__ == "__main__":
    main()
