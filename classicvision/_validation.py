"""Door checks shared by the public functions, and the error texts they raise.

Every public function validates its inputs once, here, and passes plain arrays of the
documented dtype to the private ``_guts`` that do the work. Messages name the argument, what
was expected and what was received (STYLE.md, "Errors").
"""

from __future__ import annotations

import math
import numbers
import os
import sys

import numpy as np

__all__ = [
    "check_image",
    "check_pixel_limit",
    "image_array",
    "image_scale",
    "max_pixels_from_environment",
    "resolve_max_pixels",
    "check_points",
    "check_descriptors",
    "check_scalar",
    "check_choice",
    "check_matches",
    "check_descriptor_options",
]

# The pixel limit shared by the file reader and the array checks (classicvision.io documents it).
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000
MAX_PIXELS_ENV = "CLASSICVISION_MAX_IMAGE_PIXELS"
# Float images may stray this far outside [0, 1] (interpolation overshoot) and still be accepted.
RANGE_TOLERANCE = 0.25
_RAISE_LIMIT = (f"set classicvision.io.MAX_IMAGE_PIXELS or the environment variable {MAX_PIXELS_ENV} "
                "(a larger number, or 'none')")


def max_pixels_from_environment() -> int | None:
    """The pixel limit the environment variable sets: an int, None for 'none', else the default."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    if text.lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"the environment variable {MAX_PIXELS_ENV} must be a positive integer or 'none', "
                         f"got {text!r}")
    return value


def resolve_max_pixels(max_pixels) -> int | None:
    """``max_pixels`` checked, or (when None) the module setting ``classicvision.io.MAX_IMAGE_PIXELS``."""
    if max_pixels is not None:
        return int(check_scalar(max_pixels, "max_pixels", kind=numbers.Integral, low=1))
    io_module = sys.modules.get("classicvision.io")  # not imported: nobody can have changed its setting
    if io_module is None:
        return max_pixels_from_environment()
    return getattr(io_module, "MAX_IMAGE_PIXELS", DEFAULT_MAX_IMAGE_PIXELS)


def check_pixel_limit(shape, name: str, max_pixels=None) -> None:
    """Raise ``ValueError`` when ``shape[0] * shape[1]`` is over the pixel limit (see resolve_max_pixels)."""
    limit = resolve_max_pixels(max_pixels)
    height, width = int(shape[0]), int(shape[1])
    if limit is not None and height * width > limit:
        raise ValueError(f"{name} has {height}x{width} = {height * width:,} pixels, over the limit of "
                         f"{limit:,}; to accept it, {_RAISE_LIMIT}")


def image_array(image, name: str = "image", *, ndim: int = 2, min_size: int = 1, max_pixels=None) -> np.ndarray:
    """``image`` as an ndarray with its type, dtype, dimensions and size checked, not yet converted.

    The pixel limit is checked here, before any conversion copy.
    """
    if not isinstance(image, np.ndarray):
        if not isinstance(image, (list, tuple)):
            raise TypeError(f"{name} must be a numpy array, got {type(image).__name__}")
        try:
            image = np.asarray(image)
        except (ValueError, TypeError):
            raise ValueError(f"{name} must be a rectangular array, got a ragged {type(image).__name__}") from None
    kind = image.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} must be real, got complex dtype {image.dtype}; pass np.abs({name}) or {name}.real")
    if kind not in "buif":
        raise TypeError(f"{name} must have a numeric dtype, got {image.dtype}")
    if image.ndim != ndim:
        hint = " (convert colour images with classicvision.as_float_image)" if image.ndim == 3 else ""
        raise ValueError(f"{name} must be {ndim}-D, got shape {image.shape}{hint}")
    height, width = image.shape[:2]
    if height < min_size or width < min_size:
        raise ValueError(f"{name} must be at least {min_size}x{min_size} pixels, got shape {image.shape}")
    check_pixel_limit(image.shape, name, max_pixels)
    return image


def image_scale(image: np.ndarray, name: str = "image", *, check_range: bool = True, finite: bool = True) -> float:
    """The factor that puts ``image`` (a checked ndarray, any shape) in [0, 1], by the policy of
    :func:`check_image`; raises ``ValueError`` for values the policy refuses."""
    dtype = image.dtype
    if dtype.kind == "b":
        return 1.0
    if dtype == np.uint8:
        return 1.0 / 255.0
    if dtype == np.uint16:
        return 1.0 / 65535.0
    if image.size == 0:
        return 1.0
    if dtype.kind == "f":
        if dtype == np.float32 and not check_range:   # one pass instead of min and max
            if finite and not np.isfinite(image).all():
                raise ValueError(f"{name} contains NaN or infinite values")
            return 1.0
        low, high = float(image.min()), float(image.max())
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"{name} contains NaN or infinite values")
        if max(-low, high) > float(np.finfo(np.float32).max):
            raise ValueError(f"{name} holds values beyond float32's range ([{low:.4g}, {high:.4g}])")
        if check_range and (low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE):
            if low >= 0 and high <= 255:
                fix = "divide it by 255 (it looks like 8-bit values) or pass it as uint8"
            elif low >= 0 and high <= 65535:
                fix = "divide it by 65535 (it looks like 16-bit values) or pass it as uint16"
            else:
                fix = f"rescale it, e.g. ({name} - {name}.min()) / ({name}.max() - {name}.min())"
            raise ValueError(f"{name} holds float values in [{low:.4g}, {high:.4g}], but float images must be "
                             f"in [0, 1]: {fix}")
        return 1.0
    low, high = int(image.min()), int(image.max())
    if low < 0:
        raise ValueError(f"{name} has dtype {dtype} with negative values (min {low}); integer images must hold "
                         f"pixel values >= 0: convert it to floats in [0, 1] first, e.g. "
                         f"({name} - {name}.min()) / ({name}.max() - {name}.min())")
    if high <= 255:
        return 1.0 / 255.0
    if high <= 65535:
        return 1.0 / 65535.0
    raise ValueError(f"{name} has dtype {dtype} with values up to {high}, over 65535 (16 bits): convert it to "
                     f"floats in [0, 1] first, e.g. {name} / {name}.max()")


def check_image(image, name: str = "image", *, min_size: int = 1, check_range: bool = False,
                max_pixels=None, finite: bool = True) -> np.ndarray:
    """Return ``image`` as a C-contiguous 2-D float32 array in [0, 1], or raise naming what is wrong.

    The conversion policy, by dtype:

    - bool: False 0, True 1.
    - uint8: divided by 255; uint16: divided by 65535 (the dtype says the bit depth).
    - every other integer dtype (int8/16/32/64, uint32/64, e.g. ``np.array(image.tolist())``):
      the bit depth is inferred from the values: largest value <= 255 divides by 255, <= 65535
      by 65535; a negative value, or one over 65535, raises ``ValueError`` saying how to convert.
    - float16/32/64: kept as they are (converted to float32); NaN, infinity or a value beyond
      float32's range raises. With ``check_range=True`` (for detectors, descriptors, pipelines
      and file readers, whose thresholds assume [0, 1]) values outside [-0.25, 1.25] raise
      ``ValueError`` naming the range found and the fix (0-255 floats: divide by 255); the
      tolerance admits the overshoot of interpolation. ``check_range=False`` (the default, for
      linear filters, which are meaningful on signed data) accepts any finite floats.
    - complex, object, string, datetime: ``TypeError``.

    Colour images are refused here: convert them once, at the edge, with
    :func:`classicvision.io.as_float_image`. Arrays with more than the pixel limit
    (``classicvision.io.MAX_IMAGE_PIXELS``, default 100 megapixels) are refused before any copy.
    Non-contiguous and negative-stride views are copied; a C-contiguous float32 array is
    returned as it is (not copied, read-only arrays included).

    Parameters
    ----------
    image : (H, W) array of bool, integers or floats (or a nested list)
    name : str
        The argument's name, used in error messages.
    min_size : int
        Smallest accepted height and width.
    check_range : bool
        Refuse float images outside [-0.25, 1.25] (see above).
    max_pixels : int or None
        Largest ``H * W``; None uses ``classicvision.io.MAX_IMAGE_PIXELS``.
    finite : bool
        False skips the finiteness pass over a float32 image when ``check_range`` is False: for
        a caller whose kernel checks every pixel on the way (the gradient filters) and raises
        the same error.

    Returns
    -------
    image : (H, W) float32 array

    Raises
    ------
    TypeError
        If ``image`` is not an array of a real numeric dtype.
    ValueError
        If it is not 2-D, smaller than ``min_size`` on a side, over the pixel limit, holds NaN
        or infinity, or values the policy above refuses.

    Examples
    --------
    >>> check_image(np.array([[0, 255]], np.int64))
    array([[0., 1.]], dtype=float32)
    """
    image = image_array(image, name, min_size=min_size, max_pixels=max_pixels)
    factor = image_scale(image, name, check_range=check_range, finite=finite)
    if image.dtype.kind == "f" or image.dtype.kind == "b":
        return np.ascontiguousarray(image, dtype=np.float32)
    out = image.astype(np.float32, order="C")
    out *= np.float32(factor)
    return out


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
