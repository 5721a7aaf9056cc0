"""Partitions of a run as folders of ``.npy`` files on a filesystem every worker shares.

A partition is a fixed list of image paths. Its name is a hash of the stage's settings key and of
each file's path, size and modification time (cheap to compute on the client for millions of
files; a file rewritten in place gets a new mtime, hence a new partition), so a restarted run with
the same data and settings finds the same names, and anything else gets new ones.

A partition's result is written as a folder ``<stage>/<name>.tmp-<pid>-<random>/`` and renamed to
``<stage>/<name>/`` once every file in it is written (:func:`write_partition`): ``os.rename`` of a
folder is atomic on POSIX, so a folder under its final name is complete, and one a killed worker
left is a ``*.tmp-*`` folder that :func:`remove_stale` deletes. Two workers that computed the same
partition (dask retried a task that was still running) race on the rename; the loser discards its
copy and the first result stays.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

__all__ = ["partition_names", "partition_paths", "read_partition", "remove_stale", "write_partition"]

FINISHED_LOG = "finished.log"  # one line per partition folder renamed in place (tests count them)


def partition_paths(paths, size: int) -> list:
    """Cut ``paths`` into consecutive lists of at most ``size`` paths (order kept).

    >>> partition_paths(["a", "b", "c"], 2)
    [['a', 'b'], ['c']]
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"partition size must be a positive integer, got {size!r}")
    paths = [str(p) for p in paths]
    return [paths[i:i + int(size)] for i in range(0, len(paths), int(size))]


def partition_names(partitions, key: str) -> list:
    """A name per partition: BLAKE2b of ``key``, the partition's position and every file's path, size and mtime (ns).

    A missing file hashes as size -1 (the task reports it as skipped).
    """
    names = []
    for position, paths in enumerate(partitions):
        digest = hashlib.blake2b(f"{key}\0{position}".encode(), digest_size=12)
        for path in paths:
            try:
                st = os.stat(path)
                size, mtime = st.st_size, st.st_mtime_ns
            except OSError:
                size, mtime = -1, 0
            digest.update(f"\0{path}\0{size}\0{mtime}".encode())
        names.append(f"part-{digest.hexdigest()}")
    return names


def write_partition(folder, name: str, arrays: dict, meta: dict) -> bool:
    """Write ``arrays`` (``{name: ndarray}``, one ``.npy`` each) and ``meta`` (``meta.json``) as the
    partition ``folder/name``, atomically. Returns True if this call's copy was kept, False if the
    partition was already there (its first copy stays)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    if final.is_dir():
        return False
    tmp = folder / f"{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for key, value in arrays.items():
            np.save(tmp / f"{key}.npy", np.ascontiguousarray(value), allow_pickle=False)
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.rename(tmp, final)
        except OSError:  # another worker's copy got there first
            if final.is_dir():
                return False
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    with open(folder / FINISHED_LOG, "a") as log:  # O_APPEND: one short line per write, not interleaved
        log.write(name + "\n")
    return True


def read_partition(folder, name: str, keys=None, mmap: bool = True):
    """``(arrays, meta)`` of a finished partition, or None if it is not there.

    ``keys`` limits the arrays read (default: all); ``mmap`` memory-maps them (read-only).
    """
    final = Path(folder) / name
    if not (final / "meta.json").is_file():
        return None
    meta = json.loads((final / "meta.json").read_text())
    files = sorted(final.glob("*.npy")) if keys is None else [final / f"{k}.npy" for k in keys]
    arrays = {f.stem: np.load(f, mmap_mode="r" if mmap else None, allow_pickle=False) for f in files}
    return arrays, meta


def remove_stale(folder) -> int:
    """Delete the ``*.tmp-*`` folders a killed worker left in ``folder``; returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.iterdir() if p.is_dir() and ".tmp-" in p.name]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)
