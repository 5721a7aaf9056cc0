"""The linear classifier on encoded partitions: exact in memory, or out of core by SGD.

When to use which
-----------------
* ``"exact"`` (:func:`fit_exact`): the training histograms fit in the client's memory (15-Scene:
  1,500 images x 21,000 values x 4 bytes = 126 MB, three times that after the chi-squared map).
  The same cross-validated ``LinearSVC`` (liblinear's exact dual coordinate descent) as the
  single-process runner, so the accuracy is the same. Memory on the client: the training matrix
  after the feature map; it stops fitting at roughly 10^5 images of 21,000 dimensions on a 64 GB
  machine.
* ``"sgd"`` (:func:`fit_sgd`): anything larger (ImageNet: 1.28 M images x 21,000 values = 108 GB
  of float32). ``SGDClassifier(loss="hinge")`` (a linear SVM by stochastic gradient descent,
  one-vs-rest) sees one partition at a time through ``partial_fit``, the partitions in a new
  random order each epoch and the rows shuffled inside each, so the client holds one partition
  (and the model) at a time. Approximate: its accuracy depends on ``alpha`` and ``epochs`` and is
  usually a little below the exact SVM's on data that fits; averaged SGD (``average=True``) is
  used because it is much less sensitive to the learning rate (Bottou 2010).

References
----------
L. Bottou, "Large-scale machine learning with stochastic gradient descent", COMPSTAT 2010.
R.-E. Fan et al., "LIBLINEAR: a library for large linear classification", JMLR 9, 2008.
"""

from __future__ import annotations

import numpy as np

from ..experiments.scene import kernel_maps
from .store import read_partition

__all__ = ["ALPHA", "fit_exact", "fit_sgd", "load_encoded", "partial_fit_sgd"]

#: Default L2 regularization of the SGD classifier (see :func:`fit_sgd`): chosen with the
#: chi-squared map on three 80/20 validation splits of the 15-Scene training images.
ALPHA = 3e-5


def load_encoded(folder, names) -> np.ndarray:
    """Stack the ``encoded`` arrays of the encoded partitions ``names`` (in memory: for ``"exact"`` only)."""
    parts = [np.asarray(read_partition(folder, name, keys=("encoded",))[0]["encoded"]) for name in names]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def fit_exact(X, y, *, kernels=("chi2",), C=(30.0, 100.0), cv=3, random_state=0, n_jobs=-1):
    """The single-process runner's classifier: ``GridSearchCV(Pipeline(map, LinearSVC))`` by
    stratified ``cv``-fold balanced accuracy on the training data only.

    Returns ``(search, best kernel name)``: the fitted :class:`~sklearn.model_selection.GridSearchCV`.
    """
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.svm import LinearSVC

    maps = kernel_maps()
    search = GridSearchCV(Pipeline([("map", "passthrough"),
                                    ("svm", LinearSVC(C=1.0, tol=1e-3, random_state=random_state))]),
                          {"map": [maps[k] for k in kernels], "svm__C": list(C)},
                          cv=StratifiedKFold(cv, shuffle=True, random_state=random_state),
                          scoring="balanced_accuracy", n_jobs=n_jobs, refit=True)
    candidates = [maps[k] for k in kernels]
    search.fit(X, y)
    return search, kernels[candidates.index(search.best_params_["map"])]


def fit_sgd(folder, names, labels, n_classes: int, *, kernel="chi2", alpha=ALPHA, epochs=5, random_state=0):
    """Linear SVM by ``SGDClassifier(loss="hinge", average=True)`` and ``partial_fit``, one encoded partition at a time.

    Parameters
    ----------
    folder : path
        The encoded folder.
    names : list of str
        Encoded training partitions.
    labels : list of (n_i,) int arrays
        Class indices of each partition's rows.
    n_classes : int
    kernel : {"hellinger", "chi2", "linear"}
        The stateless feature map applied to each partition before the SVM.
    alpha : float
        L2 regularization (``1 / (C n)`` in SVM terms). The default, :data:`ALPHA` = 3e-5, was
        chosen with the chi-squared map and 5 epochs on three stratified 80/20 validation splits of
        the 15-Scene training images, by ``benchmarks/bench_sgd_alpha.py`` (mean per-class
        accuracy 74.8%, against 73.2% for 1e-5 and 72.7% for 1e-4). It is a per-sample weight:
        for a much larger training set the best value is usually smaller; choose it on a
        validation split of that set.
    epochs : int
        Passes over the partitions.
    random_state : int
        Seeds the partition order, the row shuffles and SGD.

    Returns
    -------
    sklearn.pipeline.Pipeline
        ``map`` then the fitted ``SGDClassifier``.
    """
    def load(p):
        return np.asarray(read_partition(folder, names[p], keys=("encoded",))[0]["encoded"]), np.asarray(labels[p])

    return partial_fit_sgd(load, len(names), n_classes, feature_map=kernel_maps()[kernel], alpha=alpha,
                           epochs=epochs, random_state=random_state)


def partial_fit_sgd(load, n_batches: int, n_classes: int, *, feature_map="passthrough", alpha=ALPHA, epochs=5,
                    random_state=0):
    """The loop of :func:`fit_sgd` over batches from any source: ``load(p)`` gives batch ``p``.

    Each epoch visits the batches in a new random order and shuffles the rows of each (both drawn
    from one generator seeded by ``random_state``, in that order), then calls ``partial_fit``.
    A stateless ``feature_map`` is fitted on the first non-empty batch and applied to each.

    Parameters
    ----------
    load : callable
        ``load(p) -> (X (n_p, D) float array, y (n_p,) int array)`` for ``p`` in ``range(n_batches)``.
    n_batches, n_classes : int
    feature_map : transformer or "passthrough"
    alpha, epochs, random_state
        As :func:`fit_sgd`.

    Returns
    -------
    sklearn.pipeline.Pipeline
        ``map`` then the fitted ``SGDClassifier``.

    Examples
    --------
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0]] * 8)
    >>> y = np.array([0, 1] * 8)
    >>> model = partial_fit_sgd(lambda p: (X[4 * p:4 * p + 4], y[4 * p:4 * p + 4]), 4, 2, epochs=3)
    >>> model.predict([[0.0, 2.0], [2.0, 0.0]]).tolist()
    [0, 1]
    """
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import Pipeline

    sgd = SGDClassifier(loss="hinge", alpha=alpha, average=True, random_state=random_state)
    rng = np.random.default_rng(random_state)
    classes = np.arange(n_classes)
    fitted_map = False
    for _ in range(int(epochs)):
        for p in rng.permutation(int(n_batches)):
            X, y = load(p)
            if not len(y):
                continue
            rows = rng.permutation(len(X))
            X, y = X[rows], np.asarray(y)[rows]
            if feature_map != "passthrough":
                if not fitted_map:
                    feature_map.fit(X)
                    fitted_map = True
                X = feature_map.transform(X)
            sgd.partial_fit(X, y, classes=classes)
    return Pipeline([("map", feature_map), ("svm", sgd)])
