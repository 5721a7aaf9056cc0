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

from .jit import kernel, next_chunk, parallel_for

_TWO_PI = 2.0 * math.pi
# Abramowitz & Stegun 4.4.49: atan(z) = z (1 + a2 z^2 + ... + a16 z^16) on [0, 1], |error| <= 2e-8 rad.
_A2, _A4, _A6, _A8 = -0.3333314528, 0.1999355085, -0.1420889944, 0.1065626393
_A10, _A12, _A14, _A16 = -0.0752896400, 0.0429096138, -0.0161657367, 0.0028662257


@njit(cache=True, error_model="numpy")
def _wrap(t, n):
    """``t`` modulo ``n`` into ``[0, n)``, for ``t`` in ``[-2n, 2n)``."""
    while t < 0.0:
        t += n
    while t >= n:
        t -= n
    return t


@njit(cache=True, error_model="numpy", fastmath=True)
def _bin_of(dx, dy, scale, n):
    """Orientation of ``(dx, dy)`` in bin units, ``arctan2(dy, dx) * scale`` wrapped into
    ``[0, n)``, to 2e-8 rad; ``(0, 0) -> 0``. ``atan`` of the octant ratio in ``[0, 1]`` by the
    polynomial above, then the octant by selects, not branches, so that a row loop vectorizes."""
    ax = abs(dx)
    ay = abs(dy)
    hi = ax if ax > ay else ay
    lo = ay if ax > ay else ax
    z = lo / (hi if hi > 0.0 else 1.0)
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


@njit(cache=True, error_model="numpy", fastmath=True)
def _bin_of32(dx, dy, scale, n):
    """float32 twin of :func:`_bin_of` (same polynomial, same selects): ``arctan2(dy, dx) *
    scale`` wrapped into ``[0, n)``, to ~1e-6 bin units."""
    ax = abs(dx)
    ay = abs(dy)
    hi = ax if ax > ay else ay
    lo = ay if ax > ay else ax
    z = lo / (hi if hi > _ZERO32 else _ONE32)
    z2 = z * z
    a = z * (_ONE32 + z2 * (_F2 + z2 * (_F4 + z2 * (_F6 + z2 * (_F8 + z2 * (
        _F10 + z2 * (_F12 + z2 * (_F14 + z2 * _F16))))))))
    a = _HALF_PI32 - a if ay > ax else a
    a = _PI32 - a if dx < _ZERO32 else a
    t = (-a if dy < _ZERO32 else a) * scale
    t = t + n if t < _ZERO32 else t
    return t if t < n else _ZERO32


@njit(cache=True, error_model="numpy", fastmath=True)
def _gradient_row(smoothed, y, n_ori, magnitude, bins):
    """Row ``y`` of :func:`_orientation_field` into ``magnitude`` and ``bins`` (``(W,)`` float32):
    :func:`_gradient_of_rows` of rows ``y - 1``, ``y``, ``y + 1`` (symmetric border)."""
    height = smoothed.shape[0]
    _gradient_of_rows(smoothed[y - 1 if y > 0 else 0], smoothed[y], smoothed[y + 1 if y < height - 1 else height - 1],
                      n_ori, magnitude, bins)


@njit(cache=True, error_model="numpy", fastmath=True, inline="always")   # as the body of _gradient_row
def _gradient_of_rows(up, mid, down, n_ori, magnitude, bins):
    """The gradient of row ``mid`` between rows ``up`` and ``down`` (``(W,)`` float32) into
    ``magnitude`` and ``bins``: central differences, the interior columns in a branch-free
    float32 loop (:func:`_bin_of32`; SIMD), the two border columns apart. Shared with the dense
    descriptor's orientation planes."""
    width = mid.shape[0]
    scale = np.float32(n_ori / _TWO_PI)
    n = np.float32(n_ori)
    for x in range(1, width - 1):
        dx = _HALF32 * (mid[x + 1] - mid[x - 1])
        dy = _HALF32 * (down[x] - up[x])
        magnitude[x] = np.sqrt(dx * dx + dy * dy)
        bins[x] = _bin_of32(dx, dy, scale, n)
    for x in (0, width - 1):
        dx = _HALF32 * (mid[x + 1 if x + 1 < width else width - 1] - mid[x - 1 if x > 0 else 0])
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
def _orientation_field_rows(job, smoothed, n_ori, magnitude, bins):
    """Rows ``start <= y < stop`` of :func:`_orientation_field`."""
    start, stop = next_chunk(job)
    while start < stop:
        for y in range(start, stop):
            _gradient_row(smoothed, y, n_ori, magnitude[y], bins[y])
        start, stop = next_chunk(job)


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



# --------------------------------------------------------------------------------------------
# Fused gradient pairs (Sobel, derivative of Gaussian)

def gradient_pair(image, rows_map, cols_map, symmetric, antisymmetric):
    """``gx, gy`` of a separable gradient operator in one sweep: ``gx = A_x * (S_y * image)`` and
    ``gy = S_x * (A_y * image)`` (correlations; y-pass, then x-pass), where ``S`` is the symmetric
    smoothing kernel and ``A`` the antisymmetric derivative kernel: Sobel (``[1, 2, 1] / 4`` and
    ``[-1, 0, 1] / 2``) or the derivative of Gaussian (``g`` and ``d``).

    ``image`` ``(H, W)`` float32; ``symmetric`` and ``antisymmetric`` float32 of one odd length
    ``2 r + 1`` (``S[r - k] == S[r + k]``, ``A[r - k] == -A[r + k]``); ``rows_map``
    ``(H + 2 r,)`` and ``cols_map`` ``(W + 2 r,)`` int64 from :func:`border_map`. The symmetric
    and antisymmetric taps are folded: each pair of rows (columns) at offsets ``-k, +k`` is read
    once, giving ``S_k (p + q)`` and ``A_k (q - p)``. Returns ``(gx, gy)``, ``(H, W)`` float32;
    rows on threads (:func:`~classicvision._kernels.jit.parallel_for`). Every pixel is also
    checked on the way (``ValueError`` for NaN or infinity), so callers need no separate pass."""
    height, width = image.shape
    r = symmetric.shape[0] // 2
    gx = np.empty((height, width), np.float32)
    gy = np.empty((height, width), np.float32)
    nonfinite = np.zeros(height, np.uint8)
    parallel_for(_gradient_pair_rows, height, image, rows_map, cols_map, np.ascontiguousarray(symmetric[r:]),
                 np.ascontiguousarray(antisymmetric[r:]), gx, gy, nonfinite, grain=16)
    if nonfinite.any():
        raise ValueError("image contains NaN or infinite values")
    return gx, gy


# fastmath without 'nnan' and 'ninf': the finiteness check (x * 0 is NaN for NaN and inf) must stay.
@kernel(fastmath={"reassoc", "contract", "nsz", "arcp", "afn"})
def _gradient_pair_rows(job, image, rows_map, cols_map, s_half, a_half, gx, gy, nonfinite):
    """Rows ``start <= y < stop`` of :func:`gradient_pair` (``s_half``, ``a_half``: taps at offsets
    ``0..r``): the folded y-passes into row buffers with ``r`` border pixels each side (SIMD over
    the row), the border written, then the folded x-passes."""
    width = image.shape[1]
    r = s_half.shape[0] - 1
    smooth = np.zeros(width + 2 * r, np.float32)      # S_y * image, then its border
    slope = np.zeros(width + 2 * r, np.float32)       # A_y * image
    zeros = np.zeros(width, np.float32)
    cs = smooth[r:r + width]
    ca = slope[r:r + width]
    start, stop = next_chunk(job)
    while start < stop:
        for y in range(start, stop):
            centre = image[rows_map[y + r]]
            w0 = s_half[0]
            zero = np.float32(0.0)
            check = np.float32(0.0)
            for x in range(width):
                cs[x] = w0 * centre[x]
                ca[x] = 0.0
                check += centre[x] * zero
            if check != 0.0:                 # NaN: a pixel of this row (the centre row of output y) is not finite
                nonfinite[y] = 1
            for k in range(1, r + 1):
                above = rows_map[y + r - k]
                below = rows_map[y + r + k]
                p = image[above] if above >= 0 else zeros
                q = image[below] if below >= 0 else zeros
                ws = s_half[k]
                wa = a_half[k]
                for x in range(width):
                    cs[x] += ws * (p[x] + q[x])
                    ca[x] += wa * (q[x] - p[x])
            for k in range(r):
                for position in (k, r + width + k):
                    source = cols_map[position]
                    smooth[position] = smooth[r + source] if source >= 0 else 0.0
                    slope[position] = slope[r + source] if source >= 0 else 0.0
            ox = gx[y]
            oy = gy[y]
            w0 = s_half[0]
            for x in range(width):
                ox[x] = 0.0
                oy[x] = w0 * ca[x]
            for k in range(1, r + 1):
                ws = s_half[k]
                wa = a_half[k]
                left_s = smooth[r - k:r - k + width]
                right_s = smooth[r + k:r + k + width]
                left_a = slope[r - k:r - k + width]
                right_a = slope[r + k:r + k + width]
                for x in range(width):
                    ox[x] += wa * (right_s[x] - left_s[x])
                    oy[x] += ws * (left_a[x] + right_a[x])
        start, stop = next_chunk(job)


def border_map(n: int, radius: int, mode: str) -> np.ndarray:
    """``(n + 2 radius,)`` int64: for each padded position, its source index in ``range(n)`` under
    the border ``mode`` (scipy.ndimage names, numpy's padding), ``-1`` for ``'constant'``."""
    if mode == "constant":
        index = np.full(n + 2 * radius, -1, np.int64)
        index[radius:radius + n] = np.arange(n)
        return index
    numpy_mode = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "wrap": "wrap"}[mode]
    return np.pad(np.arange(n, dtype=np.int64), radius, mode=numpy_mode)
