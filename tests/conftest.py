"""Shared fixtures: analytic images, the embedded warped pair, the data folder (skips when absent),
and calls from several threads at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from classicvision.datasets import embedded_pair, find_data_dir, stereo_pair


@pytest.fixture
def step_edge() -> np.ndarray:
    """64x64 float32: 0 left of column 32, 1 from column 32 on (a vertical edge)."""
    image = np.zeros((64, 64), np.float32)
    image[:, 32:] = 1.0
    return image


@pytest.fixture
def square() -> np.ndarray:
    """scikit-image's corner test image: 50x50 float32 with ``im[:25, :25] = 1``."""
    image = np.zeros((50, 50), np.float32)
    image[:25, :25] = 1.0
    return image


@pytest.fixture
def rotated_square() -> np.ndarray:
    """100x100 float32 with a bright square rotated by 30 degrees about the centre."""
    yy, xx = np.mgrid[0:100, 0:100].astype(np.float32)
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    u = c * (xx - 50) + s * (yy - 50)
    v = -s * (xx - 50) + c * (yy - 50)
    return ((np.abs(u) < 20) & (np.abs(v) < 20)).astype(np.float32)


@pytest.fixture(scope="session")
def camera() -> np.ndarray:
    """scikit-image's ``camera`` as (512, 512) float32 in [0, 1]."""
    return embedded_pair()[0]


@pytest.fixture(scope="session")
def warped_pair():
    """``(image1, image2, H)``: camera and a copy warped by a known homography (exact truth)."""
    return embedded_pair()


@pytest.fixture(scope="session")
def motorcycle():
    """``(left, right, disparity)``: the Middlebury motorcycle pair shipped with scikit-image."""
    return stereo_pair()


@pytest.fixture(scope="session")
def data_root():
    """The shared data folder; skips the test when it is absent."""
    root = find_data_dir()
    if root is None:
        pytest.skip("shared data not found (set CLASSICVISION_DATA or provide ../shared/data)")
    return root


@pytest.fixture(scope="session")
def pairs_dir(data_root):
    """``<data>/pairs``; skips when absent."""
    path = data_root / "pairs"
    if not (path / "pairs.csv").is_file():
        pytest.skip(f"ground-truth pairs not found in {path}")
    return path


@pytest.fixture(scope="session")
def scene15_dir(data_root):
    """``<data>/scene15``; skips when absent."""
    path = data_root / "scene15"
    if not (path / "train").is_dir():
        pytest.skip(f"15-Scene not found in {path}")
    return path


def _write_textures(root, n=4, size=48):
    """A tiny train/test folder of three texture classes (blurred blobs, horizontal and vertical stripes),
    ``n`` images of ``size`` px per class and split; returns ``root``."""
    import cv2

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for split in ("train", "test"):
        for kind, name in enumerate(("blobs", "stripes_h", "stripes_v")):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                phase = rng.uniform(0, 2 * np.pi)
                if kind == 0:
                    image = cv2.GaussianBlur(rng.random((size, size), dtype=np.float32), (0, 0), 2.0) * 2 - 0.5
                else:
                    image = 0.5 + 0.4 * np.sin((yy if kind == 1 else xx) * 0.8 + phase)
                cv2.imwrite(str(root / split / name / f"{i}.png"), (np.clip(image, 0, 1) * 255).astype(np.uint8))
    return root


@pytest.fixture
def write_textures():
    """The end-to-end runner tests' data: ``write_textures(root, n=4, size=48)`` builds a class folder."""
    return _write_textures


@pytest.fixture
def in_threads():
    """``run(fn, n)``: ``[fn(0), ..., fn(n - 1)]``, each call in a thread of its own (not the main
    thread, so kernels run serially), all at once; an exception in one is raised here."""
    def run(fn, n):
        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(fn, range(n)))
    return run
