"""Timing and result files shared by every benchmark script (run as ``python benchmarks/NAME.py``,
so this module is importable as ``_timing``).

Two timing protocols, one function each:

* :func:`measure`: ``warmup`` untimed calls (which also compile or load the numba kernels), then
  ``repeat`` timed calls of one function. ``settle`` seconds of sleep before the warm-up let
  another library's thread pool go idle (OpenCV's workers spin-wait after a job and slow
  whatever runs next); ``pause`` seconds of sleep before *each* timed call do the same where
  methods alternate call by call. The :class:`Timing` it returns has every time, their
  ``best`` and ``median``, and the last call's return value.
* :func:`interleaved`: several functions measured in ``rounds`` alternating batches (one
  :func:`measure` per function per round, ``repeat // rounds`` calls each), so that all of
  them meet the same minutes of a shared host. With ``rounds=repeat`` and ``warmup=0`` it is
  a plain round robin, one call of each function per round.

And the two things every script writes: :func:`machine_info` (the versions, thread counts and
load average that a timing depends on) and :func:`write_results` (``NAME.md`` + ``NAME.json``
into ``--out``, by default :data:`RESULTS`).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Where the scripts write their results unless given ``--out``.
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Timing:
    """Wall times in seconds of the timed calls of one function, and its last return value."""

    times: list[float] = field(default_factory=list)
    result: Any = None

    @property
    def best(self) -> float:
        """The shortest time (the least disturbed call)."""
        return min(self.times)

    @property
    def median(self) -> float:
        """The median time."""
        return statistics.median(self.times)

    def extend(self, other: Timing) -> Timing:
        """Append ``other``'s times (and keep its result); returns self."""
        self.times.extend(other.times)
        self.result = other.result
        return self


def measure(fn: Callable[[], Any], repeat: int, *, warmup: int = 1, settle: float = 0.0,
            pause: float = 0.0) -> Timing:
    """Time ``repeat`` calls of ``fn()`` after ``warmup`` untimed ones.

    ``settle``: seconds of sleep before the warm-up (once); ``pause``: seconds of sleep before
    each timed call. ``repeat`` is at least 1.
    """
    if settle > 0:
        time.sleep(settle)
    result = None
    for _ in range(warmup):
        result = fn()
    timing = Timing(result=result)
    for _ in range(max(1, int(repeat))):
        if pause > 0:
            time.sleep(pause)
        start = time.perf_counter()
        timing.result = fn()
        timing.times.append(time.perf_counter() - start)
    return timing


def best_of(fn: Callable[[], Any], repeat: int, **options) -> float:
    """``measure(fn, repeat, **options).best``."""
    return measure(fn, repeat, **options).best


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int, *, rounds: int = 3, warmup: int = 1,
                settle: float = 0.0, pause: float = 0.0) -> dict[str, Timing]:
    """Time every function of ``fns`` in ``rounds`` alternating batches.

    Each round runs ``measure(fn, repeat // rounds, warmup=warmup, settle=settle, pause=pause)``
    for each function in order, so each gets about ``repeat`` timed calls in all (at least one
    per round; ``rounds`` is cut to ``repeat`` when larger). Returns a :class:`Timing` per name
    with the times of all its rounds.
    """
    rounds = max(1, min(int(rounds), int(repeat)))
    per_round = max(1, int(repeat) // rounds)
    timings = {name: Timing() for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            timings[name].extend(measure(fn, per_round, warmup=warmup, settle=settle, pause=pause))
    return timings


def machine_info() -> dict:
    """What the timings depend on: platform, cores, library versions and threads, load average, date."""
    import cv2
    import numba
    import numpy as np

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "numba_threads": numba.get_num_threads(), "opencv": cv2.__version__,
            "opencv_threads": cv2.getNumThreads(), "load_average": [round(v, 2) for v in os.getloadavg()],
            "date": time.strftime("%Y-%m-%d %H:%M")}


def machine_line(info: dict) -> str:
    """One Markdown sentence of :func:`machine_info`."""
    load = ", ".join(f"{v:.2f}" for v in info["load_average"])
    return (f"Machine: {info['processor']}, {info['cpu_count']} cores, numba {info['numba']} "
            f"({info['numba_threads']} threads), OpenCV {info['opencv']} ({info['opencv_threads']} threads), "
            f"load average {load}, {info['date']}.")


def add_out_argument(parser) -> None:
    """The ``--out`` option every script has (default :data:`RESULTS`)."""
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help=f"folder for the results files (default {RESULTS}); smoke runs: a temporary folder")


def write_results(out, name: str, markdown: str, data: dict) -> tuple[Path, Path]:
    """Write ``out/NAME.md`` and ``out/NAME.json`` (``out`` created); returns both paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / f"{name}.md", out / f"{name}.json"
    md.write_text(markdown if markdown.endswith("\n") else markdown + "\n")
    js.write_text(json.dumps(data, indent=1, default=_jsonable) + "\n")
    return md, js


def _jsonable(value):
    """numpy scalars and arrays, paths: as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
