"""Reading files and converting arrays at the edge of the library."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from classicvision.io import ImageReadError, as_float_image, read_image, resize


@pytest.fixture
def gradient_u8():
    return np.tile(np.arange(0, 256, 4, dtype=np.uint8), (32, 1))


def test_png_round_trip_8_and_16_bit(tmp_path, gradient_u8):
    cv2.imwrite(str(tmp_path / "a.png"), gradient_u8)
    cv2.imwrite(str(tmp_path / "b.png"), gradient_u8.astype(np.uint16) * 257)
    a = read_image(tmp_path / "a.png")
    b = read_image(tmp_path / "b.png")
    assert a.dtype == b.dtype == np.float32 and a.shape == gradient_u8.shape
    np.testing.assert_allclose(a, gradient_u8 / 255.0, atol=1e-6)
    np.testing.assert_allclose(b, a, atol=1e-6)


def test_colour_file_uses_bt601_luma_in_rgb_order(tmp_path):
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    np.testing.assert_allclose(read_image(tmp_path / "red.png"), 0.299, atol=1e-6)
    np.testing.assert_allclose(read_image(tmp_path / "red.png"),
                               cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) / 255.0, atol=1 / 255)


def test_scale_halves_each_side(tmp_path, gradient_u8):
    cv2.imwrite(str(tmp_path / "a.png"), gradient_u8)
    assert read_image(tmp_path / "a.png", scale=0.5).shape == (16, 32)
    assert resize(np.zeros((5, 7), np.float32), 2.0).shape == (10, 14)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "bad.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(ImageReadError, match="cannot decode image file .*bad.jpg: not a PNG, JPEG"):
        read_image(tmp_path / "bad.jpg")
    (tmp_path / "trunc.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 20)
    with pytest.raises(ImageReadError, match="cannot decode image file .*trunc.jpg: corrupt JPEG header"):
        read_image(tmp_path / "trunc.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.png: the file is empty"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(ImageReadError, match="it is a directory"):
        read_image(tmp_path)


def test_as_float_image_layouts():
    gray = np.full((3, 3), 128, np.uint8)
    np.testing.assert_allclose(as_float_image(gray), 128 / 255, atol=1e-6)
    np.testing.assert_allclose(as_float_image(gray[..., None]), 128 / 255, atol=1e-6)
    rgba = np.zeros((3, 3, 4), np.uint16)
    rgba[..., 1] = 65535
    np.testing.assert_allclose(as_float_image(rgba), 0.587, atol=1e-6)
    assert as_float_image(np.ones((2, 2), bool)).dtype == np.float32
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        as_float_image(np.zeros((3, 3, 2)))
    with pytest.raises(ValueError, match="2-D"):
        as_float_image(np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        as_float_image(np.full((2, 2, 3), np.inf))


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tiff", ".webp", ".pgm", ".ppm"])
def test_every_supported_format_reads(tmp_path, gradient_u8, ext):
    colour = ext not in (".pgm",)
    image = np.dstack([gradient_u8] * 3) if colour else gradient_u8
    cv2.imwrite(str(tmp_path / f"a{ext}"), image, [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else [])
    atol = 3 / 255 if ext == ".jpg" else 1e-6
    np.testing.assert_allclose(read_image(tmp_path / f"a{ext}"), gradient_u8 / 255.0, atol=atol)


def test_16_bit_tiff_and_colour_png(tmp_path, gradient_u8):
    sixteen = gradient_u8.astype(np.uint16) * 257 + 1
    cv2.imwrite(str(tmp_path / "a.tiff"), sixteen)
    np.testing.assert_allclose(read_image(tmp_path / "a.tiff"), sixteen / 65535.0, atol=1e-7)
    cv2.imwrite(str(tmp_path / "c.png"), np.dstack([sixteen] * 3))
    np.testing.assert_allclose(read_image(tmp_path / "c.png"), sixteen / 65535.0, atol=1e-6)
    assert read_image(tmp_path / "c.png").max() <= 1.0


def test_resize_refuses_sizes_over_the_limit():
    with pytest.raises(ValueError, match="image resized by scale=1000.0 has 10000x10000 = 100,000,000 pixels"):
        resize(np.zeros((10, 10), np.float32), 1000.0, max_pixels=10**7)
