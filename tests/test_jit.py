"""Tests for classicvision._kernels.jit: how kernels are compiled and spread over threads."""

from __future__ import annotations

import importlib
import os
import pkgutil
import threading
import time

import numba
import numpy as np
import pytest

import classicvision._kernels as kernels
from classicvision._kernels import affinity, atomics, jit
from classicvision._kernels.jit import next_chunk, num_threads, parallel_for, serial_job


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    """Each test starts with threads on: a stall measured by an earlier test (one of them sleeps
    in a chunk on purpose) would otherwise make the next calls serial for a while."""
    monkeypatch.setattr(jit, "_backoff_until", 0.0)
    monkeypatch.setattr(jit, "_backoff", jit._BACKOFF_SECONDS[0])


def _dispatchers():
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"classicvision._kernels.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, numba.core.registry.CPUDispatcher) and value.__module__ == module.__name__:
                yield f"{info.name}.{name}", value


def test_no_kernel_is_a_numba_parallel_build():
    """One serial build per kernel: parallel=True compiles several times slower and spins."""
    found = dict(_dispatchers())
    assert len(found) > 20
    assert [name for name, d in found.items() if d.targetoptions.get("parallel")] == []


def test_range_kernels_release_the_gil():
    ranged = {name: d for name, d in _dispatchers()
              if d.py_func.__code__.co_varnames[:1] == ("job",)}
    assert len(ranged) >= 10
    assert [name for name, d in ranged.items() if not d.targetoptions.get("nogil")] == []


@pytest.mark.parametrize("n, grain, threads", [(0, 1, 2), (1, 1, 2), (7, 1, 2), (100, 3, 2), (1000, 16, 3),
                                               (5, 10, 4), (64, 1, 1)])
def test_parallel_for_covers_the_range_once(n, grain, threads):
    seen, lock = [], threading.Lock()

    def record(start, stop, tag):
        assert tag == "x" and 0 <= start < stop <= n
        with lock:
            seen.extend(range(start, stop))

    parallel_for(record, n, "x", grain=grain, threads=threads)
    assert sorted(seen) == list(range(n))


def test_a_slow_chunk_does_not_hold_the_others():
    """Dynamic scheduling: while one participant is stuck, the other takes every other chunk."""
    import time

    done_by = {}
    claimed = []
    lock = threading.Lock()

    def work(start, stop):
        with lock:
            claimed.append(start)
            slow = len(claimed) == 1          # the first chunk anyone takes
        if slow:
            time.sleep(0.3)
        with lock:
            done_by[start] = threading.current_thread().name

    parallel_for(work, 8, threads=2)
    stuck = done_by[claimed[0]]
    assert sum(1 for name in done_by.values() if name != stuck) == 7


def test_errors_propagate():
    def fail(start, stop):
        if start > 0:
            raise RuntimeError("chunk failed")

    with pytest.raises(RuntimeError, match="chunk failed"):
        parallel_for(fail, 100, threads=2)


def test_workers_run_serially_and_the_environment_sets_the_count(monkeypatch):
    monkeypatch.setenv("CLASSICVISION_NUM_THREADS", "3")
    assert num_threads() == 3
    counts = []
    worker = threading.Thread(target=lambda: counts.append(num_threads()))
    worker.start()
    worker.join()
    assert counts == [1]
    monkeypatch.setenv("CLASSICVISION_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="CLASSICVISION_NUM_THREADS"):
        num_threads()


# ------------------------------------------------------------------ compiled kernels on the pool
@numba.njit(nogil=True)
def _count_into(job, out):
    start, stop = next_chunk(job)
    while start < stop:
        for i in range(start, stop):
            out[i] += 1
        start, stop = next_chunk(job)


@numba.njit(nogil=True)
def _fail_past(job, limit, out):
    start, stop = next_chunk(job)
    while start < stop:
        for i in range(start, stop):
            if i >= limit:
                raise ValueError("index past the limit")
            out[i] = 1
        start, stop = next_chunk(job)


@pytest.mark.parametrize("n, grain, threads", [(0, 1, 2), (1, 1, 2), (7, 1, 2), (1000, 16, 2), (4097, 1, 3),
                                               (64, 1, 1)])
def test_compiled_kernels_cover_the_range_once(n, grain, threads):
    for _ in range(20):   # many hand-offs in a row, as a pyramid makes
        out = np.zeros(n, np.int64)
        parallel_for(_count_into, n, out, grain=grain, threads=threads)
        assert (out == 1).all()


def test_serial_job_runs_a_kernel_directly():
    out = np.zeros(10, np.int64)
    _count_into(serial_job(10, 3), out)
    assert (out == 1).all()
    _count_into(serial_job(0), out)
    assert (out == 1).all()


@numba.njit(nogil=True)
def _mark_ends(job, by_caller, order, count, work):
    start, stop = next_chunk(job)
    while start < stop:
        claim = jit.atomics.atomic_add(count, 0, 1)
        for _ in range(work):          # long enough chunks for a worker to join in
            jit.atomics.pause()
        for i in range(start, stop):
            by_caller[i] = job.shape[0] > jit._JOB_SIZE   # the caller's view of the job is longer
            order[i] = claim
        start, stop = next_chunk(job)


def test_the_caller_claims_from_the_front_and_the_others_from_the_back():
    seen_workers = False
    for _ in range(50):
        n = 64
        by_caller, order, count = np.zeros(n, np.bool_), np.zeros(n, np.int64), np.zeros(1, np.int64)
        parallel_for(_mark_ends, n, by_caller, order, count, 2000, threads=2)
        assert sorted(set(order)) == list(range(count[0]))           # every item in one claim
        split = int(by_caller.sum())
        assert by_caller[:split].all() and not by_caller[split:].any()   # one front, one back
        assert (np.diff(order[:split]) >= 0).all() and (np.diff(order[split:]) <= 0).all()
        seen_workers |= split < n
    assert seen_workers
    by_caller, order, count = np.zeros(8, np.bool_), np.zeros(8, np.int64), np.zeros(1, np.int64)
    _mark_ends(serial_job(8, 8), by_caller, order, count, 0)          # a direct call: from the front
    assert not by_caller.any() and list(order) == list(range(8))


def test_a_python_functions_chunks_go_from_the_front_to_everyone():
    """Its items may come costliest first (the pyramid levels a description task runs over)."""
    claims = []
    lock = threading.Lock()

    def work(start, stop):
        with lock:
            claims.append((start, threading.current_thread().name))
        time.sleep(0.002)

    parallel_for(work, 16, threads=2)
    assert sorted(start for start, _ in claims) == list(range(0, 16, 2))
    names = {name for _, name in claims}
    assert len(names) >= 2                             # the caller and a worker (or more)
    for name in names:                                  # each takes the next one from the front
        own = [start for start, who in claims if who == name]
        assert own == sorted(own)


def _frame(entered, left, parked, spins):
    frame = np.array([0, entered, left, 1, 1, 0, parked, 0, 0, spins, -1], np.int64)
    frame[jit._NEXT] = 1                                           # the one chunk is taken
    return frame


def test_the_callers_last_claim_waits_for_the_others_to_be_out_and_polling():
    frame = _frame(entered=2, left=1, parked=1, spins=10_000)     # the worker is out and polls again
    assert next_chunk(frame) == (0, 0)
    assert frame[jit._LEFT] == 2 and frame[jit._WAITED] == 0
    frame = _frame(entered=2, left=0, parked=0, spins=1000)       # the worker is still in a chunk
    assert next_chunk(frame) == (0, 0)
    assert frame[jit._WAITED] == 1000                             # it waited, up to its polls
    frame = _frame(entered=2, left=1, parked=0, spins=1000)       # out, not yet polling (in Python)
    next_chunk(frame)
    assert frame[jit._WAITED] == 1000
    job = _frame(entered=2, left=0, parked=0, spins=1000)[:8]     # a worker's view does not wait
    assert next_chunk(job) == (0, 0) and job[jit._LEFT] == 1


@numba.njit(nogil=True)
def _sum_by_slot(job, values, scratch, owner):
    slot = jit.claim_slot(job, scratch.shape[0])
    if slot < 0:
        return
    start, stop = next_chunk(job)
    while start < stop:
        for i in range(start, stop):
            scratch[slot, 0] += values[i]
            owner[i] = slot
        start, stop = next_chunk(job)


@pytest.mark.parametrize("threads, slots", [(1, 1), (2, 2), (3, 3), (3, 1), (2, 5)])
def test_each_participant_gets_its_own_scratch_row_and_those_past_the_rows_leave(threads, slots):
    """claim_slot: rows are never shared (the per-row sums add up to the total), every index is
    done once by a participant that holds a row, and with fewer rows than threads the extra
    threads leave without work and the call still returns."""
    values = np.arange(1, 4001, dtype=np.float64)
    for _ in range(10):
        scratch = np.zeros((slots, 1))
        owner = np.full(len(values), -1, np.int64)
        parallel_for(_sum_by_slot, len(values), values, scratch, owner, threads=threads)
        assert scratch.sum() == values.sum()
        assert ((owner >= 0) & (owner < slots)).all()
        for slot in range(slots):
            assert scratch[slot, 0] == values[owner == slot].sum()
    scratch = np.zeros((1, 1))
    _sum_by_slot(serial_job(len(values), 3), values, scratch, owner)
    assert scratch[0, 0] == values.sum() and (owner == 0).all()


def test_slot_count_covers_every_thread_of_a_call():
    """One row where parallel_for runs serially (too few items for two chunks of the grain), else
    one per thread that may join."""
    assert jit.slot_count(100) >= num_threads()
    assert jit.slot_count(1) == 1 and jit.slot_count(31, 16) == 1
    parallel_for(_count_into, 100, np.zeros(100, np.int64), threads=3)   # a pool of two workers
    assert jit.slot_count(100) == 1 if num_threads() == 1 else jit.slot_count(100) >= 3
    assert jit.slot_count(32, 16) == jit.slot_count(100)


def test_compiled_errors_propagate_and_the_pool_survives():
    with pytest.raises(ValueError, match="past the limit"):
        parallel_for(_fail_past, 1000, 500, np.zeros(1000, np.int64), threads=2)
    out = np.zeros(1000, np.int64)
    parallel_for(_count_into, 1000, out, threads=2)
    assert (out == 1).all()


@numba.njit(nogil=True)
def _hammer(counter, n):
    for _ in range(n):
        atomics.atomic_add(counter, 0, 1)


def test_atomic_add_loses_no_update_across_threads():
    counter = np.zeros(1, np.int64)
    _hammer(counter, 1)
    counter[0] = 0
    threads = [threading.Thread(target=_hammer, args=(counter, 200_000)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter[0] == 600_000 and atomics.load(counter, 0) == 600_000


def test_a_stall_is_a_wait_much_longer_than_the_callers_work():
    assert not jit.is_stall(0.010, 0.002)       # the worker's last chunk ended soon after the caller's
    assert jit.is_stall(0.001, 0.004)           # a descheduled worker held its chunk for ms
    assert not jit.is_stall(0.00001, 0.00005)   # microseconds are jitter, not a stall


def test_after_a_stall_calls_run_serially_for_a_while(monkeypatch):
    import time

    monkeypatch.setattr(jit, "_backoff_until", time.perf_counter() + 60)
    names = set()
    parallel_for(lambda start, stop: names.add(threading.current_thread().name), 64, threads=2)
    assert names == {threading.current_thread().name}
    jit._backoff_until = 0.0
    seen = []
    parallel_for(lambda start, stop: seen.append((start, stop)), 64, threads=2)
    assert len(seen) > 1   # chunked again


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2
                    or not affinity.AVAILABLE, reason="steering needs Linux and two allowed CPUs")
def test_a_task_that_wakes_blocked_pool_workers_keeps_them_off_the_callers_cpu(monkeypatch):
    allowed = os.sched_getaffinity(0)
    cpu = max(allowed)
    monkeypatch.setattr(affinity, "current_cpu", lambda: cpu)
    monkeypatch.setattr(jit, "_backoff_until", 0.0)
    monkeypatch.setattr(jit, "note_join", lambda *times: None)   # a slow CI join: no back-off
    out = np.zeros(64)

    def fill(start, stop):
        out[start:stop] += 1

    parallel_for(fill, 64, threads=2)                        # the pool exists
    pool = jit._get_pool(1)
    for thread in pool.threads:                              # as if never steered: a mask
        os.sched_setaffinity(thread.native_id, allowed)      # left by an earlier test is gone
    pool.steering.mask = None
    deadline = time.monotonic() + 10
    while atomics.load(pool.control, 1) < len(pool.threads) and time.monotonic() < deadline:
        time.sleep(0.002)                                    # every worker blocked on its condition
    assert atomics.load(pool.control, 1) == len(pool.threads)
    parallel_for(fill, 64, threads=2)
    np.testing.assert_array_equal(out, 2)
    for thread in pool.threads:
        assert os.sched_getaffinity(thread.native_id) == allowed - {cpu}
    for thread in pool.threads:                              # leave the pool as it was
        os.sched_setaffinity(thread.native_id, allowed)
    pool.steering.mask = None


def test_row_stride_keeps_participants_rows_a_line_or_a_line_and_a_page_apart():
    for itemsize in (1, 4, 8):
        for n in (1, 7, 15, 16, 17, 1000, 1024):
            for page in (False, True):
                stride = jit.row_stride(n, itemsize, page=page)
                assert stride >= n and (stride * itemsize) % 64 == 0
                # row i's last byte and row i + 1's first: another line (and a page)
                assert (stride - n) * itemsize >= 64 + 4096 * page
    assert jit.row_stride(16, 4) == 32 and jit.row_stride(17, 4) == 48 and jit.row_stride(8, 8) == 16
    assert jit.row_stride(16, 4, page=True) == 32 + 1024 and jit.row_stride(8, 8, page=True) == 16 + 512
