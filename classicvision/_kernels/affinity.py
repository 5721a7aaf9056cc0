"""Keeping a woken worker thread off its waker's CPU.

On a virtual machine the scheduler often queues a thread woken from ``futex(2)`` on the waker's
CPU (the other vCPU, halted, does not count as idle), where it waits behind the caller until the
caller's time slice ends: a parallel call then runs on one thread, and the next ones too while
the worker polls behind the caller (traced here through ``/proc/<pid>/task/<tid>/stat``: the
worker runnable on the caller's CPU, the other CPU idle, for 1-50 ms). :class:`Steering` sets the
workers' CPU mask to the caller's allowed CPUs less the one it is on (``sched_setaffinity(2)``,
a few microseconds) just before a wake-up: the woken worker starts on another CPU. A mask stays
until the caller is next seen on another CPU; the caller itself is never pinned, and with one
allowed CPU (or once the system refuses a mask) nothing is set. Linux only (:data:`AVAILABLE`).
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["AVAILABLE", "Steering", "current_cpu"]


def _libc_function(name: str):
    try:
        return getattr(ctypes.CDLL(None), name)
    except (AttributeError, OSError, TypeError):   # pragma: no cover - not glibc
        return None


_sched_getcpu = _libc_function("sched_getcpu") if sys.platform.startswith("linux") else None
AVAILABLE = _sched_getcpu is not None and hasattr(os, "sched_setaffinity")


def current_cpu() -> int:
    """The CPU the calling thread runs on (``sched_getcpu(3)``), or -1 where it is unknown."""
    return _sched_getcpu() if _sched_getcpu is not None else -1


class Steering:
    """The CPU mask of ``threads`` (started :class:`threading.Thread` objects), set by
    :meth:`steer` (module docstring). ``active`` is false where it cannot work."""

    def __init__(self, threads):
        self.threads = list(threads)
        self.active = AVAILABLE
        self.mask = None

    def steer(self) -> None:
        """Before waking the threads: their mask becomes the caller's allowed CPUs less the one
        it runs on, when that leaves at least one (and differs from the mask they have)."""
        if not self.active:
            return
        allowed = os.sched_getaffinity(0)
        mask = allowed - {current_cpu()}
        if not mask or mask == allowed or mask == self.mask:
            return
        try:
            for thread in self.threads:
                os.sched_setaffinity(thread.native_id, mask)
        except (OSError, TypeError):   # a thread gone, or a mask the system refuses: stop steering
            self.active = False
            return
        self.mask = mask
