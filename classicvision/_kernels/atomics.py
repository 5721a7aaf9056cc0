"""Atomic int64 operations on array elements, a spin-wait hint and futex(2), for nopython code.

numba has no CPU atomics, so these are LLVM instructions emitted by ``numba.extending.intrinsic``:
``atomicrmw add``, an atomic ``load`` and ``store``, all sequentially consistent (the total order
that the hand-off protocols of :mod:`classicvision._kernels.jit` and
:mod:`classicvision._kernels.team` rely on), and the x86 ``pause`` instruction that a spinning loop
issues so that the core's sibling thread runs (nothing on other architectures). :func:`futex` is
the Linux system call through libc's ``syscall`` (:data:`HAVE_FUTEX`), for threads that sleep in
compiled code. Index bounds are not checked: callers pass a valid flat index.

``add`` and ``load`` are the same operations callable from Python (an intrinsic is not). ``add``
keeps the GIL: a call from Python that released it would let a thread waiting for the GIL take it, and
the caller would then wait for it back (a futex wake-up, tens of microseconds on a virtual
machine). The polling kernels below release it, and are what a thread runs while it waits.
"""

from __future__ import annotations

import platform
import sys

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["FUTEX_WAIT", "FUTEX_WAKE", "HAVE_FUTEX", "add", "atomic_add", "atomic_load", "atomic_store", "futex",
           "load", "park", "pause", "spin_until_joined", "warm"]

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}.get(platform.machine().lower())
HAVE_FUTEX = sys.platform.startswith("linux") and _SYS_FUTEX is not None
FUTEX_WAIT, FUTEX_WAKE = 128, 129        # FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE


def _int64_vector(array) -> bool:
    return isinstance(array, types.Array) and array.dtype == types.int64 and array.ndim == 1


def _element_pointer(context, builder, signature, args):
    """Pointer to ``args[0][args[1]]`` (the array and index arguments of an intrinsic)."""
    array_type = signature.args[0]
    index = context.cast(builder, args[1], signature.args[1], types.intp)
    ary = context.make_array(array_type)(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, array_type, ary, [index], wraparound=False)


_with_gil = njit(cache=True)
_without_gil = njit(cache=True, nogil=True)   # as classicvision._kernels.jit.kernel, which imports this module


@intrinsic
def atomic_add(typingctx, array, index, value):
    """``old = array[index]; array[index] += value; return old``, atomically (int64 arrays)."""
    if not _int64_vector(array):
        return None

    def codegen(context, builder, signature, args):
        delta = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", _element_pointer(context, builder, signature, args), delta, "seq_cst")

    return types.int64(array, index, value), codegen


@intrinsic
def atomic_load(typingctx, array, index):
    """``array[index]`` read atomically: never cached in a register across loop iterations."""
    if not _int64_vector(array):
        return None

    def codegen(context, builder, signature, args):
        return builder.load_atomic(_element_pointer(context, builder, signature, args), "seq_cst", 8)

    return types.int64(array, index), codegen


@intrinsic
def atomic_store(typingctx, array, index, value):
    """``array[index] = value`` atomically (int64 arrays)."""
    if not _int64_vector(array):
        return None

    def codegen(context, builder, signature, args):
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(value, _element_pointer(context, builder, signature, args), "seq_cst", 8)
        return context.get_dummy_value()

    return types.void(array, index, value), codegen


@intrinsic
def futex(typingctx, array, index, op, value, timeout_ns):
    """``syscall(SYS_futex, &array[index], op, (int32) value, timeout)`` on the low 32 bits of an
    int64 element (little-endian): :data:`FUTEX_WAIT` while the word equals ``value``, for at most
    ``timeout_ns`` (relative), or :data:`FUTEX_WAKE` of up to ``value`` waiters. Returns the
    syscall's result. Linux only (:data:`HAVE_FUTEX`)."""
    if not _int64_vector(array):
        return None

    def codegen(context, builder, signature, args):
        i64, i32 = ir.IntType(64), ir.IntType(32)
        pointer = _element_pointer(context, builder, signature, args)
        op_value = context.cast(builder, args[2], signature.args[2], types.int64)
        word = builder.trunc(context.cast(builder, args[3], signature.args[3], types.int64), i32)
        ns = context.cast(builder, args[4], signature.args[4], types.int64)
        spec = cgutils.alloca_once(builder, ir.ArrayType(i64, 2))         # struct timespec
        billion = ir.Constant(i64, 1_000_000_000)
        builder.store(builder.sdiv(ns, billion), builder.gep(spec, [ir.Constant(i32, 0), ir.Constant(i32, 0)]))
        builder.store(builder.srem(ns, billion), builder.gep(spec, [ir.Constant(i32, 0), ir.Constant(i32, 1)]))
        syscall = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [i64], var_arg=True),
                                                 "syscall")
        return builder.call(syscall, [ir.Constant(i64, _SYS_FUTEX or 0), builder.ptrtoint(pointer, i64), op_value,
                                      word, builder.ptrtoint(spec, i64), ir.Constant(i64, 0),
                                      ir.Constant(i64, 0)])

    return types.int64(array, index, op, value, timeout_ns), codegen


@intrinsic
def pause(typingctx):
    """The spin-wait hint (x86 ``pause``); a no-op elsewhere."""
    def codegen(context, builder, signature, args):
        if _X86:
            function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                      "llvm.x86.sse2.pause")
            builder.call(function, [])
        return context.get_dummy_value()

    return types.void(), codegen


@_with_gil
def add(array, index, value):
    """:func:`atomic_add` from Python."""
    return atomic_add(array, index, value)


def load(array, index):
    """:func:`atomic_load` from Python: an atomic add of 0 (one compiled function fewer)."""
    return add(array, index, 0)


@_without_gil
def park(job, parked, control, index, seen, spins, settle):
    """``job[parked] += 1`` (unless ``parked < 0``), then poll ``control[index]`` up to ``spins``
    times; when it differs from ``seen``, poll ``settle`` times more (the thread that changed it
    is still on its way out of the GIL) and return its value; else return ``seen``."""
    if parked >= 0:
        atomic_add(job, parked, 1)
    for _ in range(spins):
        value = atomic_load(control, index)
        if value != seen:
            for _ in range(settle):
                pause()
            return value
        pause()
    return seen


@_without_gil
def spin_until_joined(job, entered, left, parked, spins):
    """Poll up to ``spins`` times until ``job[left] == job[entered]`` (everyone who entered is
    out), then up to ``spins`` times more until ``job[parked] == job[entered] - 1`` (the workers
    among them are polling again, so none is about to take the GIL). Whether the first held."""
    for i in range(spins):
        if atomic_load(job, left) == atomic_load(job, entered):
            for _ in range(spins - i):
                if atomic_load(job, parked) >= atomic_load(job, entered) - 1:
                    break
                pause()
            return True
        pause()
    return False


def warm() -> None:
    """Compile (or load) the kernels above that Python calls, on dummy arrays."""
    probe = np.zeros(8, np.int64)
    add(probe, 0, 1)
    park(probe, -1, probe, 0, 1, 1, 0)
    spin_until_joined(probe, 1, 2, 3, 1)
