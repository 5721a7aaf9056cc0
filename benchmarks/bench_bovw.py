"""Codebook speed and quality: classicvision.learn_codebook vs sklearn.cluster.KMeans.

Both run k-means++ seeding + at most ``max_iter`` Lloyd iterations (``n_init=1``) on the same
descriptor sample, and are scored by the k-means inertia (sum of squared distances to the
nearest centre, computed the same way for both). Also times :func:`assign_words` against
sklearn's ``KMeans.predict``. The sample is dense SIFT from 15-Scene training images when the
data folder is found, else random unit-norm 128-D vectors.

Run: ``python benchmarks/bench_bovw.py [--n-words 200] [--sample 100000] [--max-iter 20] [--json]``.
Timings on a shared machine are noisy: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from sklearn.cluster import KMeans

from classicvision.codebook import assign_words, inertia, learn_codebook
from classicvision.datasets import find_data_dir, load_image_folder


def _sample(n: int, seed: int) -> tuple[np.ndarray, str]:
    root = find_data_dir()
    if root is not None and (root / "scene15" / "train").is_dir():
        from classicvision.bovw import DenseSIFT

        paths, _, _ = load_image_folder(root / "scene15", "train")
        rng = np.random.default_rng(seed)
        chosen = [paths[i] for i in rng.choice(len(paths), size=min(150, len(paths)), replace=False)]
        descriptors = np.concatenate([f.descriptors for f in DenseSIFT(step=8).transform(chosen)])
        take = rng.choice(len(descriptors), size=min(n, len(descriptors)), replace=False)
        return descriptors[take], f"dense SIFT of {len(chosen)} 15-Scene training images"
    rng = np.random.default_rng(seed)
    data = np.abs(rng.normal(size=(n, 128))).astype(np.float32)
    return data / np.linalg.norm(data, axis=1, keepdims=True), "random unit-norm vectors"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-words", type=int, default=200)
    parser.add_argument("--sample", type=int, default=100_000)
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    data, source = _sample(args.sample, args.seed)

    t = time.perf_counter()
    ours = learn_codebook(data, args.n_words, max_iter=args.max_iter, random_state=args.seed)
    ours_s = time.perf_counter() - t
    t = time.perf_counter()
    km = KMeans(args.n_words, init="k-means++", n_init=1, max_iter=args.max_iter,
                random_state=args.seed).fit(data)
    sk_s = time.perf_counter() - t
    t = time.perf_counter()
    words = assign_words(data, ours)
    assign_s = time.perf_counter() - t
    t = time.perf_counter()
    km.predict(data)
    predict_s = time.perf_counter() - t
    result = {
        "source": source, "n_descriptors": int(len(data)), "dim": int(data.shape[1]), "n_words": args.n_words,
        "max_iter": args.max_iter, "learn_codebook_seconds": ours_s, "sklearn_kmeans_seconds": sk_s,
        "speed_ratio_sklearn_over_ours": sk_s / ours_s, "sklearn_n_iter": int(km.n_iter_),
        "inertia_ours": inertia(data, ours), "inertia_sklearn": inertia(data, km.cluster_centers_.astype(np.float32)),
        "assign_words_seconds": assign_s, "sklearn_predict_seconds": predict_s,
        "words_used": int(np.unique(words).size), "load_average": [round(v, 2) for v in os.getloadavg()],
    }
    result["inertia_ratio_ours_over_sklearn"] = result["inertia_ours"] / result["inertia_sklearn"]
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:34s} {value:.4g}" if isinstance(value, float) else f"{key:34s} {value}")
    return result


if __name__ == "__main__":
    main()
