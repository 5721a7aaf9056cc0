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

    Raises
    ------
    FileNotFoundError
        If ``root/split`` is missing or holds no class folder with images.
    """
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(f"split folder not found: {folder}")
    class_names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(class_names):
        files = sorted(p for p in (folder / name).iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        paths.extend(files)
        labels.extend([index] * len(files))
    if not paths:
        raise FileNotFoundError(f"no images in class folders under {folder}")
    return paths, np.asarray(labels, dtype=np.int64), class_names


def read_images(paths, *, scale: float = 1.0, progress=None) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """Read many image files, skipping (and reporting) those that cannot be read.

    Parameters
    ----------
    paths : sequence of paths
    scale : float
        Resize factor for every image.
    progress : callable or None
        Called as ``progress(n_done, n_total)`` after each file.

    Returns
    -------
    images : list of (H, W) float32 arrays, one per readable file
    kept : (K,) int64 array, the indices into ``paths`` of the files in ``images``
    errors : list of str, one line per unreadable file (also logged as warnings)
    """
    images, kept, errors = [], [], []
    paths = list(paths)
    for i, path in enumerate(paths):
        try:
            images.append(read_image(path, scale=scale))
            kept.append(i)
        except (OSError, ValueError) as exc:
            message = f"{path}: {exc}"
            logger.warning("skipping unreadable image %s", message)
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


def pair_paths(name: str, *, root=None) -> tuple[Path, Path, Path]:
    """Paths ``(image1, image2, ground_truth_csv)`` of a ground-truth pair; ``root`` as in
    :func:`pairs_dir`."""
    pairs = pairs_dir(root)
    with open(pairs / "pairs.csv", newline="") as f:
        rows = {row["name"]: row for row in csv.DictReader(f)}
    if name not in rows:
        raise ValueError(f"name must be one of {', '.join(sorted(rows))}, got {name!r}")
    row = rows[name]
    return pairs / row["image1"], pairs / row["image2"], pairs / row["ground_truth"]


def read_ground_truth(path) -> np.ndarray:
    """Read a ``x1,y1,x2,y2`` CSV of correspondences as a (K, 4) float32 array.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, or a header/rows that are not four numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground-truth file not found: {path}")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if header != ["x1", "y1", "x2", "y2"]:
            raise ValueError(f"{path}: header must be x1,y1,x2,y2, got {','.join(header)}")
        try:
            rows = [[float(v) for v in row] for row in reader if row]
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    truth = np.asarray(rows, dtype=np.float32).reshape(-1, 4)
    if not np.isfinite(truth).all():
        raise ValueError(f"{path}: ground truth contains NaN or infinite values")
    return truth


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
    from skimage import data

    left, right, disparity = data.stereo_motorcycle()
    return as_float_image(left), as_float_image(right), np.asarray(disparity, dtype=np.float32)


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
