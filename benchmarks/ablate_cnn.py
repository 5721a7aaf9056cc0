"""Ablation of the CNN's choices on a validation split cut from 15-Scene *train* (the test split is never read).

Cuts a stratified validation split (``--val-fraction`` of each class, ``--seed``) from the 1500
training images, then trains one :class:`~classicvision.recognition.cnn.CNNClassifier` per
variant on the rest, each with the same time budget (``--budget`` seconds of ``fit``: the epochs
are chosen after the second epoch from the measured throughput, see the classifier's
``max_seconds``), and scores it on the validation split. A variant is the ``bench cnn`` defaults
(:data:`classicvision.experiments.cnn.CNN_DEFAULTS`) with one thing removed or changed. The
test-time-augmentation variants only change prediction, so they reuse the default's network.

Writes ``cnn_ablation.md`` and ``cnn_ablation.json`` (``--name``) into ``--out`` after every variant (so an
interrupted run keeps what it measured); rows of an earlier run with the same budget, seed and
split are kept unless re-measured, so variants can be run in separate calls.

    python benchmarks/ablate_cnn.py --budget 300                       # the default set of variants
    python benchmarks/ablate_cnn.py --budget 300 --variants default,wide,adamw
    python benchmarks/ablate_cnn.py --list

With 20 images per class in the validation split (300 images), one binomial standard error of an
accuracy near 80% is about 2.3 points: smaller differences are noise.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import _timing

# name -> (what changes from the default, CNNClassifier parameters changed, evaluation only)
VARIANTS = {
    "default": ("nothing: the `bench cnn` defaults", {}, False),
    "no-tta": ("prediction from the centred crop only (no mirror); the default's network", {"tta": "none"}, True),
    "ten-crop-tta": ("+ ten test-time views (centre and four corners, and their mirrors); the default's network",
                     {"tta": "crops"}, True),
    "test-128": ("prediction at 128 px (stored at 144, centred 128 crop) instead of 112; the default's network",
                 {"test_size": 128}, True),
    "test-144": ("prediction at 144 px instead of 112; the default's network", {"test_size": 144}, True),
    "test-72": ("prediction at 72 px (for a 64 px network)", {"test_size": 72}, True),
    "test-80": ("prediction at 80 px (for a 64 px network)", {"test_size": 80}, True),
    "simple-net": ("the old SimpleNet (conv-BN-ReLU-maxpool blocks, no residual connections) instead of the ResNet",
                   {"architecture": "simple"}, False),
    "flip-only": ("augmentation: mirror only (no random resized crop, rotation, brightness/contrast)",
                  {"crop_scale": None, "rotation": 0.0, "jitter": 0.0}, False),
    "no-label-smoothing": ("no label smoothing (plain cross-entropy; mixup is off in the default too)",
                           {"label_smoothing": 0.0}, False),
    "constant-lr": ("constant learning rate: no warm-up, no cosine decay", {"schedule": "constant",
                                                                            "warmup_epochs": 0}, False),
    "64px": ("64 px inputs instead of 112", {"image_size": 64}, False),
    "mixup": ("+ mixup (alpha 0.2) on top of label smoothing", {"mixup": 0.2}, False),
    # more candidates, not in the default set
    "96px": ("96 px inputs instead of 112", {"image_size": 96}, False),
    "128px": ("128 px inputs instead of 112", {"image_size": 128}, False),
    "wide": ("wider stages: 48-96-192-384 instead of 32-64-128-256", {"channels": (48, 96, 192, 384)}, False),
    "two-blocks": ("two residual blocks per stage instead of one", {"blocks": 2}, False),
    "adamw": ("AdamW (lr 3e-3, weight decay 0.05) instead of SGD with Nesterov momentum",
              {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.05}, False),
    "no-rotation": ("no random rotation", {"rotation": 0.0}, False),
    "batch-32": ("batches of 32 instead of 64 (twice the optimizer steps per epoch, same peak lr)",
                 {"batch_size": 32}, False),
    # after the first set (64 px won by running 100 epochs in the budget): the epochs left to the budget
    "64px-long": ("64 px inputs, and up to 400 epochs (the budget decides)", {"image_size": 64, "epochs": 400},
                  False),
    "80px-long": ("80 px inputs, up to 400 epochs", {"image_size": 80, "epochs": 400}, False),
    "64px-long-simple": ("64 px, up to 400 epochs, the SimpleNet", {"image_size": 64, "epochs": 400,
                                                                   "architecture": "simple"}, False),
    "64px-long-mild": ("64 px, up to 400 epochs, crops of 50-100% of the area, no rotation",
                       {"image_size": 64, "epochs": 400, "crop_scale": (0.5, 1.0), "rotation": 0.0}, False),
    # after the third: bfloat16 training arithmetic (0.6x the epoch time on AVX-512 BF16) buys epochs or pixels
    "bf16": ("bfloat16 training arithmetic (autocast), 64 px, up to 400 epochs", {"precision": "bfloat16"}, False),
    "80px-bf16": ("bfloat16, 80 px inputs, up to 400 epochs", {"precision": "bfloat16", "image_size": 80}, False),
    "48px-bf16": ("bfloat16, 48 px inputs, up to 400 epochs", {"precision": "bfloat16", "image_size": 48}, False),
    "bf16-batch128": ("bfloat16, batches of 128 with peak lr 0.1 (half the optimizer steps)",
                      {"precision": "bfloat16", "batch_size": 128, "lr": 0.1}, False),
    "96px-bf16": ("bfloat16, 96 px inputs, up to 400 epochs", {"precision": "bfloat16", "image_size": 96}, False),
    "mild-crops": ("random resized crops of 50-100% of the area instead of 25-100%", {"crop_scale": (0.5, 1.0)},
                   False),
}
DEFAULT_SET = ("default", "no-tta", "ten-crop-tta", "test-128", "test-144", "simple-net", "flip-only", "no-label-smoothing", "constant-lr",
               "64px", "mixup")


def _split(data: Path, fraction: float, seed: int):
    """Training images of ``data/train`` only, cut into (fit images, fit labels, val images, val labels, names)."""
    from sklearn.model_selection import train_test_split

    from classicvision.datasets import read_images
    from classicvision.experiments.scene import list_split

    paths, labels, names = list_split(data, "train")
    images, kept, errors = read_images(paths)
    labels = labels[kept]
    fit_idx, val_idx = train_test_split(np.arange(len(images)), test_size=fraction, stratify=labels,
                                        random_state=seed)
    take = lambda idx: [images[i] for i in idx]  # noqa: E731
    return take(fit_idx), labels[fit_idx], take(val_idx), labels[val_idx], names, errors


def _score(clf, images, labels) -> dict:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    start = time.perf_counter()
    predicted = clf.predict(images)
    seconds = time.perf_counter() - start
    return {"val_mean_per_class_accuracy": float(balanced_accuracy_score(labels, predicted)),
            "val_accuracy": float(accuracy_score(labels, predicted)),
            "predict_ms_per_image": 1e3 * seconds / max(len(images), 1)}


def _markdown(rows: list, protocol: dict, info: dict, defaults: dict) -> str:
    default = next((r for r in rows if r["variant"] == "default"), None)
    lines = ["# CNN ablation on a validation split of 15-Scene train", "",
             f"{protocol['n_fit']} training images fitted, {protocol['n_val']} held out for validation "
             f"({protocol['val_fraction']:.0%} of each class, seed {protocol['seed']}); the test split was not read. "
             f"Each trained variant had {protocol['budget']:.0f} s of training (epochs chosen from the measured "
             f"throughput after the second), {protocol['n_threads']} torch thread(s) on {protocol['device']}. "
             "Variants marked * only change prediction and reuse the default's network. One binomial standard "
             f"error on {protocol['n_val']} images is about "
             f"{100 * np.sqrt(0.8 * 0.2 / max(protocol['n_val'], 1)):.1f} points near 80%: smaller differences "
             "are noise (one seed).", "",
             f"{_timing.machine_line(info)} torch {info['torch']}.", "",
             "The default (the `bench cnn` defaults when these rows were measured): "
             + ", ".join(f"{k}={v}" for k, v in defaults.items()
                         if k not in ("n_threads", "device", "random_state", "max_seconds", "val_fraction")) + ".", "",
             "| variant | what changes from the default | validation mean per-class accuracy | vs default (points; BASE+X: vs BASE) "
             "| validation accuracy | epochs (planned) | training s | prediction ms/image | load |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ref = default if "+" not in r["variant"] else next(
            (b for b in rows if b["variant"] == r["variant"].split("+")[0]), None)   # BASE+VARIANT: against BASE
        delta = "" if ref is None or r is default else \
            f"{100 * (r['val_mean_per_class_accuracy'] - ref['val_mean_per_class_accuracy']):+.1f}"
        star = "*" if r["evaluation_only"] else ""
        stopped = ", stopped by the budget" if r.get("stopped_early") else ""
        lines.append(f"| {r['variant']}{star} | {r['change']} | {r['val_mean_per_class_accuracy']:.1%} | {delta} | "
                     f"{r['val_accuracy']:.1%} | {r['epochs']} ({r['epochs_planned']}{stopped}) | "
                     f"{r['train_seconds']:.0f} | {r['predict_ms_per_image']:.1f} | {r['load_average'][0]:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="15-Scene folder (default: the data folder's scene15)")
    parser.add_argument("--budget", type=float, default=300.0, help="training seconds per variant (default 300)")
    parser.add_argument("--variants", default=",".join(DEFAULT_SET), help="comma-separated (see --list)")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="most epochs per variant (default: the bench's)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on the shared 2-core machine one thread ran twice as fast)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--base", default="default",
                        help="the trained variant whose network the evaluation-only variants (*) reuse; rows are "
                             "then named BASE+VARIANT (default: default)")
    parser.add_argument("--name", default="cnn_ablation",
                        help="results file stem: NAME.md and NAME.json in --out (default cnn_ablation); a set "
                             "measured against other defaults goes to its own files")
    parser.add_argument("--list", action="store_true", help="list the variants and exit")
    _timing.add_out_argument(parser)
    args = parser.parse_args(argv)
    if args.list:
        for name, (change, options, evaluation) in VARIANTS.items():
            print(f"{name:20s} {'*' if evaluation else ' '} {change}  {options}")
        return 0
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    if args.base not in VARIANTS or VARIANTS[args.base][2]:
        parser.error(f"--base must be a trained variant, got {args.base!r}")
    if any(VARIANTS[n][2] for n in names):  # the evaluation-only variants need the base's network, first
        names = [args.base] + [n for n in names if n != args.base]

    import torch

    from classicvision.datasets import scene15_dir
    from classicvision.experiments.cnn import CNN_DEFAULTS
    from classicvision.recognition.cnn import CNNClassifier, resolve_device

    device = resolve_device(args.device)
    fit_images, fit_labels, val_images, val_labels, class_names, errors = _split(
        scene15_dir(args.data), args.val_fraction, args.seed)
    protocol = {"budget": args.budget, "val_fraction": args.val_fraction, "seed": args.seed, "n_fit": len(fit_images),
                "n_val": len(val_images), "n_threads": args.threads, "device": device}
    path = Path(args.out) / f"{args.name}.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    info = {**_timing.machine_info(), "torch": torch.__version__}
    base = {**CNN_DEFAULTS, "val_fraction": 0.0, "n_threads": args.threads, "device": device,
            "random_state": args.seed, "max_seconds": args.budget}
    if args.epochs is not None:
        base["epochs"] = args.epochs
    defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in base.items()}
    same = previous.get("protocol") == protocol and previous.get("defaults") == defaults
    rows = previous.get("rows", []) if same else []   # rows measured against other defaults are not kept
    base_clf = base_record = None
    for name in names:
        change, options, evaluation = VARIANTS[name]
        label = f"{args.base}+{name}" if evaluation and args.base != "default" else name
        if evaluation:
            clf, record = base_clf.set_params(**options), dict(base_record)
        else:
            clf = CNNClassifier(**{**base, **options})
            start = time.perf_counter()
            clf.fit(fit_images, fit_labels)
            record = {"train_seconds": time.perf_counter() - start, "epochs": len(clf.history_["loss"]),
                      "epochs_planned": clf.epochs_, "stopped_early": clf.stopped_early_,
                      "epoch_seconds": clf.history_["seconds"]}
            if name == args.base:
                base_clf, base_record = clf, dict(record)
        record.update(_score(clf, val_images, val_labels))
        if evaluation:
            base_clf.set_params(**{key: VARIANTS[args.base][1].get(key, base[key]) for key in options})
            change = f"{change.split(';')[0]}; the {args.base} network" if args.base != "default" else change
        row = {"variant": label, "change": change, "evaluation_only": evaluation,
               "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}, **record,
               "load_average": [round(v, 2) for v in os.getloadavg()], "date": time.strftime("%Y-%m-%d %H:%M")}
        rows = [r for r in rows if r["variant"] != label] + [row]
        order = list(VARIANTS)
        rows.sort(key=lambda r: [order.index(v) for v in r["variant"].split("+")])
        print(f"{label}: validation mean per-class {row['val_mean_per_class_accuracy']:.3f}, "
              f"{row['epochs']} epochs, {row['train_seconds']:.0f} s", flush=True)
        _timing.write_results(args.out, args.name, _markdown(rows, protocol, info, defaults),
                              {"machine": info, "protocol": protocol, "class_names": class_names,
                               "skipped": errors,
                               "defaults": defaults,
                               "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
