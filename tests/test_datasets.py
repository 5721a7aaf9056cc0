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
    with pytest.raises(ValueError, match="line 2: x2 must be a number, got 'three'"):
        datasets.read_ground_truth(bad)


_TRUTH = [[1, 2, 3, 4], [5.5, 6, 7, 8]]


@pytest.mark.parametrize("data", [
    b"\xef\xbb\xbfx1,y1,x2,y2\r\n1,2,3,4\r\n5.5,6,7,8\r\n",          # Excel "CSV UTF-8": BOM + CRLF
    "x1,y1,x2,y2\n1,2,3,4\n5.5,6,7,8\n".encode("utf-16"),            # Excel "Unicode text"
    b"X1, Y1 ,x2,y2\n\n  1 , 2,3,4 \n\n5.5,6,7,8,,\n\n",              # spaces, blank lines, trailing cells
    b"x1;y1;x2;y2\n1;2;3;4\n5,5;6;7;8\n",                             # semicolons + decimal comma
    b"x1\ty1\tx2\ty2\r1\t2\t3\t4\r5.5\t6\t7\t8",                      # tabs, old Mac CR, no final newline
    b'"x1","y1","x2","y2"\n"1","2","3","4"\n5.5e0,6,7,8\n',              # quoted cells, exponent
])
def test_read_ground_truth_tolerates_what_spreadsheets_write(tmp_path, data):
    path = tmp_path / "gt.csv"
    path.write_bytes(data)
    truth = datasets.read_ground_truth(path)
    assert truth.dtype == np.float32 and truth.shape == (2, 4)
    np.testing.assert_allclose(truth, _TRUTH)


@pytest.mark.parametrize("data, message", [
    ("x1,y1,x2,y2\n1,2,3,4,5,6,7,8\n", r"line 2: expected 4 values \(x1,y1,x2,y2\), got 8"),
    ("x1,y1,x2,y2\n1,2,3,4\n1,2,3\n", r"line 3: expected 4 values .*got 3: '1,2,3'"),
    ("x1,y1,x2,y2\n1,2\n3,4\n", r"line 2: expected 4 values .*got 2"),   # never re-chunked into one row
    ("x1,y1,x2,y2\n", r"no correspondences in .*gt.csv.*no ground truth"),
    ("x1,y1,x2,y2\n\n\n", r"no correspondences in"),
    ("", r"is empty \(no header line\)"),
    ("x1,y1,x2,y2\n1,nan,3,4\n", r"line 2: y1 must be a finite number, got 'nan'"),
    ("x1,y1,x2,y2\n1,2,-inf,4\n", r"x2 must be a finite number, got '-inf'"),
    ("x1,y1,x2,y2\n1,2,3,1e39\n", r"y2 must be a finite number, got '1e39'"),     # overflows float32
    ("x1,y1,x2,y2\n1,2,3,1_000\n", r"y2 must be a number, got '1_000'"),
    ("x1,y1,x2,y2\n1,2,3,0x10\n", r"must be a number, got '0x10'"),
    ("x1,y1,x2,y2\n1,2,3,\n", r"expected 4 values"),
    ("x1,y1,x2\n1,2,3\n", r"line 1: the header must be x1,y1,x2,y2, got \['x1', 'y1', 'x2'\]"),
    ("1,2,3,4\n5,6,7,8\n", r"line 1: the header must be x1,y1,x2,y2"),
    ("\u200bx1,y1,x2,y2\n1,2,3,4\n", r"header must be .*\\u200bx1"),   # an invisible character is shown
])
def test_read_ground_truth_refuses_with_one_line(tmp_path, data, message):
    path = tmp_path / "gt.csv"
    path.write_text(data, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        datasets.read_ground_truth(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_read_ground_truth_refuses_binary_folders_and_huge_files(tmp_path, monkeypatch):
    path = tmp_path / "gt.csv"
    path.write_bytes(b"x1,y1,x2,y2\n\xff\xd8\xff\xe0 1,2,3,4\n")
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        datasets.read_ground_truth(path)
    path.write_bytes(b"x1,y1,x2,y2\n1,2,3,4\0\n")
    with pytest.raises(ValueError, match="NUL"):
        datasets.read_ground_truth(path)
    with pytest.raises(FileNotFoundError, match="must be a file"):
        datasets.read_ground_truth(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        datasets.read_ground_truth(tmp_path / "absent.csv")
    path.write_text("x1,y1,x2,y2\n" + "1,2,3,4\n" * 100)
    monkeypatch.setattr(datasets, "MAX_CSV_BYTES", 500)
    with pytest.raises(ValueError, match="more than the 500-byte limit .*MAX_CSV_BYTES"):
        datasets.read_ground_truth(path)


def _pairs(tmp_path, table, files=("a.png", "b.png", "gt.csv")):
    root = tmp_path / "pairs"
    root.mkdir(exist_ok=True)
    for name in files:
        _write(root / name) if name.endswith(".png") else (root / name).write_text("x1,y1,x2,y2\n1,2,3,4\n")
    (root / "pairs.csv").write_text(table)
    return tmp_path


def test_pair_paths_reads_bom_crlf_and_any_column_order(tmp_path):
    root = _pairs(tmp_path, "\ufeffground_truth,name,image2,image1,note\r\ngt.csv,p,b.png,a.png,x\r\n")
    assert [p.name for p in datasets.pair_paths("p", root=root)] == ["a.png", "b.png", "gt.csv"]
    image1, image2, truth = datasets.load_pair("p", root=root)
    assert image1.shape == (8, 8) and truth.shape == (1, 4)


@pytest.mark.parametrize("table, name, error, message", [
    ("name,image1,image2\np,a.png,b.png\n", "p", ValueError, r"pairs.csv, line 1: missing column\(s\) ground_truth"),
    ("name,image1,image2,ground_truth\np,a.png,b.png,gt.csv\n", "q", ValueError, r"name must be one of p \(from .*pairs.csv\), got 'q'"),
    ("name,image1,image2,ground_truth\np,a.png\n", "p", ValueError, r"pairs.csv, line 2: empty image2, ground_truth"),
    ("name,image1,image2,ground_truth\n", "p", ValueError, r"lists no pairs"),
    ("name,image1,image2,ground_truth\np,a.png,b.png,gt.csv\np,b.png,a.png,gt.csv\n", "p", ValueError,
     r"line 3: pair 'p' is listed twice \(first on line 2\)"),
    ("name,image1,image2,ground_truth\np,a.png,missing.png,gt.csv\n", "p", FileNotFoundError,
     r"pairs.csv, line 2: image2 of pair 'p' not found: .*missing.png"),
    ("name,image1,image2,ground_truth\np,a.png,b.png,.\n", "p", FileNotFoundError, r"ground_truth of pair 'p' is not a file"),
    ("", "p", ValueError, r"is empty"),
])
def test_malformed_pairs_csv_gives_one_line_errors(tmp_path, table, name, error, message):
    root = _pairs(tmp_path, table)
    with pytest.raises(error, match=message) as info:
        datasets.pair_paths(name, root=root)
    assert "\n" not in str(info.value)


def test_load_image_folder_skips_hidden_and_non_image_entries(tmp_path):
    _write(tmp_path / "train" / "a" / "1.png")
    _write(tmp_path / "train" / "a" / "._1.png")         # macOS AppleDouble companion
    (tmp_path / "train" / "a" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "train" / "a" / "notes.md").write_text("x")
    (tmp_path / "train" / "a" / "sub.png").mkdir()       # a folder named like an image
    _write(tmp_path / "train" / ".hidden_class" / "1.png")
    (tmp_path / "train" / "b").mkdir()                   # a class without images is kept
    (tmp_path / "train" / "loose.png").write_bytes(b"x")
    paths, labels, names = datasets.load_image_folder(tmp_path, "train")
    assert names == ["a", "b"] and [p.name for p in paths] == ["1.png"] and labels.tolist() == [0]


def test_load_image_folder_empty_layouts(tmp_path):
    (tmp_path / "train").mkdir()
    _write(tmp_path / "train" / "x.png")
    with pytest.raises(FileNotFoundError, match=r"no class folders in .*train .*1 image files lie directly in it"):
        datasets.load_image_folder(tmp_path, "train")
    (tmp_path / "train" / "c").mkdir()
    (tmp_path / "train" / "c" / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"no images in the class folders of .*train \(1 class folders"):
        datasets.load_image_folder(tmp_path, "train")


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
