"""Tests for classicvision._kernels.jit: how kernels are compiled and spread over threads."""

from __future__ import annotations

import importlib
import pkgutil
import threading

import numba
import pytest

import classicvision._kernels as kernels
from classicvision._kernels.jit import num_threads, parallel_for


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
              if list(d.py_func.__code__.co_varnames[:2]) in (["start", "stop"], ["b_start", "b_stop"])}
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
    lock = threading.Lock()

    def work(start, stop):
        if start == 0:
            time.sleep(0.3)
        with lock:
            done_by[start] = threading.current_thread().name

    parallel_for(work, 8, threads=2)
    stuck = done_by[0]
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
