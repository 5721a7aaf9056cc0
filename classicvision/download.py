"""Fetch the public 15-Scene archive over https, extract it safely and verify every image.

The machines this project is developed and tested on have **no internet access**: the data
used there is already in ``../shared/data/scene15`` (see its ``SOURCE.md``), and the tests of
this module build small archives on the fly and serve them through a patched ``urlopen``. On a
connected machine :func:`download_scene15` fetches the archive with :mod:`urllib` (no extra
dependency).

Safety:

* **https only**: any other scheme (``http``, ``file``, ``ftp``) is refused, and so is a
  redirect that leaves https. The download stops past :data:`MAX_DOWNLOAD_BYTES`.
* **Content verified by default**: the package ships a manifest (``classicvision/data/
  scene15.sha256``, ``sha256sum`` format, 4485 lines ``<hex digest>  <split>/<Class>/<file>``,
  made from the shared copy's ``SHA256SUMS``). After extraction, every image is hashed and
  compared with it; a missing, extra or changed file refuses the whole download (the archive
  digest itself is not pinned, as GitHub does not promise byte-stable archives).
* **Bounded extraction** (zip bombs): at most :data:`MAX_MEMBERS` members and
  :data:`MAX_EXTRACTED_BYTES` bytes, and at most :data:`MAX_RATIO` times the archive's size;
  declared sizes are checked before anything is written and the bytes are counted again while
  they are written, so an archive that lies is stopped mid-way.
* **No escape**: an absolute path, a ``..`` component, a drive letter, a link or a device file
  refuses the whole archive before anything is extracted.
* **Atomic**: the archive goes to a temporary name beside ``dest``, extraction to a temporary
  folder renamed into place at the end; on any error both are deleted and ``dest`` is untouched.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

__all__ = ["download_scene15", "SCENE15_URL", "SCENE15_SHA256", "SCENE15_CLASSES", "MAX_DOWNLOAD_BYTES",
           "MAX_EXTRACTED_BYTES", "MAX_MEMBERS", "MAX_RATIO", "read_manifest", "verify_manifest", "sha256sum",
           "safe_extract"]

logger = logging.getLogger(__name__)

#: The copy in ``../shared/data/scene15`` comes from this repository and commit (its SOURCE.md):
#: GitHub's archive of ``anthonyhuang19/SceneBoW`` at 8406eb0, with ``train/<class>`` and ``test/<class>``.
SCENE15_URL = ("https://github.com/anthonyhuang19/SceneBoW/archive/"
               "8406eb09794b9f07aeafb3650ad58831bb5752d0.zip")
#: Not pinned: GitHub does not promise byte-stable archives. The *content* is verified instead,
#: file by file, against the manifest shipped with the package (:func:`read_manifest`).
SCENE15_SHA256 = None
#: Limits, module-level so that a user can raise them (``classicvision.download.MAX_MEMBERS = ...``).
MAX_DOWNLOAD_BYTES = 1 << 30  # the archive (15-Scene's is about 90 MB)
MAX_EXTRACTED_BYTES = 1 << 30  # all members together
MAX_MEMBERS = 20_000  # files and folders (15-Scene: 4485 images)
MAX_RATIO = 50  # extracted bytes per archive byte (JPEG archives are about 1; text about 5)
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
    if not path.parts or path.is_absolute() or ".." in path.parts or ":" in path.parts[0]:
        raise ValueError(f"unsafe path in archive {archive}: {name!r}")
    return path


class _Budget:
    """Counts the bytes written by an extraction and refuses past the cap."""

    def __init__(self, archive: Path, max_bytes: int, max_ratio: float):
        size = archive.stat().st_size
        self.archive, self.written = archive, 0
        by_ratio = max(int(max_ratio * size), _CHUNK)
        self.cap = min(max_bytes, by_ratio)
        self.why, self.knob = ((f"the {max_bytes}-byte limit", "MAX_EXTRACTED_BYTES") if max_bytes <= by_ratio else
                               (f"{max_ratio:g} times the archive's {size} bytes", "MAX_RATIO"))

    def check(self, total: int, when: str) -> None:
        if total > self.cap:
            raise ValueError(f"archive {self.archive} expands to more than {self.cap} bytes ({when}), past {self.why}: "
                             f"refused as a possible zip bomb (raise classicvision.download.{self.knob} to allow it)")

    def copy(self, source, target: Path) -> None:
        with open(target, "wb") as out:
            for block in iter(lambda: source.read(_CHUNK), b""):
                self.written += len(block)
                self.check(self.written, "while extracting")
                out.write(block)


def _members_checked(archive: Path, items, max_members: int) -> list:
    """The members of ``items`` (an iterator), refusing past ``max_members``."""
    members = []
    for item in items:
        members.append(item)
        if len(members) > max_members:
            raise ValueError(f"archive {archive} has more than {max_members} members (MAX_MEMBERS): refused "
                             "(raise classicvision.download.MAX_MEMBERS to allow it)")
    return members


def safe_extract(archive, dest, *, max_bytes: int | None = None, max_members: int | None = None,
                 max_ratio: float | None = None) -> Path:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``dest`` after checking every member.

    Parameters
    ----------
    archive, dest : path
    max_bytes, max_members, max_ratio : int, int, float or None
        Caps on the bytes written, the number of members, and the bytes written per archive
        byte (default :data:`MAX_EXTRACTED_BYTES`, :data:`MAX_MEMBERS`, :data:`MAX_RATIO`).

    Raises
    ------
    ValueError
        If a member has an absolute path, a ``..`` component, or is a link or special file
        (nothing is extracted then); if the members are too many or declare too many bytes
        (nothing extracted) or write more than declared (stopped mid-way); or if the file is
        neither a zip nor a tar archive. ``dest`` may then hold part of the archive: extract to
        a temporary folder, as :func:`download_scene15` does.
    """
    archive, dest = Path(archive), Path(dest)
    budget = _Budget(archive, MAX_EXTRACTED_BYTES if max_bytes is None else max_bytes,
                     MAX_RATIO if max_ratio is None else max_ratio)
    max_members = MAX_MEMBERS if max_members is None else max_members
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            members = _members_checked(archive, iter(z.infolist()), max_members)
            for info in members:
                _check_member(info.filename, archive)
                mode = info.external_attr >> 16
                if mode and (mode & 0o170000) not in (0, 0o100000, 0o040000):
                    raise ValueError(f"unsafe link or special file in archive {archive}: {info.filename!r}")
            budget.check(sum(info.file_size for info in members), "declared sizes")
            _write_members(archive, dest, budget, [(info.filename, info.is_dir(), lambda info=info: z.open(info))
                                                   for info in members])
        return dest
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            members = _members_checked(archive, iter(t), max_members)
            for member in members:
                _check_member(member.name, archive)
                if not (member.isfile() or member.isdir()):
                    raise ValueError(f"unsafe member (link or special file) in archive {archive}: {member.name!r}")
            budget.check(sum(member.size for member in members if member.isfile()), "declared sizes")
            _write_members(archive, dest, budget, [(member.name, member.isdir(),
                                                    lambda member=member: t.extractfile(member))
                                                   for member in members])
        return dest
    raise ValueError(f"archive must be a zip or tar file, got {archive}")


def _write_members(archive: Path, dest: Path, budget, members) -> None:
    """Write checked ``(name, is_dir, open)`` members of ``archive`` under ``dest``, every byte
    counted by ``budget``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, is_dir, open_member in members:
        target = dest.joinpath(*_check_member(name, archive).parts)
        if is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with open_member() as source:
            budget.copy(source, target)


def read_manifest(path=None) -> dict:
    """``{relative posix path: hex SHA-256}`` from a ``sha256sum``-format manifest.

    Parameters
    ----------
    path : path or None
        Default: the 15-Scene manifest shipped with the package (``classicvision/data/scene15.sha256``).

    Examples
    --------
    >>> manifest = read_manifest()
    >>> len(manifest), manifest["train/Coast/image_0006.jpg"][:12]
    (4485, '473aae7f033f')
    """
    if path is None:
        from importlib.resources import files

        text = files("classicvision").joinpath("data", "scene15.sha256").read_text("ascii")
        path = "classicvision/data/scene15.sha256"
    else:
        text = Path(path).read_text("utf-8-sig")
    manifest = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.strip().partition("  ")
        name = name.lstrip("*").removeprefix("./")
        if len(digest) != 64 or not name or any(c not in "0123456789abcdefABCDEF" for c in digest):
            raise ValueError(f"manifest {path}, line {n}: expected '<64 hex digits>  <path>', got {line!r}")
        manifest[name] = digest.lower()
    return manifest


def verify_manifest(folder, manifest: dict) -> None:
    """Check that ``folder`` holds exactly the files of ``manifest`` with their SHA-256 digests.

    Raises
    ------
    ValueError
        One line giving the number of missing, extra and changed files and the first of each.
    """
    folder = Path(folder)
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    missing = sorted(set(manifest) - present)
    extra = sorted(present - set(manifest))
    changed = sorted(name for name in set(manifest) & present if sha256sum(folder / name) != manifest[name])
    if missing or extra or changed:
        parts = [f"{len(v)} {k} (first: {v[0]})" for k, v in (("missing", missing), ("unexpected", extra),
                                                              ("changed", changed)) if v]
        raise ValueError(f"downloaded files do not match the manifest of {len(manifest)} files: " + "; ".join(parts))


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


def _check_url(url: str, what: str = "url") -> None:
    if not isinstance(url, str):
        raise TypeError(f"{what} must be a str, got {type(url).__name__}")
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme != "https":
        raise ValueError(f"{what} must be an https:// URL, got {scheme + '://' if scheme else 'no scheme'} in {url!r}")


def _fetch(url: str, out, progress: bool, max_bytes: int) -> None:
    from tqdm.auto import tqdm

    with urllib.request.urlopen(url, timeout=60) as response:
        final = response.geturl() if hasattr(response, "geturl") else url
        _check_url(final or url, "the URL redirected to")
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        if total is not None and total > max_bytes:
            raise ValueError(f"{url} announces {total} bytes, more than the {max_bytes}-byte limit "
                             "(raise classicvision.download.MAX_DOWNLOAD_BYTES to allow it)")
        written = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc="15-Scene", disable=not progress,
                  file=sys.stderr) as bar:
            for block in iter(lambda: response.read(_CHUNK), b""):
                written += len(block)
                if written > max_bytes:
                    raise ValueError(f"{url} sent more than the {max_bytes}-byte limit "
                                     "(raise classicvision.download.MAX_DOWNLOAD_BYTES to allow it)")
                out.write(block)
                bar.update(len(block))


def download_scene15(dest, *, url: str = SCENE15_URL, sha256: str | None = SCENE15_SHA256,
                     manifest="scene15", progress: bool = True) -> Path:
    """Download (https only), extract and verify the 15-Scene archive into ``dest``.

    Parameters
    ----------
    dest : path
        Folder to create. If the archive holds ``train/<class>`` and ``test/<class>`` (the
        layout :func:`classicvision.datasets.load_image_folder` reads), only that layout is
        placed in ``dest``, with class folders renamed to :data:`SCENE15_CLASSES` spelling;
        otherwise the archive's content (below a single wrapper folder) is.
    url : str
        ``https://`` URL of a zip or tar archive (any other scheme is refused).
    sha256 : str or None
        Expected hex digest of the archive itself; None skips that check (the digest is logged).
    manifest : "scene15", path, dict or None
        What the extracted files must be: ``"scene15"`` (default) the manifest shipped with the
        package, a ``sha256sum``-format file, or a ``{path: digest}`` dict (see
        :func:`read_manifest`); None skips the content check (not recommended).
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
        A URL that is not https (or a redirect away from it), a download or extraction past
        its limit, an unsafe archive, an archive digest mismatch (both digests named), or files
        that do not match the manifest. Nothing is left behind then.
    urllib.error.URLError
        If the URL cannot be fetched (e.g. no internet, as on the development machines).
    """
    _check_url(url)
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"dest must be empty or absent, got non-empty {dest}")
    if isinstance(manifest, str) and manifest == "scene15":
        expected = read_manifest()
    elif isinstance(manifest, dict) or manifest is None:
        expected = manifest
    else:
        expected = read_manifest(manifest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}-", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    extract_dir = None
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch(url, out, progress, MAX_DOWNLOAD_BYTES)
        digest = sha256sum(tmp)
        if sha256 is not None and digest.lower() != sha256.lower():
            raise ValueError(f"SHA-256 mismatch for {url}: expected {sha256.lower()}, got {digest}")
        logger.info("downloaded %s (sha256 %s)", url, digest)
        extract_dir = Path(tempfile.mkdtemp(prefix=f".{dest.name}-extract-", dir=dest.parent))
        safe_extract(tmp, extract_dir / "content")
        root = _layout_root(extract_dir / "content")
        if (root / "train").is_dir() and (root / "test").is_dir():
            # keep only the image layout (a repository archive also holds code and notes)
            layout = extract_dir / "layout"
            layout.mkdir()
            for split in ("train", "test"):
                os.replace(root / split, layout / split)
                _canonical_names(layout / split)
            root = layout
        if expected is not None:
            verify_manifest(root, expected)
        else:
            logger.warning("%s: extracted files not verified (manifest=None)", url)
        if dest.exists():
            dest.rmdir()
        os.replace(root, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)
        if extract_dir is not None and extract_dir.exists():
            shutil.rmtree(extract_dir, ignore_errors=True)
