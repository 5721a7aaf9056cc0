"""Worker processes that die with their parent, and the checks a benchmark makes before it starts.

A benchmark run fans work out to joblib's loky worker processes (dense SIFT, the cross-validation
fits). When the main process is killed (SIGTERM, SIGKILL, the out-of-memory killer) nothing in
it runs any more, so the workers must notice on their own: :func:`worker_processes` makes every
worker started inside it run :func:`guard_worker` first, which

* on Linux asks the kernel to send the worker SIGKILL when its parent dies
  (``prctl(PR_SET_PDEATHSIG, SIGKILL)``, through :mod:`ctypes`);
* everywhere starts a daemon thread that checks :func:`os.getppid` every ``WATCHDOG_SECONDS``
  and ends the worker (``os._exit``) once the parent has gone (it is re-parented then);
* exits at once if the parent was already gone when the worker started.

No SIGTERM handler is installed in the main process: Python runs handlers only between
bytecodes, so a run in the middle of a long compiled call (k-means, liblinear) would ignore
SIGTERM for minutes; with the default action the process ends at once and its workers follow.
Work finished before the kill is kept by the per-stage ``partial.json``
(:func:`classicvision.experiments.reports.write_partial`), and ``*.tmp`` entries a killed worker
leaves in the features cache are removed by the next run
(:meth:`~classicvision.experiments.cache.CachedFeatures.remove_stale`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import time
from pathlib import Path

__all__ = ["WATCHDOG_SECONDS", "check_writable_folder", "guard_worker", "guarded", "worker_processes"]

WATCHDOG_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1
_guarded = False


def _watch(parent_pid: int) -> None:
    while True:
        time.sleep(WATCHDOG_SECONDS)
        if os.getppid() != parent_pid:
            os._exit(1)


def guard_worker(parent_pid: int) -> None:
    """Make this worker process end when ``parent_pid`` (the process that started it) ends.

    Meant as a pool initializer (see :func:`worker_processes`); does nothing in ``parent_pid``
    itself and nothing the second time in one process.
    """
    global _guarded
    if os.getpid() == parent_pid or _guarded:
        return
    _guarded = True
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watchdog below still works
            pass
    if os.getppid() != parent_pid:  # the parent died before the guard was in place
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), name="classicvision-parent-watchdog", daemon=True).start()


def worker_processes():
    """Context manager: joblib's loky workers started inside it run :func:`guard_worker` first.

    Applies to every :class:`joblib.Parallel` inside, scikit-learn's (``GridSearchCV(n_jobs=...)``)
    included, through :func:`joblib.parallel_config`.

    Examples
    --------
    >>> from joblib import Parallel, delayed
    >>> with worker_processes():
    ...     Parallel(n_jobs=2)(delayed(abs)(i) for i in (-1, -2))
    [1, 2]
    """
    from joblib import parallel_config

    return parallel_config(backend="loky", initializer=guard_worker, initargs=(os.getpid(),))


def guarded(func):
    """Decorator: run ``func`` inside :func:`worker_processes` (the benchmark runners use it)."""
    @functools.wraps(func)
    def run(*args, **kwargs):
        with worker_processes():
            return func(*args, **kwargs)
    return run


def check_writable_folder(folder, name: str) -> Path:
    """Create ``folder`` if needed and check that a file can be written there; returns it as a Path.

    Raises
    ------
    ValueError
        Naming the argument ``name``, the folder and the reason (one line).
    """
    folder = Path(folder)
    probe = folder / f".write-probe.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"probe")
        probe.unlink()
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink()
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"{name} must be a folder that can be written, got {folder} ({reason})") from None
    _remove_dead_temporaries(folder)
    return folder


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _remove_dead_temporaries(folder: Path) -> int:
    """Remove ``.<name>.<pid>.tmp`` files (written by :func:`check_writable_folder` and the report
    writers) whose process no longer runs: what a killed run leaves. Returns how many."""
    removed = 0
    for tmp in folder.glob(".*.tmp"):
        pid = tmp.name[:-len(".tmp")].rpartition(".")[2]
        if pid.isdigit() and not _pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed += 1
    return removed
