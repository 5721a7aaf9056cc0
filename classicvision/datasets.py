"""Where data comes from: the shared data folder, image folders, ground-truth pairs, embedded pairs.

The real data lives outside the project (``../shared/data`` beside the checkout, or wherever
``CLASSICVISION_DATA`` points); nothing here downloads anything. The embedded pairs are built
from images that ship inside scikit-image, so they work on a fresh machine:

* :func:`stereo_pair`: Middlebury's motorcycle stereo pair with its disparity map
  (``skimage.data.stereo_motorcycle``): a real pair with dense ground truth.
* :func:`embedded_pair`: scikit-image's ``camera`` image and a copy warped by a known
  homography (rotation, scale, shear and a little perspective): exact ground truth.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path

import cv2
import numpy as np

from .io import as_float_image, read_image

__all__ = [
    "IMAGE_EXTENSIONS",
    "PAIR_NAMES",
    "data_dir",
    "pairs_dir",
    "scene15_dir",
    "find_data_dir",
    "load_image_folder",
    "read_images",
    "load_pair",
    "stereo_pair",
    "embedded_pair",
    "EMBEDDED_HOMOGRAPHY",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp")
PAIR_NAMES = ("notre_dame", "mt_rushmore", "e_gaudi")

# Maps camera.png (x, y) to the warped image's (x, y): 20 degrees rotation about the centre,
# scale 0.9, slight shear and perspective. Fixed, so that the embedded truth never changes.
EMBEDDED_HOMOGRAPHY = np.array(
    [[0.8458, -0.2979, 101.2],
     [0.3163, 0.8601, -46.5],
     [4.0e-5, -2.0e-5, 1.0]], dtype=np.float64)


#: Largest ground-truth or ``pairs.csv`` file read, in bytes (a few thousand rows take kilobytes);
#: raise it (``classicvision.datasets.MAX_CSV_BYTES = ...``) for a larger file.
MAX_CSV_BYTES = 16 << 20
GROUND_TRUTH_COLUMNS = ("x1", "y1", "x2", "y2")
PAIRS_COLUMNS = ("name", "image1", "image2", "ground_truth")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


def _csv_rows(path: Path, what: str) -> tuple[str, list[tuple[int, list[str]]]]:
    """``(delimiter, [(line number, cells), ...])`` of a small CSV text file, blank lines left out.

    Accepts a UTF-8 byte-order mark (Excel's "CSV UTF-8"), UTF-16 with a byte-order mark (Excel's
    "Unicode text"), CRLF or CR line ends, spaces around cells and trailing empty cells; the
    delimiter is the one of ``,``, ``;`` or tab found in the first (header) line.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}" if not path.exists() else
                                f"{what} must be a file, got a folder or special file: {path}")
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise ValueError(f"{what} {path} has {size} bytes, more than the {MAX_CSV_BYTES}-byte limit "
                         "(raise classicvision.datasets.MAX_CSV_BYTES to read it)")
    data = path.read_bytes()
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {path} is not {encoding.split('-sig')[0].upper()} text "
                         f"(byte {exc.start}: {data[exc.start:exc.start + 1]!r})") from None
    if "\0" in text:
        raise ValueError(f"{what} {path} is not text (it holds NUL bytes)")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise ValueError(f"{what} {path} is empty (no header line)")
    header = lines[0][1]
    delimiter = max((",", ";", "\t"), key=header.count)
    rows = []
    for n, cells in zip((n for n, _ in lines), csv.reader((line for _, line in lines), delimiter=delimiter)):
        cells = [c.strip() for c in cells]
        while cells and not cells[-1]:
            cells.pop()
        rows.append((n, cells))
    return delimiter, rows


def _check_header(path: Path, what: str, line: int, cells: list, expected: tuple) -> None:
    if [c.lower() for c in cells] != list(expected):
        raise ValueError(f"{what} {path}, line {line}: the header must be {','.join(expected)}, "
                         f"got {cells!r}")


def find_data_dir() -> Path | None:
    """The shared data folder if one exists, else None.

    Looks at ``$CLASSICVISION_DATA``, then ``../shared/data`` beside the current directory and
    beside the installed package's checkout.
    """
    env = os.environ.get("CLASSICVISION_DATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    here = Path(__file__).resolve().parent.parent
    for candidate in (Path.cwd().parent / "shared" / "data", here.parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return None


def data_dir(path=None) -> Path:
    """Resolve the data folder: ``path`` if given, else ``$CLASSICVISION_DATA``, else ``../shared/data``.

    Raises
    ------
    FileNotFoundError
        Naming what was looked for, when no folder exists.
    """
    if path is not None:
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"data folder not found: {path}")
        return path
    found = find_data_dir()
    if found is None:
        raise FileNotFoundError(
            "no data folder: pass a path, set CLASSICVISION_DATA, or place the data in ../shared/data")
    return found


def load_image_folder(root, split: str) -> tuple[list[Path], np.ndarray, list[str]]:
    """List a ``root/<split>/<class>/*`` image folder (the 15-Scene layout).

    Parameters
    ----------
    root : path
        Folder holding ``train/`` and ``test/`` (or other splits).
    split : str
        Sub-folder to list, e.g. ``"train"``.

    Returns
    -------
    paths : list of pathlib.Path, sorted by class then file name
    labels : (N,) int64 array of indices into ``class_names``
    class_names : list of str, the sorted class folder names

    Notes
    -----
    Hidden entries (names starting with ``.``, such as ``.DS_Store`` or macOS's ``._x.jpg``) and
    files whose suffix is not in :data:`IMAGE_EXTENSIONS` are left out (logged at debug level);
    an image file that cannot be decoded is listed, and skipped and reported later by
    :func:`read_images`. A class folder without images is kept (its class gets no image).

    Raises
    ------
    FileNotFoundError
        If ``root/split`` is missing, holds no class folder, or no class folder holds an image
        (each message names the folder).
    """
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"split folder not found: {folder}")
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    class_names = [p.name for p in entries if p.is_dir()]
    if not class_names:
        loose = sum(p.suffix.lower() in IMAGE_EXTENSIONS for p in entries)
        raise FileNotFoundError(f"no class folders in {folder} (expected {folder}/<class>/<image>"
                                + (f"; {loose} image files lie directly in it)" if loose else ")"))
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(class_names):
        files, ignored = [], 0
        for p in sorted((folder / name).iterdir()):
            if not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file():
                files.append(p)
            else:
                ignored += 1
        if ignored:
            logger.debug("%s: %d hidden or non-image entries left out", folder / name, ignored)
        paths.extend(files)
        labels.extend([index] * len(files))
    if not paths:
        raise FileNotFoundError(f"no images in the class folders of {folder} ({len(class_names)} class folders, "
                                f"none holds a file with an image suffix: {', '.join(IMAGE_EXTENSIONS)})")
    return paths, np.asarray(labels, dtype=np.int64), class_names


def read_images(paths, *, scale: float = 1.0, progress=None,
                max_pixels: int | None = None) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """Read many image files, skipping (and reporting) those that cannot be read.

    A file :func:`classicvision.io.read_image` refuses (missing, not a regular file, unreadable,
    empty, of an unknown format, corrupt, truncated, over the pixel limit: ``FileNotFoundError``
    or ``ImageReadError``) is skipped, logged as a warning and reported in ``errors``; nothing
    about one bad file raises.

    Parameters
    ----------
    paths : sequence of paths
    scale : float
        Resize factor for every image.
    progress : callable or None
        Called as ``progress(n_done, n_total)`` after each file.
    max_pixels : int or None
        Pixel limit per image; None uses ``classicvision.io.MAX_IMAGE_PIXELS``.

    Returns
    -------
    images : list of (H, W) float32 arrays, one per readable file
    kept : (K,) int64 array, the indices into ``paths`` of the files in ``images``
    errors : list of str, one line per unreadable file, naming it (also logged as warnings)

    Raises
    ------
    TypeError
        If ``scale`` is not a number, or a path is not a str or os.PathLike.
    ValueError
        If ``scale`` or ``max_pixels`` is out of range.
    """
    from ._validation import check_scalar, resolve_max_pixels

    check_scalar(scale, "scale", low=0, low_inclusive=False)
    resolve_max_pixels(max_pixels)  # a bad limit is the caller's error, not every file's
    images, kept, errors = [], [], []
    paths = list(paths)
    for i, path in enumerate(paths):
        try:
            images.append(read_image(path, scale=scale, max_pixels=max_pixels))
            kept.append(i)
        except (OSError, ValueError) as exc:  # ImageReadError is both; FileNotFoundError an OSError
            message = " ".join(str(exc).split())  # one line, and it names the file already
            if str(path) not in message and repr(str(path)) not in message:
                message = f"{path!r}: {message}"
            logger.warning("skipping unreadable image: %s", message)
            errors.append(message)
        if progress is not None:
            progress(i + 1, len(paths))
    return images, np.asarray(kept, dtype=np.int64), errors


def load_pair(name: str, *, root=None, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Load one of the ground-truth pairs (``notre_dame``, ``mt_rushmore``, ``e_gaudi``).

    Parameters
    ----------
    name : str
        A pair name from ``pairs/pairs.csv``.
    root : path or None
        The data root (holding ``pairs/``) or the pairs folder itself; default :func:`data_dir`.
    scale : float
        Resize factor for both images; the ground truth stays in full-resolution pixels.

    Returns
    -------
    image1, image2 : (H, W) float32 arrays
    ground_truth : (K, 4) float32 array with columns ``x1, y1, x2, y2``
        Correspondences in full-resolution (x, y) pixels of image1 and image2.
    """
    path1, path2, truth = pair_paths(name, root=root)
    return read_image(path1, scale=scale), read_image(path2, scale=scale), read_ground_truth(truth)


def _below(root: Path, name: str, marker) -> Path:
    """``root`` itself when ``marker(root)`` holds, else ``root / name``."""
    return root if marker(root) else root / name


def pairs_dir(path=None) -> Path:
    """The ground-truth pairs folder (holding ``pairs.csv``): ``path`` itself when it holds one,
    else ``path/pairs``, with ``path`` resolved by :func:`data_dir`.

    Raises
    ------
    FileNotFoundError
        When neither holds ``pairs.csv``.
    """
    folder = _below(data_dir(path), "pairs", lambda p: (p / "pairs.csv").is_file())
    if not (folder / "pairs.csv").is_file():
        raise FileNotFoundError(f"no pairs.csv in {folder} (the data root holds pairs/pairs.csv)")
    return folder


def scene15_dir(path=None) -> Path:
    """The 15-Scene folder (holding ``train/`` and ``test/``): ``path`` itself when it holds them,
    else ``path/scene15``, with ``path`` resolved by :func:`data_dir` (so ``--data`` and
    ``$CLASSICVISION_DATA`` may name the data root or the dataset folder).

    Raises
    ------
    FileNotFoundError
        When neither holds ``train/`` and ``test/``.
    """
    has_splits = lambda p: (p / "train").is_dir() and (p / "test").is_dir()  # noqa: E731
    folder = _below(data_dir(path), "scene15", has_splits)
    if not has_splits(folder):
        raise FileNotFoundError(f"no train/ and test/ folders in {folder} (the data root holds scene15/train "
                                "and scene15/test)")
    return folder


def _number(text: str, decimal_comma: bool) -> float | None:
    if decimal_comma and text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    return float(text) if _NUMBER.fullmatch(text) else None


def pair_paths(name: str, *, root=None) -> tuple[Path, Path, Path]:
    """Paths ``(image1, image2, ground_truth_csv)`` of a ground-truth pair; ``root`` as in
    :func:`pairs_dir`.

    ``pairs.csv`` needs the columns ``name,image1,image2,ground_truth`` (any order, other columns
    ignored); paths are relative to its folder. It is read as :func:`read_ground_truth` reads
    (BOM, CRLF, ``;`` accepted).

    Raises
    ------
    ValueError
        A missing column, a row with an empty cell, a name listed twice, or an unknown ``name``
        (the message names ``pairs.csv`` and the line).
    FileNotFoundError
        When a file the row names does not exist (naming ``pairs.csv``, the line and the file).
    """
    pairs = pairs_dir(root)
    table = pairs / "pairs.csv"
    _, rows = _csv_rows(table, "pairs file")
    (line, header), rows = rows[0], rows[1:]
    header = [c.lower() for c in header]
    missing = [c for c in PAIRS_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"pairs file {table}, line {line}: missing column(s) {', '.join(missing)}; the header "
                         f"must name {','.join(PAIRS_COLUMNS)}, got {header!r}")
    where = {c: header.index(c) for c in PAIRS_COLUMNS}
    found: dict = {}
    for line, cells in rows:
        values = {c: cells[i] if i < len(cells) else "" for c, i in where.items()}
        empty = [c for c, v in values.items() if not v]
        if empty:
            raise ValueError(f"pairs file {table}, line {line}: empty {', '.join(empty)} in {cells!r}")
        if values["name"] in found:
            raise ValueError(f"pairs file {table}, line {line}: pair {values['name']!r} is listed twice "
                             f"(first on line {found[values['name']][0]})")
        found[values["name"]] = (line, values)
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if not found:
        raise ValueError(f"pairs file {table} lists no pairs (header only)")
    if name not in found:
        raise ValueError(f"name must be one of {', '.join(sorted(found))} (from {table}), got {name!r}")
    line, values = found[name]
    paths = []
    for column in ("image1", "image2", "ground_truth"):
        path = pairs / values[column]
        if not path.is_file():
            raise FileNotFoundError(f"pairs file {table}, line {line}: {column} of pair {name!r} "
                                    f"{'is not a file' if path.exists() else 'not found'}: {path}")
        paths.append(path)
    return paths[0], paths[1], paths[2]


def read_ground_truth(path) -> np.ndarray:
    """Read a ``x1,y1,x2,y2`` CSV of correspondences as a (K, 4) float32 array.

    The first line is the header ``x1,y1,x2,y2`` (any case); each further line holds exactly four
    finite numbers, the (x, y) pixel coordinates of a point in image1 and of its correspondence in
    image2. Tolerated, as spreadsheets write them: a UTF-8 byte-order mark (Excel's "CSV UTF-8")
    or UTF-16 with one, CRLF line ends, blank lines, spaces around cells, trailing empty cells,
    and ``;`` or tab as the delimiter (found in the header; with ``;`` a decimal comma, ``12,5``,
    is read as ``12.5``). Files over :data:`MAX_CSV_BYTES` are refused.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    ground_truth : (K, 4) float32 array with columns ``x1, y1, x2, y2``, K >= 1

    Raises
    ------
    FileNotFoundError
        Missing file.
    ValueError
        One line naming the file and line: a wrong header, a row without exactly four cells, a
        cell that is not a number, NaN or infinity, a file over the size limit, or no rows at all
        (``no correspondences in FILE``).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "gt.csv"
    >>> _ = path.write_bytes(b"\\xef\\xbb\\xbfx1,y1,x2,y2\\r\\n1,2,3,4\\r\\n")
    >>> read_ground_truth(path)
    array([[1., 2., 3., 4.]], dtype=float32)
    """
    path = Path(path)
    delimiter, rows = _csv_rows(path, "ground-truth file")
    (line, header), rows = rows[0], rows[1:]
    _check_header(path, "ground-truth file", line, header, GROUND_TRUTH_COLUMNS)
    truth = np.empty((len(rows), 4), np.float64)
    for k, (line, cells) in enumerate(rows):
        if len(cells) != 4:
            raise ValueError(f"ground-truth file {path}, line {line}: expected 4 values (x1,y1,x2,y2), "
                             f"got {len(cells)}: {delimiter.join(cells)!r}")
        for j, cell in enumerate(cells):
            value = _number(cell, delimiter == ";")
            if value is None:
                raise ValueError(f"ground-truth file {path}, line {line}: {GROUND_TRUTH_COLUMNS[j]} must be a "
                                 f"number, got {cell!r}")
            if not abs(value) <= float(np.finfo(np.float32).max):  # NaN, inf, or inf as float32
                raise ValueError(f"ground-truth file {path}, line {line}: {GROUND_TRUTH_COLUMNS[j]} must be a "
                                 f"finite number, got {cell!r}")
            truth[k, j] = value
    if not len(truth):
        raise ValueError(f"no correspondences in {path}: the file holds the header only, so there is "
                         "no ground truth to evaluate against")
    return truth.astype(np.float32)


def stereo_pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Middlebury's motorcycle stereo pair with its disparity map, from scikit-image (no download).

    Returns
    -------
    left, right : (500, 741) float32 arrays in [0, 1]
    disparity : (500, 741) float32 array
        For a left pixel (x, y) the right pixel is ``(x - disparity[y, x], y)``; ``inf`` where
        the truth is unknown (occlusions).

    References
    ----------
    D. Scharstein et al., "High-resolution stereo datasets with subpixel-accurate ground truth",
    GCPR 2014.
    """
    left, right = (_skimage_png(f"motorcycle_{side}.png") for side in ("left", "right"))
    with np.load(_skimage_data_file("motorcycle_disp.npz")) as f:
        disparity = np.asarray(f[f.files[0]], dtype=np.float32)
    return left, right, disparity


def _skimage_data_file(name: str) -> Path:
    """A file that ships inside ``skimage/data`` (located without importing ``skimage.io``)."""
    import importlib.util

    return Path(importlib.util.find_spec("skimage.data").origin).parent / name


def _skimage_png(name: str) -> np.ndarray:
    """A bundled scikit-image PNG read by OpenCV (0.25 s faster than ``skimage.data``, which imports
    ``skimage.io``; the same pixels), as a 2-D float32 gray image."""
    decoded = cv2.imread(str(_skimage_data_file(name)), cv2.IMREAD_UNCHANGED)
    if decoded.ndim == 3:
        decoded = decoded[..., [2, 1, 0, 3][:decoded.shape[2]]]    # BGR(A) -> RGB(A)
    return as_float_image(decoded)


def embedded_pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-image's ``camera`` image and a copy warped by :data:`EMBEDDED_HOMOGRAPHY`.

    Returns
    -------
    image1, image2 : (512, 512) float32 arrays in [0, 1]
        ``image2`` is ``image1`` warped by ``H`` with bilinear interpolation, black outside.
    H : (3, 3) float64 array
        Maps image1 (x, y) to image2 (x, y) in homogeneous coordinates.
    """
    from skimage import data

    image1 = as_float_image(data.camera())
    height, width = image1.shape
    image2 = cv2.warpPerspective(image1, EMBEDDED_HOMOGRAPHY, (width, height), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return image1, np.ascontiguousarray(image2, dtype=np.float32), EMBEDDED_HOMOGRAPHY.copy()
