"""The per-image features cache of the 15-Scene runners: :class:`CachedFeatures` wraps a
:class:`~classicvision.recognition.transformers.DenseSIFT` and stores each image's features on disk.

Layout: one ``.npz`` per image under ``<root>/dsift-<key>/``. The folder key is a hash of

* the cache format and ``classicvision.__version__``;
* the DenseSIFT settings (``get_params()`` without ``n_jobs``, which changes nothing computed);
* the source of every module the features depend on (:func:`feature_sources`: the package
  modules reached by walking the imports of :mod:`classicvision.recognition.transformers` and
  of :mod:`classicvision.datasets`, which reads the files).

An entry's name is a hash (BLAKE2b) of the image file's bytes, so a file rewritten in place, or
copied with its size and modification time (``cp -p``), is recomputed when its content changed,
and the same image under another path is reused. Descriptors are stored as float16 and used
rounded to float16 on the first run too, so cached and fresh runs agree. Each entry is written to
a temporary name and moved in place with :func:`os.replace`; a killed run leaves at most a
``*.tmp`` file, which the next run removes (:meth:`CachedFeatures.remove_stale`). A corrupt
entry is recomputed. A folder that cannot be written makes the run go on uncached, with a warning.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from .. import __version__
from ..datasets import read_images
from ..recognition.transformers import DenseSIFT, ImageFeatures, StatelessTransformerMixin, check_image_sequence
from .workers import worker_processes

__all__ = ["CachedFeatures", "cached_dense_sift", "default_cache_root", "feature_sources"]

logger = logging.getLogger(__name__)

CACHE_FORMAT = 2
# what computes the features (DenseSIFT) and what reads the files here (datasets.read_images)
FEATURE_MODULES = ("classicvision.recognition.transformers", "classicvision.datasets")


def _module_file(name: str, root: Path) -> Path | None:
    """The source file of the package module ``name`` under the package folder ``root`` (None if not a module)."""
    parts = name.split(".")[1:]
    for path in (root.joinpath(*parts).with_suffix(".py") if parts else None, root.joinpath(*parts, "__init__.py")):
        if path is not None and path.is_file():
            return path
    return None


def _imported_modules(path: Path, name: str, is_package: bool) -> set:
    """Absolute names of the ``classicvision`` modules that the source file ``path`` imports."""
    base = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                module = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # `from .pkg import sub` imports the module pkg.sub when there is one
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] == "classicvision"}


def feature_sources(modules=FEATURE_MODULES, root=None) -> dict:
    """Source files of every package module the cached features depend on.

    Walks the ``import`` statements (parsed, not executed) from ``modules`` through every
    ``classicvision`` module they reach. Package ``__init__`` files are left out: they only list
    lazily loaded names and compute nothing.

    Parameters
    ----------
    modules : tuple of str
        Dotted names of the starting modules.
    root : path or None
        The ``classicvision`` package folder to read (default: the one imported).

    Returns
    -------
    dict
        ``{module name: path}``, sorted by name.

    Examples
    --------
    >>> "classicvision.features.dense_sift" in feature_sources()
    True
    """
    root = Path(__file__).resolve().parents[1] if root is None else Path(root)
    seen, todo = {}, list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name, root)
        if path is None:
            seen[name] = None  # a name imported from a module, not a module
            continue
        seen[name] = path
        todo.extend(_imported_modules(path, name, path.name == "__init__.py"))
    return {n: p for n, p in sorted(seen.items()) if p is not None and p.name != "__init__.py"}


def settings_key(dsift: DenseSIFT, sources=None) -> str:
    """Hash of the cache format, package version, DenseSIFT settings and feature sources."""
    sources = feature_sources() if sources is None else sources
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dsift.get_params().items() if k != "n_jobs"}
    digest = hashlib.blake2b(json.dumps({"format": CACHE_FORMAT, "version": __version__, "settings": params},
                                        sort_keys=True).encode(), digest_size=16)
    for name, path in sorted(sources.items()):
        digest.update(name.encode() + b"\0" + hashlib.blake2b(Path(path).read_bytes()).digest())
    return digest.hexdigest()


def file_key(path) -> str:
    """BLAKE2b hash of a file's bytes (what the image is, not where or when it was written)."""
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()


def default_cache_root(cache, out) -> Path | None:
    """The cache root: ``cache`` if a path, ``<out>/cache`` or ``~/.cache/classicvision`` if None; None if False."""
    if cache is False:
        return None
    if cache is None:
        return Path(out) / "cache" if out is not None else Path.home() / ".cache" / "classicvision"
    return Path(cache)


def _rounded(features: ImageFeatures) -> ImageFeatures:
    return features._replace(descriptors=features.descriptors.astype(np.float16).astype(np.float32))


class CachedFeatures(StatelessTransformerMixin, TransformerMixin, BaseEstimator):
    """Dense SIFT of image files, each image's result kept in an on-disk cache (stateless transformer).

    Parameters
    ----------
    features : DenseSIFT or None
        The transformer whose results are cached (default ``DenseSIFT()``).
    cache : path or None
        Cache root; entries go to ``<cache>/dsift-<key>/`` (see the module docstring). None: no cache.
    n_jobs : int or None
        Worker processes (joblib) for the images not in the cache; None or 1: this process.

    Notes
    -----
    ``transform`` takes a list of image paths and returns a list of
    :class:`~classicvision.recognition.transformers.ImageFeatures` with float16-rounded
    descriptors; an unreadable file, or an image too small to hold one patch, raises.
    :meth:`extract` skips and reports both.

    Examples
    --------
    >>> import tempfile, cv2
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = cv2.imwrite(str(folder / "a.png"), np.zeros((32, 32), np.uint8))
    >>> cached = CachedFeatures(DenseSIFT(step=8), cache=folder / "cache")
    >>> cached.transform([folder / "a.png"])[0].descriptors.shape, cached.extract([folder / "a.png"])[2]["cached"]
    ((4, 128), 1)
    """

    def __init__(self, features=None, *, cache=None, n_jobs=None):
        self.features = features
        self.cache = cache
        self.n_jobs = n_jobs

    def _dsift(self) -> DenseSIFT:
        dsift = DenseSIFT() if self.features is None else self.features
        if not isinstance(dsift, DenseSIFT):
            raise TypeError(f"features must be a DenseSIFT, got {type(dsift).__name__}")
        return dsift.fit()

    @property
    def folder(self) -> Path | None:
        """``<cache>/dsift-<key>`` for the current settings and sources (None without a cache)."""
        return None if self.cache is None else Path(self.cache) / f"dsift-{settings_key(self._dsift())[:16]}"

    def fit(self, X=None, y=None):
        """Validate the parameters; nothing is learned. Returns self."""
        self._dsift()
        return self

    def writable(self) -> bool:
        """Whether the cache folder can be written (False, with a warning, when it cannot; False without a cache)."""
        folder = self.folder
        if folder is None:
            return False
        probe = folder / f".probe.{os.getpid()}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            logger.warning("features cache %s cannot be written (%s): running without a cache", folder, exc)
            return False
        return True

    def remove_stale(self, before: float) -> int:
        """Remove ``*.tmp`` files (killed runs' half-written entries) modified before ``before``
        (a :func:`time.time` value, the start of this run) in every ``dsift-*`` folder; returns how many."""
        if self.cache is None:
            return 0
        removed = 0
        for tmp in Path(self.cache).glob("dsift-*/*.tmp"):
            try:
                if tmp.stat().st_mtime < before:
                    tmp.unlink()
                    removed += 1
            except OSError:
                pass
        return removed

    # ------------------------------------------------------------------------- entries
    @staticmethod
    def _load(entry: Path) -> ImageFeatures | None:
        try:
            with np.load(entry) as f:
                return ImageFeatures(f["points"], f["descriptors"].astype(np.float32),
                                     tuple(int(v) for v in f["shape"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # missing or corrupt: recompute
            return None

    @staticmethod
    def _store(entry: Path, features: ImageFeatures) -> None:
        tmp = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                np.savez(f, points=features.points, descriptors=features.descriptors.astype(np.float16),
                         shape=np.asarray(features.shape, np.int64))
            os.replace(tmp, entry)
        except OSError as exc:
            logger.warning("features cache entry %s not written: %s", entry, exc)
            try:
                tmp.unlink()
            except OSError:
                pass

    def _one(self, path, dsift: DenseSIFT, folder: Path | None, mirror: bool = False):
        """(features or None, error or None, cached, read seconds, dense-SIFT seconds) of one file
        (of its mirror image, flipped left to right, when ``mirror``)."""
        entry = None
        if folder is not None:
            try:
                entry = folder / f"{file_key(path)}{'-mirror' if mirror else ''}.npz"
            except OSError as exc:
                return None, f"{path}: {exc}", False, 0.0, 0.0
            features = self._load(entry)
            if features is not None:
                return features, None, True, 0.0, 0.0
        start = time.perf_counter()
        images, _, errors = read_images([path])
        read_s = time.perf_counter() - start
        if errors:
            return None, errors[0], False, read_s, 0.0
        start = time.perf_counter()
        image = np.ascontiguousarray(images[0][:, ::-1]) if mirror else images[0]
        features = _rounded(dsift.transform([image])[0])
        sift_s = time.perf_counter() - start
        if entry is not None:
            self._store(entry, features)
        return features, None, False, read_s, sift_s

    def _ready_folder(self) -> Path | None:
        """The cache folder, created if missing (None without a cache, or, with a warning, when it cannot be)."""
        folder = self.folder
        if folder is not None and not folder.is_dir():
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                logger.warning("features cache %s cannot be created (%s): running without a cache", folder, exc)
                folder = None
        return folder

    @staticmethod
    def _usable(result: tuple, path, dsift: DenseSIFT) -> tuple:
        """``result`` of :meth:`_one`, with an image too small for any patch turned into an error
        (its encoding would be all zeros)."""
        if result[0] is not None and len(result[0].descriptors) == 0:
            height, width = result[0].shape
            return (None, f"{path}: no dense SIFT patch fits in {width}x{height} pixels "
                          f"(patch sizes {tuple(dsift.sizes)}): image too small, skipped", *result[2:])
        return result

    def features_of(self, path, *, mirror: bool = False) -> tuple:
        """One image file's features, computed in the calling thread (for callers that run their own
        threads over the files, as :func:`classicvision.experiments.streaming.stream_images`);
        ``mirror``: those of the image flipped left to right (cached under their own entry).

        Returns
        -------
        features : ImageFeatures or None
            None when the file cannot be read or holds no patch (then ``error`` says why).
        error : str or None
            One line naming the file.
        cached : bool
            Read from the cache.
        read_seconds, dense_sift_seconds : float
        """
        dsift = self._dsift()
        return self._usable(self._one(path, dsift, self._ready_folder(), bool(mirror)), path, dsift)

    def extract(self, paths, *, progress=False, desc="features"):
        """Features of the image files ``paths`` in order, skipping (and reporting) unreadable ones and
        those without any descriptor (smaller than the patch: their histogram would be all zeros).

        Returns
        -------
        features : list of ImageFeatures
        kept : (n,) int64 array
            Indices into ``paths`` of the files read.
        stats : dict
            ``errors`` (list of str), ``cached`` (hits), ``read_seconds``, ``dense_sift_seconds``
            (summed over the workers).
        """
        from joblib import Parallel, delayed
        from tqdm.auto import tqdm

        dsift, folder = self._dsift(), self._ready_folder()
        paths = list(paths)
        n_jobs = 1 if self.n_jobs is None or len(paths) < 2 else self.n_jobs
        with tqdm(total=len(paths), desc=desc, disable=not progress, file=sys.stderr) as bar:
            results = [None] * len(paths)
            if folder is not None:  # hits load here; only misses go to the workers
                for i, path in enumerate(paths):
                    try:
                        features = self._load(folder / f"{file_key(path)}.npz")
                    except OSError:
                        continue
                    if features is not None:
                        results[i] = (features, None, True, 0.0, 0.0)
                        bar.update(1)
            missing = [i for i, r in enumerate(results) if r is None]
            jobs = (delayed(self._one)(paths[i], dsift, folder) for i in missing)
            parallel = Parallel(n_jobs=n_jobs if len(missing) > 1 else 1, return_as="generator", batch_size=4)
            with worker_processes():  # workers die with this process (experiments.workers)
                for i, result in zip(missing, parallel(jobs)):
                    results[i] = result
                    bar.update(1)
        results = [self._usable(r, path, dsift) for r, path in zip(results, paths)]
        kept = [i for i, r in enumerate(results) if r[0] is not None]
        stats = {"errors": [r[1] for r in results if r[1] is not None], "cached": sum(r[2] for r in results),
                 "read_seconds": sum(r[3] for r in results), "dense_sift_seconds": sum(r[4] for r in results)}
        return [results[i][0] for i in kept], np.asarray(kept, np.int64), stats

    def transform(self, X) -> list:
        """Features of every image file in ``X`` (a list of :class:`ImageFeatures`); unreadable files raise."""
        paths = check_image_sequence(X)
        features, _, stats = self.extract(paths)
        if stats["errors"]:
            raise ValueError(f"X holds unreadable or unusable images ({len(stats['errors'])}): {stats['errors'][0]}")
        return features


def cached_dense_sift(dsift: DenseSIFT, *, cache, out, n_jobs, started_at: float) -> CachedFeatures:
    """The runners' features stage: ``dsift`` behind :class:`CachedFeatures` at
    :func:`default_cache_root` ``(cache, out)``, fitted; a killed run's half-written entries
    older than ``started_at`` (a :func:`time.time` value) removed; the cache turned off, with a
    warning, when its folder cannot be written."""
    features = CachedFeatures(dsift, cache=default_cache_root(cache, out), n_jobs=n_jobs).fit()
    if features.cache is not None:
        features.remove_stale(started_at)
        if not features.writable():
            features.set_params(cache=None)
    return features
