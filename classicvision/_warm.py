"""A first run compiles its kernels in parallel: one group in a child process, one in the caller.

numba compiles one function at a time per process (a global compiler lock), and a first
``classicvision match`` on a fresh install is mostly compilation. :func:`precompile` splits the
kernels a job needs into two groups, compiles one in a child process (forked on Linux when the
caller has one thread, else a new Python process; it writes numba's on-disk cache) while the
calling process compiles the other, waits for the child, and returns; the
job then loads the child's kernels from the cache. On a warm cache it only checks that every
kernel's cache index exists (microseconds per kernel) and returns. :func:`precompiling` starts the
child before a block (reading the inputs, say), so that its start-up overlaps the block, and
compiles the caller's group after it.

Each group exercises its kernels on tiny inputs of the exact types the library passes, so the
specializations compiled are the ones the job uses. The child is killed if the caller is
interrupted, and it leaves nothing behind but cache files.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

__all__ = ["GROUPS", "JOBS", "is_cold", "precompile", "precompiling", "warm"]


def _pyramid_and_dog():
    from .features.scale_space import dog_extrema, gaussian_pyramid

    yy, xx = np.mgrid[:48, :48]
    blob = np.exp(-((xx - 24.0) ** 2 + (yy - 20.0) ** 2) / 32.0).astype(np.float32)   # one DoG point
    dog_extrema(gaussian_pyramid(blob, upsample=False))     # the doubling is a group of its own


def _upsample():
    from ._kernels.blur import _upsample2

    _upsample2(np.zeros((4, 6), np.float32))


def _orientation():
    from ._kernels import orientation

    levels = np.random.default_rng(0).random((6, 24, 24)).astype(np.float32)
    orientation._orientation_histograms(levels, np.array([1]), np.array([12.0]), np.array([12.0]), np.array([2.0]),
                                        36, 1.5, 3.0)
    orientation._peaks(np.ones((1, 36), np.float32), 0.8, np.ones(5, np.float32))


def _describe_on_pyramids():
    from ._kernels import gradient, sift

    levels = np.random.default_rng(0).random((6, 24, 24)).astype(np.float32)
    magnitude, bins = gradient._orientation_field(levels[0], 8)
    raw = sift._describe(magnitude, bins, np.array([12.0]), np.array([12.0]), np.array([8.0]), np.array([0.5]), 4, 8)
    sift._normalize_rows(raw, 0.2, True)


def _nearest():
    from ._kernels import nearest

    rng = np.random.default_rng(0)
    a, b = rng.random((20, 128), dtype=np.float32), rng.random((30, 128), dtype=np.float32)
    nearest.k_nearest(a, b, 2, 2048)          # ratio matching (and the mutual check: the same call reversed)


def _harris():
    from .features._gaussian import smooth_symmetric
    from .features.harris import harris

    image = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    harris(image, threshold_rel=0.001, max_points=10)
    smooth_symmetric(image, 1.0)


def _pool():
    from ._kernels import atomics

    atomics.warm()


#: Groups of kernels, each a function that compiles (or loads) them.
GROUPS = {"pyramid_and_dog": _pyramid_and_dog, "upsample": _upsample, "orientation": _orientation,
          "describe": _describe_on_pyramids, "nearest": _nearest, "harris": _harris, "pool": _pool}
_SHARED = ("gradient._orientation_field_rows", "sift._describe_points", "sift._normalize_rows_into",
           "nearest._smallest_k_into", "nearest._rank_candidates_into", "atomics.add", "atomics.park",
           "atomics.spin_until_joined")
#: For each job: the groups compiled in a child process, those compiled in the caller, and the
#: kernels (``module.name`` in this package) whose cache entries tell whether the cache is warm.
JOBS = {
    "match_dog": (("describe", "nearest", "pool", "upsample"), ("pyramid_and_dog", "orientation"),
                  ("blur._blur_bands", "blur._upsample2_rows", "dog._extrema_bands",
                   "dog._gather_into", "dog._refine_into", "orientation._orientation_histograms_points",
                   "orientation._peaks_into") + _SHARED),
    "match_harris": (("describe", "nearest"), ("harris", "pool"),
                     ("harris._harris_blocks", "harris._nms_rows", "blur._blur_bands_x_first") + _SHARED),
}


def is_cold(job: str) -> bool:
    """Whether a kernel of ``job`` has no cache index yet in numba's cache folder
    (``NUMBA_CACHE_DIR``, else ``__pycache__`` beside the kernels, or numba's per-user fallback when
    that is read-only)."""
    import importlib

    for name in JOBS[job][2]:
        module, attribute = name.split(".")
        dispatcher = getattr(importlib.import_module(f"classicvision._kernels.{module}"), attribute)
        stem = f"{module}.{dispatcher.py_func.__qualname__}-"
        if not any(Path(dispatcher.stats.cache_path).glob(f"{stem}*.nbi")):
            return True
    return False


def warm(*groups: str) -> None:
    """Compile (or load) the kernels of ``groups`` in this process."""
    for name in groups:
        GROUPS[name]()


class _Forked:
    """A child made by ``os.fork()`` that compiles ``groups`` and exits, with the part of
    ``subprocess.Popen``'s interface that :func:`precompiling` uses. It starts with this
    process's imports (no second Python start-up and import of numba, about 0.5 s)."""

    def __init__(self, groups):
        self.returncode = None
        self.pid = os.fork()
        if self.pid == 0:                                   # the child
            status = 1
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                warm(*groups)
                status = 0
            finally:
                os._exit(status)                            # no cleanup of the parent's state

    def poll(self):
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("precompile child", timeout)
            time.sleep(0.005)

    def kill(self):
        os.kill(self.pid, signal.SIGKILL)


def _start_child(groups):
    """The child compiling ``groups``: forked where that is safe (Linux, and this the only
    thread, so that no lock can be held by a thread the child would not have), else a new
    Python process."""
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return _Forked(groups)
    code = f"from classicvision._warm import warm; warm(*{tuple(groups)!r})"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def precompiling(job: str, *, timeout: float = 300.0):
    """Around a block: when the cache is cold, start compiling the child's group of ``job`` (a key
    of :data:`JOBS`) before the block, then compile the caller's group and wait for the child
    after it. Yields whether the cache was cold. An exception in the block kills the child (as
    does one while waiting); errors in the child are not fatal: the job compiles what is missing
    itself."""
    if not is_cold(job):
        yield False
        return
    in_child, here, _ = JOBS[job]
    child = _start_child(in_child)
    try:
        yield True
        warm(*here)
        child.wait(timeout=timeout)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=timeout)


def precompile(job: str, *, timeout: float = 300.0) -> bool:
    """When the cache is cold, compile the kernels of ``job`` (a key of :data:`JOBS`) in two
    processes at once; returns whether it did (:func:`precompiling` around nothing)."""
    with precompiling(job, timeout=timeout) as cold:
        pass
    return cold
