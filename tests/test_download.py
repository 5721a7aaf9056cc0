"""Tests for classicvision.download, against small archives served through file:// URLs (no internet)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile

import pytest

from classicvision.datasets import load_image_folder
from classicvision.download import download_scene15, safe_extract

_PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010800000000"
                     "3a7e9b550000000a49444154789c63600000000200015d0b2f6a0000000049454e44ae426082")


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as z:
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


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


_LAYOUT = {"SceneBoW-abc/README.md": b"notes",
           "SceneBoW-abc/train/coast/image_0001.png": _PNG,
           "SceneBoW-abc/train/livingroom/image_0002.png": _PNG,
           "SceneBoW-abc/test/coast/image_0003.png": _PNG,
           "SceneBoW-abc/test/livingRoom/image_0004.png": _PNG}


@pytest.mark.parametrize("builder", [_zip, _tar])
def test_good_checksum_extracts_layout(tmp_path, builder):
    archive = builder(tmp_path / ("a.zip" if builder is _zip else "a.tar.gz"), _LAYOUT)
    dest = download_scene15(tmp_path / "scene15", url=archive.as_uri(), sha256=_digest(archive), progress=False)
    assert sorted(p.name for p in dest.iterdir()) == ["test", "train"]
    for split in ("train", "test"):
        paths, labels, names = load_image_folder(dest, split)
        assert names == ["Coast", "LivingRoom"] and len(paths) == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_bad_checksum_raises_and_cleans_up(tmp_path):
    archive = _zip(tmp_path / "a.zip", _LAYOUT)
    wrong = "0" * 64
    with pytest.raises(ValueError) as info:
        download_scene15(tmp_path / "scene15", url=archive.as_uri(), sha256=wrong, progress=False)
    assert wrong in str(info.value) and _digest(archive) in str(info.value)
    assert not (tmp_path / "scene15").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a.zip"]


@pytest.mark.parametrize("builder", [_zip, _tar])
@pytest.mark.parametrize("bad", ["../evil.txt", "/tmp/evil_abs.txt", "ok/../../evil.txt"])
def test_traversal_member_refused(tmp_path, builder, bad):
    archive = builder(tmp_path / ("a.zip" if builder is _zip else "a.tar.gz"),
                      {"train/coast/x.png": _PNG, bad: b"x"})
    with pytest.raises(ValueError, match="unsafe"):
        download_scene15(tmp_path / "out" / "scene15", url=archive.as_uri(), sha256=None, progress=False)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()
    assert not (tmp_path / "out" / "scene15").exists()


def test_symlink_member_refused(tmp_path):
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as t:
        link = tarfile.TarInfo("train/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(link)
    with pytest.raises(ValueError, match="unsafe"):
        safe_extract(archive, tmp_path / "x")


def test_existing_destination_and_not_an_archive(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    archive = _zip(tmp_path / "a.zip", _LAYOUT)
    with pytest.raises(FileExistsError, match="dest"):
        download_scene15(tmp_path / "full", url=archive.as_uri(), progress=False)
    text = tmp_path / "plain.txt"
    text.write_text("not an archive")
    with pytest.raises(ValueError, match="zip or tar"):
        download_scene15(tmp_path / "d", url=text.as_uri(), progress=False)
