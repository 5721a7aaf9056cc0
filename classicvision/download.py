"""Fetch the public 15-Scene archive, verify its SHA-256 and extract it safely.

The machines this project is developed and tested on have **no internet access**: the data
used there is already in ``../shared/data/scene15`` (see its ``SOURCE.md``), and the tests of
this module serve a small archive built on the fly through a ``file://`` URL. On a connected
machine :func:`download_scene15` fetches the archive with :mod:`urllib` (no extra dependency).

Safety: the archive is downloaded to a temporary name beside its final place and renamed only
once its digest matches (a partial or corrupt file is deleted); every member of the archive is
checked before anything is extracted, and an absolute path, a ``..`` component, a link or a
device file refuses the whole archive. Extraction goes to a temporary folder that is renamed
into place at the end, so ``dest`` never holds half an extraction.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

__all__ = ["download_scene15", "SCENE15_URL", "SCENE15_SHA256", "SCENE15_CLASSES", "sha256sum", "safe_extract"]

logger = logging.getLogger(__name__)

#: The copy in ``../shared/data/scene15`` comes from this repository and commit (its SOURCE.md):
#: GitHub's archive of ``anthonyhuang19/SceneBoW`` at 8406eb0, with ``train/<class>`` and ``test/<class>``.
SCENE15_URL = ("https://github.com/anthonyhuang19/SceneBoW/archive/"
               "8406eb09794b9f07aeafb3650ad58831bb5752d0.zip")
#: Not pinned: this offline machine could not fetch the archive to hash it, and GitHub does not
#: promise byte-stable archives. Pass ``sha256=`` to verify; with None the digest is only logged.
SCENE15_SHA256 = None
#: Canonical class names; extracted class folders are renamed to these (case-insensitive match).
SCENE15_CLASSES = ("Bedroom", "Coast", "Forest", "Highway", "Industrial", "InsideCity", "Kitchen",
                   "LivingRoom", "Mountain", "Office", "OpenCountry", "Store", "Street", "Suburb",
                   "TallBuilding")

_CHUNK = 1 << 20


def sha256sum(path) -> str:
    """Hex SHA-256 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_member(name: str, archive) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise ValueError(f"unsafe path in archive {archive}: {name!r}")
    return path


def safe_extract(archive, dest) -> Path:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``dest`` after checking every member.

    Raises
    ------
    ValueError
        If a member has an absolute path, a ``..`` component, or is a link or special file
        (nothing is extracted then), or if the file is neither a zip nor a tar archive.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                _check_member(info.filename, archive)
                mode = info.external_attr >> 16
                if mode and (mode & 0o170000) == 0o120000:
                    raise ValueError(f"unsafe link in archive {archive}: {info.filename!r}")
            z.extractall(dest)
        return dest
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            members = t.getmembers()
            for member in members:
                _check_member(member.name, archive)
                if not (member.isfile() or member.isdir()):
                    raise ValueError(f"unsafe member (link or special file) in archive {archive}: {member.name!r}")
            for member in members:
                t.extract(member, dest, set_attrs=False, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        return dest
    raise ValueError(f"archive must be a zip or tar file, got {archive}")


def _layout_root(folder: Path) -> Path:
    """The folder that holds ``train/`` and ``test/`` (or the content), skipping single wrappers."""
    while True:
        entries = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        if (folder / "train").is_dir() or len(entries) != 1 or not entries[0].is_dir():
            return folder
        folder = entries[0]


def _canonical_names(split: Path) -> None:
    """Rename class folders that match a 15-Scene class up to case (``livingRoom`` -> ``LivingRoom``)."""
    canonical = {name.lower(): name for name in SCENE15_CLASSES}
    for folder in list(split.iterdir()):
        name = canonical.get(folder.name.lower())
        if folder.is_dir() and name is not None and name != folder.name:
            folder.rename(split / name)


def download_scene15(dest, *, url: str = SCENE15_URL, sha256: str | None = SCENE15_SHA256,
                     progress: bool = True) -> Path:
    """Download, verify and extract the 15-Scene archive into ``dest``.

    Parameters
    ----------
    dest : path
        Folder to create. If the archive holds ``train/<class>`` and ``test/<class>`` (the
        layout :func:`classicvision.datasets.load_image_folder` reads), only that layout is
        placed in ``dest``, with class folders renamed to :data:`SCENE15_CLASSES` spelling;
        otherwise the archive's content (below a single wrapper folder) is.
    url : str
        ``http(s)://`` or ``file://`` URL of a zip or tar archive.
    sha256 : str or None
        Expected hex digest; None skips the check (the digest is logged).
    progress : bool
        Show a tqdm bar on stderr while downloading.

    Returns
    -------
    dest : pathlib.Path

    Raises
    ------
    FileExistsError
        If ``dest`` exists and is not empty.
    ValueError
        On a digest mismatch (both digests named; the download is deleted) or an unsafe archive.
    urllib.error.URLError
        If the URL cannot be fetched (e.g. no internet, as on the development machines).
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"dest must be empty or absent, got non-empty folder {dest}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}-", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    extract_dir = None
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url) as response:
            total = response.headers.get("Content-Length")
            bar = tqdm(total=int(total) if total else None, unit="B", unit_scale=True, desc="15-Scene",
                       disable=not progress, file=sys.stderr)
            for block in iter(lambda: response.read(_CHUNK), b""):
                out.write(block)
                bar.update(len(block))
            bar.close()
        digest = sha256sum(tmp)
        if sha256 is not None and digest.lower() != sha256.lower():
            raise ValueError(f"SHA-256 mismatch for {url}: expected {sha256.lower()}, got {digest}")
        logger.info("downloaded %s (sha256 %s)", url, digest)
        extract_dir = Path(tempfile.mkdtemp(prefix=f".{dest.name}-extract-", dir=dest.parent))
        safe_extract(tmp, extract_dir)
        root = _layout_root(extract_dir)
        if (root / "train").is_dir() and (root / "test").is_dir():
            # keep only the image layout (a repository archive also holds code and notes)
            layout = Path(tempfile.mkdtemp(prefix=f".{dest.name}-layout-", dir=extract_dir))
            for split in ("train", "test"):
                os.replace(root / split, layout / split)
                _canonical_names(layout / split)
            root = layout
        if dest.exists():
            dest.rmdir()
        os.replace(root, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)
        if extract_dir is not None and extract_dir.exists():
            shutil.rmtree(extract_dir, ignore_errors=True)
