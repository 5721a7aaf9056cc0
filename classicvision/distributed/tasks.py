"""What runs on a worker: one partition of image paths in, ``.npy`` files on the shared filesystem out.

Every task first looks for its partition's finished folder (:func:`~classicvision.distributed.store.read_partition`)
and returns at once when it is there, so a task dask reruns (its result was held by a worker that
died) or a restarted job costs a directory lookup, not a recomputation. A task returns only a small
``dict`` (counts, skipped files, timings, ``computed``: whether this call did the work); the arrays
stay on disk and are never sent to the client in full.

Features layout of a partition (``features/<name>/``): ``descriptors`` (N, D) float16 (as the
single-process features cache stores them), ``points`` (N, 2) float32 (x, y), ``counts`` (n,)
int64 descriptors per kept image, ``shapes`` (n, 2) int64 (height, width), ``kept`` (n,) int64
indices into the partition's paths, ``reservoir_keys`` (m,) float64 (sorted) and
``reservoir_index`` (m,) int64 rows of ``descriptors`` (:func:`~classicvision.distributed.sampling.reservoir`). Encoded layout
(``encoded/<name>/``): ``encoded`` (n, dim) float32, one row per kept image: pyramid histograms
(``dim = n_words * (4**levels - 1) // 3``) or Fisher vectors.
"""

from __future__ import annotations

import time

import numpy as np

from ..datasets import read_images
from ..recognition.encoding import BagOfWords
from ..recognition.transformers import DenseSIFT, ImageFeatures
from .sampling import reservoir
from .store import read_partition, write_partition

__all__ = ["encode_partition", "encoder", "extract_partition", "load_features", "predict_partition"]


def extract_partition(paths, folder, name: str, index: int, dsift_params: dict, sample_k: int,
                      seed: int) -> dict:
    """Dense SIFT of the images ``paths`` and a descriptor reservoir, stored as partition ``folder/name``.

    Parameters
    ----------
    paths : list of str
        The partition's image files.
    folder : path
        The features folder (shared by the workers).
    name : str
        The partition's name (:func:`~classicvision.distributed.store.partition_names`).
    index : int
        The partition's position in the run (seeds its reservoir keys with ``seed``).
    dsift_params : dict
        :class:`~classicvision.recognition.transformers.DenseSIFT` parameters.
    sample_k : int
        Reservoir size (the codebook sample size: the merged sample takes the ``sample_k``
        smallest keys over all partitions).
    seed : int

    Returns
    -------
    dict
        ``name``, ``computed`` (bool), ``kept`` (list of indices into ``paths``), ``errors``
        (list of str), ``n_descriptors``, ``read_seconds``, ``dense_sift_seconds`` (wall) and
        ``read_cpu_seconds``, ``dense_sift_cpu_seconds`` (CPU time of the worker process, all its
        threads: it does not advance while the process waits for a core or is stopped, so a
        wall time far above it means the machine, not the task, was slow).
    """
    found = read_partition(folder, name, keys=())
    if found is None:
        t, cpu = time.perf_counter(), time.process_time()
        images, kept, errors = read_images(paths)
        read_s, read_cpu = time.perf_counter() - t, time.process_time() - cpu
        t, cpu = time.perf_counter(), time.process_time()
        features = DenseSIFT(**dsift_params).transform(images)
        usable = [i for i, f in enumerate(features) if len(f.descriptors)]
        errors = list(errors) + [f"{paths[kept[i]]}: too small for a dense SIFT patch, skipped"
                                 for i, f in enumerate(features) if not len(f.descriptors)]
        features = [features[i] for i in usable]
        kept = np.asarray(kept, np.int64)[usable]
        width = features[0].descriptors.shape[1] if features else 128
        descriptors = (np.concatenate([f.descriptors for f in features]) if features
                       else np.zeros((0, width), np.float32)).astype(np.float16)
        points = np.concatenate([f.points for f in features]) if features else np.zeros((0, 2), np.float32)
        keys, rows = reservoir(len(descriptors), sample_k, seed, index)
        sift_s, sift_cpu = time.perf_counter() - t, time.process_time() - cpu
        meta = {"errors": errors, "kept": kept.tolist(), "n_descriptors": int(len(descriptors)),
                "read_seconds": read_s, "dense_sift_seconds": sift_s, "read_cpu_seconds": read_cpu,
                "dense_sift_cpu_seconds": sift_cpu}
        arrays = {"descriptors": descriptors, "points": points.astype(np.float32),
                  "counts": np.array([len(f.descriptors) for f in features], np.int64),
                  "shapes": np.array([f.shape for f in features], np.int64).reshape(-1, 2), "kept": kept,
                  "reservoir_keys": keys, "reservoir_index": rows}
        computed = write_partition(folder, name, arrays, meta)
    else:
        meta, computed = found[1], False
    return {"name": name, "computed": computed, **meta}


def load_features(folder, name: str) -> list:
    """The :class:`~classicvision.recognition.transformers.ImageFeatures` of a finished partition
    (descriptors as float32 from the stored float16)."""
    arrays, _ = read_partition(folder, name, keys=("descriptors", "points", "counts", "shapes"))
    ends = np.cumsum(arrays["counts"])
    starts = ends - arrays["counts"]
    descriptors = np.asarray(arrays["descriptors"], np.float32)
    points = np.asarray(arrays["points"], np.float32)
    return [ImageFeatures(points[a:b], descriptors[a:b], tuple(int(s) for s in shape))
            for a, b, shape in zip(starts, ends, arrays["shapes"])]


def encoder(codebook: np.ndarray, soft_sigma, bow_params: dict) -> BagOfWords:
    """A fitted :class:`~classicvision.recognition.encoding.BagOfWords` from its learned state."""
    bow = BagOfWords(**bow_params)
    bow.codebook_ = np.ascontiguousarray(codebook, np.float32)
    bow.soft_sigma_ = soft_sigma
    bow.n_descriptors_fit_ = 0
    return bow


def encode_partition(features_folder, name: str, encoded_folder, encoded_name: str, transformer) -> dict:
    """The encodings of a features partition, stored as ``encoded_folder/encoded_name``.

    ``transformer`` is a fitted encoder of lists of ImageFeatures (:func:`encoder`'s bag of
    words, or a :class:`~classicvision.recognition.fisher.FisherVector`), sent to the workers once.
    Returns ``{"name": encoded_name, "computed": bool, "n_images": int, "seconds": float, "cpu_seconds": float}``
    (wall and worker-process CPU seconds).
    """
    found = read_partition(encoded_folder, encoded_name, keys=())
    if found is not None:
        return {"name": encoded_name, "computed": False, **found[1]}
    t, cpu = time.perf_counter(), time.process_time()
    features = load_features(features_folder, name)
    vectors = np.asarray(transformer.transform(features), np.float32)   # (0, dim) for an empty partition
    meta = {"n_images": int(len(vectors)), "seconds": time.perf_counter() - t,
            "cpu_seconds": time.process_time() - cpu}
    computed = write_partition(encoded_folder, encoded_name, {"encoded": vectors}, meta)
    return {"name": encoded_name, "computed": computed, **meta}


def predict_partition(encoded_folder, encoded_name: str, model) -> np.ndarray:
    """``model.predict`` of an encoded partition: ``(n,)`` int64 class indices."""
    vectors = np.asarray(read_partition(encoded_folder, encoded_name, keys=("encoded",))[0]["encoded"])
    return model.predict(vectors).astype(np.int64) if len(vectors) else np.zeros(0, np.int64)
