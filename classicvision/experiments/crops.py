"""Random crops and horizontal flips of a labelled image folder: a larger training set made on the fly.

For scaling runs (``benchmarks/bench_scale.py``): :func:`write_crops` writes ``n_images`` new
JPEG files ``<out>/<class>/<i>.jpg`` cut from the images of ``<root>/<split>/<class>/*``. Image
``i`` comes from source ``order[i mod n_sources]``, ``order`` a permutation of the sources drawn
from ``numpy.random.default_rng(seed)`` (so every source gives ``n_images / n_sources`` crops, give
or take one, and fewer crops than sources are a random sample of them, every class included in
proportion on average), cut by :func:`random_crop` with a generator seeded by ``(seed, i)``: the
same arguments give the same files, in whatever order they are written.

A crop (:func:`random_crop`) draws a side fraction ``s`` uniform in ``scale`` and an aspect
change ``a`` log-uniform in ``aspect``, and keeps ``round(width * s * sqrt(a))`` columns and
``round(height * s / sqrt(a))`` rows (each at least 1 and at most the image's), at a uniform
position; it is mirrored left to right with probability ``flip``. With the defaults
(``scale=(0.6, 1.0)``, ``aspect=(3/4, 4/3)``) a crop keeps 36% to 100% of the pixels. These are
the "random resized crop" and flip of ImageNet training (Szegedy et al. 2015), without the resize:
dense SIFT samples a grid, so a crop's size only sets its number of descriptors.

References
----------
C. Szegedy et al., "Going deeper with convolutions", CVPR 2015 (random crops of 8% to 100% of the
area, aspect 3/4 to 4/3, and flips).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..datasets import load_image_folder
from ..io import read_image

__all__ = ["Crop", "random_crop", "write_crops"]


class Crop(NamedTuple):
    """One random crop of an image.

    Attributes
    ----------
    image : (h, w) array, the dtype of the input
        The crop, mirrored left to right when ``flipped``.
    box : tuple of 4 int
        ``(x, y, width, height)`` of the crop in the input image: ``x`` the first column,
        ``y`` the first row (before the flip).
    flipped : bool
    """

    image: np.ndarray
    box: tuple
    flipped: bool


def _check_range(value, name: str, low: float, high: float | None):
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair of numbers (low, high), got {value!r}") from None
    if not (low < lo <= hi and (high is None or hi <= high)) or not math.isfinite(hi):
        bound = f"{low} < low <= high" + (f" <= {high}" if high is not None else "")
        raise ValueError(f"{name} must satisfy {bound}, got {value!r}")
    return lo, hi


def _check_options(scale, aspect, flip):
    scale = _check_range(scale, "scale", 0.0, 1.0)
    aspect = _check_range(aspect, "aspect", 0.0, None)
    if isinstance(flip, bool) or not isinstance(flip, (int, float)) or not 0.0 <= flip <= 1.0:
        raise ValueError(f"flip must be a probability in [0, 1], got {flip!r}")
    return scale, aspect, float(flip)


def _crop(image, rng, scale, aspect, flip) -> Crop:
    height, width = image.shape[:2]
    s = rng.uniform(scale[0], scale[1])
    a = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
    w = min(width, max(1, round(width * s * math.sqrt(a))))
    h = min(height, max(1, round(height * s / math.sqrt(a))))
    x = int(rng.integers(0, width - w + 1))
    y = int(rng.integers(0, height - h + 1))
    flipped = bool(rng.random() < flip)
    crop = image[y:y + h, x:x + w]
    return Crop(np.ascontiguousarray(crop[:, ::-1] if flipped else crop), (x, y, w, h), flipped)


def random_crop(image, rng, *, scale=(0.6, 1.0), aspect=(0.75, 4 / 3), flip=0.5) -> Crop:
    """A random crop of ``image``, mirrored left to right with probability ``flip``.

    Parameters
    ----------
    image : (H, W) or (H, W, C) array
        Any dtype; the crop keeps it.
    rng : numpy.random.Generator
        The draws, in this order: side fraction, aspect change, x, y, flip.
    scale : (float, float)
        Range of the side fraction ``s``, ``0 < low <= high <= 1``.
    aspect : (float, float)
        Range of the aspect change ``a`` (drawn log-uniformly), ``0 < low <= high``: the crop
        is ``width * s * sqrt(a)`` by ``height * s / sqrt(a)`` pixels, rounded and clipped to the
        image.
    flip : float
        Probability of the left-right mirror.

    Returns
    -------
    Crop
        ``(image, box (x, y, width, height), flipped)``.

    Raises
    ------
    ValueError
        If ``image`` is not 2-D or 3-D or is empty, or a range or ``flip`` is out of bounds.
    TypeError
        If ``rng`` is not a :class:`numpy.random.Generator` or a range is not a pair of numbers.

    Examples
    --------
    >>> image = np.arange(40, dtype=np.float32).reshape(5, 8)
    >>> crop = random_crop(image, np.random.default_rng(0), scale=(1.0, 1.0), aspect=(1.0, 1.0), flip=1.0)
    >>> crop.box, crop.flipped, bool(np.array_equal(crop.image, image[:, ::-1]))
    ((0, 0, 8, 5), True, True)
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image must be a non-empty 2-D or 3-D array, got shape {image.shape}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return _crop(image, rng, *_check_options(scale, aspect, flip))


def write_crops(root, out, n_images: int, *, split: str = "train", seed: int = 0, quality: int = 90,
                scale=(0.6, 1.0), aspect=(0.75, 4 / 3), flip=0.5, progress=None):
    """Write ``n_images`` random crops and flips of the images of ``root/split`` as ``out/<class>/<i>.jpg``.

    Parameters
    ----------
    root : path
        Folder holding ``split/<class>/*`` (as :func:`~classicvision.datasets.load_image_folder`).
    out : path
        New or empty folder for the crops (created).
    n_images : int
        Number of crops, at least 0.
    split : str
    seed : int
        Seeds the order of the sources (``numpy.random.default_rng(seed)``) and crop ``i``
        (``numpy.random.default_rng([seed, i])``).
    quality : int
        JPEG quality, 1 to 100.
    scale, aspect, flip
        As :func:`random_crop`.
    progress : callable or None
        Called as ``progress(n_done, n_images)`` after each source image.

    Returns
    -------
    paths : list of str
        The files written, ``paths[i]`` for crop ``i``.
    labels : (n_images,) int64 array
        Class index of each crop (its source's).
    class_names : list of str

    Raises
    ------
    ValueError
        If ``n_images`` is negative, ``quality`` out of range, ``out`` is a non-empty folder,
        ``root/split`` has no image, or an option is out of bounds.
    OSError
        If a source cannot be read or a crop cannot be written.

    Notes
    -----
    The sources are read with :func:`~classicvision.io.read_image` (gray, float32 in [0, 1]) and the
    crops written as 8-bit gray JPEG, each source decoded once for all its crops.

    Examples
    --------
    >>> import tempfile, pathlib, cv2
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     root = pathlib.Path(folder)
    ...     (root / "train" / "a").mkdir(parents=True)
    ...     _ = cv2.imwrite(str(root / "train" / "a" / "0.png"), np.zeros((20, 30), np.uint8))
    ...     paths, labels, names = write_crops(root, root / "crops", 3)
    ...     [pathlib.Path(p).relative_to(root).as_posix() for p in paths], labels.tolist(), names
    (['crops/a/0.jpg', 'crops/a/1.jpg', 'crops/a/2.jpg'], [0, 0, 0], ['a'])
    """
    import cv2

    if isinstance(n_images, bool) or not isinstance(n_images, (int, np.integer)) or n_images < 0:
        raise ValueError(f"n_images must be an integer >= 0, got {n_images!r}")
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer from 1 to 100, got {quality!r}")
    options = _check_options(scale, aspect, flip)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"out must be a new or empty folder, got {out}")
    sources, source_labels, class_names = load_image_folder(root, split)
    if not len(sources):
        raise ValueError(f"no image in {Path(root) / split}")
    n_images, n = int(n_images), len(sources)
    digits = max(1, len(str(max(n_images - 1, 0))))
    paths = [""] * n_images
    labels = np.zeros(n_images, np.int64)
    for name in class_names:
        (out / name).mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(int(seed)).permutation(n)
    done = 0
    for position in range(min(n, n_images)):
        j = int(order[position])
        image = np.round(read_image(sources[j]) * 255).astype(np.uint8)
        for i in range(position, n_images, n):
            crop = _crop(image, np.random.default_rng([int(seed), i]), *options)
            path = out / class_names[source_labels[j]] / f"{i:0{digits}d}.jpg"
            if not cv2.imwrite(os.fspath(path), crop.image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)]):
                raise OSError(f"cannot write {path}")
            paths[i], labels[i] = str(path), source_labels[j]
            done += 1
        if progress is not None:
            progress(done, n_images)
    return paths, labels, list(class_names)
