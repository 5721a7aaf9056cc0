"""Does dask-ml earn its place? Its ``KMeans`` on the cluster against ``learn_codebook`` on the client, for the codebook.

``run_bovw_dask`` learns the codebook on the client: k-means (k-means++ seeding, at most
``--max-iter`` Lloyd iterations) of the reservoir sample, 100,000 descriptors x 128 (51 MB),
1000 words. The candidate: ``dask_ml.cluster.KMeans`` (k-means|| seeding, then Lloyd: its only
algorithm, no mini-batch mode) on the same sample as a dask array chunked over the workers of a
local cluster (``--workers``, one thread each, as ``run_bovw_dask`` runs them), with its default
seeding (``oversampling_factor=2``) and with ``oversampling_factor=n_words`` (``--variants``). Both get the same
iteration limit and seed; both are scored by the same float64 k-means inertia
(``bench_codebook.inertia``). The sample is ``bench_codebook.sample``: dense SIFT (step 8,
size 16) of ``--n-images`` random 15-Scene training images.

dask-ml is not a dependency of classicvision; install it to run this (``pip install dask-ml``).

Timing: one fit each (``_timing.measure``, ``repeat=--repeat``, no warm-up; best time), ours
first; the cluster is started before and not timed.

Run: ``python benchmarks/bench_dask_kmeans.py [--n-words 1000] [--sample 100000] [--max-iter 20]
[--n-images 150] [--workers 2] [--variants default,oversampled] [--repeat 1] [--out benchmarks/results]``; writes
``dask_kmeans.md`` and ``dask_kmeans.json``. Quick check: ``--n-words 20 --sample 5000 --n-images 5
--out /tmp/bench``.
"""

from __future__ import annotations

import argparse

from _timing import add_out_argument, machine_info, machine_line, measure, write_results
from bench_codebook import inertia, sample
from classicvision.distributed.cluster import connect
from classicvision.recognition.codebook import learn_codebook


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-words", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=100_000, help="descriptors clustered")
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--n-images", type=int, default=150, help="15-Scene images sampled (0: random vectors)")
    parser.add_argument("--workers", type=int, default=2, help="local cluster workers for dask-ml")
    parser.add_argument("--variants", default="default,oversampled",
                        help="dask-ml seedings: default (oversampling_factor=2), oversampled (= n_words)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="data folder holding scene15/ (default: the shared data)")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    try:
        import dask
        import dask.array as da
        import dask_ml
        from dask_ml.cluster import KMeans
        from distributed import wait
    except ImportError:
        parser.error("this comparison needs dask-ml: pip install dask-ml")
    data, source = sample(args.data, args.sample, args.n_images, args.seed)
    k, it, seed = args.n_words, args.max_iter, args.seed
    ours = measure(lambda: learn_codebook(data, k, max_iter=it, random_state=seed), args.repeat, warmup=0)
    fits = {}
    with connect(f"local:{args.workers}") as client:
        client.wait_for_workers(args.workers, timeout=120)
        chunks = -(-len(data) // (2 * args.workers))
        array = client.persist(da.from_array(data, chunks=(chunks, data.shape[1])))
        wait(array)
        client.rebalance()  # the chunks spread over the workers before the clock starts
        variants = [v.strip() for v in args.variants.split(",") if v.strip()]
        for name, oversampling in (("default", 2), ("oversampled", k)):
            if name not in variants:
                continue

            def fit(oversampling=oversampling):
                with dask.config.set(scheduler=client):
                    return KMeans(n_clusters=k, init="k-means||", oversampling_factor=oversampling, max_iter=it,
                                  random_state=seed).fit(array)

            fits[name] = measure(fit, args.repeat, warmup=0)
    info = machine_info()
    result = {
        "source": source, "n_descriptors": int(len(data)), "n_words": k, "max_iter": it, "seed": seed,
        "workers": args.workers, "dask_ml_version": dask_ml.__version__, "chunks": chunks,
        "learn_codebook_seconds": ours.best, "inertia_ours": inertia(data, ours.result), "times_ours": ours.times,
        "dask_ml": {name: {"oversampling_factor": 2 if name == "default" else k, "seconds": t.best,
                           "n_iter": int(getattr(t.result, "n_iter_", -1)),
                           "inertia": inertia(data, t.result.cluster_centers_), "times": t.times}
                    for name, t in fits.items()},
        "machine": info,
    }
    lines = ["# Codebook on the cluster: dask-ml KMeans vs learn_codebook", "",
             f"Command: `python benchmarks/bench_dask_kmeans.py --n-words {k} --sample {args.sample} --max-iter {it} "
             f"--n-images {args.n_images} --workers {args.workers} --variants {args.variants} --repeat {args.repeat}`. Sample: {len(data)} x "
             f"{data.shape[1]} {source}; at most {it} Lloyd iterations, seed {seed}; best of {args.repeat}. dask-ml "
             f"{dask_ml.__version__} on {args.workers} workers (one thread each), the sample in "
             f"{-(-len(data) // chunks)} chunks spread over them.", machine_line(info), "",
             "| method | seconds | inertia | inertia / ours | note |", "|---|---:|---:|---:|---|",
             f"| `learn_codebook` on the client (k-means++, Lloyd) | {ours.best:.1f} | {result['inertia_ours']:.6g} "
             "| 1 | what `run_bovw_dask` runs |"]
    for name, r in result["dask_ml"].items():
        lines.append(f"| dask-ml `KMeans` (k-means\\|\\|, oversampling_factor={r['oversampling_factor']}, Lloyd) | "
                     f"{r['seconds']:.1f} | {r['inertia']:.6g} | {r['inertia'] / result['inertia_ours']:.4f} | "
                     f"{r['n_iter']} iterations{'; the default' if name == 'default' else ''} |")
    lines += ["", "dask-ml's k-means|| draws about `oversampling_factor` candidates per round over about "
              "log(cost) rounds; with its default of 2, far fewer than `n_words` candidates are found and it fills "
              "the rest with random points (it logs 'Found fewer than K clusters in init'). Inertia above 1 x "
              "ours: ours is the tighter codebook."]
    text = "\n".join(lines) + "\n"
    write_results(args.out, "dask_kmeans", text, result)
    print(text)
    return result


if __name__ == "__main__":
    main()
