"""The numba builder shared by the kernels: serial and threaded builds of one implementation."""

from __future__ import annotations

import types

from numba import njit


def build(impl, suffix, **options):
    """``njit(cache=True, **options)`` of a copy of ``impl`` named ``impl.__name__ + suffix``.

    numba names a function's on-disk cache after its qualified name and line, and its index keys
    leave ``parallel`` out: two builds of one Python function would overwrite each other's cache,
    and a process could load the serial code for the threaded build. Each build gets its own name.
    """
    twin = types.FunctionType(impl.__code__, impl.__globals__, impl.__name__ + suffix, impl.__defaults__,
                              impl.__closure__)
    twin.__qualname__ = impl.__qualname__ + suffix
    twin.__doc__ = impl.__doc__
    return njit(cache=True, **options)(twin)

