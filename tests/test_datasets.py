"""Data location, image folders, ground-truth files and the embedded pairs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from classicvision import datasets


def _write(path, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8), value, np.uint8))


def test_load_image_folder_and_read_images_skip_bad_files(tmp_path):
    _write(tmp_path / "train" / "b_class" / "1.png")
    _write(tmp_path / "train" / "a_class" / "2.png")
    _write(tmp_path / "train" / "a_class" / "1.jpg")
    (tmp_path / "train" / "a_class" / "broken.png").write_bytes(b"not png")
    (tmp_path / "train" / "a_class" / "notes.txt").write_text("ignored")
    paths, labels, names = datasets.load_image_folder(tmp_path, "train")
    assert names == ["a_class", "b_class"]
    assert [p.name for p in paths] == ["1.jpg", "2.png", "broken.png", "1.png"]
    np.testing.assert_array_equal(labels, [0, 0, 0, 1])
    calls = []
    images, kept, errors = datasets.read_images(paths, progress=lambda i, n: calls.append((i, n)))
    np.testing.assert_array_equal(kept, [0, 1, 3])
    assert len(images) == 3 and len(errors) == 1 and "broken.png" in errors[0]
    assert calls[-1] == (4, 4)


def test_missing_folders_raise_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="split folder not found"):
        datasets.load_image_folder(tmp_path, "test")
    (tmp_path / "test" / "empty").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no images"):
        datasets.load_image_folder(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="data folder not found"):
        datasets.data_dir(tmp_path / "absent")
    monkeypatch.setenv("CLASSICVISION_DATA", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="CLASSICVISION_DATA"):
        datasets.data_dir()
    monkeypatch.setenv("CLASSICVISION_DATA", str(tmp_path))
    assert datasets.data_dir() == tmp_path


def test_read_ground_truth_validates(tmp_path):
    good = tmp_path / "gt.csv"
    good.write_text("x1,y1,x2,y2\n1,2,3,4\n5.5,6,7,8\n")
    np.testing.assert_allclose(datasets.read_ground_truth(good), [[1, 2, 3, 4], [5.5, 6, 7, 8]])
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="header must be x1,y1,x2,y2"):
        datasets.read_ground_truth(bad)
    bad.write_text("x1,y1,x2,y2\n1,2,three,4\n")
    with pytest.raises(ValueError, match="three"):
        datasets.read_ground_truth(bad)


def test_embedded_pair_is_warped_by_its_homography(warped_pair):
    image1, image2, H = warped_pair
    assert image1.shape == image2.shape == (512, 512) and image2.dtype == np.float32
    # Sample image1 at points and image2 at the warped points: intensities agree.
    rng = np.random.default_rng(0)
    pts = rng.uniform(150, 350, (200, 2))
    homog = np.c_[pts, np.ones(len(pts))] @ H.T
    warped = homog[:, :2] / homog[:, 2:]
    inside = (warped > 2).all(1) & (warped < 509).all(1)
    a = cv2.remap(image1, pts[:, :1].astype(np.float32), pts[:, 1:].astype(np.float32), cv2.INTER_LINEAR)
    b = cv2.remap(image2, warped[:, :1].astype(np.float32), warped[:, 1:].astype(np.float32), cv2.INTER_LINEAR)
    assert inside.sum() > 150
    assert np.median(np.abs(a - b)[inside]) < 0.03


def test_stereo_pair_disparity_convention(motorcycle):
    left, right, disparity = motorcycle
    assert left.shape == right.shape == disparity.shape
    # Where the truth is known, left(x, y) ~ right(x - d, y) on average.
    ys, xs = np.nonzero(np.isfinite(disparity))
    pick = np.random.default_rng(0).choice(len(xs), 2000, replace=False)
    ys, xs = ys[pick], xs[pick]
    xr = np.round(xs - disparity[ys, xs]).astype(int)
    ok = (xr >= 0)
    matched = np.abs(left[ys[ok], xs[ok]] - right[ys[ok], xr[ok]]).mean()
    unmatched = np.abs(left[ys[ok], xs[ok]] - right[ys[ok], np.clip(xr[ok] + 40, 0, left.shape[1] - 1)]).mean()
    assert matched < 0.5 * unmatched


@pytest.mark.data
def test_load_pair_reads_images_and_truth(pairs_dir):
    image1, image2, truth = datasets.load_pair("notre_dame", root=pairs_dir.parent, scale=0.5)
    assert image1.shape == (1024, 768) and truth.shape == (149, 4)
    with pytest.raises(ValueError, match="name must be one of"):
        datasets.load_pair("nowhere", root=pairs_dir.parent)
