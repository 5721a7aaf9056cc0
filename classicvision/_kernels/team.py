"""A team of worker threads that run one kernel's chunks without Python: the hand-off of a hot,
short call (dense SIFT of one 15-Scene image: 0.2 ms a thread).

A :mod:`~classicvision._kernels.jit` pool worker runs Python between jobs: to pick up a job it
needs the GIL, which the caller holds between kernels, and on a virtual machine a GIL hand-off
is a futex wake-up of 50-100 us, as much as the work of the call. A team worker instead stays in
one compiled loop (the kernel's one entry ``entry(control, frame, values, worker=True)``, written
with the functions below; :class:`Team`): it polls the control array, then sleeps in
``futex(2)``; when a call is posted, it claims chunks, reads the call's arrays from the *frame*
(addresses and shapes, :func:`array_at`), runs them, and counts them done, all without the GIL. This is what a ``prange`` pool does (OpenMP's
workers), with :mod:`~classicvision._kernels.jit`'s dynamic scheduling: a chunk goes to whoever
is free, the caller included, so a descheduled worker holds up only the chunk it is on.

Control fields (one int64 array): ``NEXT`` the claim counter of the current call, packed as
``call << 40 | n_chunks << 20 | next_chunk`` so that one atomic add returns a chunk and the
call it belongs to (a late worker never runs a chunk of a call it did not see posted);
``DONE`` the chunks finished; ``EPOCH`` the futex word, bumped per call; ``SLEEPERS`` the
workers in ``futex`` wait; ``CALLS``; ``SPINS`` polls of an idle worker before it sleeps
(set by the caller: short while :mod:`~classicvision._kernels.jit` backs off); ``STOP``.

Before a call that finds a worker asleep, the caller keeps the workers off its own CPU
(:mod:`~classicvision._kernels.affinity`): on a virtual machine a woken worker is otherwise often
queued behind the caller, and the call runs on one thread.

Linux only (``futex``; :data:`AVAILABLE`); elsewhere callers use the :mod:`jit` pool.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from numba import carray, njit, types
from numba.extending import intrinsic

from . import affinity, atomics

__all__ = ["AVAILABLE", "CONTROL_FIELDS", "DONE", "EPOCH", "SPINS", "STOP", "Team", "array_at", "claim", "finish",
           "idle", "join", "new_control", "post", "run_alone"]

AVAILABLE = atomics.HAVE_FUTEX

NEXT, DONE, EPOCH, SLEEPERS, CALLS, SPINS, STOP, CALLER_WAITING, DONE_EPOCH = range(9)
CONTROL_FIELDS = 16                        # the 9 fields, padded to two cache lines
_CALL_SHIFT, _N_SHIFT, _FIELD = 40, 20, (1 << 20) - 1
_SLEEP_NS = 20_000_000                     # a futex wait's timeout: a lost wake-up costs 20 ms, never a hang


def new_control(spins: int) -> np.ndarray:
    """A control array whose idle workers poll ``spins`` times before they sleep."""
    control = np.zeros(CONTROL_FIELDS, np.int64)
    control[NEXT] = (1 << _N_SHIFT) | 1        # call 0: 1 chunk, claimed, so nothing to run
    control[SPINS] = spins
    return control


@intrinsic
def _pointer(typingctx, address, dtype):
    """The integer ``address`` as a pointer to ``dtype`` (a numba dtype given as a value)."""
    if not isinstance(address, types.Integer):
        return None
    target = dtype.dtype if isinstance(dtype, types.DType) else dtype
    if isinstance(target, types.NumberClass):
        target = target.instance_type

    def codegen(context, builder, signature, args):
        return builder.inttoptr(context.cast(builder, args[0], signature.args[0], types.int64),
                                context.get_value_type(signature.return_type))

    return types.CPointer(target)(address, dtype), codegen


@njit(cache=True)
def array_at(address, shape, dtype):
    """The C-contiguous array of ``shape`` and ``dtype`` at the integer ``address`` (an array's
    ``ctypes.data`` that the poster keeps alive until the call is done)."""
    return carray(_pointer(address, dtype), shape)


@njit(cache=True)
def post(control, n_chunks, spins):
    """Start a call of ``n_chunks`` chunks (``1 <= n_chunks < 2**20``; its frame written before):
    the previous call is done, so its counters are reset, then the claim counter gets the new
    call's tag, then idle workers are woken. ``spins``: polls of a worker that then goes idle."""
    call = control[CALLS] + 1
    control[CALLS] = call
    control[SPINS] = spins
    atomics.atomic_store(control, DONE, 0)
    atomics.atomic_store(control, NEXT, (call << _CALL_SHIFT) | (n_chunks << _N_SHIFT))
    atomics.atomic_add(control, EPOCH, 1)
    if atomics.atomic_load(control, SLEEPERS) > 0:
        atomics.futex(control, EPOCH, atomics.FUTEX_WAKE, 1 << 30, 0)


@njit(cache=True)
def claim(control):
    """The next chunk ``0 <= chunk < n`` of the current call as ``(chunk, n)``, or ``(-1, 0)``
    when none is left."""
    value = atomics.atomic_add(control, NEXT, 1)
    n = (value >> _N_SHIFT) & _FIELD
    chunk = value & _FIELD
    if chunk < n:
        return chunk, n
    return -1, 0


@njit(cache=True)
def finish(control, n):
    """Count a chunk of the current call (of ``n`` chunks) done; the last one wakes a caller
    that sleeps in :func:`join`."""
    if atomics.atomic_add(control, DONE, 1) == n - 1 and atomics.atomic_load(control, CALLER_WAITING):
        atomics.atomic_add(control, DONE_EPOCH, 1)
        atomics.futex(control, DONE_EPOCH, atomics.FUTEX_WAKE, 1, 0)


@njit(cache=True, nogil=True)
def join(control, n, spins):
    """Wait until the ``n`` chunks of the current call are done: poll up to ``spins`` times, then
    sleep in ``futex``. Returns the polls it made (``spins`` or more: it slept)."""
    for i in range(spins):
        if atomics.atomic_load(control, DONE) >= n:
            return i
        atomics.pause()
    atomics.atomic_add(control, CALLER_WAITING, 1)
    while atomics.atomic_load(control, DONE) < n:
        seen = atomics.atomic_load(control, DONE_EPOCH)
        if atomics.atomic_load(control, DONE) >= n:
            break
        atomics.futex(control, DONE_EPOCH, atomics.FUTEX_WAIT, seen, 1_000_000)
    atomics.atomic_add(control, CALLER_WAITING, -1)
    return spins


@njit(cache=True)
def idle(control, seen):
    """A worker between calls: poll ``EPOCH`` up to ``control[SPINS]`` times for a change from
    ``seen``, then sleep in ``futex`` until it changes (or ``STOP`` is set). Returns the new epoch."""
    spins = atomics.atomic_load(control, SPINS)
    for _ in range(spins):
        epoch = atomics.atomic_load(control, EPOCH)
        if epoch != seen:
            return epoch
        atomics.pause()
    atomics.atomic_add(control, SLEEPERS, 1)
    epoch = atomics.atomic_load(control, EPOCH)
    while epoch == seen and atomics.atomic_load(control, STOP) == 0:
        atomics.futex(control, EPOCH, atomics.FUTEX_WAIT, seen, _SLEEP_NS)
        epoch = atomics.atomic_load(control, EPOCH)
    atomics.atomic_add(control, SLEEPERS, -1)
    return epoch


class Team:
    """``workers`` threads, each running ``entry(control, frame, values, True)``, and
    :meth:`run`, which posts a call of the frame and joins in it with ``entry(control, frame,
    values, False)``. ``entry`` is a kernel's one compiled entry (module docstring): as a worker,
    a loop around :func:`idle` and its chunks until ``STOP``; as the caller, the chunks it can
    claim. It is compiled (or loaded) in the calling thread before the threads start. One caller
    at a time."""

    def __init__(self, entry, frame_fields: int, n_values: int, workers: int, spins: int):
        self.control = new_control(spins)
        self.frame = np.zeros(frame_fields, np.int64)
        self.values = np.zeros(n_values, np.float64)
        self.entry = entry
        self.workers = workers
        self.control[STOP] = 1
        entry(self.control, self.frame, self.values, True)      # compiles; returns at once on STOP
        self.control[STOP] = 0
        self.threads = [threading.Thread(target=entry, args=(self.control, self.frame, self.values, True),
                                         name=f"classicvision_team_{i}", daemon=True) for i in range(workers)]
        for thread in self.threads:
            thread.start()
        self.steering = affinity.Steering(self.threads)

    def run(self, n_chunks: int, idle_spins: int, join_spins: int):
        """Post a call of ``n_chunks`` chunks (its frame filled), run chunks in the caller, wait for
        the rest. Returns ``(start, own, end, asleep)``: the clock at the post, when the caller ran
        out of chunks and at the end, and whether a worker was asleep at the post (it wakes late)."""
        control = self.control
        asleep = atomics.load(control, SLEEPERS) > 0
        if asleep:
            self.steering.steer()
        start = time.perf_counter()
        post(control, n_chunks, idle_spins)
        self.entry(control, self.frame, self.values, False)
        own = time.perf_counter()
        join(control, n_chunks, join_spins)
        return start, own, time.perf_counter(), asleep

    def stop(self) -> None:
        """End the threads (between calls)."""
        self.control[STOP] = 1
        post(self.control, 1, 0)
        for thread in self.threads:
            thread.join(1.0)


def run_alone(entry, frame, values, n_chunks: int = 1) -> None:
    """Run a call of ``n_chunks`` chunks of ``entry`` (:class:`Team`) on the frame in the calling
    thread only."""
    control = new_control(0)
    post(control, n_chunks, 0)
    entry(control, frame, values, False)
