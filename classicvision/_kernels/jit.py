"""How the kernels are compiled and run on several cores.

Every kernel is one serial, GIL-free numba function that takes a *job* and claims chunks of
``[0, n)`` from it until none is left::

    @kernel
    def _rows(job, image, out):
        start, stop = next_chunk(job)
        while start < stop:
            for y in range(start, stop):
                ...
            start, stop = next_chunk(job)

(a kernel's docstring describes one chunk ``start <= i < stop``). A kernel that needs working
memory takes it from the caller, one row of a scratch array per participant: the row of
:func:`claim_slot`, of :func:`slot_count` rows (no allocation inside compiled code: every
``np.empty`` signature is one more specialization to compile on a first run). :func:`serial_job` makes a job
for a direct call on one thread; :func:`parallel_for` makes the job (``n`` split into a few chunks per thread), posts it to a small
pool of worker threads and joins in itself. So:

* one compiled version per kernel, no ``parallel=True`` build: those compile several times slower,
  and a first run on a fresh install is mostly compilation;
* dynamic scheduling: a chunk goes to whoever is free, the calling thread included, and the caller
  waits only for the chunks that others have started. Under load, a descheduled thread holds up
  only the chunk it is on, and a thread that never woke up holds none (a static split of a
  ``prange`` waits for the slowest thread, so one busy core stalls all). The chunks are small (16
  per thread for a kernel, 4 for a Python function: the last to end ends at most a chunk after
  the others), and the caller of a kernel takes them from the front, its workers from the back,
  so that the split stays about where it was in the call before (:func:`next_chunk`);
* a cheap hand-off: the chunks are claimed by an atomic counter inside the compiled kernel, so a
  worker runs all of its chunks in one call without the GIL. A worker that has just finished
  polls for the next job without the GIL, then blocks: for 2 ms (a wake-up costs 50-100 us),
  or for 0.3 ms (enough for the next call of a sequence such as a pyramid's levels) when a
  stall was seen in the last second: on a busy machine a polling thread takes someone's core
  (:data:`_SPIN_SECONDS`); the caller polls for the workers' last chunks, and for them to be
  polling again, for at most :data:`_JOIN_SPIN_SECONDS`, then blocks. It polls inside its
  kernel's last claim, without the GIL: a worker returns to Python after its kernel, and were the
  caller in Python then, one of the two would wait for the GIL (a futex wake-up). A hand-off
  through Python locks and the GIL costs 30-100 us on a virtual machine (a futex wake-up each
  way), as much as the work of a small call; this one costs a few microseconds;
* backing off under load: when a join waits much longer for a worker than the caller
  spent on its own chunks (:func:`is_stall`: a worker was descheduled in the middle of a chunk,
  by a busy neighbour; a worker that was blocked when the job was posted wakes late, which is
  not counted), the calls of the next 20 ms run serially, then threads are tried again;
  stalls in a row lengthen that pause up to 0.2 s (:data:`_BACKOFF_SECONDS`), and during it idle
  workers block at once instead of polling. On a loaded machine a polling thread takes a core
  from someone, and a descheduled one holds its chunk: one thread is the faster choice there;
* called from a worker thread or a child process (``joblib``, ``dask``, ``DenseSIFT(n_jobs=...)``,
  which already parallelize over images), or from inside a task, a kernel runs serially in the
  caller: no oversubscription, and no nested pools.

Plain Python functions (``function(start, stop, *args)``: tasks that call several kernels, or
BLAS) run on the same pool, claiming their chunks between calls.

A pool worker runs Python between jobs, so it needs the GIL to start one. Where that hand-off
is as long as the call (dense SIFT of one small image), :mod:`classicvision._kernels.team` runs
a kernel on worker threads that never leave compiled code; it shares this module's back-off
(:func:`backing_off`, :func:`note_join`).

The number of threads is ``CLASSICVISION_NUM_THREADS`` when set, else the CPUs this process may
run on (at most 8, read again at most once a second); :func:`num_threads` reports it for the
calling thread.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import numpy as np
from numba import njit
from numba.core.registry import CPUDispatcher

from . import affinity, atomics

__all__ = ["backing_off", "claim_slot", "idle_spins", "is_stall", "join_spins", "kernel", "next_chunk", "note_join",
           "num_threads", "parallel_for", "row_stride", "serial_job", "slot_count"]

_MAX_THREADS = 8
_CHUNKS_PER_THREAD = (16, 4)   # chunks per thread of a kernel and of a Python function: the one that
                               # ends last sets the time, at most a chunk after the others; a kernel's
                               # claim costs an atomic add, a Python chunk a call and the GIL
_SPIN_SECONDS = (0.0003, 0.002)  # how long an idle worker polls for the next job before it blocks:
                                 # the first while a stall was seen in the last _CALM_SECONDS
_CALM_SECONDS = 1.0
_JOIN_SPIN_SECONDS = 0.0005  # how long the caller polls for the workers' last chunks before it blocks
_STALL_RATIO = 0.5           # a join that waits longer than this share of the caller's own work ...
_STALL_SECONDS = 1e-4        # ... and longer than this is a stall: a worker was descheduled mid-chunk
_BACKOFF_SECONDS = (0.02, 0.2)   # after a stall, calls run serially for a while: from 20 ms, doubled
                                  # by each stall that follows one, up to 0.2 s; halved by each call
                                  # that does not stall
_backoff_until = 0.0
_backoff = _BACKOFF_SECONDS[0]
_last_stall = -1e9
_SETTLE_SECONDS = 5e-6       # how long a worker that saw a new job waits for the caller to leave the GIL
_pool = None
_pool_size = 0
_pool_lock = threading.Lock()

# A job: one int64 array. Its fields:
_NEXT, _ENTERED, _LEFT, _N_CHUNKS, _N, _CALLER_BLOCKED, _PARKED, _SLOTS = range(8)
# and a spare, then two that only the caller of a threaded kernel sees: the polls it may spend in
# its last next_chunk waiting for the others, and those it spent. A participant's view of the job
# says who it is (next_chunk): the whole frame for that caller, one field shorter than a plain job
# for the workers of a kernel, the plain job otherwise (a serial job, a Python function's task).
_JOIN_SPINS, _WAITED = 9, 10
_WORKER_VIEW, _JOB_SIZE = 8, 9
_BACK = 1 << 32   # job[_NEXT] counts the claims from the front in its low 32 bits, from the back above


def kernel(function=None, **options):
    """``numba.njit(cache=True, nogil=True, **options)``: the one way a kernel is compiled."""
    def decorate(f):
        return njit(cache=True, nogil=True, **options)(f)
    return decorate if function is None else decorate(function)


@kernel
def next_chunk(job):
    """Claim the next chunk of ``job``: ``(start, stop)`` with ``start < stop``, or ``(0, 0)``
    when none is left. A participant calls it until it gets ``(0, 0)`` and then touches no output:
    that last call counts it out of the job (the caller waits for every participant to be out).

    In a threaded kernel the workers (their view of ``job`` is the shortest, :class:`_Task`)
    take the chunks from the back, and everyone else from the front: the caller, a direct call
    on a :func:`serial_job`, the participants of a Python function (whose items may come
    costliest first). So the caller's chunks and the workers' are contiguous, and the split
    between them stays about where it was in the call before (the levels of a pyramid, a blur
    and then the extrema search on it). One atomic add on a word that counts the claims from
    each end: a claim is valid while the two counts before it sum to less than the number of
    chunks."""
    size = job.shape[0]
    from_back = size < _JOB_SIZE
    claims = atomics.atomic_add(job, _NEXT, _BACK if from_back else 1)
    n_chunks = job[_N_CHUNKS]
    front = claims & (_BACK - 1)
    back = claims >> 32
    if front + back >= n_chunks:
        atomics.atomic_add(job, _LEFT, 1)
        if size > _JOB_SIZE:
            _caller_waits(job)
        return 0, 0
    chunk = n_chunks - 1 - back if from_back else front
    n = job[_N]
    return n * chunk // n_chunks, n * (chunk + 1) // n_chunks


@kernel
def _caller_waits(job):
    """The caller's last claim (its view of ``job`` is the whole frame): poll, without the GIL,
    until every participant is out and the workers among them are polling again, for at most
    ``job[_JOIN_SPINS]`` polls, and store the polls spent in ``job[_WAITED]``. A worker returns
    to Python after its kernel, which needs the GIL: were the caller in Python then (between its
    kernel and the join), one of the two would block for it, a futex wake-up of tens of
    microseconds on a virtual machine."""
    spins = job[_JOIN_SPINS]
    for i in range(spins):
        entered = atomics.atomic_load(job, _ENTERED)
        if atomics.atomic_load(job, _LEFT) == entered and atomics.atomic_load(job, _PARKED) >= entered - 1:
            job[_WAITED] = i
            return
        atomics.pause()
    job[_WAITED] = spins


@kernel
def claim_slot(job, n_slots):
    """This participant's row of a scratch array of ``n_slots`` rows: ``0 <= slot < n_slots``, or
    ``-1`` when every row is taken, in which case it has been counted out of ``job`` and must
    return without claiming chunks (the others do them)."""
    slot = atomics.atomic_add(job, _SLOTS, 1)
    if slot < n_slots:
        return slot
    atomics.atomic_add(job, _LEFT, 1)
    return -1


def _serial(n: int, grain: int, threads: int) -> bool:
    """Whether :func:`parallel_for` runs ``n`` items of ``grain`` on the calling thread alone
    (besides backing off, which decides at the call)."""
    return threads <= 1 or n < 2 * grain


def slot_count(n: int, grain: int = 1, threads: int | None = None) -> int:
    """Rows of scratch that ``parallel_for(kernel, n, ..., grain=grain, threads=threads)`` from
    this thread needs for :func:`claim_slot`: one when it runs serially, else one per thread that
    may join it (more than needed is harmless, fewer only idles a thread)."""
    threads = num_threads() if threads is None else threads
    return 1 if _serial(n, grain, threads) else max(threads, _pool_size + 1)


def row_stride(n: int, itemsize: int = 4, *, page: bool = False) -> int:
    """Elements between two participants' scratch rows of ``n`` elements of ``itemsize`` bytes:
    ``n`` rounded up to a cache line (64 bytes), plus a line, so that no cache line holds two
    participants' rows, however the array is aligned (a line that two cores write moves between
    them at each write). With ``page``, for an array of one row per participant, plus a page
    (4096 bytes) more: nor does the stretch that a core's hardware prefetcher reads ahead of its
    row's end (it stops at a page boundary), which would otherwise take lines of the next
    participant's row (the blur's worker, whose row followed the caller's, ran its chunks 20-30%
    slower; ``benchmarks/README.md``). A kernel takes ``rows[slot]`` and uses its first ``n``."""
    per_line = max(1, 64 // itemsize)
    return (n + per_line - 1) // per_line * per_line + per_line + (4096 // itemsize if page else 0)


def serial_job(n: int, n_chunks: int = 1) -> np.ndarray:
    """A job over ``[0, n)`` in ``n_chunks`` chunks (none when ``n == 0``), for a kernel called
    directly on one thread; :func:`parallel_for` makes its jobs the same way."""
    return np.array([0, 0, 0, n_chunks if n > 0 else 0, n, 0, 0, 0, 0], np.int64)


_AFFINITY_SECONDS = 1.0   # how long a read of the allowed CPUs serves (a kernel call reads the count)
_affinity = (0, -1e9)     # (allowed CPUs, when read)


def _configured_threads() -> int:
    global _affinity
    value = os.environ.get("CLASSICVISION_NUM_THREADS", "")
    if value.strip():
        try:
            return max(1, int(value))
        except ValueError:
            raise ValueError(f"CLASSICVISION_NUM_THREADS must be a positive integer, got {value!r}") from None
    available, read_at = _affinity
    now = time.monotonic()
    if now - read_at > _AFFINITY_SECONDS:
        try:
            available = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # pragma: no cover - not Linux
            available = os.cpu_count() or 1
        _affinity = (available, now)
    return max(1, min(_MAX_THREADS, available))


_JOIN_CONDITION = threading.Condition()   # where a blocked caller waits for its workers


class _Local(threading.local):
    depth = 0   # parallel_for tasks this thread is inside (a class default: no failed lookup per call)


_local = _Local()


def num_threads() -> int:
    """Threads a kernel call from this thread uses: 1 inside a :func:`parallel_for` task (a task
    that calls kernels runs them inline), outside the main thread of the main process (workers
    already parallelize over items), else the configured count (module docstring)."""
    if _local.depth or threading.current_thread() is not threading.main_thread() \
            or multiprocessing.parent_process() is not None:
        return 1
    return _configured_threads()


_SPIN_NS = None   # nanoseconds per poll of atomics.park, measured on first use


def _spins(seconds: float) -> int:
    """Polls of :func:`atomics.park` that take about ``seconds`` here (measured once)."""
    global _SPIN_NS
    if _SPIN_NS is None:
        probe = np.zeros(1, np.int64)
        atomics.park(probe, -1, probe, 0, 0, 1, 0)    # compiled (or loaded) before timing
        start = time.perf_counter()
        atomics.park(probe, -1, probe, 0, 0, 20000, 0)
        _SPIN_NS = max(1.0, (time.perf_counter() - start) / 20000 * 1e9)
    return max(1, int(seconds * 1e9 / _SPIN_NS))


class _Task:
    """One :func:`parallel_for` call: the job array, the function and its arguments, and the
    caller's wake-up when it had to block."""

    def __init__(self, function, n, n_chunks, args):
        # The caller has entered (_ENTERED = 1): it goes straight into its kernel after the post.
        self.frame = np.array([0, 1, 0, n_chunks, n, 0, 0, 0, 0, join_spins(), 0], np.int64)
        self.function, self.args = function, args
        self.compiled = isinstance(function, CPUDispatcher)
        # the workers' view (a kernel's caller gets the whole frame; see next_chunk)
        self.job = self.frame[:_WORKER_VIEW if self.compiled else _JOB_SIZE]
        self.error: BaseException | None = None
        self.condition = _JOIN_CONDITION   # shared: a caller re-checks its job when woken

    def participate(self, caller: bool = False) -> None:
        """Enter (the caller has already), run chunks until none is left, and be counted out
        (also on an error, which stops the others from starting new chunks and is re-raised by
        the caller). The caller's kernel waits for the others in its last claim."""
        job = self.job
        if not caller:
            atomics.add(job, _ENTERED, 1)
        try:
            if self.compiled:
                self.function(self.frame if caller else job, *self.args)
            else:
                _local.depth += 1
                try:
                    start, stop = next_chunk(job)
                    while start < stop:
                        self.function(start, stop, *self.args)
                        start, stop = next_chunk(job)
                finally:
                    _local.depth -= 1
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            if self.error is None:
                self.error = exc
            atomics.add(job, _NEXT, int(job[_N_CHUNKS]))   # no new chunks for anyone
            atomics.add(job, _LEFT, 1)                      # the (0, 0) claim this one never made

    def worker_done(self) -> None:
        if atomics.load(self.job, _CALLER_BLOCKED):
            with self.condition:
                self.condition.notify_all()

    def join(self) -> None:
        """The caller, after its own :meth:`participate`: wait until everyone who entered is out,
        then re-raise the first error."""
        job = self.job
        if not atomics.spin_until_joined(job, _ENTERED, _LEFT, _PARKED, _spins(_JOIN_SPIN_SECONDS)):
            atomics.add(job, _CALLER_BLOCKED, 1)
            with self.condition:
                while atomics.load(job, _ENTERED) != atomics.load(job, _LEFT):
                    self.condition.wait(0.01)
        if self.error is not None:
            raise self.error


class _Pool:
    """Worker threads that join each posted :class:`_Task`. ``control`` holds the epoch (bumped
    per task) and the number of workers blocked on ``condition``."""

    def __init__(self, workers: int):
        self.control = np.zeros(2, np.int64)
        self.condition = threading.Condition()
        self.task: _Task | None = None
        self.spins = tuple(_spins(seconds) for seconds in _SPIN_SECONDS)
        self.settle = _spins(_SETTLE_SECONDS)
        self.threads = [threading.Thread(target=self._run, name=f"classicvision_{i}", daemon=True)
                        for i in range(workers)]
        for thread in self.threads:
            thread.start()
        self.steering = affinity.Steering(self.threads)

    def submit(self, task: _Task) -> None:
        self.task = task
        atomics.add(self.control, 0, 1)
        if atomics.load(self.control, 1):
            self.steering.steer()              # the woken workers start off the caller's CPU
            with self.condition:
                self.condition.notify_all()

    def _run(self) -> None:
        control, seen = self.control, 0
        epoch = atomics.park(control, -1, control, 0, seen, self.spins[0], self.settle)
        while True:
            if epoch == seen:
                with self.condition:
                    atomics.add(control, 1, 1)
                    while atomics.load(control, 0) == seen:
                        self.condition.wait()
                    atomics.add(control, 1, -1)
                    epoch = atomics.load(control, 0)
            seen = epoch
            task = self.task
            task.participate()
            task.worker_done()
            # After a stall the machine is busy: an idle worker that polled would take a core
            # from the caller or the neighbour, so it only checks once and blocks.
            epoch = atomics.park(task.job, _PARKED, control, 0, seen, idle_spins(), self.settle)


def _get_pool(workers: int) -> _Pool:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            _pool = _Pool(workers)   # a smaller pool left behind idles on its condition
            _pool_size = workers
        return _pool


def parallel_for(function, n: int, *args, grain: int = 1, threads: int | None = None,
                 uniform: bool = True) -> None:
    """Run ``function`` over ``[0, n)``: a kernel (a :func:`kernel` taking a job, module
    docstring) or a Python ``function(start, stop, *args)``. Serially when one thread is due or
    ``n < 2 * grain``, else in about ``16 * threads`` chunks (``4 * threads`` for a Python
    function) of at least ``grain`` items, taken dynamically by the pool and the calling thread;
    the caller waits only for chunks already started. ``function`` must write disjoint outputs
    for disjoint ranges; its first exception is raised here. ``uniform``: the items cost about
    the same, so a long wait for a worker is a stall (:func:`is_stall`; pass False for items of
    very different costs)."""
    threads = num_threads() if threads is None else threads
    start = time.perf_counter()
    if _serial(n, grain, threads) or start < _backoff_until:   # the last: backing off (module docstring)
        if n > 0:
            if isinstance(function, CPUDispatcher):
                function(serial_job(n), *args)
            else:
                function(0, n, *args)
        return
    per_thread = _CHUNKS_PER_THREAD[0 if isinstance(function, CPUDispatcher) else 1]
    n_chunks = max(2, min(threads * per_thread, n // grain))
    task = _Task(function, n, n_chunks, args)
    pool = _get_pool(threads - 1)
    asleep = atomics.load(pool.control, 1) > 0   # a blocked worker wakes late: not a sign of load
    pool.submit(task)
    task.participate(caller=True)
    own = time.perf_counter()
    task.join()
    end = time.perf_counter()
    if uniform and not asleep:
        waited = task.frame[_WAITED] * _SPIN_NS * 1e-9   # in the kernel's last claim
        note_join(own - start - waited, end - own + waited)


def backing_off() -> bool:
    """Whether kernel calls run serially now, after a stall (module docstring)."""
    return time.perf_counter() < _backoff_until


def idle_spins() -> int:
    """Polls of an idle worker before it blocks (:data:`_SPIN_SECONDS`): one while backing off,
    the shorter count after a recent stall."""
    now = time.perf_counter()
    if now < _backoff_until:
        return 1
    return _spins(_SPIN_SECONDS[0] if now - _last_stall < _CALM_SECONDS else _SPIN_SECONDS[1])


def join_spins() -> int:
    """Polls of a caller waiting for its workers' last chunks before it blocks."""
    return _spins(_JOIN_SPIN_SECONDS)


def note_join(own_seconds: float, wait_seconds: float) -> None:
    """Record a threaded call of uniform chunks, posted while its workers were awake, that waited
    ``wait_seconds`` for them after ``own_seconds`` of the caller's chunks: a stall
    (:func:`is_stall`) starts a back-off (module docstring). :func:`parallel_for` and the teams of
    :mod:`classicvision._kernels.team` share this state."""
    global _backoff_until, _backoff, _last_stall
    end = time.perf_counter()
    if is_stall(own_seconds, wait_seconds):
        _last_stall = end
        _backoff_until = end + _backoff
        _backoff = min(2 * _backoff, _BACKOFF_SECONDS[1])
    else:
        _backoff = max(_backoff / 2, _BACKOFF_SECONDS[0])


def is_stall(own_seconds: float, wait_seconds: float) -> bool:
    """Whether a join waited so long for the others (``wait_seconds``, after the caller's own
    ``own_seconds`` of chunks) that a worker must have been descheduled mid-chunk: the chunks are
    equal splits of items of about the same cost, so on a free core a worker's last chunk ends
    soon after the caller's."""
    return wait_seconds > max(_STALL_SECONDS, _STALL_RATIO * own_seconds)
