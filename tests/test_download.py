"""Tests for classicvision.download, against small archives built on the fly and served through a
patched ``urlopen`` (no network): https only, the content manifest, extraction limits, unsafe members."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile

import pytest

from classicvision import download
from classicvision.datasets import load_image_folder
from classicvision.download import download_scene15, read_manifest, safe_extract

_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010800000000"
                     "3a7e9b550000000a49444154789c63600000000200015d0b2f6a0000000049454e44ae426082")
URL = "https://example.org/scene15.zip"


def _zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _tar(path, members):
    with tarfile.open(path, "w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


class _Response(io.BytesIO):
    def __init__(self, data, url):
        super().__init__(data)
        self.headers, self._url = {"Content-Length": str(len(data))}, url

    def geturl(self):
        return self._url


@pytest.fixture
def serve(monkeypatch):
    """``serve(path, final_url=None)``: urlopen returns the file's bytes (as if fetched from ``final_url``)."""
    calls = []

    def install(path, final_url=None):
        def urlopen(url, timeout=None):
            calls.append(url)
            return _Response(path.read_bytes(), final_url or url)
        monkeypatch.setattr(download.urllib.request, "urlopen", urlopen)
        return calls
    return install


_LAYOUT = {"SceneBoW-abc/README.md": b"notes",
           "SceneBoW-abc/train/coast/image_0001.png": _PNG,
           "SceneBoW-abc/train/livingroom/image_0002.png": _PNG,
           "SceneBoW-abc/test/coast/image_0003.png": _PNG,
           "SceneBoW-abc/test/livingRoom/image_0004.png": _PNG + b"\0"}
_MANIFEST = {"train/Coast/image_0001.png": hashlib.sha256(_PNG).hexdigest(),
             "train/LivingRoom/image_0002.png": hashlib.sha256(_PNG).hexdigest(),
             "test/Coast/image_0003.png": hashlib.sha256(_PNG).hexdigest(),
             "test/LivingRoom/image_0004.png": hashlib.sha256(_PNG + b"\0").hexdigest()}


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("builder", [_zip, _tar])
def test_good_archive_extracts_verified_layout(tmp_path, serve, builder):
    archive = builder(tmp_path / ("a.zip" if builder is _zip else "a.tar.gz"), _LAYOUT)
    serve(archive)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    dest = download_scene15(tmp_path / "scene15", url=URL, sha256=digest, manifest=_MANIFEST, progress=False)
    assert sorted(p.name for p in dest.iterdir()) == ["test", "train"]
    for split in ("train", "test"):
        paths, labels, names = load_image_folder(dest, split)
        assert names == ["Coast", "LivingRoom"] and len(paths) == 2
    assert _leftovers(tmp_path) == []  # no temp files left


@pytest.mark.data
def test_manifest_file_is_shipped_and_matches_the_shared_copy(scene15_dir):
    manifest = read_manifest()
    assert len(manifest) == 4485 and sum(name.startswith("train/") for name in manifest) == 1500
    for name in sorted(manifest)[::500]:
        assert download.sha256sum(scene15_dir / name) == manifest[name]


def test_default_verifies_against_the_shipped_manifest(tmp_path, serve):
    serve(_zip(tmp_path / "a.zip", _LAYOUT))
    with pytest.raises(ValueError, match=r"do not match the manifest of 4485 files: 4485 missing .*4 unexpected"):
        download_scene15(tmp_path / "scene15", progress=False)
    assert not (tmp_path / "scene15").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("change, message", [
    ({"SceneBoW-abc/test/coast/image_0003.png": _PNG + b"x"}, "1 changed .*test/Coast/image_0003.png"),
    ({"SceneBoW-abc/train/coast/extra.png": _PNG}, "1 unexpected .*train/Coast/extra.png"),
])
def test_a_changed_or_extra_file_refuses_the_download(tmp_path, serve, change, message):
    serve(_zip(tmp_path / "a.zip", {**_LAYOUT, **change}))
    with pytest.raises(ValueError, match=message):
        download_scene15(tmp_path / "scene15", url=URL, manifest=_MANIFEST, progress=False)
    assert not (tmp_path / "scene15").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("url", ["http://example.org/a.zip", "file:///tmp/a.zip", "ftp://example.org/a.zip",
                                 "example.org/a.zip", "HTTP://x/a.zip"])
def test_only_https_urls(tmp_path, serve, url):
    calls = serve(_zip(tmp_path / "a.zip", _LAYOUT))
    with pytest.raises(ValueError, match="must be an https:// URL"):
        download_scene15(tmp_path / "scene15", url=url, manifest=None, progress=False)
    assert calls == []  # refused before any connection


def test_redirect_away_from_https_is_refused(tmp_path, serve):
    serve(_zip(tmp_path / "a.zip", _LAYOUT), final_url="http://mirror.example.org/a.zip")
    with pytest.raises(ValueError, match="redirected to must be an https"):
        download_scene15(tmp_path / "scene15", url=URL, manifest=None, progress=False)
    assert _leftovers(tmp_path) == []


def test_bad_checksum_raises_and_cleans_up(tmp_path, serve):
    archive = _zip(tmp_path / "a.zip", _LAYOUT)
    serve(archive)
    wrong = "0" * 64
    with pytest.raises(ValueError) as info:
        download_scene15(tmp_path / "scene15", url=URL, sha256=wrong, manifest=None, progress=False)
    assert wrong in str(info.value) and hashlib.sha256(archive.read_bytes()).hexdigest() in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]


def test_download_size_limit(tmp_path, serve, monkeypatch):
    serve(_zip(tmp_path / "a.zip", _LAYOUT))
    monkeypatch.setattr(download, "MAX_DOWNLOAD_BYTES", 100)
    with pytest.raises(ValueError, match="MAX_DOWNLOAD_BYTES"):
        download_scene15(tmp_path / "scene15", url=URL, manifest=None, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]


def test_zip_bomb_refused_before_writing(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z, z.open("train/a/x.png", "w") as f:
        block = bytes(1 << 20)
        for _ in range(200):  # 200 MB of zeros in a ~200 KB zip
            f.write(block)
    assert archive.stat().st_size < 400_000
    with pytest.raises(ValueError, match="zip bomb.*MAX_RATIO"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tar_bomb_and_total_size_limit(tmp_path, monkeypatch):
    archive = _tar(tmp_path / "a.tar.gz", {"a/x.bin": bytes(5 << 20)})
    with pytest.raises(ValueError, match="MAX_RATIO"):
        safe_extract(archive, tmp_path / "out")
    monkeypatch.setattr(download, "MAX_EXTRACTED_BYTES", 1000)
    archive = _tar(tmp_path / "b.tar.gz", {"a/x.bin": bytes(2000)})
    with pytest.raises(ValueError, match="1000-byte limit.*MAX_EXTRACTED_BYTES"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bytes_are_counted_while_written(tmp_path):
    """An archive whose members write more than they declare is stopped mid-way."""
    budget = download._Budget(_zip(tmp_path / "a.zip", {"x": b"1"}), max_bytes=3 << 20, max_ratio=1e9)
    with pytest.raises(ValueError, match="while extracting"):
        budget.copy(io.BytesIO(bytes(5 << 20)), tmp_path / "x.bin")
    assert (tmp_path / "x.bin").stat().st_size <= 3 << 20


@pytest.mark.parametrize("builder", [_zip, _tar])
def test_member_count_limit(tmp_path, monkeypatch, builder):
    monkeypatch.setattr(download, "MAX_MEMBERS", 5)
    archive = builder(tmp_path / ("a.zip" if builder is _zip else "a.tar.gz"), {f"f{i}": b"x" for i in range(6)})
    with pytest.raises(ValueError, match="more than 5 members.*MAX_MEMBERS"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("builder", [_zip, _tar])
@pytest.mark.parametrize("bad", ["../evil.txt", "/tmp/evil_abs.txt", "ok/../../evil.txt", "C:/evil.txt"])
def test_traversal_member_refused(tmp_path, serve, builder, bad):
    serve(builder(tmp_path / ("a.zip" if builder is _zip else "a.tar.gz"), {"train/coast/x.png": _PNG, bad: b"x"}))
    with pytest.raises(ValueError, match="unsafe"):
        download_scene15(tmp_path / "out" / "scene15", url=URL, manifest=None, progress=False)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()
    assert not (tmp_path / "out" / "scene15").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE])
def test_link_and_special_members_refused(tmp_path, kind):
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as t:
        link = tarfile.TarInfo("train/link")
        link.type, link.linkname = kind, "/etc/passwd"
        t.addfile(link)
    with pytest.raises(ValueError, match="unsafe"):
        safe_extract(archive, tmp_path / "x")


def test_zip_symlink_member_refused(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        info = zipfile.ZipInfo("train/link")
        info.external_attr = (0o120777 << 16)
        z.writestr(info, "/etc/passwd")
    with pytest.raises(ValueError, match="unsafe"):
        safe_extract(archive, tmp_path / "x")


def test_existing_destination_and_not_an_archive(tmp_path, serve):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    serve(_zip(tmp_path / "a.zip", _LAYOUT))
    with pytest.raises(FileExistsError, match="dest"):
        download_scene15(tmp_path / "full", url=URL, progress=False)
    text = tmp_path / "plain.txt"
    text.write_text("not an archive")
    serve(text)
    with pytest.raises(ValueError, match="zip or tar"):
        download_scene15(tmp_path / "d", url=URL, manifest=None, progress=False)
    assert _leftovers(tmp_path) == []
