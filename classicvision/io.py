"""Reading images: any file, bit depth or colour in, a 2-D float32 array in [0, 1] out.

This is the edge of the library (STYLE.md): files and foreign arrays are converted here once,
and everything inside assumes a 2-D float32 image.

How a file is read (:func:`read_image`), and what it refuses:

1. The path must name an existing regular file (not a directory, FIFO, device or socket:
   opening a FIFO or ``/dev/zero`` would block or never end), readable, not empty.
2. The format is found from the file's signature: PNG, JPEG, BMP, TIFF, WebP or PNM
   (PBM/PGM/PPM). Pillow reads the header only (width, height and the EXIF orientation tag);
   it never decodes pixels.
3. The declared size is checked against the pixel limit *before* anything is decoded, as
   Pillow's ``Image.MAX_IMAGE_PIXELS`` does: a 493 KB PNG declaring 20000 x 20000 pixels is
   refused up front instead of taking 2.5 GB. The limit is, in order of precedence, the
   ``max_pixels=`` keyword, the module setting :data:`MAX_IMAGE_PIXELS`, which is initialised
   from the environment variable ``CLASSICVISION_MAX_IMAGE_PIXELS`` (a positive integer, or
   ``none`` for no limit) when this module is first imported, and else
   :data:`DEFAULT_MAX_IMAGE_PIXELS` (100 megapixels, 10000 x 10000). Worker processes inherit
   the environment variable, not a value set on the module in the parent.
4. OpenCV decodes the pixels unchanged (8 or 16 bits, gray or colour; ``IMREAD_UNCHANGED``,
   which ignores EXIF), and the EXIF orientation (tags 2-8: mirrored, rotated, transposed) is
   applied here with array flips, so a phone photo stored sideways is read upright at any bit
   depth. A corrupt EXIF block is ignored (logged), as is an orientation outside 1-8.

Every failure to read a file raises :class:`ImageReadError` (a subclass of both ``ValueError``
and ``OSError``) with one line naming the file and what was wrong; a file over the pixel limit
raises its subclass :class:`ImageTooLargeError`. Only a path that does not exist raises
``FileNotFoundError``.

Colour is converted to luminance with the ITU-R BT.601 weights (0.299 R + 0.587 G + 0.114 B),
the weights of OpenCV's ``cvtColor(..., COLOR_BGR2GRAY)`` and of the course code the pair
ground truth comes from. The alpha channel is ignored. Downscaling uses area averaging
(``cv2.INTER_AREA``), which anti-aliases; upscaling uses bilinear interpolation.
"""

from __future__ import annotations

import functools
import io as _stdlib_io
import logging
import os
import stat
from pathlib import Path

import cv2
import numpy as np

from ._validation import (
    DEFAULT_MAX_IMAGE_PIXELS,
    MAX_PIXELS_ENV,
    check_image,
    check_pixel_limit,
    check_scalar,
    image_array,
    image_scale,
    max_pixels_from_environment,
    resolve_max_pixels,
)

__all__ = ["read_image", "as_float_image", "resize", "ImageReadError", "ImageTooLargeError",
           "MAX_IMAGE_PIXELS", "DEFAULT_MAX_IMAGE_PIXELS"]

logger = logging.getLogger(__name__)

#: Largest number of pixels (height x width) :func:`read_image`, :func:`as_float_image`,
#: :func:`resize` and every function taking an image array accept; ``None`` disables the check.
#: Initialised from the environment variable ``CLASSICVISION_MAX_IMAGE_PIXELS``, else
#: :data:`DEFAULT_MAX_IMAGE_PIXELS`.
MAX_IMAGE_PIXELS: int | None = max_pixels_from_environment()

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # R, G, B
_ORIENTATION_TAG = 274
_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))
_SUPPORTED = "PNG, JPEG, BMP, TIFF, WebP or PNM"


class ImageReadError(ValueError, OSError):
    """An image file that cannot be read: not a regular file, unreadable, empty, of an unknown
    format, corrupt or truncated. The message is one line naming the file and the reason.

    A subclass of both ``ValueError`` and ``OSError``, so ``except ValueError`` and
    ``except OSError`` both catch it.
    """


class ImageTooLargeError(ImageReadError):
    """An image file whose header declares more pixels than the limit (see :data:`MAX_IMAGE_PIXELS`)."""


def as_float_image(image, *, max_pixels: int | None = None) -> np.ndarray:
    """Convert an array of any usual layout to a 2-D float32 gray image in [0, 1].

    Parameters
    ----------
    image : (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA array
        Converted by the policy of :func:`classicvision._validation.check_image`: bool as 0/1,
        uint8 divided by 255, uint16 by 65535, other integers by 255 or 65535 from their
        largest value, floats kept (they must lie in [0, 1], give or take 0.25). The alpha
        channel is ignored.
    max_pixels : int or None
        Largest ``H * W`` accepted; None uses :data:`MAX_IMAGE_PIXELS`.

    Returns
    -------
    image : (H, W) float32 array

    Raises
    ------
    TypeError
        Non-numeric or complex input.
    ValueError
        Empty input, another number of dimensions or channels, NaN or infinity, integers that
        are negative or above 65535, floats far outside [0, 1], more pixels than the limit.

    Examples
    --------
    >>> rgb = np.zeros((2, 3, 3), np.uint8); rgb[..., 1] = 255
    >>> as_float_image(rgb)[0, 0].round(3)
    np.float32(0.587)
    """
    if isinstance(image, (list, tuple)):
        try:
            image = np.asarray(image)
        except (ValueError, TypeError):
            raise ValueError(f"image must be a rectangular array, got a ragged {type(image).__name__}") from None
    if isinstance(image, np.ndarray) and image.ndim == 3:
        image = image_array(image, "image", ndim=3, max_pixels=max_pixels)
        channels = image.shape[2]
        if channels == 1:
            return check_image(image[..., 0], "image", check_range=True, max_pixels=max_pixels)
        if channels not in (3, 4):
            raise ValueError(f"image must have 1, 3 or 4 channels, got shape {image.shape}")
        rgb = image[..., :3]
        factor = image_scale(rgb, "image", check_range=True)  # of the whole image, before any float copy
        gray = np.multiply(rgb[..., 0], np.float32(_LUMA[0] * factor), dtype=np.float32)
        for c in (1, 2):  # one float plane at a time: the peak is two planes, not four
            gray += np.multiply(rgb[..., c], np.float32(_LUMA[c] * factor), dtype=np.float32)
        if rgb.dtype.kind != "f":
            np.minimum(gray, np.float32(1.0), out=gray)  # the weights' float32 sum is 1 + 1e-7
        return gray
    return check_image(image, "image", check_range=True, max_pixels=max_pixels)


def resize(image: np.ndarray, scale: float, *, max_pixels: int | None = None) -> np.ndarray:
    """Resize a 2-D float32 image by ``scale`` (area averaging down, bilinear up).

    The new size is ``round(scale * size)`` on each axis, at least 1 pixel; a new size over the
    pixel limit (``max_pixels``, default :data:`MAX_IMAGE_PIXELS`) raises ``ValueError``
    before anything is allocated.
    """
    check_scalar(scale, "scale", low=0, low_inclusive=False)
    if scale == 1.0:
        return image
    height, width = image.shape
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    check_pixel_limit((size[1], size[0]), f"image resized by scale={scale!r}", max_pixels)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(image, size, interpolation=interpolation), dtype=np.float32)


def read_image(path, *, scale: float = 1.0, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as a 2-D float32 gray image in [0, 1], upright, optionally rescaled.

    Parameters
    ----------
    path : str or os.PathLike
        A PNG, JPEG, BMP, TIFF, WebP or PNM (PBM/PGM/PPM) file, 8 or 16 bits, gray or colour.
        The EXIF orientation is applied.
    scale : float
        Resize factor applied after decoding (0.5 halves each side).
    max_pixels : int or None
        Largest number of pixels accepted, in the file and after ``scale``; None uses
        :data:`MAX_IMAGE_PIXELS` (default 100 megapixels; the environment variable
        ``CLASSICVISION_MAX_IMAGE_PIXELS`` sets it for a whole process).

    Returns
    -------
    image : (H, W) float32 array in [0, 1]

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (a broken symbolic link included).
    ImageTooLargeError
        If the header declares more pixels than the limit (checked before decoding); the
        message says how to raise the limit.
    ImageReadError
        For every other failure, in one line naming the file: not a regular file (a directory,
        FIFO, device or socket), permission denied, empty, unknown format, corrupt or truncated
        data, or pixel values the conversion refuses. A subclass of ``ValueError`` and ``OSError``.
    TypeError
        If ``path`` is not a str or os.PathLike, or ``scale`` is not a number.

    Examples
    --------
    >>> import tempfile, pathlib, cv2
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "a.png"
    ...     _ = cv2.imwrite(str(path), np.full((4, 6), 255, np.uint8))
    ...     read_image(path).shape
    (4, 6)
    """
    check_scalar(scale, "scale", low=0, low_inclusive=False)
    limit = resolve_max_pixels(max_pixels)
    path = _as_path(path)
    data = _read_bytes(path, limit)
    width, height, orientation, kind = _header(path, data)
    if limit is not None and width * height > limit:
        raise ImageTooLargeError(
            f"image file {_show(path)} declares {width}x{height} = {width * height:,} pixels, over the "
            f"limit of {limit:,}; to read it, pass max_pixels=, set classicvision.io.MAX_IMAGE_PIXELS "
            f"or the environment variable {MAX_PIXELS_ENV} (a larger number, or 'none')")
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageReadError(f"cannot decode image file {_show(path)}: corrupt {kind} data "
                             f"(OpenCV: {_first_line(exc)})") from None
    if decoded is None or decoded.size == 0:
        raise ImageReadError(f"cannot decode image file {_show(path)}: corrupt or truncated {kind} data")
    if decoded.shape[:2] not in ((height, width), (width, height)):  # Pillow's TIFF size may be turned
        raise ImageReadError(f"cannot decode image file {_show(path)}: inconsistent {kind} file (its header "
                             f"says {width}x{height}, its data {decoded.shape[1]}x{decoded.shape[0]})")
    if decoded.ndim == 3 and decoded.shape[2] in (3, 4):
        decoded = decoded[..., [2, 1, 0, 3][: decoded.shape[2]]]  # OpenCV's BGR(A) to RGB(A)
    if orientation != 1 and not _opencv_orients(kind):
        decoded = _orient(decoded, orientation)
    try:
        image = as_float_image(decoded, max_pixels=limit)
        return resize(image, scale, max_pixels=limit)
    except (TypeError, ValueError) as exc:
        raise ImageReadError(f"cannot decode image file {_show(path)}: {exc}") from None


def _as_path(path) -> Path:
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
    return Path(os.fsdecode(path))


def _show(path) -> str:
    """The path for a one-line message: as is when printable, else as Python's repr writes it."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _first_line(exc) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:200] if lines else type(exc).__name__


def _read_bytes(path: Path, limit: int | None) -> bytes:
    """The file's bytes, after checking it is an existing, readable, non-empty regular file."""
    shown = _show(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        broken = os.path.islink(path)
        raise FileNotFoundError(f"image file not found: {shown}"
                                + (" (a broken symbolic link)" if broken else "")) from None
    except NotADirectoryError:
        raise FileNotFoundError(f"image file not found: {shown} (a parent is not a folder)") from None
    except (OSError, ValueError) as exc:  # permission on a parent, a loop of links, a NUL byte
        raise ImageReadError(f"cannot read image file {shown}: {_reason(exc)}") from None
    _check_regular(info, shown)
    try:
        # O_NONBLOCK: should the path have become a FIFO since the stat, opening it does not block.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ImageReadError(f"cannot read image file {shown}: {_reason(exc)}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        _check_regular(info, shown)
        # No image within the pixel limit takes more than 16 bytes a pixel (float32 RGBA).
        max_bytes = None if limit is None else 16 * limit + (1 << 20)
        if info.st_size == 0:
            raise ImageReadError(f"cannot read image file {shown}: the file is empty (0 bytes)")
        if max_bytes is not None and info.st_size > max_bytes:
            raise ImageTooLargeError(
                f"image file {shown} has {info.st_size:,} bytes, more than any image within the pixel limit "
                f"of {limit:,} takes; to read it, pass max_pixels=, set classicvision.io.MAX_IMAGE_PIXELS or "
                f"the environment variable {MAX_PIXELS_ENV}")
        try:
            data = file.read(-1 if max_bytes is None else max_bytes + 1)
        except OSError as exc:
            raise ImageReadError(f"cannot read image file {shown}: {_reason(exc)}") from None
    if not data:
        raise ImageReadError(f"cannot read image file {shown}: the file is empty (0 bytes)")
    return data


def _reason(exc) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    return getattr(exc, "strerror", None) or " ".join(str(exc).split()) or type(exc).__name__


def _check_regular(info, shown: str) -> None:
    if stat.S_ISREG(info.st_mode):
        return
    kind = next((name for test, name in _FILE_KINDS if test(info.st_mode)), "not a regular file")
    raise ImageReadError(f"cannot read image file {shown}: it is {kind}, not an image file")


def _format(data: bytes):
    """(name, Pillow plugin class) from the file's signature, the one OpenCV dispatches on too."""
    from PIL import (
        BmpImagePlugin,
        JpegImagePlugin,
        PngImagePlugin,
        PpmImagePlugin,
        TiffImagePlugin,
    )

    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG", PngImagePlugin.PngImageFile
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG", JpegImagePlugin.JpegImageFile
    if data.startswith(b"BM"):
        return "BMP", BmpImagePlugin.BmpImageFile
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF", TiffImagePlugin.TiffImageFile
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        from PIL import WebPImagePlugin

        return "WebP", WebPImagePlugin.WebPImageFile
    if len(data) > 2 and data[:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace():
        return "PNM", PpmImagePlugin.PpmImageFile
    return None, None


def _header(path: Path, data: bytes):
    """(width, height, EXIF orientation, format name) from the header alone, without decoding.

    The Pillow plugin is built directly, not through ``Image.open``, so that Pillow's own
    decompression-bomb limit (global state) neither warns nor overrides :data:`MAX_IMAGE_PIXELS`.
    """
    kind, plugin = _format(data)
    if plugin is None:
        raise ImageReadError(f"cannot decode image file {_show(path)}: not a {_SUPPORTED} file "
                             f"(it starts with {data[:8]!r})")
    try:
        header = plugin(_stdlib_io.BytesIO(data))
        width, height = (int(v) for v in header.size)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of a header parser on untrusted bytes
        raise ImageReadError(f"cannot decode image file {_show(path)}: corrupt {kind} header "
                             f"({type(exc).__name__}: {_first_line(exc)})") from None
    if width <= 0 or height <= 0:
        raise ImageReadError(f"cannot decode image file {_show(path)}: its {kind} header declares an empty "
                             f"image ({width}x{height})")
    if kind == "PNG":
        _check_png_chunks(data, path)
    return width, height, _orientation(header, path), kind


def _check_png_chunks(data: bytes, path) -> None:
    """Refuse a PNG chunk that runs past the end of the file: OpenCV 5.0 would allocate what it
    declares (up to 4 GiB) and spin for seconds on a few hundred bytes."""
    position = 8
    while position + 8 <= len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        left = len(data) - position - 12
        if length > left:
            raise ImageReadError(f"cannot decode image file {_show(path)}: corrupt or truncated PNG data (chunk "
                                 f"{kind!r} at byte {position} declares {length:,} bytes, {max(left, 0):,} are left)")
        if kind == b"IEND":
            return
        position += 12 + length


def _orientation(header, path) -> int:
    """The EXIF orientation tag (1-8), 1 when absent, unreadable or out of range."""
    try:
        if hasattr(header, "tag_v2"):  # TIFF: the tag is in the image's own directory
            value = header.tag_v2.get(_ORIENTATION_TAG, 1)
        else:
            raw = header.info.get("exif")
            if not raw:
                return 1
            from PIL import Image

            exif = Image.Exif()
            exif.load(raw)
            value = exif.get(_ORIENTATION_TAG, 1)
        value = int(value[0] if isinstance(value, tuple) else value)
    except Exception as exc:  # noqa: BLE001 - a corrupt EXIF block is not a reason to refuse the image
        logger.warning("ignoring the unreadable EXIF data of %s (%s)", _show(path), type(exc).__name__)
        return 1
    if not 1 <= value <= 8:
        logger.warning("ignoring the EXIF orientation %d of %s (not in 1-8)", value, _show(path))
        return 1
    return value


@functools.cache
def _opencv_orients(kind: str) -> bool:
    """Whether OpenCV applies the EXIF orientation itself to ``kind`` files even with
    ``IMREAD_UNCHANGED`` (OpenCV 5.0 does for TIFF, not for JPEG, PNG or WebP): found once, by
    decoding a small image Pillow writes with orientation 6 (which turns its shape)."""
    from PIL import Image

    options = {"JPEG": {"quality": 95}, "PNG": {}, "TIFF": {}, "WebP": {"lossless": True}}
    if kind not in options:
        return False
    stored = Image.fromarray(np.zeros((8, 16), np.uint8))
    exif = Image.Exif()
    exif[_ORIENTATION_TAG] = 6
    buffer = _stdlib_io.BytesIO()
    try:
        if kind == "TIFF":
            stored.save(buffer, "TIFF", tiffinfo={_ORIENTATION_TAG: 6})
        else:
            stored.save(buffer, kind.upper(), exif=exif.tobytes(), **options[kind])
        decoded = cv2.imdecode(np.frombuffer(buffer.getvalue(), np.uint8), cv2.IMREAD_UNCHANGED)
    except Exception:  # noqa: BLE001 - a codec missing here: then OpenCV applies nothing either
        return False
    return decoded is not None and decoded.shape[:2] == (16, 8)


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an (H, W[, C]) array, returning a view (flips and transposes).

    Tag values (EXIF 2.3, table 6 'Orientation'): the row 0 / column 0 of the stored image is
    1 top/left, 2 top/right (mirrored), 3 bottom/right (rotated 180), 4 bottom/left (flipped),
    5 left/top (transposed), 6 right/top (rotate 90 clockwise to view), 7 right/bottom
    (transverse), 8 left/bottom (rotate 90 counter-clockwise to view).
    """
    if orientation in (5, 6, 7, 8):
        pixels = pixels.swapaxes(0, 1)  # transpose; then 6 = mirror, 7 = rotate 180, 8 = flip
        orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    return pixels
