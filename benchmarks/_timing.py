"""Timing shared by the benchmark scripts (run as ``python benchmarks/NAME.py``, so importable)."""

from __future__ import annotations

import time


def run_times(fn, repeat: int, settle: float = 0.0) -> list[float]:
    """Wall times in seconds of ``repeat`` calls of ``fn`` after one warm-up call (which also
    compiles or loads numba kernels). ``settle`` seconds of sleep first let another library's
    thread pool go idle (OpenCV's workers spin-wait after a job)."""
    time.sleep(settle)
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def best_of(fn, repeat: int, settle: float = 0.0) -> float:
    """The shortest of :func:`run_times`."""
    return min(run_times(fn, repeat, settle))
