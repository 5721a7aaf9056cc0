"""Numba kernels for image gradients binned by orientation: the branch-free polynomial atan2
(:func:`_bin_of`, :func:`_bin_of32`), one gradient row, and the whole orientation field that
the sparse and dense SIFT descriptors read, with the plain-numpy reference they are tested
against.

Central differences with the symmetric border (``dcba|abcd``); orientation in bin units
``t = arctan2(gy, gx) * n / (2 pi)`` in ``[0, n)``, y pointing down the rows.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .jit import kernel, parallel_for

_TWO_PI = 2.0 * math.pi
# Abramowitz & Stegun 4.4.49: atan(z) = z (1 + a2 z^2 + ... + a16 z^16) on [0, 1], |error| <= 2e-8 rad.
_A2, _A4, _A6, _A8 = -0.3333314528, 0.1999355085, -0.1420889944, 0.1065626393
_A10, _A12, _A14, _A16 = -0.0752896400, 0.0429096138, -0.0161657367, 0.0028662257


@njit(cache=True, inline="always", error_model="numpy")
def _wrap(t, n):
    """``t`` modulo ``n`` into ``[0, n)``, for ``t`` in ``[-2n, 2n)``."""
    while t < 0.0:
        t += n
    while t >= n:
        t -= n
    return t


@njit(cache=True, inline="always", error_model="numpy", fastmath=True)
def _bin_of(dx, dy, scale, n):
    """Orientation of ``(dx, dy)`` in bin units, ``arctan2(dy, dx) * scale`` wrapped into
    ``[0, n)``, to 2e-8 rad; ``(0, 0) -> 0``. ``atan`` of the octant ratio in ``[0, 1]`` by the
    polynomial above, then the octant by selects, not branches, so that a row loop vectorizes."""
    ax = abs(dx)
    ay = abs(dy)
    hi = max(ax, ay)
    z = min(ax, ay) / (hi if hi > 0.0 else 1.0)
    z2 = z * z
    a = z * (1.0 + z2 * (_A2 + z2 * (_A4 + z2 * (_A6 + z2 * (_A8 + z2 * (
        _A10 + z2 * (_A12 + z2 * (_A14 + z2 * _A16))))))))
    a = 0.5 * math.pi - a if ay > ax else a
    a = math.pi - a if dx < 0.0 else a
    t = (-a if dy < 0.0 else a) * scale
    t = t + n if t < 0.0 else t
    return t if t < n else 0.0


# float32 copies of the constants of ``_bin_of`` (float64 literals would promote the whole row
# loop to float64, half the SIMD width).
_F2, _F4, _F6, _F8 = np.float32(_A2), np.float32(_A4), np.float32(_A6), np.float32(_A8)
_F10, _F12, _F14, _F16 = np.float32(_A10), np.float32(_A12), np.float32(_A14), np.float32(_A16)
_HALF_PI32 = np.float32(0.5 * math.pi)
_PI32 = np.float32(math.pi)
_ZERO32 = np.float32(0.0)
_ONE32 = np.float32(1.0)
_HALF32 = np.float32(0.5)


@njit(cache=True, inline="always", error_model="numpy", fastmath=True)
def _bin_of32(dx, dy, scale, n):
    """float32 twin of :func:`_bin_of` (same polynomial, same selects): ``arctan2(dy, dx) *
    scale`` wrapped into ``[0, n)``, to ~1e-6 bin units."""
    ax = abs(dx)
    ay = abs(dy)
    hi = max(ax, ay)
    z = min(ax, ay) / (hi if hi > _ZERO32 else _ONE32)
    z2 = z * z
    a = z * (_ONE32 + z2 * (_F2 + z2 * (_F4 + z2 * (_F6 + z2 * (_F8 + z2 * (
        _F10 + z2 * (_F12 + z2 * (_F14 + z2 * _F16))))))))
    a = _HALF_PI32 - a if ay > ax else a
    a = _PI32 - a if dx < _ZERO32 else a
    t = (-a if dy < _ZERO32 else a) * scale
    t = t + n if t < _ZERO32 else t
    return t if t < n else _ZERO32


@njit(cache=True, inline="always", error_model="numpy", fastmath=True)
def _gradient_row(smoothed, y, n_ori, magnitude, bins):
    """Row ``y`` of :func:`_orientation_field` into ``magnitude`` and ``bins`` (``(W,)`` float32):
    the interior columns in a branch-free float32 loop (:func:`_bin_of32`; SIMD), the two border
    columns apart. Shared with the dense descriptor's orientation planes."""
    height, width = smoothed.shape
    up = smoothed[y - 1 if y > 0 else 0]
    mid = smoothed[y]
    down = smoothed[y + 1 if y < height - 1 else height - 1]
    scale = np.float32(n_ori / _TWO_PI)
    n = np.float32(n_ori)
    for x in range(1, width - 1):
        dx = _HALF32 * (mid[x + 1] - mid[x - 1])
        dy = _HALF32 * (down[x] - up[x])
        magnitude[x] = np.sqrt(dx * dx + dy * dy)
        bins[x] = _bin_of32(dx, dy, scale, n)
    for x in (0, width - 1):
        dx = _HALF32 * (mid[min(x + 1, width - 1)] - mid[max(x - 1, 0)])
        dy = _HALF32 * (down[x] - up[x])
        magnitude[x] = np.sqrt(dx * dx + dy * dy)
        bins[x] = _bin_of32(dx, dy, scale, n)


def _orientation_field(smoothed, n_ori):
    """Central differences (symmetric border): ``magnitude`` and orientation in bin units
    ``t = arctan2(gy, gx) * n_ori / (2 pi)`` in ``[0, n_ori)``, both ``(H, W)`` float32.

    The interior columns run in a branch-free float32 loop (:func:`_bin_of32`; SIMD, 16 lanes);
    the two border columns apart. Rows on threads (:func:`~classicvision._kernels.jit.parallel_for`)."""
    height, width = smoothed.shape
    magnitude = np.empty((height, width), np.float32)
    bins = np.empty((height, width), np.float32)
    parallel_for(_orientation_field_rows, height, smoothed, int(n_ori), magnitude, bins, grain=32)
    return magnitude, bins


@kernel(error_model="numpy", fastmath=True)
def _orientation_field_rows(start, stop, smoothed, n_ori, magnitude, bins):
    """Rows ``start <= y < stop`` of :func:`_orientation_field`."""
    for y in range(start, stop):
        _gradient_row(smoothed, y, n_ori, magnitude[y], bins[y])


# --------------------------------------------------------------------------------------------
# Plain-numpy references (tests only), written differently on purpose: libm arctan2, gradients
# of the padded image, every sample's weight on every cell and bin as a product of explicit
# triangle functions summed with einsum.


def _orientation_field_reference(smoothed, n_ori):
    """Twin of :func:`_orientation_field`; also returns the float64 ``gx, gy``."""
    p = np.pad(smoothed.astype(np.float64), 1, mode="symmetric")
    gx = 0.5 * (p[1:-1, 2:] - p[1:-1, :-2])
    gy = 0.5 * (p[2:, 1:-1] - p[:-2, 1:-1])
    bins = np.mod(np.arctan2(gy, gx) * (n_ori / (2 * np.pi)), n_ori)
    return np.hypot(gx, gy).astype(np.float32), bins.astype(np.float32), gx, gy

