"""Hostile images, from files and from arrays: one documented error, or a documented fallback.

Classes of input (issue 16): not-a-file paths, unreadable and empty files, corrupt and truncated
data in every supported format, headers declaring huge sizes (refused before decoding), EXIF
orientations, integer and float arrays outside the conversion policy, degenerate arrays, and a
property-based fuzz of the reader over mutated PNG/JPEG/BMP/TIFF/WebP bytes.
"""

from __future__ import annotations

import os
import socket
import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

import classicvision.io as cvio
from classicvision._validation import check_image, max_pixels_from_environment
from classicvision.datasets import read_images
from classicvision.io import (
    ImageReadError,
    ImageTooLargeError,
    as_float_image,
    read_image,
)


def _pattern(height=24, width=32):
    """A small asymmetric gray pattern: any flip, rotation or transpose changes it."""
    y, x = np.mgrid[:height, :width]
    image = ((x * 7 + y * 3) % 64) * 4
    image[:4, :6] = 255  # a bright block in the top-left corner
    return image.astype(np.uint8)


def _encode(image: np.ndarray, ext: str) -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


SEEDS = {ext: _encode(_pattern(), ext) for ext in (".png", ".jpg", ".bmp", ".tiff", ".webp")}


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_declaring(width: int, height: int) -> bytes:
    """A valid-looking PNG (correct CRCs) declaring width x height, with a little zlib data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _one_line(exc) -> str:
    text = str(exc)
    assert "\n" not in text and text
    return text


def _assert_result_or_documented_error(path, **kwargs):
    try:
        image = read_image(path, **kwargs)
    except (ImageReadError, FileNotFoundError) as exc:
        text = _one_line(exc)
        assert str(path) in text or repr(str(path)) in text
        return None
    assert image.dtype == np.float32 and image.ndim == 2 and image.flags.c_contiguous
    assert np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1
    return image


# ------------------------------------------------------------------------------ paths, not files
def test_missing_path_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="image file not found: .*nope.png"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="a parent is not a folder"):
        read_image(tmp_path / "file" / "a.png")
    os.symlink(tmp_path / "gone.png", tmp_path / "link.png")
    with pytest.raises(FileNotFoundError, match="broken symbolic link"):
        read_image(tmp_path / "link.png")


def test_directory_fifo_device_socket_are_not_image_files(tmp_path):
    os.mkfifo(tmp_path / "fifo.png")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(tmp_path / "sock.png"))
        cases = {tmp_path: "a directory", tmp_path / "fifo.png": "a FIFO",
                 "/dev/null": "a character device", tmp_path / "sock.png": "a socket"}
        if os.path.exists("/dev/zero"):
            cases["/dev/zero"] = "a character device"   # reading it would never end
        for path, kind in cases.items():
            with pytest.raises(ImageReadError, match=f"cannot read image file .*: it is {kind}") as info:
                read_image(path)
            assert "not found" not in _one_line(info.value)
            assert not isinstance(info.value, FileNotFoundError)
    finally:
        server.close()


def test_empty_unreadable_and_odd_paths(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.png: the file is empty"):
        read_image(tmp_path / "empty.png")
    secret = tmp_path / "secret.png"
    secret.write_bytes(SEEDS[".png"])
    secret.chmod(0)
    try:
        if os.access(secret, os.R_OK):
            pytest.skip("running as root: permissions do not stop reading")
        with pytest.raises(ImageReadError, match="secret.png: permission denied"):
            read_image(secret)
    finally:
        secret.chmod(0o644)
    with pytest.raises(ImageReadError, match="cannot read image file"):
        read_image("a\x00b.png")
    odd = tmp_path / "two\nlines.png"
    odd.write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match=r"two\\nlines.png") as info:
        read_image(odd)
    _one_line(info.value)
    for bad in (None, 3, ["a.png"]):
        with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
            read_image(bad)
    assert read_image(os.fsencode(tmp_path / "ok.png") if cv2.imwrite(str(tmp_path / "ok.png"), _pattern())
                      else None).shape == (24, 32)


def test_error_type_is_value_and_os_error():
    assert issubclass(ImageReadError, ValueError) and issubclass(ImageReadError, OSError)
    assert issubclass(ImageTooLargeError, ImageReadError)


# ------------------------------------------------------------------------- corrupt and truncated
@pytest.mark.parametrize("ext", sorted(SEEDS))
def test_truncated_and_corrupt_files_raise_one_documented_error(tmp_path, ext):
    data = SEEDS[ext]
    path = tmp_path / f"x{ext}"
    for cut in (1, 2, 8, 16, 40, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        _assert_result_or_documented_error(path)
    path.write_bytes(data[:12] + b"\xff" * 64 + data[76:])
    _assert_result_or_documented_error(path)
    path.write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError, match=r"cannot decode image file .*: not a PNG, JPEG"):
        read_image(path)


def test_unsupported_format_is_named(tmp_path):
    path = tmp_path / "a.gif"
    Image.fromarray(_pattern()).save(path, "GIF")
    with pytest.raises(ImageReadError, match=r"a.gif: not a PNG, JPEG, BMP, TIFF, WebP or PNM file \(it starts with b'GIF8"):
        read_image(path)


def test_bmp_with_corrupt_height_field(tmp_path):
    data = bytearray(SEEDS[".bmp"])
    for height in (0x7FFFFFFF, -0x7FFFFFFF, 0, 1, 100000):
        data[22:26] = struct.pack("<i", height)
        path = tmp_path / "h.bmp"
        path.write_bytes(bytes(data))
        _assert_result_or_documented_error(path, max_pixels=10**6)


# --------------------------------------------------------------------------------- size limits
def test_png_declaring_40000_squared_never_reaches_opencv(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_declaring(40000, 40000))

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded before the size check")

    monkeypatch.setattr(cvio.cv2, "imdecode", no_decode)
    with pytest.raises(ImageTooLargeError, match=r"bomb.png declares 40000x40000 = 1,600,000,000 pixels, over the "
                                                  r"limit of 100,000,000; to read it, pass max_pixels=.*"
                                                  r"CLASSICVISION_MAX_IMAGE_PIXELS") as info:
        read_image(path)
    _one_line(info.value)
    path.write_bytes(_png_declaring(20000, 20000))
    with pytest.raises(ImageTooLargeError, match="20000x20000"):
        read_image(path)


def test_limit_keyword_module_setting_and_environment(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), _pattern())  # 24 x 32 = 768 pixels
    with pytest.raises(ImageTooLargeError, match="over the limit of 700"):
        read_image(path, max_pixels=700)
    assert read_image(path, max_pixels=768).shape == (24, 32)
    with pytest.raises(ValueError, match="image resized by scale=2.0 has 48x64"):
        read_image(path, scale=2.0, max_pixels=768)
    monkeypatch.setattr(cvio, "MAX_IMAGE_PIXELS", 500)
    with pytest.raises(ImageTooLargeError, match="limit of 500"):
        read_image(path)
    with pytest.raises(ValueError, match="image has 24x32 = 768 pixels, over the limit of 500"):
        check_image(np.zeros((24, 32), np.float32))
    assert read_image(path, max_pixels=1000).shape == (24, 32)
    monkeypatch.setattr(cvio, "MAX_IMAGE_PIXELS", None)   # None: no limit, as in Pillow
    assert read_image(path).shape == (24, 32)
    for value, expected in (("", 100_000_000), ("5000", 5000), ("None", None), (" 12 ", 12)):
        monkeypatch.setenv("CLASSICVISION_MAX_IMAGE_PIXELS", value)
        assert max_pixels_from_environment() == expected
    for value in ("abc", "0", "-3", "1.5"):
        monkeypatch.setenv("CLASSICVISION_MAX_IMAGE_PIXELS", value)
        with pytest.raises(ValueError, match="CLASSICVISION_MAX_IMAGE_PIXELS must be a positive integer or 'none'"):
            max_pixels_from_environment()
    for bad in (0, -1, 1.5, True):
        with pytest.raises((TypeError, ValueError), match="max_pixels"):
            read_image(path, max_pixels=bad)


def test_huge_arrays_are_refused_before_any_copy():
    huge = np.broadcast_to(np.zeros((1, 1), np.uint8), (20000, 20000))  # no memory behind it
    with pytest.raises(ValueError, match="image has 20000x20000 = 400,000,000 pixels, over the limit"):
        check_image(huge)
    with pytest.raises(ValueError, match="over the limit"):
        as_float_image(np.broadcast_to(np.zeros((1, 1, 3), np.float64), (20000, 20000, 3)))


# --------------------------------------------------------------------------- EXIF orientation
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "WEBP"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation, fmt):
    upright = _pattern(24, 32)
    # The stored image is the upright one with the inverse transform applied; Pillow's
    # exif_transpose (the oracle) must bring it back, and so must read_image.
    stored = Image.fromarray(upright)
    inverse = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
               6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}
    if orientation in inverse:
        stored = stored.transpose(inverse[orientation])
    exif = Image.Exif()
    exif[274] = orientation
    path = tmp_path / f"phone.{fmt.lower()}"
    if fmt == "TIFF":
        stored.save(path, fmt, tiffinfo={274: orientation})
    else:
        options = dict(JPEG=dict(quality=100, subsampling=0), WEBP=dict(lossless=True)).get(fmt, {})
        stored.save(path, fmt, exif=exif.tobytes(), **options)
    image = read_image(path)
    assert image.shape == upright.shape
    if fmt == "JPEG":
        oracle = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("L"), np.float32) / 255
        np.testing.assert_allclose(image, oracle, atol=2 / 255)
        assert np.abs(image - upright / 255.0).mean() < 0.02
    else:  # lossless: exactly the upright image (Pillow's own TIFF orientation is no oracle)
        np.testing.assert_allclose(image, upright / 255.0, atol=1e-6)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "WEBP"])
def test_exif_orientation_in_other_formats_keeps_16_bits(tmp_path, fmt):
    upright = _pattern(24, 32).astype(np.uint16) * 257 + 3
    if fmt == "WEBP":
        stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright // 257, 1).astype(np.uint8)))
        kwargs = dict(lossless=True)
    else:
        stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1)))  # stored turned left
        kwargs = {}
    exif = Image.Exif()
    exif[274] = 6  # view: rotate 90 clockwise
    path = tmp_path / f"a.{fmt.lower()}"
    if fmt == "TIFF":
        stored.save(path, fmt, tiffinfo={274: 6})
    else:
        stored.save(path, fmt, exif=exif.tobytes(), **kwargs)
    image = read_image(path)
    if fmt == "WEBP":
        np.testing.assert_allclose(image, (upright // 257) / 255.0, atol=1e-6)
    else:
        np.testing.assert_allclose(image, upright / 65535.0, atol=1e-7)


def test_corrupt_exif_is_ignored(tmp_path, caplog):
    path = tmp_path / "a.jpg"
    Image.fromarray(_pattern()).save(path, "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f")
    image = read_image(path)
    assert image.shape == (24, 32)


# ----------------------------------------------------------------------------- array policies
@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint32, np.uint64])
def test_wide_and_signed_integers_infer_the_bit_depth(dtype):
    eight = (_pattern() // 2).astype(dtype)     # int8 holds at most 127
    np.testing.assert_allclose(check_image(eight), eight / 255.0, atol=1e-7)
    if np.iinfo(dtype).max >= 65535:
        sixteen = (_pattern().astype(np.int64) * 257).astype(dtype)
        np.testing.assert_allclose(check_image(sixteen), sixteen / 65535.0, atol=1e-7)
    if np.iinfo(dtype).max > 65535:
        with pytest.raises(ValueError, match=r"image has dtype .* with values up to 70000, over 65535"):
            check_image(np.full((3, 3), 70000, dtype))
    if np.iinfo(dtype).min < 0:
        with pytest.raises(ValueError, match=r"image has dtype .* with negative values \(min -1\)"):
            check_image(np.full((3, 3), -1, dtype))


def test_tolist_round_trip_is_not_silent_zeros():
    image = _pattern()
    np.testing.assert_array_equal(check_image(np.array(image.tolist())), check_image(image))
    assert np.array(image.tolist()).dtype == np.int64


def test_float_range_policy():
    with pytest.raises(ValueError, match=r"image holds float values in \[0, 255\], but float images must be in "
                                         r"\[0, 1\]: divide it by 255"):
        check_image(_pattern().astype(np.float64), check_range=True)
    with pytest.raises(ValueError, match="divide it by 65535"):
        check_image(np.full((3, 3), 4000.0), check_range=True)
    with pytest.raises(ValueError, match="rescale it"):
        check_image(np.full((3, 3), -3.0), check_range=True)
    overshoot = np.linspace(-0.2, 1.2, 12, dtype=np.float32).reshape(3, 4)
    assert check_image(overshoot, check_range=True) is overshoot       # interpolation overshoot is accepted, no copy
    signed = np.linspace(-50, 50, 12).reshape(3, 4)
    np.testing.assert_allclose(check_image(signed), signed)  # the default, for linear filters
    with pytest.raises(ValueError, match="float values in"):
        as_float_image(signed)  # the edge converter checks the range
    with pytest.raises(ValueError, match="float values in"):
        as_float_image(np.dstack([signed] * 3))
    with pytest.raises(ValueError, match="beyond float32's range"):
        check_image(np.full((2, 2), 1e300), check_range=False)
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="NaN or infinite"):
            check_image(np.full((2, 2), bad), check_range=False)


def test_other_dtypes_and_shapes():
    assert check_image(np.ones((2, 2), bool)).dtype == np.float32
    np.testing.assert_allclose(check_image(np.full((2, 2), 0.5, np.float16)), 0.5)
    with pytest.raises(TypeError, match="image must be real, got complex"):
        check_image(np.zeros((2, 2), complex))
    for bad in (np.array([[None, 1]], object), np.array([["a"]]), np.zeros((2, 2), "datetime64[s]")):
        with pytest.raises(TypeError, match="numeric dtype"):
            check_image(bad)
    for bad, text in ((np.array(1.0), "must be 2-D, got shape ()"), (np.zeros(5), "must be 2-D, got shape (5,)"),
                      (np.zeros((0, 4)), "at least 1x1"), (np.zeros((2, 2, 2, 2)), "2-D")):
        with pytest.raises(ValueError, match=text.replace("(", r"\(").replace(")", r"\)")):
            check_image(bad)
    assert check_image(np.zeros((0, 4), np.int64), min_size=0).shape == (0, 4)
    with pytest.raises(ValueError, match="ragged"):
        check_image([[1, 2], [3]])
    with pytest.raises(TypeError, match="must be a numpy array"):
        check_image("image.png")


def test_views_and_read_only_arrays():
    base = _pattern().astype(np.float32) / 255
    for view in (base[::-1, ::-2], base.T, base[:, 3:17]):
        out = check_image(view)
        assert out.flags.c_contiguous
        np.testing.assert_array_equal(out, view)
    frozen = base.copy()
    frozen.flags.writeable = False
    np.testing.assert_array_equal(check_image(frozen), base)
    np.testing.assert_allclose(check_image(np.asarray(_pattern())[::-1]), _pattern()[::-1] / 255.0, atol=1e-7)


def test_read_only_images_through_the_features():
    from classicvision.features.dense_sift import dense_sift
    from classicvision.features.harris import harris
    from classicvision.features.sift import sift_descriptors

    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    image.flags.writeable = False
    keypoints = harris(image, max_points=20)
    assert sift_descriptors(image, keypoints).shape[0] == len(keypoints)
    assert dense_sift(image, step=16, size=16)[1].shape[1] == 128


# -------------------------------------------------------------------------------- read_images
def test_read_images_skips_and_reports_every_bad_file(tmp_path):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), _pattern())
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "trunc.png").write_bytes(SEEDS[".png"][:60])
    (tmp_path / "bomb.png").write_bytes(_png_declaring(40000, 40000))
    os.mkfifo(tmp_path / "fifo.png")
    bmp = bytearray(SEEDS[".bmp"])
    bmp[22:26] = struct.pack("<i", -0x7FFFFFFF)
    (tmp_path / "height.bmp").write_bytes(bytes(bmp))
    paths = [good, tmp_path / "empty.png", tmp_path / "missing.png", tmp_path, tmp_path / "fifo.png",
             tmp_path / "trunc.png", tmp_path / "bomb.png", tmp_path / "height.bmp", good]
    images, kept, errors = read_images(paths)
    assert kept.tolist() == [0, 8] and len(images) == 2
    assert len(errors) == len(paths) - 2
    for error, path in zip(errors, paths[1:-1]):
        assert "\n" not in error and str(path) in error
    assert "not found" in errors[1] and "directory" in errors[2] and "FIFO" in errors[3]
    assert "40000x40000" in errors[5]


# ----------------------------------------------------------------------------------- the fuzz
def _mutate(data: bytes, draw) -> bytes:
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "overwrite", "insert", "delete", "header"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "overwrite":
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        else:  # a header field (sizes, depths, offsets live in the first 64 bytes) set to an extreme
            at = draw(st.integers(0, min(len(data), 64) - 1))
            value = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]))
            chunk = value.to_bytes(4, draw(st.sampled_from(["big", "little"])))
            data[at:at + 4] = chunk[: len(data) - at]
    return bytes(data)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(sorted(SEEDS)), st.data())
def test_fuzz_mutated_files_never_raise_anything_else(tmp_path, ext, data):
    mutated = _mutate(SEEDS[ext], data.draw)
    path = tmp_path / f"fuzz{ext}"
    path.write_bytes(mutated)
    image = _assert_result_or_documented_error(path, max_pixels=1 << 16)
    if image is not None:
        assert image.size <= 1 << 16


def test_png_chunk_running_past_the_end_is_refused_before_opencv(tmp_path, monkeypatch):
    data = bytearray(SEEDS[".png"])
    data[33:37] = b"\xff\xff\xff\xff"   # the first chunk after IHDR declares 4 GiB (OpenCV 5.0 spins on it)
    path = tmp_path / "long.png"
    path.write_bytes(bytes(data))
    monkeypatch.setattr(cvio.cv2, "imdecode", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded")))
    with pytest.raises(ImageReadError, match=r"long.png: corrupt or truncated PNG data \(chunk .* declares 4,294,967,295"):
        read_image(path)


def test_file_far_larger_than_any_image_within_the_limit(tmp_path):
    path = tmp_path / "padded.png"
    path.write_bytes(SEEDS[".png"] + b"\x00" * (2 << 20))
    with pytest.raises(ImageTooLargeError, match=r"padded.png has 2,09.* bytes, more than any image within the pixel limit"):
        read_image(path, max_pixels=1000)
    assert read_image(path).shape == (24, 32)   # trailing bytes after IEND are ignored
