"""Tests for classicvision.viz: PNGs exist and decode, colours are right, bad arguments raise."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from classicvision.matching.evaluation import homography_correct, warp_points
from classicvision.viz import (
    plot_confusion_matrices,
    plot_confusion_matrix,
    plot_descriptors,
    plot_matches,
    save_confusion_matrices,
    save_confusion_matrix,
    save_descriptors,
    save_matches,
    save_training_curves,
)


def render(ax) -> np.ndarray:
    """The figure's Agg canvas as an (H, W, 3) uint8 RGB array."""
    canvas = ax.figure.canvas
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def count_pure(rgb: np.ndarray, channel: int) -> int:
    """Pixels strongly in one channel only (antialiased line cores), never grey image pixels."""
    rgb = rgb.astype(np.int32)
    others = [c for c in range(3) if c != channel]
    return int(((rgb[..., channel] >= 200) & (rgb[..., others[0]] <= 60) & (rgb[..., others[1]] <= 60)).sum())


@pytest.fixture
def matched(warped_pair):
    image1, image2, H = warped_pair
    rng = np.random.default_rng(0)
    p1 = (rng.random((40, 2)) * 300 + 100).astype(np.float32)
    p2 = warp_points(p1, H)
    p2[20:] += 25.0                                    # the last 20 are wrong
    matches = np.column_stack([np.arange(40), np.arange(40)])
    return image1, image2[:400, :300], p1, p2, matches, homography_correct(p1, p2, matches, H)


def test_plot_matches_colours(matched):
    image1, image2, p1, p2, matches, correct = matched
    assert correct.sum() == 20
    rgb = render(plot_matches(image1, image2, p1, p2, matches, correct=correct))
    assert count_pure(rgb, 1) > 100 and count_pure(rgb, 0) > 100
    all_good = render(plot_matches(image1, image2, p1, p2, matches, correct=np.ones(40, bool)))
    assert count_pure(all_good, 1) > 100 and count_pure(all_good, 0) == 0
    neutral = render(plot_matches(image1, image2, p1, p2, matches))
    assert count_pure(neutral, 0) == 0 and count_pure(neutral, 1) == 0
    yellow = (neutral[..., 0] >= 200) & (neutral[..., 1] >= 200) & (neutral[..., 2] <= 60)
    assert yellow.sum() > 100
    plain = render(plot_matches(image1, image2, p1, p2, matches[:0], correct=correct[:0]))
    assert count_pure(plain, 0) == count_pure(plain, 1) == 0


def test_plot_matches_geometry_and_max_lines(matched):
    image1, image2, p1, p2, matches, correct = matched
    ax = plot_matches(image1, image2, p1, p2, matches, correct=correct, max_lines=5)
    segments = ax.collections[0].get_segments()
    assert len(segments) == 5
    np.testing.assert_allclose(segments[0][0], p1[0])
    np.testing.assert_allclose(segments[0][1], p2[0] + [image1.shape[1], 0])
    # side by side, padded to the taller image
    shown = ax.images[0].get_array()
    assert shown.shape == (512, 512 + 300)
    assert np.all(np.asarray(shown)[400:, 512:] == 0)


def test_plot_matches_on_given_axes(matched):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    image1, image2, p1, p2, matches, correct = matched
    figure = Figure()
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 2, 2)
    assert plot_matches(image1, image2, p1, p2, matches, correct=correct, ax=ax) is ax
    assert "matplotlib.pyplot" not in sys.modules or not __import__("matplotlib.pyplot").pyplot.get_fignums()


def test_save_matches_png(tmp_path, matched):
    image1, image2, p1, p2, matches, correct = matched
    path = save_matches(tmp_path / "sub" / "matches.png", image1, image2, p1, p2, matches, correct=correct)
    assert path == tmp_path / "sub" / "matches.png" and path.is_file()
    picture = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert picture is not None
    height, width = picture.shape[:2]
    assert 1150 <= width <= 1250
    assert abs(height - width * 512 / 812) < 10
    bgr = picture[..., ::-1]
    assert count_pure(bgr, 0) > 50 and count_pure(bgr, 1) > 50
    small = save_matches(tmp_path / "small.png", image1, image2, p1, p2, matches, dpi=50)
    assert 550 <= cv2.imread(str(small)).shape[1] <= 650


def test_plot_matches_errors(matched):
    image1, image2, p1, p2, matches, correct = matched
    with pytest.raises(ValueError, match="correct must have shape"):
        plot_matches(image1, image2, p1, p2, matches, correct=correct[:5])
    with pytest.raises(TypeError, match="correct must be a bool"):
        plot_matches(image1, image2, p1, p2, matches, correct=correct.astype(int))
    with pytest.raises(ValueError, match="must index points2"):
        plot_matches(image1, image2, p1, p2[:10], matches)
    with pytest.raises(ValueError, match="image1 must be 2-D"):
        plot_matches(np.zeros((4, 4, 3)), image2, p1, p2, matches)
    with pytest.raises(ValueError, match="points1"):
        plot_matches(image1, image2, p1[:, :1], p2, matches)
    with pytest.raises(TypeError, match="max_lines"):
        plot_matches(image1, image2, p1, p2, matches, max_lines=2.5)


def test_descriptors_picture(tmp_path):
    rng = np.random.default_rng(0)
    descriptors = rng.random((50, 128)).astype(np.float32)
    ax = plot_descriptors(descriptors, title="SIFT")
    np.testing.assert_array_equal(ax.images[0].get_array(), descriptors)
    path = save_descriptors(tmp_path / "d.png", descriptors)
    picture = cv2.imread(str(path))
    assert picture is not None and picture.shape[1] == 800
    assert save_descriptors(tmp_path / "empty.png", np.zeros((0, 128), np.float32)).is_file()
    with pytest.raises(ValueError, match="descriptors must have shape"):
        plot_descriptors(np.zeros(5))


def test_confusion_matrix_values_and_png(tmp_path):
    matrix = np.array([[8, 2, 0], [1, 9, 0], [0, 0, 0]])
    names = ["kitchen", "forest", "street"]
    ax = plot_confusion_matrix(matrix, names)
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["0.80", "0.20", "0.00", "0.10", "0.90", "0.00", "0.00", "0.00", "0.00"]
    assert ax.get_title() == f"mean per-class accuracy {(0.8 + 0.9 + 0.0) / 3:.3f}"
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    counts = plot_confusion_matrix(matrix, names, normalize=False, title="counts")
    assert [t.get_text() for t in counts.texts][:2] == ["8", "2"] and counts.get_title() == "counts"
    path = save_confusion_matrix(tmp_path / "cm.png", np.eye(15) * 10 + 1, [f"class{i}" for i in range(15)])
    picture = cv2.imread(str(path))
    assert picture is not None and 600 <= picture.shape[0] <= 1400 and picture.shape[0] == picture.shape[1]


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match="class_names must have 2"):
        plot_confusion_matrix(np.eye(2), ["a", "b", "c"])
    with pytest.raises(ValueError, match="matrix must be square"):
        plot_confusion_matrix(np.ones((2, 3)), ["a", "b"])
    with pytest.raises(ValueError, match="non-negative"):
        plot_confusion_matrix(-np.eye(2), ["a", "b"])


def test_confusion_matrices_side_by_side(tmp_path):
    names = [f"class{i}" for i in range(15)]
    matrices = [np.eye(15) * 10 + 1, np.ones((15, 15)), np.eye(15) * 3, np.eye(15) * 5 + 2]
    axes = plot_confusion_matrices(matrices, names, titles=["a", "b", "c", "d"])
    assert [ax.get_title() for ax in axes] == ["a", "b", "c", "d"]
    figure = axes[0].figure
    assert all(ax.figure is figure for ax in axes)
    assert [t.get_text() for t in axes[1].texts][:2] == [f"{1 / 15:.2f}"] * 2
    grid = [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]
    assert len(grid) == 6 and not grid[4].axison and not grid[5].axison    # 2 rows of 3, the last two hidden
    path = save_confusion_matrices(tmp_path / "all.png", matrices, names, dpi=40)
    picture = cv2.imread(str(path))
    assert picture is not None and picture.shape[1] == pytest.approx(1.5 * picture.shape[0], rel=0.02)
    single = save_confusion_matrices(tmp_path / "one.png", matrices[:1], names, dpi=40)
    one = cv2.imread(str(single))
    assert one.shape[0] == one.shape[1] == picture.shape[0] // 2


def test_confusion_matrices_on_given_axes_and_errors():
    axes = plot_confusion_matrix(np.eye(2), ["a", "b"]).figure.subplots(1, 2)   # any Axes will do
    assert len(plot_confusion_matrices([np.eye(2)], ["a", "b"], axes=axes)) == 1
    with pytest.raises(ValueError, match="at least one"):
        plot_confusion_matrices([], ["a", "b"])
    with pytest.raises(ValueError, match="titles must have 2"):
        plot_confusion_matrices([np.eye(2)] * 2, ["a", "b"], titles=["x"])
    with pytest.raises(ValueError, match="axes must hold at least 3"):
        plot_confusion_matrices([np.eye(2)] * 3, ["a", "b"], axes=axes)
    with pytest.raises(ValueError, match="class_names must have 2"):
        plot_confusion_matrices([np.eye(2)], ["a", "b", "c"])


def test_training_curves(tmp_path):
    history = {"loss": [2.0, 1.2, 0.8, 0.5], "train_accuracy": [0.3, 0.5, 0.7, 0.8],
               "val_accuracy": [0.25, 0.4, 0.55]}
    path = save_training_curves(tmp_path / "curves.png", history, title="CNN")
    picture = cv2.imread(str(path))
    assert picture is not None and picture.shape[:2] == (400, 1000)
    single = save_training_curves(tmp_path / "loss.png", {"loss": [1.0]})
    assert cv2.imread(str(single)).shape[:2] == (400, 500)
    with pytest.raises(ValueError, match="history must be a non-empty dict"):
        save_training_curves(tmp_path / "x.png", {})
    with pytest.raises(ValueError, match=r"history\['loss'\]"):
        save_training_curves(tmp_path / "x.png", {"loss": []})
    with pytest.raises(ValueError, match=r"history\['acc'\]"):
        save_training_curves(tmp_path / "x.png", {"acc": ["a", "b"]})


@pytest.mark.parametrize("name, magic", [("m.jpg", b"\xff\xd8\xff"), ("m.JPEG", b"\xff\xd8\xff"),
                                         ("m.png", b"\x89PNG"), ("m", b"\x89PNG"), ("m.tiff", (b"II*\x00", b"MM\x00*")),
                                         ("m.webp", b"RIFF"), ("m.pdf", b"%PDF"), ("m.svg", b"<?xml")])
def test_save_writes_the_format_the_extension_names(tmp_path, matched, name, magic):
    image1, image2, p1, p2, matches, _ = matched
    path = save_matches(tmp_path / name, image1, image2, p1, p2, matches, dpi=20)
    assert path == tmp_path / name and sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert path.read_bytes().startswith(magic)


def test_save_refuses_unknown_extensions_and_huge_figures(tmp_path, matched):
    image1, image2, p1, p2, matches, _ = matched
    for name in ("m.xyz", "m.jpg.bak", "m.raw"):
        with pytest.raises(ValueError, match=r"cannot save a figure as .*: unknown extension .* \(use one of .png, .jpg"):
            save_matches(tmp_path / name, image1, image2, p1, p2, matches)
    with pytest.raises(ValueError, match="unknown extension"):
        save_descriptors(tmp_path / "d.bmp", np.eye(4, 128, dtype=np.float32))
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="dpi must be <= 2400"):
        save_descriptors(tmp_path / "d.png", np.eye(4, 128, dtype=np.float32), dpi=10**6)
    tall = np.zeros((20000, 2), np.float32)  # a 1:10000 canvas stays within 12 inches
    path = save_matches(tmp_path / "tall.png", tall, tall, np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2), int))
    assert max(cv2.imread(str(path)).shape[:2]) <= 1300
    with pytest.raises(ValueError, match="0-255|divide it by 255"):
        plot_matches(image1 * 255.0, image2, p1, p2, matches)
