"""CNN training and prediction throughput on this machine, for choosing what fits a time budget.

For each candidate network (architecture, input size, widths, blocks) and torch thread count,
trains :class:`~classicvision.recognition.cnn.CNNClassifier` for ``--epochs`` epochs on the first
``--n-images`` 15-Scene training images (every augmentation of the default on, no held-out part)
and takes the *last* epoch's time (the first pays for memory and kernel set-up), then times one
pass of the centred view over the same images (``tta='none'``; ``'flip'`` costs 2 views, ``'crops'``
10). From those: the epochs of the 1500 training images that fit in ``--budget`` seconds, and
the seconds of the prediction and feature passes of a ``bench cnn`` run (2985 test images and
1500 training images, ``--tta`` views each).

Candidates run in the order given, each in its own short training; rows accumulate in the JSON
file (same candidate, threads and ``--label``: replaced), so the table can be built over several
short calls.

    python benchmarks/bench_cnn_throughput.py [--candidates resnet112,simple64] [--threads 1,2]
        [--n-images 320] [--epochs 2] [--budget 780] [--tta crops]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import _timing

# name -> CNNClassifier parameters
CANDIDATES = {
    "simple64": dict(architecture="simple", image_size=64, channels=(32, 64, 128, 256)),
    "resnet96": dict(image_size=96, channels=(32, 64, 128, 256)),
    "resnet112": dict(image_size=112, channels=(32, 64, 128, 256)),
    "resnet128": dict(image_size=128, channels=(32, 64, 128, 256)),
    "resnet96-wide": dict(image_size=96, channels=(48, 96, 192, 384)),
    "resnet112-wide": dict(image_size=112, channels=(48, 96, 192, 384)),
    "resnet112-2blocks": dict(image_size=112, channels=(32, 64, 128, 256), blocks=2),
}
N_TRAIN, N_TEST = 1500, 2985


def _images(data: Path, n: int):
    from classicvision.datasets import read_images
    from classicvision.experiments.scene import list_split

    paths, labels, _ = list_split(data, "train")
    order = np.random.default_rng(0).permutation(len(paths))[:n]  # every class, not the first one only
    images, kept, _ = read_images([paths[i] for i in order])
    return images, labels[order][kept]


def _measure(name: str, threads: int, images, labels, epochs: int, budget: float, tta_views: int) -> dict:
    from classicvision.recognition.cnn import CNNClassifier

    options = CANDIDATES[name]
    clocks = []  # (wall, CPU) at the end of each epoch: CPU seconds are less disturbed by other processes

    def tick(epoch, total, record):
        clocks.append((time.perf_counter(), time.process_time()))

    clf = CNNClassifier(**options, epochs=epochs, val_fraction=0, n_threads=threads, device="cpu", random_state=0,
                        progress=tick)
    clf.fit(images, labels)
    epoch_seconds = clf.history_["seconds"]
    train_rate = len(images) / epoch_seconds[-1]
    cpu = clocks[-1][1] - clocks[-2][1]
    clf.set_params(tta="none")
    start, start_cpu = time.perf_counter(), time.process_time()
    clf.predict_proba_and_features(images)
    predict_rate = len(images) / (time.perf_counter() - start)
    predict_cpu = (time.process_time() - start_cpu) / len(images)
    epoch_full = N_TRAIN / train_rate
    return {"candidate": name, "threads": threads, **{k: list(v) if isinstance(v, tuple) else v
                                                      for k, v in options.items()},
            "train_images_per_second": train_rate, "train_cpu_ms_per_image": 1e3 * cpu / len(images),
            "predict_cpu_ms_per_view": 1e3 * predict_cpu, "first_epoch_images_per_second": len(images) / epoch_seconds[0],
            "predict_views_per_second": predict_rate, "seconds_per_epoch_of_1500": epoch_full,
            "epochs_in_budget": int(budget // epoch_full),
            "predict_and_features_seconds": (N_TRAIN + N_TEST) * tta_views / predict_rate, "views": tta_views,
            "load_average": [round(v, 2) for v in os.getloadavg()]}


def _markdown(rows: list, info: dict, args) -> str:
    lines = ["# CNN throughput on 15-Scene images (training and prediction)", "",
             f"{_timing.machine_line(info)} torch {info['torch']}. Training: {args.n_images} training images, "
             f"{args.epochs} epochs per candidate, default augmentation, batch 64, the last epoch timed; "
             f"prediction: one pass of the centred view over the same images. Budget for the epoch "
             f"column: {args.budget:.0f} s of training on the 1500 images; the last column is the prediction "
             f"of the 2985 test images plus the features of the 1500 training images with {args.tta!r} "
             f"test-time views. Each row's load average is the one at its end (2 cores, shared).", "",
             "CPU ms are process CPU time (all threads) per image: less disturbed by other processes than "
             "the wall-clock rates, and on one thread the cost of a quiet core; the 'quiet core' columns "
             "divide the budget by them (one thread rows only).", "",
             "| candidate | threads | input | widths | blocks | train images/s | first epoch images/s "
             "| train CPU ms/image | predict views/s | predict CPU ms/view | s per epoch (1500) | epochs in budget "
             "| epochs in budget, quiet core | predict + features s | predict + features s, quiet core | load |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    def quiet(r, what):
        if r["threads"] != 1:
            return "n/a"
        if what == "epochs":
            return f"{int(args.budget // (N_TRAIN * r['train_cpu_ms_per_image'] / 1e3))}"
        return f"{(N_TRAIN + N_TEST) * r['predict_cpu_ms_per_view'] / 1e3 * r['views']:.0f}"

    for r in rows:
        label = f" ({r['label']})" if r.get("label") else ""
        lines.append(f"| {r['candidate']}{label} | {r['threads']} | {r['image_size']} | {'-'.join(map(str, r['channels']))} "
                     f"| {r.get('blocks', 1)} | {r['train_images_per_second']:.1f} | "
                     f"{r['first_epoch_images_per_second']:.1f} | {r['train_cpu_ms_per_image']:.1f} | "
                     f"{r['predict_views_per_second']:.0f} | {r['predict_cpu_ms_per_view']:.2f} | "
                     f"{r['seconds_per_epoch_of_1500']:.1f} | {r['epochs_in_budget']} | {quiet(r, 'epochs')} | "
                     f"{r['predict_and_features_seconds']:.0f} | {quiet(r, 'predict')} | {r['load_average'][0]:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="15-Scene folder (default: the data folder's scene15)")
    parser.add_argument("--candidates", default="resnet112,simple64", help=f"comma-separated, of {', '.join(CANDIDATES)}")
    parser.add_argument("--threads", default="2", help="comma-separated torch thread counts")
    parser.add_argument("--n-images", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=2, help="at least 2 (the last one is timed)")
    parser.add_argument("--budget", type=float, default=780.0, help="training seconds for the epochs column")
    parser.add_argument("--tta", default="crops", choices=("none", "flip", "crops"))
    parser.add_argument("--report-only", action="store_true", help="rewrite the .md from the .json, measure nothing")
    parser.add_argument("--label", default="", help="a note shown with the rows of this call (e.g. 'quiet machine')")
    _timing.add_out_argument(parser)
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error(f"--epochs must be at least 2, got {args.epochs}")

    import torch

    from classicvision.datasets import scene15_dir
    from classicvision.recognition.augment import TTA_VIEWS

    path = Path(args.out) / "cnn_throughput.json"
    previous = json.loads(path.read_text())["rows"] if path.is_file() else []
    if args.report_only:
        saved = json.loads(path.read_text())
        for row in saved["rows"]:
            row.setdefault("views", TTA_VIEWS[args.tta])
        _timing.write_results(args.out, "cnn_throughput", _markdown(saved["rows"], saved["machine"], args), saved)
        return 0
    images, labels = _images(scene15_dir(args.data), args.n_images)
    rows = []
    for name in args.candidates.split(","):
        for threads in (int(t) for t in args.threads.split(",")):
            row = _measure(name, threads, images, labels, args.epochs, args.budget, TTA_VIEWS[args.tta])
            print(f"{name} threads={threads}: train {row['train_images_per_second']:.1f} images/s, "
                  f"predict {row['predict_views_per_second']:.0f} views/s, load {row['load_average'][0]}", flush=True)
            rows.append({**row, "label": args.label})
    key = lambda r: (r["candidate"], r["threads"], r.get("label", ""))  # noqa: E731
    done = {key(r) for r in rows}
    rows = [r for r in previous if key(r) not in done] + rows
    info = {**_timing.machine_info(), "torch": torch.__version__}
    _timing.write_results(args.out, "cnn_throughput", _markdown(rows, info, args),
                          {"machine": info, "settings": vars(args) | {"out": str(args.out), "data": str(args.data)},
                           "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
