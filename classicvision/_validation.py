"""Door checks shared by the public functions, and the error texts they raise.

Every public function validates its inputs once, here, and passes plain arrays of the
documented dtype to the private ``_guts`` that do the work. Messages name the argument, what
was expected and what was received (STYLE.md, "Errors").
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "check_image",
    "check_points",
    "check_descriptors",
    "check_scalar",
    "check_choice",
    "check_matches",
    "check_descriptor_options",
]

# Largest value of each integer dtype an image may arrive in; floats are taken as already in [0, 1].
_INTEGER_SCALE = {
    np.dtype(np.uint8): 255.0,
    np.dtype(np.uint16): 65535.0,
    np.dtype(np.int16): 32767.0,
    np.dtype(np.int32): 2147483647.0,
}


def check_image(image, name: str = "image", *, min_size: int = 1) -> np.ndarray:
    """Return ``image`` as a C-contiguous 2-D float32 array, or raise naming what is wrong.

    Integer images are scaled to [0, 1] by their dtype's maximum (uint8 by 255, uint16 by 65535);
    float images keep their values. Colour images are refused here: convert them once, at the
    edge, with :func:`classicvision.io.as_float_image`.

    Parameters
    ----------
    image : (H, W) array of uint8, uint16, int16, int32, float32 or float64
    name : str
        The argument's name, used in error messages.
    min_size : int
        Smallest accepted height and width.

    Returns
    -------
    image : (H, W) float32 array

    Raises
    ------
    TypeError
        If ``image`` is not an array of a supported dtype.
    ValueError
        If it is not 2-D, smaller than ``min_size`` on a side, or holds NaN or infinity.
    """
    if not isinstance(image, np.ndarray):
        if isinstance(image, (list, tuple)):
            image = np.asarray(image)
        else:
            raise TypeError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.dtype == np.bool_:
        image = image.astype(np.float32)
    if image.dtype.kind not in "uif":
        raise TypeError(f"{name} must have a numeric dtype, got {image.dtype}")
    if image.ndim != 2:
        hint = " (convert colour images with classicvision.as_float_image)" if image.ndim == 3 else ""
        raise ValueError(f"{name} must be 2-D, got shape {image.shape}{hint}")
    height, width = image.shape
    if height < min_size or width < min_size:
        raise ValueError(f"{name} must be at least {min_size}x{min_size} pixels, got shape {image.shape}")
    if image.dtype.kind == "f":
        out = np.ascontiguousarray(image, dtype=np.float32)
        if not np.isfinite(out).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        return out
    scale = _INTEGER_SCALE.get(image.dtype)
    if scale is None:
        scale = float(np.iinfo(image.dtype).max)
    return np.ascontiguousarray(image, dtype=np.float32) * np.float32(1.0 / scale)


def check_points(points, name: str = "points") -> np.ndarray:
    """Return ``points`` as an ``(N, 2)`` float32 array of ``(x, y)``, or raise.

    ``(0, 2)`` and a plain empty list are accepted and give ``(0, 2)``.
    """
    points = np.asarray(points)
    if points.size == 0:
        return np.zeros((0, 2), np.float32)
    if points.dtype.kind not in "uif":
        raise TypeError(f"{name} must be numeric, got dtype {points.dtype}")
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2) of (x, y), got shape {points.shape}")
    out = np.ascontiguousarray(points, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return out


def check_descriptors(descriptors, name: str = "descriptors", *, dim: int | None = None) -> np.ndarray:
    """Return ``descriptors`` as an ``(N, D)`` float32 array, or raise.

    An empty input keeps its width when it has one (``(0, 128)``); a shapeless empty list gives
    ``(0, dim or 0)``.
    """
    descriptors = np.asarray(descriptors)
    if descriptors.size == 0 and descriptors.ndim != 2:
        return np.zeros((0, dim or 0), np.float32)
    if descriptors.dtype.kind not in "uif":
        raise TypeError(f"{name} must be numeric, got dtype {descriptors.dtype}")
    if descriptors.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got shape {descriptors.shape}")
    if dim is not None and descriptors.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} columns, got shape {descriptors.shape}")
    out = np.ascontiguousarray(descriptors, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return out


def check_scalar(value, name: str, *, kind=numbers.Real, low=None, high=None,
                 low_inclusive: bool = True, high_inclusive: bool = True):
    """Return ``value`` if it is a finite number of ``kind`` inside the bounds, else raise.

    ``kind`` is ``numbers.Real`` or ``numbers.Integral``; booleans are refused either way.
    """
    # Plain int and float first: the ABC checks below cost about 1 us each, and this runs on
    # every public call.
    exact = type(value)
    if exact is float and kind is numbers.Real:
        is_integer = False
    elif exact is int:
        is_integer = True
    else:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, kind):
            expected = "an integer" if kind is numbers.Integral else "a number"
            raise TypeError(f"{name} must be {expected}, got {value!r} ({type(value).__name__})")
        is_integer = isinstance(value, numbers.Integral)
    # math.isfinite: a scalar check without a ufunc call; integers are always finite (and may be
    # too large for a float).
    if not is_integer and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        sign = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {sign} {low}, got {value!r}")
    if high is not None and (value > high or (value == high and not high_inclusive)):
        sign = "<=" if high_inclusive else "<"
        raise ValueError(f"{name} must be {sign} {high}, got {value!r}")
    return value


def check_choice(value, name: str, choices) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a ``ValueError`` listing them."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, got {value!r}")
    return value


def check_matches(matches, n1: int, n2: int, name: str = "matches") -> np.ndarray:
    """``matches`` as an (M, 2) int64 array of valid indices into n1 and n2 points, or raise."""
    matches = np.asarray(matches)
    if matches.size == 0:
        return np.zeros((0, 2), np.int64)
    if matches.dtype.kind not in "ui":
        raise TypeError(f"{name} must hold integer indices, got dtype {matches.dtype}")
    if matches.ndim != 2 or matches.shape[1] != 2:
        raise ValueError(f"{name} must have shape (M, 2), got shape {matches.shape}")
    matches = matches.astype(np.int64)
    for column, n, points in ((0, n1, "points1"), (1, n2, "points2")):
        values = matches[:, column]
        if values.min() < 0 or values.max() >= n:
            raise ValueError(f"{name}[:, {column}] must index {points} (0 <= index < {n}), "
                             f"got values in [{values.min()}, {values.max()}]")
    return matches


def check_descriptor_options(n_cells, n_orientations, clip, rootsift, sigma) -> None:
    """Check the options shared by the sparse and dense SIFT descriptors."""
    check_scalar(n_cells, "n_cells", kind=numbers.Integral, low=1)
    check_scalar(n_orientations, "n_orientations", kind=numbers.Integral, low=2)
    check_scalar(clip, "clip", low=0, low_inclusive=False)
    check_scalar(sigma, "sigma", low=0)
    if not isinstance(rootsift, (bool, np.bool_)):
        raise TypeError(f"rootsift must be a bool, got {rootsift!r} ({type(rootsift).__name__})")
