"""The scene-recognition pipeline on a Dask cluster (optional: ``pip install classicvision[dask]``).

The same estimators as :func:`classicvision.experiments.scene.run_bovw`, cut into tasks over
partitions of image paths so that the work spreads over the workers of a ``dask.distributed``
cluster:

* :mod:`~classicvision.distributed.store`: every partition's result is a folder of ``.npy``
  files on a filesystem the workers share, written under a temporary name and renamed in place,
  so a finished partition is never recomputed (a restarted job, or a task dask retries after a
  worker died, finds it and reuses it);
* :mod:`~classicvision.distributed.sampling`: a seeded reservoir of descriptors per partition,
  merged into one uniform sample for the codebook;
* :mod:`~classicvision.distributed.tasks`: what runs on a worker (dense SIFT + reservoir, encoding,
  prediction);
* :mod:`~classicvision.distributed.classifier`: the linear SVM, exact (LinearSVC, in memory) or
  out of core (``SGDClassifier(loss="hinge")`` by ``partial_fit`` over shuffled partitions);
* :mod:`~classicvision.distributed.cluster`: ``local[:N]`` / ``tcp://HOST:PORT`` to a client, and
  the progress bar;
* :mod:`~classicvision.distributed.scene`: :func:`~classicvision.distributed.scene.run_bovw_dask`,
  the runner behind ``classicvision bench bovw --scheduler ...``.

Only :mod:`~classicvision.distributed.cluster` and :mod:`~classicvision.distributed.scene` import
dask (inside functions); the worker tasks need numpy and the package only.
"""
