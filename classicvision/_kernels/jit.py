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
import time

from numba import njit

__all__ = ["kernel", "num_threads", "parallel_for"]

_MAX_THREADS = 8
_CHUNKS_PER_THREAD = 4
_SPIN_SECONDS = 0.002   # how long an idle worker or a waiting caller polls before it blocks
_pool = None
_pool_size = 0
_pool_lock = threading.Lock()


def kernel(function=None, **options):
    """``numba.njit(cache=True, nogil=True, **options)``: the one way a kernel is compiled."""
    def decorate(f):
        return njit(cache=True, nogil=True, **options)(f)
    return decorate if function is None else decorate(function)


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


_local = threading.local()   # .depth: how many parallel_for tasks this thread is inside


def num_threads() -> int:
    """Threads a kernel call from this thread uses: 1 inside a :func:`parallel_for` task (a task
    that calls kernels runs them inline), outside the main thread of the main process (workers
    already parallelize over items), else the configured count (module docstring)."""
    if getattr(_local, "depth", 0) or threading.current_thread() is not threading.main_thread() \
            or multiprocessing.parent_process() is not None:
        return 1
    return _configured_threads()


class _Pool:
    """Worker threads that run :class:`_Chunks` jobs. After a job a worker polls for the next one
    for :data:`_SPIN_SECONDS` (releasing the GIL between polls) before it blocks: a sweep of small
    calls (the levels of a pyramid, the images of a batch) then finds it awake, where waking a
    blocked thread costs 50-300 us on a virtual machine, as much as a small call's work."""

    def __init__(self, workers: int):
        self.condition = threading.Condition()
        self.job: _Chunks | None = None
        self.epoch = 0
        self.threads = [threading.Thread(target=self._run, name=f"classicvision_{i}", daemon=True)
                        for i in range(workers)]
        for thread in self.threads:
            thread.start()

    def submit(self, job: _Chunks) -> None:
        with self.condition:
            self.job = job
            self.epoch += 1
            self.condition.notify_all()

    def _run(self) -> None:
        seen = 0
        while True:
            deadline = time.perf_counter() + _SPIN_SECONDS
            while self.epoch == seen and time.perf_counter() < deadline:
                time.sleep(0)
            with self.condition:
                while self.epoch == seen:
                    self.condition.wait()
                seen, job = self.epoch, self.job
            job.drain()


def _get_pool(workers: int) -> _Pool:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            _pool = _Pool(workers)   # a smaller pool left behind idles on its condition
            _pool_size = workers
        return _pool


class _Chunks:
    """The chunks of one :func:`parallel_for` call: taken one at a time by whoever is free, and
    counted when done, so that the caller waits only for chunks that were started."""

    def __init__(self, bounds, function, args):
        self.bounds, self.function, self.args = bounds, function, args
        self.n = len(bounds) - 1
        self.counter = itertools.count()      # next() on itertools.count is atomic under the GIL
        self.lock = threading.Lock()
        self.started = self.finished = 0
        self.all_done = threading.Event()
        self.error: BaseException | None = None

    def drain(self) -> None:
        for i in self.counter:
            if i >= self.n or self.error is not None:
                return
            with self.lock:
                self.started += 1
            _local.depth = getattr(_local, "depth", 0) + 1
            try:
                self.function(self.bounds[i], self.bounds[i + 1], *self.args)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                self.error = exc
            finally:
                _local.depth -= 1
                with self.lock:
                    self.finished += 1
                    if self.finished == self.n or (self.error is not None and self.finished == self.started):
                        self.all_done.set()

    def wait(self) -> None:
        """After the caller's own drain: wait for the chunks others still run (a worker that never
        woke up holds none), then re-raise the first error."""
        if not self._done():
            self.all_done.wait()   # blocking, not polling: a polling caller would keep the GIL from the workers
        if self.error is not None:
            raise self.error

    def _done(self) -> bool:
        with self.lock:
            return self.finished == self.n or (self.error is not None and self.finished == self.started)


def parallel_for(function, n: int, *args, grain: int = 1, threads: int | None = None) -> None:
    """Run ``function(start, stop, *args)`` over ``[0, n)``: serially when one thread is due or
    ``n < 2 * grain``, else in about ``4 * threads`` chunks of at least ``grain`` items, taken
    dynamically by the pool and the calling thread. The caller waits only for chunks already
    started: a pool thread that was descheduled before it took one is not waited for (it finds
    none left when it runs). ``function`` must write disjoint outputs for disjoint ranges; its
    first exception is raised here."""
    threads = num_threads() if threads is None else threads
    if threads <= 1 or n < 2 * grain:
        if n > 0:
            function(0, n, *args)
        return
    n_chunks = max(2, min(threads * _CHUNKS_PER_THREAD, n // grain))
    chunks = _Chunks([n * i // n_chunks for i in range(n_chunks + 1)], function, args)
    _get_pool(threads - 1).submit(chunks)
    chunks.drain()
    chunks.wait()
