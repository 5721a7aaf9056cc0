"""Codebook speed and quality: classicvision ``learn_codebook`` vs ``sklearn.cluster.KMeans``.

Both run k-means++ seeding + at most ``--max-iter`` Lloyd iterations (``n_init=1``, the same
seed) on the same descriptor sample, and are scored by the k-means inertia (sum of squared
distances to the nearest centre), computed here the same way for both (float64, exact). Also
times :func:`~classicvision.recognition.codebook.assign_words` against ``KMeans.predict``. The
sample is dense SIFT (step 8, size 16) of ``--n-images`` random 15-Scene training images when
the data folder is found, else random unit-norm 128-D vectors.

Timing: a warm-up fit and assignment of each on a small slice (BLAS and thread pools started),
then ``--repeat`` rounds alternating between ours and scikit-learn, one call each per round
(:func:`_timing.interleaved` with ``rounds=repeat``, no warm-up); the best time is reported
(the JSON file has every time). Not ``classicvision bench bovw``, which runs the whole 15-Scene
bag-of-words benchmark.

Run: ``python benchmarks/bench_codebook.py [--n-words 200] [--sample 100000] [--max-iter 20]
[--n-images 150] [--repeat 3] [--data DIR] [--out benchmarks/results]``; writes ``codebook.md`` and
``codebook.json``. Quick check: ``--n-words 20 --sample 5000 --max-iter 5 --n-images 5 --repeat 1
--out /tmp/bench``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans

from _timing import add_out_argument, interleaved, machine_info, machine_line, write_results
from classicvision.datasets import find_data_dir, load_image_folder
from classicvision.recognition.codebook import assign_words, learn_codebook
from classicvision.recognition.transformers import DenseSIFT


def sample(data, n: int, n_images: int, seed: int) -> tuple[np.ndarray, str]:
    """``n`` descriptors (float32, unit norm) and a sentence saying where they come from."""
    root = Path(data) if data else find_data_dir()
    rng = np.random.default_rng(seed)
    if root is not None and (root / "scene15" / "train").is_dir() and n_images > 0:
        paths, _, _ = load_image_folder(root / "scene15", "train")
        chosen = [paths[i] for i in rng.choice(len(paths), size=min(n_images, len(paths)), replace=False)]
        descriptors = np.concatenate([f.descriptors for f in DenseSIFT(step=8).transform(chosen)])
        take = rng.choice(len(descriptors), size=min(n, len(descriptors)), replace=False)
        return descriptors[take], f"dense SIFT (step 8, size 16) of {len(chosen)} 15-Scene training images"
    vectors = np.abs(rng.normal(size=(n, 128))).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), "random unit-norm vectors"


def inertia(descriptors: np.ndarray, centres: np.ndarray, chunk: int = 8192) -> float:
    """Sum over descriptors of the squared distance to the nearest centre, in float64 (exact
    up to float64 rounding: the expansion is cancellation-safe at this precision for unit vectors)."""
    c = centres.astype(np.float64)
    c_sq = np.einsum("ij,ij->i", c, c)
    total = 0.0
    for begin in range(0, len(descriptors), chunk):
        d = descriptors[begin:begin + chunk].astype(np.float64)
        dist = np.einsum("ij,ij->i", d, d)[:, None] + c_sq[None, :] - 2.0 * d @ c.T
        total += float(np.maximum(dist.min(axis=1), 0.0).sum())
    return total


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-words", type=int, default=200)
    parser.add_argument("--sample", type=int, default=100_000, help="descriptors clustered")
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--n-images", type=int, default=150, help="15-Scene images sampled (0: random vectors)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls of each (1: quick check)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="data folder holding scene15/ (default: the shared data)")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    data, source = sample(args.data, args.sample, args.n_images, args.seed)
    k, it, seed = args.n_words, args.max_iter, args.seed

    def ours_fit(x=data):
        return learn_codebook(x, k, max_iter=it, random_state=seed)

    def sklearn_fit(x=data):
        return KMeans(k, init="k-means++", n_init=1, max_iter=it, random_state=seed).fit(x)

    small = data[: max(4 * k, min(len(data), 2000))]
    codebook, km = ours_fit(small), sklearn_fit(small)          # warm-up: BLAS and thread pools
    assign_words(small, codebook), km.predict(small)
    fits = interleaved({"ours": ours_fit, "sklearn": sklearn_fit}, args.repeat, rounds=args.repeat, warmup=0)
    codebook, km = fits["ours"].result, fits["sklearn"].result
    assigns = interleaved({"ours": lambda: assign_words(data, codebook), "sklearn": lambda: km.predict(data)},
                          args.repeat, rounds=args.repeat, warmup=0)
    words = assigns["ours"].result
    info = machine_info()
    result = {
        "source": source, "n_descriptors": int(len(data)), "dim": int(data.shape[1]), "n_words": k,
        "max_iter": it, "seed": seed, "repeat": args.repeat,
        "learn_codebook_seconds": fits["ours"].best, "sklearn_kmeans_seconds": fits["sklearn"].best,
        "speed_ratio_sklearn_over_ours": fits["sklearn"].best / fits["ours"].best,
        "sklearn_n_iter": int(km.n_iter_),
        "inertia_ours": inertia(data, codebook), "inertia_sklearn": inertia(data, km.cluster_centers_),
        "assign_words_seconds": assigns["ours"].best, "sklearn_predict_seconds": assigns["sklearn"].best,
        "assign_ratio_sklearn_over_ours": assigns["sklearn"].best / assigns["ours"].best,
        "words_used": int(np.unique(words).size),
        "times": {f"{what}_{name}": t.times for what, group in (("fit", fits), ("assign", assigns))
                  for name, t in group.items()},
        "machine": info,
    }
    result["inertia_ratio_ours_over_sklearn"] = result["inertia_ours"] / result["inertia_sklearn"]
    lines = ["# Codebook: classicvision learn_codebook vs scikit-learn KMeans", "",
             f"Command: `python benchmarks/bench_codebook.py --n-words {k} --sample {args.sample} --max-iter {it} "
             f"--n-images {args.n_images} --repeat {args.repeat}`. Sample: {len(data)} x {data.shape[1]} "
             f"{source}. k-means++ + at most {it} Lloyd iterations, n_init 1, seed {seed}; best of {args.repeat} "
             "calls alternating between the two (after a warm-up on a small slice).", machine_line(info), "",
             "| task | ours (s) | scikit-learn (s) | sklearn / ours | note |", "|---|---:|---:|---:|---|",
             f"| k-means, {k} words | {result['learn_codebook_seconds']:.3f} | {result['sklearn_kmeans_seconds']:.3f} "
             f"| {result['speed_ratio_sklearn_over_ours']:.2f} | sklearn stopped after {result['sklearn_n_iter']} "
             "iterations |",
             f"| nearest word of {len(data)} descriptors | {result['assign_words_seconds']:.4f} | "
             f"{result['sklearn_predict_seconds']:.4f} | {result['assign_ratio_sklearn_over_ours']:.2f} | "
             f"assign_words vs KMeans.predict; {result['words_used']} words used |", "",
             f"Inertia (float64, the same code for both): ours {result['inertia_ours']:.6g}, scikit-learn "
             f"{result['inertia_sklearn']:.6g}, ratio ours / sklearn {result['inertia_ratio_ours_over_sklearn']:.4f} "
             "(below 1: ours is the tighter clustering)."]
    text = "\n".join(lines) + "\n"
    write_results(args.out, "codebook", text, result)
    print(text)
    return result


if __name__ == "__main__":
    main()
