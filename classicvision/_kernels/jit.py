"""How the kernels are compiled and run on several cores.

Every kernel is one serial, GIL-free numba function over a range of work items (rows, bands of
rows, points): ``kernel(start, stop, *args)``. :func:`parallel_for` splits ``[0, n)`` into a few
chunks per thread and runs them on a small pool of Python threads, the calling thread included;
each participant takes the next chunk when it finishes one (dynamic scheduling). So:

* one compiled version per kernel, no ``parallel=True`` build: those compile several times slower,
  and a first run on a fresh install is mostly compilation;
* no spinning worker threads (numba's workqueue and OpenMP layers spin after a parallel region,
  which slows whatever runs next, BLAS included);
* under load, a descheduled thread holds up only the chunk it is on: the others take the rest
  (a static split of a ``prange`` waits for the slowest thread, so one busy core stalls all);
* called from a worker thread or a child process (``joblib``, ``dask``, ``DenseSIFT(n_jobs=...)``,
  which already parallelize over images), a kernel runs serially in the caller: no
  oversubscription, and no nested pools.

The number of threads is ``CLASSICVISION_NUM_THREADS`` when set, else the CPUs this process may
run on (at most 8); :func:`num_threads` reports it for the calling thread.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import types
from concurrent.futures import ThreadPoolExecutor

from numba import njit

__all__ = ["build", "kernel", "num_threads", "parallel_for"]

_MAX_THREADS = 8
_CHUNKS_PER_THREAD = 4
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def kernel(function=None, **options):
    """``numba.njit(cache=True, nogil=True, **options)``: the one way a kernel is compiled."""
    def decorate(f):
        return njit(cache=True, nogil=True, **options)(f)
    return decorate if function is None else decorate(function)


def build(impl, suffix, **options):
    """``njit(cache=True, **options)`` of a copy of ``impl`` named ``impl.__name__ + suffix``.

    numba names a function's on-disk cache after its qualified name and line: two builds of one
    Python function with different options would overwrite each other's cache. Each build gets
    its own name.
    """
    twin = types.FunctionType(impl.__code__, impl.__globals__, impl.__name__ + suffix, impl.__defaults__,
                              impl.__closure__)
    twin.__qualname__ = impl.__qualname__ + suffix
    twin.__doc__ = impl.__doc__
    return njit(cache=True, **options)(twin)


def _configured_threads() -> int:
    value = os.environ.get("CLASSICVISION_NUM_THREADS", "")
    if value.strip():
        try:
            return max(1, int(value))
        except ValueError:
            raise ValueError(f"CLASSICVISION_NUM_THREADS must be a positive integer, got {value!r}") from None
    try:
        available = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        available = os.cpu_count() or 1
    return max(1, min(_MAX_THREADS, available))


def num_threads() -> int:
    """Threads a kernel call from this thread uses: 1 outside the main thread of the main process
    (workers already parallelize over items), else the configured count (module docstring)."""
    if threading.current_thread() is not threading.main_thread() or multiprocessing.parent_process() is not None:
        return 1
    return _configured_threads()


def _get_pool(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="classicvision")
            _pool_size = workers
        return _pool


def _drain(counter, bounds, function, args) -> None:
    last = len(bounds) - 1
    for i in counter:              # next() on itertools.count is atomic under the GIL
        if i >= last:
            return
        function(bounds[i], bounds[i + 1], *args)


def parallel_for(function, n: int, *args, grain: int = 1, threads: int | None = None) -> None:
    """Run ``function(start, stop, *args)`` over ``[0, n)``: serially when one thread is due or
    ``n < 2 * grain``, else in about ``4 * threads`` chunks of at least ``grain`` items, taken
    dynamically by the pool and the calling thread. ``function`` must write disjoint outputs for
    disjoint ranges; its exceptions are raised here."""
    threads = num_threads() if threads is None else threads
    if threads <= 1 or n < 2 * grain:
        if n > 0:
            function(0, n, *args)
        return
    n_chunks = max(2, min(threads * _CHUNKS_PER_THREAD, n // grain))
    bounds = [n * i // n_chunks for i in range(n_chunks + 1)]
    counter = itertools.count()
    pool = _get_pool(threads - 1)
    futures = [pool.submit(_drain, counter, bounds, function, args) for _ in range(threads - 1)]
    try:
        _drain(counter, bounds, function, args)
    finally:
        for future in futures:
            future.result()
