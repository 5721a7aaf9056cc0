"""The 15-Scene benchmarks on a Dask cluster: bag of words (:func:`run_bovw_dask`) and Fisher vectors (:func:`run_fisher_dask`).

The stages of :func:`classicvision.experiments.scene.run_bovw`, as tasks over partitions of image
paths (:mod:`classicvision.distributed.tasks`), results under ``<out>/dask/``:

1. list the images; cut train and test into partitions of ``partition_size`` paths (for the
   ``"sgd"`` classifier the training paths are shuffled first, seeded, so that every partition
   mixes the classes: ``partial_fit`` on single-class partitions does not learn);
2. **extract** (workers): dense SIFT of every partition, stored as ``.npy`` with the partition's
   descriptor reservoir keys (``features/<partition>/``);
3. **sample** (workers -> client): the ``sample_size`` training descriptors with the smallest
   reservoir keys over all partitions (:mod:`classicvision.distributed.sampling`), drawn by one
   small task per partition; only the sample reaches the client;
4. **codebook** (client): :func:`~classicvision.recognition.codebook.learn_codebook` on the sample
   (it is small: 100,000 x 128 float32 = 51 MB), seeded by ``random_state``; the soft-assignment
   width as :class:`~classicvision.recognition.encoding.BagOfWords` computes it. For Fisher
   vectors, **pca_gmm**: the PCA and the mixture of
   :class:`~classicvision.recognition.fisher.FisherVector`, from the same kind of sample with
   each descriptor's position;
5. **encode** (workers): spatial-pyramid histograms (or Fisher vectors) of every partition,
   with the fitted encoder sent to each worker once (``encoded/<partition>/``);
6. **classifier**: ``"exact"`` (cross-validated LinearSVC on the training histograms, in memory on
   the client) or ``"sgd"`` (out of core, one partition at a time): see
   :mod:`classicvision.distributed.classifier`;
7. **predict** (workers): every test partition; only the predicted labels reach the client.

A finished partition is never recomputed (:mod:`classicvision.distributed.store`): a task that dask
reruns because its worker died, or a rerun of the whole job with the same data and settings, finds
it and returns. Partition names hash the settings of their stage (dense SIFT settings and the
source of the modules that compute them, as the single-process features cache; for encodings, the
codebook too), so changed settings never reuse stale results. ``partial.json``, ``report.md``,
``results.json`` and ``confusion.png`` are written as by the single-process runner.

The codebook differs from the single-process runner's (its sample is drawn by
``BagOfWords.fit``, not by reservoir keys), so results agree to sampling noise, not bit for bit;
with the same sample and seed the codebook is the same (``tests/test_distributed.py``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..experiments.cache import settings_key
from ..experiments.fisher import span_svm
from ..experiments.reports import scores, write_partial, write_report
from ..experiments.scene import PROTOCOL, check_training_classes, list_splits
from ..experiments.workers import check_writable_folder
from ..recognition.codebook import learn_codebook, nearest_words
from ..recognition.fisher import FisherVector
from ..recognition.sampling import normalized_positions
from ..recognition.transformers import DenseSIFT
from .classifier import ALPHA, fit_exact, fit_sgd, load_encoded
from .cluster import connect, dashboard, run_stage
from .sampling import merge_reservoirs
from .store import partition_names, partition_paths, read_partition, remove_stale
from .tasks import encode_partition, encoder, extract_partition, predict_partition

__all__ = ["codebook_from_sample", "reservoir_threshold", "run_bovw_dask", "run_fisher_dask", "sample_partition"]

logger = logging.getLogger(__name__)

# In the encoded partitions' names: a change of what they store gives new names, never a stale read.
_ENCODED_LAYOUT = b"encoded-v2"


def sample_partition(folder, name: str, threshold: float, positions: bool = False):
    """``(keys, rows float32)`` of the partition's reservoir entries with key <= ``threshold`` (a worker task).

    With ``positions``, each row ends with the descriptor's ``(fx, fy)`` in [0, 1]
    (:func:`~classicvision.recognition.sampling.normalized_positions` of its point in its image):
    ``(m, D + 2)``, what :meth:`FisherVector.fit_sample
    <classicvision.recognition.fisher.FisherVector.fit_sample>` needs for its augmentation.
    """
    keys = ("reservoir_keys", "reservoir_index", "descriptors") + (("points", "counts", "shapes") if positions else ())
    arrays, _ = read_partition(folder, name, keys=keys)
    keys = np.asarray(arrays["reservoir_keys"])
    take = keys <= threshold
    rows = np.asarray(arrays["reservoir_index"])[take]
    descriptors = np.asarray(arrays["descriptors"][rows], np.float32)
    if not positions:
        return keys[take], descriptors
    image = np.searchsorted(np.cumsum(arrays["counts"]), rows, side="right")      # the image of each row
    where = normalized_positions(arrays["points"][rows], np.asarray(arrays["shapes"])[image])
    return keys[take], np.concatenate([descriptors, where.astype(np.float32)], axis=1)


def codebook_from_sample(sample, n_words: int, *, encoding="soft", max_iter=20, random_state=0):
    """``(codebook (K, D) float32, soft_sigma or None)`` from a descriptor sample, as
    :meth:`BagOfWords.fit <classicvision.recognition.encoding.BagOfWords.fit>` does after drawing it."""
    if len(sample) < n_words:
        raise ValueError(f"n_words must be <= the number of sampled training descriptors ({len(sample)}), "
                         f"got {n_words}")
    codebook = learn_codebook(sample, int(n_words), max_iter=int(max_iter), random_state=random_state)
    sigma = None
    if encoding == "soft":
        _, dist = nearest_words(sample, codebook, 1)
        sigma = max(float(np.median(np.sqrt(dist[:, 0]))), 1e-6)
    return codebook, sigma


def reservoir_threshold(folder, names, k: int) -> float:
    """The ``k``-th smallest reservoir key over the partitions ``names`` (inf when there are fewer).

    Reads each partition's sorted ``reservoir_keys`` (at most ``k`` float64 each) from the shared
    folder, keeping about ``2 k`` keys in memory: they are buffered and cut back to the ``k``
    smallest each time the buffer reaches ``k`` (one sort per ``k`` keys read, not one per partition).
    """
    k = int(k)
    best, pending, n_pending = np.zeros(0), [], 0
    for name in names:
        keys = np.asarray(read_partition(folder, name, keys=("reservoir_keys",))[0]["reservoir_keys"])
        pending.append(keys)
        n_pending += len(keys)
        if n_pending >= k:
            best, pending, n_pending = np.sort(np.concatenate([best, *pending]))[:k], [], 0
    if pending:
        best = np.sort(np.concatenate([best, *pending]))[:k]
    return float(best[-1]) if len(best) >= k else float("inf")


def run_bovw_dask(data, *, scheduler="local", client=None, classifier="exact", partition_size=32,
                  n_words=1000, levels=3, step=8, sizes=(16,), rootsift=True, max_side=None, encoding="soft",
                  kernels=("chi2",), C=(30.0, 100.0), cv=3, sample_size=100_000, max_iter=20, alpha=ALPHA,
                  epochs=5, out=None, progress=True, random_state=0, n_jobs=-1) -> dict:
    """Bag of words + spatial pyramid + linear SVM on a Dask cluster (the stages in the module docstring).

    Parameters
    ----------
    data : path
        Folder holding ``train/<class>/*`` and ``test/<class>/*``; every worker must read it at
        the same paths.
    scheduler : str
        ``local``, ``local:N`` or ``tcp://HOST:PORT`` (:func:`~classicvision.distributed.cluster.connect`);
        ignored when ``client`` is given.
    client : distributed.Client or None
        An existing client to use (left open).
    classifier : {"exact", "sgd"}
        See :mod:`classicvision.distributed.classifier`. ``"sgd"`` uses ``kernels[0]``, ``alpha``
        and ``epochs`` (no cross-validation).
    partition_size : int
        Images per partition (a task). Per-worker memory is about one partition's descriptors.
    out : path
        Output folder (required): the reports, and the partitions under ``<out>/dask/``, which
        must be on a filesystem every worker shares.
    n_jobs : int
        joblib processes of the exact classifier's cross-validation on the client.
    Other parameters
        As :func:`classicvision.experiments.scene.run_bovw`.

    Returns
    -------
    dict
        The keys of :func:`~classicvision.experiments.scene.run_bovw`'s result, with ``cache``
        counting partitions (``computed`` and ``reused`` per stage) and ``scheduler``,
        ``dashboard``, ``n_workers``.
    """
    kernels = tuple(kernels)
    if not kernels:
        raise ValueError(f"kernels must list at least one candidate, got {kernels}")
    method = {"name": "bovw_dask", "title": "bag of words + spatial pyramid + linear SVM (Dask)",
              "encoder": {"kind": "bovw", "n_words": n_words, "levels": levels, "encoding": encoding,
                          "max_iter": max_iter}, "kernels": kernels}
    return _start(data, scheduler, client, method, classifier=classifier, partition_size=partition_size, step=step,
                  sizes=sizes, rootsift=rootsift, max_side=max_side, C=C, cv=cv, sample_size=sample_size,
                  alpha=alpha, epochs=epochs, out=out, progress=progress, random_state=random_state, n_jobs=n_jobs)


def run_fisher_dask(data, *, scheduler="local", client=None, classifier="exact", partition_size=32,
                    n_components=256, n_pca=80, augment=True, pyramid=((1, 1), (2, 2)), step=4, sizes=(16, 24, 32),
                    rootsift=True, max_side=None, C=(1.0, 3.0, 10.0, 30.0), cv=3, sample_size=100_000, max_iter=20,
                    alpha=ALPHA, epochs=5, out=None, progress=True, random_state=0, n_jobs=-1) -> dict:
    """Improved Fisher vectors + linear SVM on a Dask cluster: the stages of :func:`run_bovw_dask`,
    with the PCA and the Gaussian mixture in place of the codebook.

    The reservoir sample carries each descriptor's normalized position, and the client fits
    :class:`~classicvision.recognition.fisher.FisherVector` on it (:meth:`FisherVector.fit_sample
    <classicvision.recognition.fisher.FisherVector.fit_sample>`); the fitted encoder (a few MB)
    goes to every worker, which encodes its partitions. ``classifier="exact"`` is the classifier of
    :func:`~classicvision.experiments.fisher.run_fisher`
    (:func:`~classicvision.experiments.fisher.span_svm`: ``C`` by cross-validation, in the span of
    the training vectors, which it holds on the client: 15-Scene's 1500 x 209,920 float32 are 1.3
    GB); ``"sgd"`` trains on one partition at a time with no feature map (``alpha`` was chosen for
    bag of words: choose it on a validation split of your data).

    Differences from ``run_fisher``: no mirror images in training, and the sample is the reservoir
    of the stored descriptors, so the encoder (and the accuracy) agree to sampling noise, not bit
    for bit; with the same sample and seed the encoder is the same. Stored per image: float16
    descriptors (step 4, three sizes: about 2.5 MB for a 256 x 256 image) and the float32 vector
    (840 KB with the defaults).

    Parameters
    ----------
    n_components, n_pca, augment, pyramid, max_iter :
        :class:`~classicvision.recognition.fisher.FisherVector` settings.
    Other parameters
        As :func:`run_bovw_dask` and :func:`~classicvision.experiments.fisher.run_fisher`.
    """
    method = {"name": "fisher_dask", "title": "improved Fisher vectors + linear SVM (Dask)",
              "encoder": {"kind": "fisher", "n_components": n_components, "n_pca": n_pca, "augment": augment,
                          "pyramid": [list(g) for g in pyramid], "max_iter": max_iter}, "kernels": ("linear",)}
    return _start(data, scheduler, client, method, classifier=classifier, partition_size=partition_size, step=step,
                  sizes=sizes, rootsift=rootsift, max_side=max_side, C=C, cv=cv, sample_size=sample_size,
                  alpha=alpha, epochs=epochs, out=out, progress=progress, random_state=random_state, n_jobs=n_jobs)


def _start(data, scheduler, client, method, **options):
    if options["classifier"] not in ("exact", "sgd"):
        raise ValueError(f"classifier must be 'exact' or 'sgd', got {options['classifier']!r}")
    if options["out"] is None:
        raise ValueError("out must be a folder the workers share (the partitions are stored there), got None")
    options["C"] = tuple(options["C"])
    if not options["C"]:
        raise ValueError(f"C must list at least one candidate, got {options['C']}")
    partition_paths([], options["partition_size"])  # validates the size
    options["out"] = check_writable_folder(options["out"], "out")
    if client is None:
        with connect(scheduler) as own:
            return _run(own, data, scheduler, method, **options)
    return _run(client, data, "client", method, **options)


def _fit_encoder(spec: dict, sample: np.ndarray, random_state, n_jobs):
    """``(fitted transformer, its digest, info)`` from the merged reservoir sample, on the client."""
    if spec["kind"] == "bovw":
        codebook, sigma = codebook_from_sample(sample, spec["n_words"], encoding=spec["encoding"],
                                               max_iter=spec["max_iter"], random_state=random_state)
        params = {"n_words": spec["n_words"], "levels": spec["levels"], "encoding": spec["encoding"],
                  "normalize": "l1"}
        state = codebook.tobytes() + repr((sigma, params)).encode()
        return encoder(codebook, sigma, params), state, {
            "codebook_sha": hashlib.blake2b(codebook.tobytes(), digest_size=8).hexdigest()}
    fisher = FisherVector(spec["n_components"], n_pca=spec["n_pca"], augment=spec["augment"],
                          pyramid=tuple(tuple(g) for g in spec["pyramid"]), max_iter=spec["max_iter"],
                          n_jobs=n_jobs, random_state=random_state)
    fisher.fit_sample(sample[:, :-2], sample[:, -2:])
    fisher.set_params(n_jobs=None)  # one worker thread encodes a partition
    gmm = fisher.gmm_
    state = b"".join(np.ascontiguousarray(a).tobytes() for a in (gmm.weights, gmm.means, gmm.variances)
                     if a is not None) + repr(spec).encode()
    if fisher.pca_projection_ is not None:
        state += fisher.pca_projection_.tobytes() + fisher.pca_mean_.tobytes()
    return fisher, state, {"gmm_sha": hashlib.blake2b(state, digest_size=8).hexdigest(),
                           "log_likelihood": float(fisher.log_likelihood_)}


def _run(client, data, scheduler, method, *, classifier, partition_size, step, sizes, rootsift, max_side, C, cv,
         sample_size, alpha, epochs, out, progress, random_state, n_jobs):
    start_all = time.perf_counter()
    spec, kernels, fisher = method["encoder"], tuple(method["kernels"]), method["encoder"]["kind"] == "fisher"
    link = dashboard(client)
    n_workers = len(client.scheduler_info().get("workers", {}))
    if progress:
        print(f"dask: {n_workers} workers, dashboard: {link}", file=sys.stderr)
    settings = {**{k: v for k, v in spec.items() if k != "kind"}, "step": step, "sizes": list(sizes),
                "rootsift": rootsift, "max_side": max_side, "kernels": list(kernels), "C": list(C), "cv": cv,
                "sample_size": sample_size, "random_state": random_state,
                "classifier": classifier, "partition_size": partition_size, "scheduler": scheduler,
                "n_workers": n_workers, **({"alpha": alpha, "epochs": epochs} if classifier == "sgd" else {})}
    stage, done, counts = {}, {}, {}

    def finished(name, **info):
        done[name] = info
        write_partial(out, done, method=method["name"], data=str(data), settings=settings)

    def tally(name, results):
        computed = sum(bool(r["computed"]) for r in results)
        counts[name] = {"computed": computed, "reused": len(results) - computed}

    t = time.perf_counter()
    train_paths, y_train, test_paths, y_test, class_names = list_splits(data)
    if classifier == "sgd":  # partial_fit on one partition at a time needs partitions that mix the classes
        order = np.random.default_rng(random_state).permutation(len(train_paths))
        train_paths, y_train = [train_paths[i] for i in order], y_train[order]
    dsift = DenseSIFT(step=step, sizes=tuple(sizes), rootsift=rootsift, max_side=max_side)
    dsift_params = {k: v for k, v in dsift.get_params().items() if k != "n_jobs"}
    key = settings_key(dsift)
    root = Path(out) / "dask"
    features_dir, encoded_dir = root / f"features-{key[:16]}", root / "encoded"
    for folder in (features_dir, encoded_dir):
        remove_stale(folder)
    parts = {"train": partition_paths(train_paths, partition_size), "test": partition_paths(test_paths, partition_size)}
    names = {split: partition_names(p, f"{key}-{split}-{sample_size}-{random_state}") for split, p in parts.items()}
    stage["list"] = time.perf_counter() - t
    finished("list", seconds=stage["list"], class_names=class_names, train_files=len(train_paths),
             test_files=len(test_paths), partitions={s: len(p) for s, p in parts.items()})

    # 2. extraction (train partitions carry the reservoir; test ones do not)
    t = time.perf_counter()
    calls = [(n, (p, str(features_dir), n, i, dsift_params, sample_size if split == "train" else 0, random_state))
             for split in ("train", "test") for i, (p, n) in enumerate(zip(parts[split], names[split]))]
    metas = run_stage(client, extract_partition, calls, stage="extract", progress=progress)
    tally("extract", metas)
    meta_train, meta_test = metas[:len(parts["train"])], metas[len(parts["train"]):]
    stage["features"] = time.perf_counter() - t

    def kept_labels(split_metas, split_parts, labels):
        out_labels, offset = [], 0
        for meta, paths in zip(split_metas, split_parts):
            out_labels.append(labels[offset + np.asarray(meta["kept"], np.int64)])
            offset += len(paths)
        return out_labels

    labels_train = kept_labels(meta_train, parts["train"], y_train)
    labels_test = kept_labels(meta_test, parts["test"], y_test)
    errors_train = [e for m in meta_train for e in m["errors"]]
    errors_test = [e for m in meta_test for e in m["errors"]]
    y_fit = np.concatenate(labels_train) if labels_train else np.zeros(0, np.int64)
    warnings = check_training_classes(y_fit, class_names, f"{data}/train", cv=cv if classifier == "exact" else None,
                                      skipped=errors_train)
    finished("features", seconds=stage["features"], n_train=len(y_fit), skipped=errors_train + errors_test,
             partitions=counts["extract"], warnings=warnings)

    # 3-4. sample on the workers, the encoder (codebook, or PCA + GMM) on the client
    t = time.perf_counter()
    threshold = reservoir_threshold(features_dir, names["train"], sample_size)
    samples = run_stage(client, sample_partition,
                        [(n, (str(features_dir), n, threshold, fisher)) for n in names["train"]], stage="sample",
                        progress=progress)
    sample = merge_reservoirs(samples, sample_size)
    del samples
    stage["sample"] = time.perf_counter() - t
    t = time.perf_counter()
    fitted, state, fit_info = _fit_encoder(spec, sample, random_state, n_jobs)
    encoder_stage = "pca_gmm" if fisher else "codebook"
    stage[encoder_stage] = time.perf_counter() - t
    finished(encoder_stage, seconds=stage[encoder_stage], sample=int(len(sample)), **fit_info)
    del sample

    # 5. encoding
    t = time.perf_counter()
    code = hashlib.blake2b(state + _ENCODED_LAYOUT, digest_size=8).hexdigest()
    [encoder_future] = client.scatter([fitted], broadcast=True)
    enc_names = {split: [f"{n}-{code}" for n in names[split]] for split in names}
    calls = [(e, (str(features_dir), n, str(encoded_dir), e, encoder_future))
             for split in ("train", "test") for n, e in zip(names[split], enc_names[split])]
    encoded = run_stage(client, encode_partition, calls, stage="encode", progress=progress)
    tally("encode", encoded)
    stage["encode"] = time.perf_counter() - t
    finished("encode", seconds=stage["encode"], partitions=counts["encode"])

    # 6. classifier
    t = time.perf_counter()
    if classifier == "exact" and fisher:
        model, cv_result = span_svm(load_encoded(encoded_dir, enc_names["train"]), y_fit, C=C, cv=cv,
                                    random_state=random_state, n_jobs=n_jobs)
        cv_result["kernel"] = "linear"
    elif classifier == "exact":
        search, best_kernel = fit_exact(load_encoded(encoded_dir, enc_names["train"]), y_fit, kernels=kernels, C=C,
                                        cv=cv, random_state=random_state, n_jobs=n_jobs)
        cv_result = {"kernel": best_kernel, "C": search.best_params_["svm__C"], "folds": cv,
                     "best_balanced_accuracy": float(search.best_score_)}
        model = search.best_estimator_
    else:
        model = fit_sgd(encoded_dir, enc_names["train"], labels_train, len(class_names), kernel=kernels[0],
                        alpha=alpha, epochs=epochs, random_state=random_state)
        cv_result = {"kernel": kernels[0], "alpha": alpha, "epochs": epochs}
    stage["classifier"] = time.perf_counter() - t
    finished("classifier", seconds=stage["classifier"], cv=cv_result)

    # 7. prediction on the workers
    t = time.perf_counter()
    [model_future] = client.scatter([model], broadcast=True)
    predictions = run_stage(client, predict_partition,
                            [(e, (str(encoded_dir), e, model_future)) for e in enc_names["test"]],
                            stage="predict", progress=progress)
    stage["predict"] = time.perf_counter() - t
    y_true = np.concatenate(labels_test) if labels_test else np.zeros(0, np.int64)
    y_pred = np.concatenate(predictions) if predictions else np.zeros(0, np.int64)
    if not len(y_true):
        raise ValueError(f"no usable test image in {data}/test: all {len(test_paths)} files were skipped")
    worker = {key: sum(m[f"{key}_seconds"] for m in metas if f"{key}_seconds" in m)
              for key in ("read", "dense_sift", "read_cpu", "dense_sift_cpu")}
    worker.update({name: sum(m[key] for m in encoded if key in m)
                   for name, key in (("encode", "seconds"), ("encode_cpu", "cpu_seconds"))})
    learned = "PCA and GMM" if fisher else "codebook"
    results = {
        **scores(y_true, y_pred, class_names), "y_true": y_true.tolist(), "y_pred": y_pred.tolist(),
        "seconds": time.perf_counter() - start_all, "stage_seconds": stage, "settings": settings,
        "n_train": int(len(y_fit)), "n_test": int(len(y_true)), "skipped": errors_train + errors_test,
        "protocol": PROTOCOL + f"{learned} learned on train (reservoir sample drawn on the workers); "
                    + ("C (and the kernel map) chosen by cross-validation on train only" if classifier == "exact"
                       else "SGD hinge, alpha and epochs fixed (not tuned on test)"),
        "cv": cv_result, "warnings": warnings,
        "cache": {"folder": str(root), **{f"{s}_{k}": v for s, c in counts.items() for k, v in c.items()}},
        "worker_seconds": worker, "scheduler": scheduler, "dashboard": link, "n_workers": n_workers,
        "train_seconds": sum(v for k, v in stage.items() if k not in ("list", "predict")),
        "predict_seconds": stage["predict"], "load_average": [round(v, 2) for v in os.getloadavg()],
        **fit_info,
    }
    results["predict_seconds_per_image"] = results["predict_seconds"] / max(results["n_test"], 1)
    extra = ([f"Cross-validation on train ({cv} folds, balanced accuracy): kernel **{cv_result['kernel']}**, "
              f"C = **{cv_result['C']:g}**, {cv_result['best_balanced_accuracy']:.4f}."] if classifier == "exact"
             else [f"SGD (hinge, averaged): kernel **{kernels[0]}**, alpha = {alpha:g}, {epochs} epochs."])
    extra.append(f"Dask: {n_workers} workers ({scheduler}), partitions of {partition_size} images; "
                 f"computed/reused: " + ", ".join(f"{s} {c['computed']}/{c['reused']}" for s, c in counts.items()) + ".")
    write_report(out, results, method["title"], extra)
    return results
