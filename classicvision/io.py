"""Reading images: any file, bit depth or colour in, a 2-D float32 array in [0, 1] out.

This is the edge of the library (STYLE.md): files and foreign arrays are converted here once,
and everything inside assumes a 2-D float32 image.

Colour is converted to luminance with the ITU-R BT.601 weights (0.299 R + 0.587 G + 0.114 B),
the weights of OpenCV's ``cvtColor(..., COLOR_BGR2GRAY)`` and of the course code the pair
ground truth comes from. Downscaling uses area averaging (``cv2.INTER_AREA``), which
anti-aliases; upscaling uses bilinear interpolation.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ._validation import check_image, check_scalar

__all__ = ["read_image", "as_float_image", "resize"]

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # R, G, B


def as_float_image(image) -> np.ndarray:
    """Convert an array of any usual layout to a 2-D float32 gray image in [0, 1].

    Parameters
    ----------
    image : (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA array
        uint8 (divided by 255), uint16 (divided by 65535), bool, or float (kept as is).

    Returns
    -------
    image : (H, W) float32 array

    Raises
    ------
    TypeError
        Non-numeric input.
    ValueError
        Empty input, another number of dimensions or channels, NaN or infinity.

    Examples
    --------
    >>> rgb = np.zeros((2, 3, 3), np.uint8); rgb[..., 1] = 255
    >>> as_float_image(rgb)[0, 0].round(3)
    np.float32(0.587)
    """
    image = np.asarray(image)
    if image.ndim == 3:
        channels = image.shape[2]
        if channels == 1:
            image = image[..., 0]
        elif channels in (3, 4):
            color = check_image(image[..., 0], "image")  # dtype scaling and finiteness per plane
            planes = [color] + [check_image(image[..., c], "image") for c in (1, 2)]
            gray = planes[0] * _LUMA[0] + planes[1] * _LUMA[1] + planes[2] * _LUMA[2]
            return np.ascontiguousarray(gray, dtype=np.float32)
        else:
            raise ValueError(f"image must have 1, 3 or 4 channels, got shape {image.shape}")
    return check_image(image, "image")


def resize(image: np.ndarray, scale: float) -> np.ndarray:
    """Resize a 2-D float32 image by ``scale`` (area averaging down, bilinear up).

    The new size is ``round(scale * size)`` on each axis, at least 1 pixel.
    """
    check_scalar(scale, "scale", low=0, low_inclusive=False)
    if scale == 1.0:
        return image
    height, width = image.shape
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=interpolation), dtype=np.float32)


def read_image(path, *, scale: float = 1.0) -> np.ndarray:
    """Read an image file as a 2-D float32 gray image in [0, 1], optionally rescaled.

    Parameters
    ----------
    path : str or os.PathLike
        Any format OpenCV decodes (PNG, JPEG, TIFF, BMP, ...), 8 or 16 bits, gray or colour.
    scale : float
        Resize factor applied after decoding (0.5 halves each side).

    Returns
    -------
    image : (H, W) float32 array in [0, 1]

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file cannot be decoded as an image.
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    data = np.fromfile(path, dtype=np.uint8)  # np.fromfile + imdecode also reads non-ASCII paths
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if decoded is None or decoded.size == 0:
        raise ValueError(f"cannot decode image file {path}")
    if decoded.ndim == 3:
        # OpenCV decodes colour as BGR(A); reorder to RGB(A) for as_float_image.
        order = [2, 1, 0, 3][: decoded.shape[2]] if decoded.shape[2] in (3, 4) else list(range(decoded.shape[2]))
        decoded = decoded[..., order]
    image = as_float_image(decoded)
    return resize(image, scale)
