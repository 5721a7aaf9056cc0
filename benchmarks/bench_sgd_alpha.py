"""The SGD classifier's ``alpha``, chosen on validation splits of the 15-Scene training images (the test images are never read).

Encodings: dense SIFT (step 8, size 16, RootSIFT) and a bag of words (1000 words, soft assignment,
3-level pyramid, L1; the codebook by k-means on a 100,000-descriptor sample of the training
images, seed ``--seed``) of the 1500 training images: the settings of ``run_bovw_dask``. They
are computed once in this process and kept in ``--work`` (an ``.npz`` of 126 MB), so a
rerun with other alphas, kernels or splits only trains SGD. The codebook sees every training
image, the validation ones included (unsupervised, no labels), as in ``run_bovw``'s
cross-validation of ``C``.

Selection: ``--splits`` stratified splits of the training images (``StratifiedShuffleSplit``,
``--val-fraction`` held out, seed ``--seed``). For each split and kernel the feature map is
applied once to every row; for each alpha,
:func:`~classicvision.distributed.classifier.partial_fit_sgd` (the loop of ``fit_sgd``:
averaged hinge SGD, ``--epochs`` passes, batches in a new random order each epoch) trains on the
fitting rows cut into batches of ``--partition-size`` in a seeded random order (as
``run_bovw_dask`` partitions the shuffled training paths) and is scored on the held-out rows by
mean per-class accuracy. The choice: the best mean over splits; an alpha within one (binomial)
standard error of the best counts as tied, and the largest tied alpha (the strongest
regularization) is chosen.

Timing: none (one fit per alpha, split and kernel; the seconds of each fit are recorded).

Run: ``python benchmarks/bench_sgd_alpha.py [--alphas 1e-6,1e-5,1e-4,1e-3] [--kernels chi2,hellinger]
[--splits 1] [--val-fraction 0.2] [--epochs 5] [--partition-size 32] [--seed 0] [--work DIR]
[--data DIR] [--out benchmarks/results]``; writes ``sgd_alpha.md`` and ``sgd_alpha.json``. Quick
check: ``--alphas 1e-4 --kernels hellinger --n-train 150 --n-words 50 --work /tmp/alpha --out /tmp/bench``.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedShuffleSplit

from _timing import add_out_argument, machine_info, machine_line, write_results
from classicvision.datasets import find_data_dir, load_image_folder
from classicvision.distributed.classifier import ALPHA, partial_fit_sgd
from classicvision.experiments.reports import scores
from classicvision.experiments.scene import kernel_maps
from classicvision.recognition.encoding import BagOfWords
from classicvision.recognition.transformers import DenseSIFT


def encodings(data: Path, work: Path, seed: int, n_train: int | None,
              n_words: int = 1000) -> tuple[np.ndarray, np.ndarray, list, dict]:
    """``(X (n, 21000) float32, y (n,) int64, class names, info)`` of the training images, cached in ``work``."""
    paths, y, names = load_image_folder(data, "train")
    if n_train is not None:  # a quick check: a seeded subset
        keep = np.sort(np.random.default_rng(seed).permutation(len(paths))[:n_train])
        paths, y = [paths[i] for i in keep], y[keep]
    cache = work / f"encodings-{seed}-{len(paths)}-{n_words}.npz"
    if cache.is_file():
        stored = np.load(cache)
        return stored["X"], stored["y"], names, {"cached": str(cache), "seconds": 0.0}
    t = time.perf_counter()
    features = DenseSIFT(step=8, sizes=(16,), rootsift=True).transform(paths)
    features = [f._replace(descriptors=f.descriptors.astype(np.float16).astype(np.float32)) for f in features]
    bow = BagOfWords(n_words, levels=3, encoding="soft", normalize="l1", sample_size=100_000, random_state=seed)
    X = bow.fit(features).transform(features).astype(np.float32)
    work.mkdir(parents=True, exist_ok=True)
    np.savez(cache, X=X, y=y)
    return X, y, names, {"cached": str(cache), "seconds": time.perf_counter() - t}


def fit_and_score(Z, y, fit_rows, val_rows, n_classes, alpha, args) -> dict:
    """``partial_fit_sgd`` on ``Z[fit_rows]`` in shuffled batches; scores on ``Z[val_rows]``."""
    order = np.random.default_rng(args.seed).permutation(fit_rows)
    batches = [order[i:i + args.partition_size] for i in range(0, len(order), args.partition_size)]
    t = time.perf_counter()
    model = partial_fit_sgd(lambda p: (Z[batches[p]], y[batches[p]]), len(batches), n_classes, alpha=alpha,
                            epochs=args.epochs, random_state=args.seed)
    seconds = time.perf_counter() - t
    result = scores(y[val_rows], model.predict(Z[val_rows]), list(range(n_classes)))
    return {"mean_per_class_accuracy": float(result["mean_per_class_accuracy"]),
            "accuracy": float(result["accuracy"]), "seconds": seconds}


def choose(table: dict, alphas: list, n_scored: int) -> tuple[float, float, float]:
    """``(alpha, its mean, the standard error)``: the largest alpha within one standard error of the best mean.

    The standard error is the binomial one of the best mean over the ``n_scored`` held-out
    predictions of all splits, ``sqrt(p (1 - p) / n_scored)``: with one split there is no
    spread between splits to measure, and with a few it is a poor estimate.
    """
    means = {a: float(np.mean(table[a])) for a in alphas}
    best = means[max(alphas, key=lambda a: means[a])]
    se = math.sqrt(best * (1 - best) / n_scored)
    chosen = max(a for a in alphas if means[a] >= best - se)
    return chosen, means[chosen], se


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alphas", default="1e-6,1e-5,1e-4,1e-3")
    parser.add_argument("--kernels", default="chi2,hellinger", help="feature maps (the first is the default's)")
    parser.add_argument("--splits", type=int, default=1, help="stratified train/validation splits")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--partition-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=None, help="a seeded subset of the training images (quick check)")
    parser.add_argument("--n-words", type=int, default=1000, help="codebook size (quick check: fewer)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "classicvision-sgd-alpha",
                        help="where the training encodings are kept between runs")
    parser.add_argument("--data", default=None, help="data folder holding scene15/ (default: the shared data)")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    alphas = sorted(float(a) for a in args.alphas.split(","))
    kernels = [k.strip() for k in args.kernels.split(",") if k.strip()]
    data = Path(args.data or find_data_dir() or "") / "scene15"
    if not (data / "train").is_dir():
        parser.error(f"no 15-Scene training folder at {data / 'train'}: pass --data DIR")
    X, y, names, enc = encodings(data, args.work, args.seed, args.n_train, args.n_words)
    splitter = StratifiedShuffleSplit(args.splits, test_size=args.val_fraction, random_state=args.seed)
    splits = list(splitter.split(X, y))
    fits, table = [], {k: {a: [] for a in alphas} for k in kernels}
    for kernel in kernels:
        feature_map = kernel_maps()[kernel]
        Z = X if feature_map == "passthrough" else feature_map.fit(X[:1]).transform(X)  # stateless maps
        for s, (fit_rows, val_rows) in enumerate(splits):
            for alpha in alphas:
                r = fit_and_score(Z, y, fit_rows, val_rows, len(names), alpha, args)
                fits.append({"kernel": kernel, "split": s, "alpha": alpha, **r})
                table[kernel][alpha].append(r["mean_per_class_accuracy"])
                print(f"{kernel} split {s} alpha {alpha:g}: {r['mean_per_class_accuracy']:.4f} ({r['seconds']:.0f} s)")
        del Z
    chosen = {k: choose(table[k], alphas, sum(len(v) for _, v in splits)) for k in kernels}
    info = machine_info()
    n_val = len(splits[0][1])
    command = "python benchmarks/bench_sgd_alpha.py " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    lines = ["# SGD alpha on a validation split of the 15-Scene training images", "",
             f"Command: `{command.strip()}`. {len(X)} training images (the test images are never read), "
             f"{args.splits} stratified split(s) holding out {n_val} images ({args.val_fraction:g}); averaged hinge "
             f"SGD by `partial_fit_sgd`, {args.epochs} epochs over batches of {args.partition_size}; "
             f"encodings as `run_bovw_dask` ({args.n_words} words, soft, 3-level pyramid). Score: mean per-class accuracy "
             "on the held-out images.", machine_line(info), "",
             "| kernel | " + " | ".join(f"alpha {a:g}" for a in alphas) + " | chosen |",
             "|---|" + "---:|" * (len(alphas) + 1)]
    for k in kernels:
        cells = []
        for a in alphas:
            v = table[k][a]
            cells.append(f"{100 * np.mean(v):.2f}%" + (f" ± {100 * np.std(v, ddof=1) / math.sqrt(len(v)):.2f}"
                                                        if len(v) > 1 else ""))
        lines.append(f"| {k} | " + " | ".join(cells) + f" | {chosen[k][0]:g} |")
    seconds = {k: float(np.mean([f["seconds"] for f in fits if f["kernel"] == k])) for k in kernels}
    lines += ["", "Chosen: the largest alpha whose mean is within one standard error of the best (binomial, over "
              "the " + f"{n_val * args.splits} held-out predictions: "
              + ", ".join(f"{k} {100 * chosen[k][2]:.1f} points" for k in kernels) + "). Seconds per fit: "
              + ", ".join(f"{k} {seconds[k]:.1f}" for k in kernels)
              + f"; the library's default is alpha = {ALPHA:g}."]
    text = "\n".join(lines) + "\n"
    result = {"alphas": alphas, "kernels": kernels, "fits": fits, "chosen": {k: chosen[k][0] for k in kernels},
              "standard_error": {k: chosen[k][2] for k in kernels},
              "n_train": int(len(X)), "n_validation": n_val, "splits": args.splits, "epochs": args.epochs,
              "partition_size": args.partition_size, "seed": args.seed, "encodings": enc, "default_alpha": ALPHA,
              "machine": info}
    write_results(args.out, "sgd_alpha", text, result)
    print(text)
    return result


if __name__ == "__main__":
    main()
