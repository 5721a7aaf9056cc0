"""The scene pipeline on a Dask cluster (:mod:`classicvision.distributed`), against the single-process code.

One ``LocalCluster(n_workers=2, processes=True, threads_per_worker=1)`` serves the module (closed
by its fixture, which checks that no worker process outlives it). The dataset is generated in
``tmp_path``: 64x64 crops (random places and flips) of three of scikit-image's bundled images, one
class each.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

pytest.importorskip("distributed")

from classicvision.distributed import store  # noqa: E402
from classicvision.distributed.cluster import connect, parse_scheduler  # noqa: E402
from classicvision.distributed.sampling import merge_reservoirs, reservoir  # noqa: E402
from classicvision.distributed.scene import codebook_from_sample, reservoir_threshold, run_bovw_dask  # noqa: E402

SETTINGS = dict(n_words=12, levels=2, step=8, sizes=(16,), kernels=("hellinger",), C=(1.0,), cv=2,
                sample_size=1500, max_iter=10, partition_size=3, progress=False, random_state=0, n_jobs=1)


def _make_dataset(root, n_train=6, n_test=4, side=64, seed=0):
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(seed)
    sources = {"camera": skimage.data.camera(), "coins": skimage.data.coins(), "page": skimage.data.page()}
    for split, n in (("train", n_train), ("test", n_test)):
        for name, image in sources.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                r, c = rng.integers(0, image.shape[0] - side), rng.integers(0, image.shape[1] - side)
                crop = image[r:r + side, c:c + side]
                if rng.random() < 0.5:
                    crop = crop[:, ::-1]
                Image.fromarray(np.ascontiguousarray(crop)).save(folder / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return _make_dataset(tmp_path_factory.mktemp("scenes"))


def _alive(pids) -> set:
    import psutil

    return {pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE}


@pytest.fixture(scope="module")
def client():
    pids = set()
    with connect("local:2") as c:
        c.wait_for_workers(2, timeout=60)
        c.pids = pids  # the tests add the pids of workers they start (restarted ones)
        pids.update(c.run(os.getpid).values())
        yield c
        pids.update(c.run(os.getpid).values())
    deadline = time.monotonic() + 20
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive(pids) == set(), "worker processes outlived the cluster"


def _dask_children() -> set:
    """Pids of this process's children that are not joblib's (loky keeps its idle pool a while)."""
    import psutil

    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            line = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "loky" not in line and "resource_tracker" not in line:
            found.add(child.pid)
    return found


def _finished(out) -> list:
    logs = list((out / "dask").glob("*/" + store.FINISHED_LOG))
    return [line for log in logs for line in log.read_text().split()]


def _reference_features(dataset, settings) -> dict:
    """``{split: (features, labels)}``: dense SIFT in one process, descriptors rounded to float16 as
    the partitions store them."""
    from classicvision.datasets import load_image_folder
    from classicvision.recognition.transformers import DenseSIFT

    dsift = DenseSIFT(step=settings["step"], sizes=settings["sizes"], rootsift=True)
    out = {}
    for split in ("train", "test"):
        paths, y, _ = load_image_folder(dataset, split)
        features = [f._replace(descriptors=f.descriptors.astype(np.float16).astype(np.float32))
                    for f in dsift.transform(paths)]
        out[split] = (features, y)
    return out


def _reference(dataset, settings):
    """The single-process pipeline: same features, same reservoir sample, same seed, same classifier."""
    from classicvision.distributed.classifier import fit_exact
    from classicvision.distributed.tasks import encoder

    size = settings["partition_size"]
    out = _reference_features(dataset, settings)
    features, _ = out["train"]
    reservoirs = []
    for index, begin in enumerate(range(0, len(features), size)):
        descriptors = np.concatenate([f.descriptors for f in features[begin:begin + size]])
        keys, rows = reservoir(len(descriptors), settings["sample_size"], settings["random_state"], index)
        reservoirs.append((keys, descriptors[rows]))
    sample = merge_reservoirs(reservoirs, settings["sample_size"])
    codebook, sigma = codebook_from_sample(sample, settings["n_words"], max_iter=settings["max_iter"],
                                           random_state=settings["random_state"])
    bow = encoder(codebook, sigma, {"n_words": settings["n_words"], "levels": settings["levels"],
                                    "encoding": "soft", "normalize": "l1"})
    search, _ = fit_exact(bow.transform(out["train"][0]), out["train"][1], kernels=settings["kernels"],
                          C=settings["C"], cv=settings["cv"], random_state=settings["random_state"], n_jobs=1)
    y_pred = search.predict(bow.transform(out["test"][0]))
    return codebook, float(np.mean(y_pred == out["test"][1]))


def test_local_workers_run_one_kernel_thread(client, monkeypatch):
    from classicvision.distributed.cluster import worker_environment

    expected = os.environ.get("CLASSICVISION_NUM_THREADS", "1")
    assert set(client.run(lambda: os.environ.get("CLASSICVISION_NUM_THREADS")).values()) == {expected}
    monkeypatch.delenv("CLASSICVISION_NUM_THREADS", raising=False)
    assert worker_environment(2) == {"CLASSICVISION_NUM_THREADS": "2"}
    monkeypatch.setenv("CLASSICVISION_NUM_THREADS", "3")
    assert worker_environment(1) == {}  # the workers inherit the caller's setting


@pytest.mark.parametrize("k", [1, 7, 40, 1000])
def test_merged_sample_and_threshold_are_the_k_smallest_keys_of_all_partitions(tmp_path, k):
    rng = np.random.default_rng(k)
    parts = [reservoir(int(n), k, seed=3, partition=i) for i, n in enumerate(rng.integers(0, 30, 25))]
    rows = [rng.random((len(keys), 4)).astype(np.float32) for keys, _ in parts]
    all_keys = np.concatenate([keys for keys, _ in parts])
    order = np.argsort(all_keys, kind="stable")[:k]
    expected = np.concatenate(rows)[order]
    np.testing.assert_array_equal(merge_reservoirs(((keys, r) for (keys, _), r in zip(parts, rows)), k), expected)
    for i, (keys, index) in enumerate(parts):
        store.write_partition(tmp_path, f"p{i}", {"reservoir_keys": keys, "reservoir_index": index}, {})
    threshold = reservoir_threshold(tmp_path, [f"p{i}" for i in range(len(parts))], k)
    assert threshold == (np.sort(all_keys)[k - 1] if len(all_keys) >= k else float("inf"))


def test_parse_scheduler_refuses_bad_values():
    assert parse_scheduler("local") == ("local", None)
    for bad in ("local:0", "local:x", "remote", "tcp:/x"):
        with pytest.raises(ValueError, match="scheduler"):
            parse_scheduler(bad)


def test_same_codebook_and_accuracy_as_single_process_then_restart_reuses(client, dataset, tmp_path):
    out = tmp_path / "out"
    result = run_bovw_dask(dataset, client=client, out=out, **SETTINGS)
    codebook, accuracy = _reference(dataset, SETTINGS)
    assert result["codebook_sha"] == __import__("hashlib").blake2b(codebook.tobytes(), digest_size=8).hexdigest()
    assert abs(result["accuracy"] - accuracy) <= 0.01
    assert result["accuracy"] > 0.5  # three textures: far above chance (1/3)
    n_parts = 18 // 3 + 12 // 3  # 18 train and 12 test images in partitions of 3
    assert result["cache"]["extract_computed"] == n_parts and result["cache"]["encode_computed"] == n_parts
    assert json.loads((out / "results.json").read_text())["accuracy"] == result["accuracy"]
    assert not (out / "partial.json").exists()
    worker = result["worker_seconds"]  # wall and CPU seconds of the worker stages
    assert set(worker) == {"read", "dense_sift", "read_cpu", "dense_sift_cpu", "encode", "encode_cpu"}
    assert all(v >= 0 for v in worker.values()) and worker["dense_sift_cpu"] > 0
    # a restart reuses every finished partition: nothing is computed again
    again = run_bovw_dask(dataset, client=client, out=out, **SETTINGS)
    assert again["cache"]["extract_computed"] == 0 and again["cache"]["extract_reused"] == n_parts
    assert again["cache"]["encode_computed"] == 0 and again["cache"]["encode_reused"] == n_parts
    assert again["y_pred"] == result["y_pred"]
    assert sorted(_finished(out)) == sorted(set(_finished(out))) and len(_finished(out)) == 2 * n_parts


def test_a_killed_workers_tasks_are_retried_without_recomputing_finished_partitions(client, dataset, tmp_path):
    import signal

    from distributed import as_completed

    from classicvision.datasets import load_image_folder
    from classicvision.distributed.tasks import extract_partition

    paths, _, _ = load_image_folder(dataset, "train")
    parts = store.partition_paths(paths, 1)
    names = store.partition_names(parts, "kill-test")
    folder = tmp_path / "features"
    params = {"step": 8, "sizes": (16,), "rootsift": True, "max_side": None}

    def slow_extract(*args):  # slow enough that the kill lands while tasks are still queued
        time.sleep(0.3)
        return extract_partition(*args)

    futures = [client.submit(slow_extract, p, str(folder), n, i, params, 100, 0, key=f"kill-{n}", pure=False)
               for i, (p, n) in enumerate(zip(parts, names))]
    first = next(iter(as_completed(futures)))
    holder, = client.who_has(first)[first.key]
    pid = client.run(os.getpid, workers=[holder])[holder]
    assert not all(f.done() for f in futures)  # the kill lands mid-run
    os.kill(pid, signal.SIGKILL)
    results = client.gather(futures)
    client.pids.update(client.run(os.getpid).values())  # the worker the nanny restarted
    assert [r["name"] for r in results] == names  # the job completed
    # the killed worker's finished partition was reused from disk, not recomputed
    assert results[futures.index(first)]["computed"] is False
    finished = (folder / store.FINISHED_LOG).read_text().split()
    assert sorted(finished) == sorted(names)  # every partition finished exactly once
    assert all(store.read_partition(folder, n) is not None for n in names)
    assert store.remove_stale(folder) <= 1  # at most the copy the killed worker was writing


def test_cli_scheduler_option_is_forwarded_and_checked(capsys, tmp_path, dataset, monkeypatch):
    from classicvision.cli import main
    from classicvision.distributed import scene

    calls = []
    monkeypatch.setattr(scene, "run_bovw_dask", lambda data, **options: calls.append(options) or {"accuracy": 1.0})
    assert main(["bench", "bovw", "--data", str(dataset), "--out", str(tmp_path), "--scheduler", "tcp://h:1",
                 "--json"]) == 0
    assert calls[0]["scheduler"] == "tcp://h:1" and calls[0]["out"] == tmp_path
    capsys.readouterr()
    for argv, message in ((["--scheduler", "locl:2"], "scheduler must be local"),
                          (["--scheduler", "local", "--cache", "C"], "--cache does not apply")):
        assert main(["bench", "bovw", "--data", str(dataset), "--out", str(tmp_path)] + argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
    assert len(calls) == 1


def test_cli_local_cluster_end_to_end(capsys, tmp_path, dataset):
    from classicvision.cli import main

    before = _dask_children()
    out = tmp_path / "cli"
    code = main(["bench", "bovw", "--data", str(dataset), "--out", str(out), "--scheduler", "local:2",
                 "--n-words", "12", "--levels", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "dashboard:" in captured.err and "accuracy:" in captured.out
    results = json.loads((out / "results.json").read_text())
    assert results["n_workers"] == 2 and results["scheduler"] == "local:2"
    assert (out / "report.md").is_file() and results["cache"]["extract_computed"] > 0
    deadline = time.monotonic() + 20  # the cluster the command started is gone with its workers
    while _alive(_dask_children() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive(_dask_children() - before) == set()


def test_sgd_classifier_trains_out_of_core_from_the_stored_partitions(client, dataset, tmp_path):
    from sklearn.linear_model import SGDClassifier

    from classicvision.distributed.classifier import fit_sgd

    settings = {**SETTINGS, "kernels": ("hellinger",)}
    result = run_bovw_dask(dataset, client=client, out=tmp_path, classifier="sgd", epochs=10, alpha=1e-4,
                           **settings)
    assert result["settings"]["classifier"] == "sgd" and result["accuracy"] > 0.5
    # the same partitions fed to partial_fit by hand, in the documented order, give the same model
    encoded = tmp_path / "dask" / "encoded"
    names = sorted(p.name for p in encoded.iterdir() if p.is_dir())
    labels = [np.zeros(store.read_partition(encoded, n)[1]["n_images"], np.int64) for n in names]
    for i, lab in enumerate(labels):
        lab[:] = i % 3
    model = fit_sgd(encoded, names, labels, 3, kernel="linear", alpha=1e-3, epochs=2, random_state=1)
    rng = np.random.default_rng(1)
    reference = SGDClassifier(loss="hinge", alpha=1e-3, average=True, random_state=1)
    for _ in range(2):
        for p in rng.permutation(len(names)):
            hist = np.asarray(store.read_partition(encoded, names[p])[0]["encoded"])
            rows = rng.permutation(len(hist))
            reference.partial_fit(hist[rows], labels[p][rows], classes=np.arange(3))
    np.testing.assert_array_equal(model[-1].coef_, reference.coef_)


FISHER = dict(n_components=4, n_pca=16, pyramid=((1, 1), (1, 2)), step=8, sizes=(16,), C=(1.0,), cv=2,
              sample_size=1500, max_iter=10, partition_size=3, progress=False, random_state=0, n_jobs=1)


def _fisher_reference(dataset, settings):
    """The single-process Fisher-vector pipeline from the same features and reservoir sample, with the
    positions from ``normalized_positions``: ``(fitted FisherVector, test accuracy)``."""
    from classicvision.experiments.fisher import span_svm
    from classicvision.recognition.fisher import FisherVector
    from classicvision.recognition.sampling import normalized_positions

    size = settings["partition_size"]
    out = _reference_features(dataset, settings)
    features, y_train = out["train"]
    reservoirs = []
    for index, begin in enumerate(range(0, len(features), size)):
        block = features[begin:begin + size]
        rows = np.concatenate([np.concatenate([f.descriptors, normalized_positions(f.points, f.shape)], axis=1)
                               for f in block]).astype(np.float32)
        keys, take = reservoir(len(rows), settings["sample_size"], settings["random_state"], index)
        reservoirs.append((keys, rows[take]))
    sample = merge_reservoirs(reservoirs, settings["sample_size"])
    fisher = FisherVector(settings["n_components"], n_pca=settings["n_pca"], pyramid=settings["pyramid"],
                          max_iter=settings["max_iter"], random_state=settings["random_state"])
    fisher.fit_sample(sample[:, :-2], sample[:, -2:])
    model, _ = span_svm(fisher.transform(features), y_train, C=settings["C"], cv=settings["cv"],
                        random_state=settings["random_state"], n_jobs=1)
    y_pred = model.predict(fisher.transform(out["test"][0]))
    return fisher, float(np.mean(y_pred == out["test"][1]))


def test_fisher_vectors_same_mixture_and_accuracy_as_single_process_then_restart_reuses(client, dataset, tmp_path):
    import hashlib

    from classicvision.distributed.scene import run_fisher_dask

    out = tmp_path / "out"
    result = run_fisher_dask(dataset, client=client, out=out, **FISHER)
    fisher, accuracy = _fisher_reference(dataset, FISHER)
    gmm = fisher.gmm_
    state = b"".join(np.ascontiguousarray(a).tobytes() for a in (gmm.weights, gmm.means, gmm.variances))
    spec = {"kind": "fisher", "n_components": 4, "n_pca": 16, "augment": True, "pyramid": [[1, 1], [1, 2]],
            "max_iter": 10}
    state += repr(spec).encode() + fisher.pca_projection_.tobytes() + fisher.pca_mean_.tobytes()
    assert result["gmm_sha"] == hashlib.blake2b(state, digest_size=8).hexdigest()  # the same PCA and mixture
    assert abs(result["accuracy"] - accuracy) <= 0.01
    assert result["accuracy"] > 0.5  # three textures: far above chance (1/3)
    assert set(result["stage_seconds"]) >= {"features", "sample", "pca_gmm", "encode", "classifier", "predict"}
    assert result["cv"]["kernel"] == "linear" and result["settings"]["n_components"] == 4
    assert "Fisher" in (out / "report.md").read_text()
    dim = 3 * 2 * 4 * (16 + 2)  # cells of 1x1 + 1x2, times 2 K D (PCA 16 + the two positions)
    name = next((out / "dask" / "encoded").glob("*/encoded.npy"))
    assert np.load(name).shape[1] == dim
    again = run_fisher_dask(dataset, client=client, out=out, **FISHER)
    assert again["cache"]["encode_computed"] == 0 and again["y_pred"] == result["y_pred"]


def test_cli_fisher_scheduler_forwarding_and_refusals(capsys, tmp_path, dataset, monkeypatch):
    from classicvision.cli import main
    from classicvision.distributed import scene

    calls = []
    monkeypatch.setattr(scene, "run_fisher_dask", lambda data, **options: calls.append(options) or {"accuracy": 1.0})
    assert main(["bench", "fisher", "--data", str(dataset), "--out", str(tmp_path), "--scheduler", "local:2",
                 "--n-components", "8", "--no-mirror", "--classifier", "sgd", "--json"]) == 0
    assert calls[0]["scheduler"] == "local:2" and calls[0]["n_components"] == 8 and "mirror" not in calls[0]
    assert calls[0]["classifier"] == "sgd"
    capsys.readouterr()
    assert main(["bench", "fisher", "--data", str(dataset), "--out", str(tmp_path), "--classifier", "sgd"]) == 1
    assert "--classifier applies with --scheduler" in capsys.readouterr().err
    assert main(["bench", "fisher", "--data", str(dataset), "--out", str(tmp_path), "--scheduler", "local",
                 "--encoding", "vlad"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--encoding vlad does not apply" in err
    assert len(calls) == 1
