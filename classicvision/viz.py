"""Pictures: matches between two images, descriptors, confusion matrices (one, or several side by
side), training curves.

Every ``plot_*`` function draws on a given matplotlib ``Axes`` or, when ``ax`` is None, on a new
``matplotlib.figure.Figure`` attached to an Agg canvas, and returns the Axes (its figure is
``ax.figure``). Every ``save_*`` function writes the format its path's extension names (``.png``,
``.jpg``/``.jpeg``, ``.tif``/``.tiff``, ``.webp``, ``.pdf``, ``.svg``, ``.svgz``, ``.eps``, ``.ps``;
PNG when there is none; any other extension raises ``ValueError`` before anything is drawn) and
returns its ``pathlib.Path``.
matplotlib is imported inside the functions and ``pyplot`` is never used, so no display, no
global figure registry and no backend switch is involved (safe in tests, workers and servers).

Colours in :func:`plot_matches` follow the course convention: pure green ``#00ff00`` for a
correct match, pure red ``#ff0000`` for a wrong one, yellow ``#ffff00`` when correctness is
unknown (OpenCV's ``drawMatches`` uses random colours instead).
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np

from ._validation import (
    check_descriptors,
    check_image,
    check_matches,
    check_pixel_limit,
    check_points,
    check_scalar,
)

__all__ = [
    "plot_matches",
    "save_matches",
    "plot_descriptors",
    "save_descriptors",
    "plot_confusion_matrix",
    "save_confusion_matrix",
    "plot_confusion_matrices",
    "save_confusion_matrices",
    "save_training_curves",
]

CORRECT_COLOR = (0.0, 1.0, 0.0)
WRONG_COLOR = (1.0, 0.0, 0.0)
NEUTRAL_COLOR = (1.0, 1.0, 0.0)


def _new_axes(width_in: float, height_in: float, *, frameless: bool = False):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in))
    FigureCanvasAgg(figure)
    if frameless:
        return figure.add_axes((0.0, 0.0, 1.0, 1.0))
    return figure.add_subplot(1, 1, 1)


# Formats matplotlib's Agg canvas writes, by file extension (JPEG, TIFF and WebP through Pillow).
SAVE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff",
                ".webp": "webp", ".pdf": "pdf", ".svg": "svg", ".svgz": "svgz", ".eps": "eps", ".ps": "ps"}


def save_format(path) -> str:
    """The format a ``save_*`` function writes to ``path``: from its extension (case ignored),
    PNG when it has none; ``ValueError`` for an extension not in :data:`SAVE_FORMATS`."""
    suffix = Path(path).suffix.lower()
    if not suffix:
        return "png"
    if suffix not in SAVE_FORMATS:
        listed = ", ".join(SAVE_FORMATS)
        raise ValueError(f"cannot save a figure as {str(path)!r}: unknown extension {suffix!r} (use one of {listed})")
    return SAVE_FORMATS[suffix]


def _save(ax, path, dpi: int) -> Path:
    """Write the figure to exactly ``path``, in the format its extension names (see save_format)."""
    path = Path(path)
    check_scalar(dpi, "dpi", low=1, high=2400)
    form = save_format(path)
    width_in, height_in = ax.figure.get_size_inches()
    check_pixel_limit((round(height_in * dpi), round(width_in * dpi)), f"the figure at dpi={dpi}")
    path.parent.mkdir(parents=True, exist_ok=True)
    ax.figure.savefig(path, dpi=dpi, format=form)
    return path


def _side_by_side(image1, image2) -> np.ndarray:
    """Two images on one canvas, the shorter padded with black at the bottom.

    Returns
    -------
    canvas : (max(H1, H2), W1 + W2) float32 array; image2 starts at column ``W1``.
    """
    image1 = check_image(image1, "image1", check_range=True)
    image2 = check_image(image2, "image2", check_range=True)
    height = max(image1.shape[0], image2.shape[0])
    canvas = np.zeros((height, image1.shape[1] + image2.shape[1]), np.float32)
    canvas[:image1.shape[0], :image1.shape[1]] = image1
    canvas[:image2.shape[0], image1.shape[1]:] = image2
    return canvas


def plot_matches(image1, image2, points1, points2, matches, *, correct=None, ax=None, max_lines=None,
                 linewidth: float = 1.0):
    """Draw two images side by side and a line per match (green correct, red wrong).

    Parameters
    ----------
    image1, image2 : (H1, W1), (H2, W2) arrays
        Grey images in [0, 1] (integer images are scaled by their dtype's maximum).
    points1, points2 : (N1, 2), (N2, 2) arrays of (x, y)
    matches : (M, 2) int array
        Index pairs, most confident first.
    correct : (M,) bool array or None
        Green for True, red for False; None draws every line yellow.
    ax : matplotlib Axes or None
        Where to draw; None creates a figure sized to the canvas (about 12 inches wide).
    max_lines : int or None
        Draw only the first ``max_lines`` matches (the most confident).
    linewidth : float
        Line width in points.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((20, 30), np.float32)
    >>> points = np.array([[5, 5], [10, 12]], np.float32)
    >>> ax = plot_matches(image, image, points, points, [[0, 0], [1, 1]], correct=[True, False])
    >>> len(ax.collections[0].get_segments())
    2
    """
    from matplotlib.collections import LineCollection

    canvas = _side_by_side(image1, image2)
    offset = check_image(image1, "image1").shape[1]
    points1 = check_points(points1, "points1")
    points2 = check_points(points2, "points2")
    matches = check_matches(matches, len(points1), len(points2))
    if correct is not None:
        correct = np.asarray(correct)
        if correct.dtype != np.bool_:
            raise TypeError(f"correct must be a bool array, got dtype {correct.dtype}")
        if correct.shape != (len(matches),):
            raise ValueError(f"correct must have shape ({len(matches)},) like matches, got shape {correct.shape}")
    if max_lines is not None:
        check_scalar(max_lines, "max_lines", kind=numbers.Integral, low=0)
        matches = matches[:int(max_lines)]
        correct = None if correct is None else correct[:int(max_lines)]
    check_scalar(linewidth, "linewidth", low=0.0, low_inclusive=False)
    height, width = canvas.shape
    if ax is None:
        inches = 12.0 / max(width, height)  # the longer side 12 inches, neither under 1
        ax = _new_axes(max(1.0, 12.0 if width >= height else width * inches),
                       max(1.0, 12.0 * height / width if width >= height else 12.0), frameless=True)
    ax.imshow(canvas, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    start = points1[matches[:, 0]]
    end = points2[matches[:, 1]] + np.array([offset, 0], np.float32)
    if correct is None:
        colors = [NEUTRAL_COLOR] * len(matches)
    else:
        colors = np.where(correct[:, None], CORRECT_COLOR, WRONG_COLOR)
    segments = np.stack([start, end], axis=1) if len(matches) else np.zeros((0, 2, 2))
    ax.add_collection(LineCollection(segments, colors=colors, linewidths=linewidth))
    if len(matches):
        ends = np.vstack([start, end])
        ax.scatter(ends[:, 0], ends[:, 1], s=(2.0 * linewidth) ** 2, c=np.vstack([colors, colors]),
                   marker="o", linewidths=0)
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_axis_off()
    return ax


def save_matches(path, image1, image2, points1, points2, matches, *, correct=None, max_lines=None,
                 dpi: int = 100) -> Path:
    """Write :func:`plot_matches` to ``path`` (1200 px wide at ``dpi=100``) and return its path.

    The format follows the extension (``m.jpg`` is a JPEG; see :func:`save_format`).
    """
    save_format(path)
    ax = plot_matches(image1, image2, points1, points2, matches, correct=correct, max_lines=max_lines)
    return _save(ax, path, dpi)


def plot_descriptors(descriptors, *, ax=None, title=None):
    """Show descriptors as an image, one row per point and one column per dimension.

    Parameters
    ----------
    descriptors : (N, D) array
    ax : matplotlib Axes or None
    title : str or None

    Returns
    -------
    ax : matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> ax = plot_descriptors(np.eye(4, 128, dtype=np.float32))
    >>> ax.images[0].get_array().shape
    (4, 128)
    """
    descriptors = check_descriptors(descriptors, "descriptors")
    n, d = descriptors.shape
    if ax is None:
        ax = _new_axes(8.0, float(np.clip(n / 16.0, 2.0, 8.0)))
    shown = descriptors if descriptors.size else np.zeros((1, max(d, 1)), np.float32)
    image = ax.imshow(shown, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.figure.colorbar(image, ax=ax)
    ax.set_xlabel("dimension")
    ax.set_ylabel("point")
    if title is not None:
        ax.set_title(str(title))
    return ax


def save_descriptors(path, descriptors, *, title=None, dpi: int = 100) -> Path:
    """Write :func:`plot_descriptors` to ``path`` (format from the extension) and return its path."""
    save_format(path)
    return _save(plot_descriptors(descriptors, title=title), path, dpi)


def plot_confusion_matrix(matrix, class_names, *, normalize: bool = True, ax=None, title=None):
    """Draw a confusion matrix with a value in every cell (rows: true class, columns: predicted).

    Parameters
    ----------
    matrix : (C, C) array of counts
        ``matrix[i, j]`` = samples of true class ``i`` predicted as ``j`` (scikit-learn's layout).
    class_names : sequence of C str
    normalize : bool
        Show each row divided by its sum (per-class recall on the diagonal); an all-zero row stays 0.
    ax : matplotlib Axes or None
    title : str or None
        Default: the mean of the diagonal (mean per-class accuracy) when ``normalize``.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> ax = plot_confusion_matrix(np.array([[3, 1], [0, 4]]), ["cat", "dog"])
    >>> [t.get_text() for t in ax.texts]
    ['0.75', '0.25', '0.00', '1.00']
    """
    matrix = np.asarray(matrix)
    if matrix.dtype.kind not in "uif":
        raise TypeError(f"matrix must be numeric, got dtype {matrix.dtype}")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"matrix must be square (C, C) with C >= 1, got shape {matrix.shape}")
    if not np.isfinite(matrix).all() or (matrix < 0).any():
        raise ValueError("matrix must hold finite, non-negative values")
    class_names = [str(name) for name in class_names]
    n = matrix.shape[0]
    if len(class_names) != n:
        raise ValueError(f"class_names must have {n} names like matrix, got {len(class_names)}")
    values = matrix.astype(np.float64)
    if normalize:
        sums = values.sum(axis=1, keepdims=True)
        values = np.divide(values, sums, out=np.zeros_like(values), where=sums > 0)
        text = [f"{v:.2f}" for v in values.ravel()]
        vmax = 1.0
        if title is None:
            title = f"mean per-class accuracy {np.mean(np.diag(values)):.3f}"
    else:
        text = [f"{v:g}" for v in values.ravel()]
        vmax = max(values.max(), 1.0)
    if ax is None:
        side = float(np.clip(0.55 * n + 2.5, 4.0, 14.0))
        ax = _new_axes(side, side)
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fontsize = float(np.clip(160.0 / n, 5.0, 12.0))
    for (i, j), label in zip(np.ndindex(n, n), text):
        dark = values[i, j] > 0.6 * vmax
        ax.text(j, i, label, ha="center", va="center", fontsize=fontsize,
                color="white" if dark else "black")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title is not None:
        ax.set_title(str(title))
    ax.figure.tight_layout()
    return ax


def save_confusion_matrix(path, matrix, class_names, *, normalize: bool = True, title=None,
                          dpi: int = 100) -> Path:
    """Write :func:`plot_confusion_matrix` to ``path`` (format from the extension) and return its path."""
    save_format(path)
    ax = plot_confusion_matrix(matrix, class_names, normalize=normalize, title=title)
    return _save(ax, path, dpi)


def plot_confusion_matrices(matrices, class_names, *, titles=None, normalize: bool = True, ncols: int = 3,
                            axes=None):
    """Draw several confusion matrices of the same classes side by side, one panel each.

    Parameters
    ----------
    matrices : sequence of K (C, C) arrays of counts
        One per method, in scikit-learn's layout (row = true class, column = predicted).
    class_names : sequence of C str
    titles : sequence of K str or None
        One per panel; None: each panel's default (:func:`plot_confusion_matrix`).
    normalize : bool
        Rows divided by their sums (per-class recall on the diagonal).
    ncols : int
        Panels per row of a new figure (ignored when ``axes`` is given).
    axes : sequence of at least K matplotlib Axes or None
        Where to draw; None creates a figure of ``ceil(K / ncols)`` rows, each panel the size
        :func:`plot_confusion_matrix` gives one matrix (unused panels are hidden).

    Returns
    -------
    axes : list of K matplotlib.axes.Axes
        The panels drawn (their figure is ``axes[0].figure``).

    Examples
    --------
    >>> import numpy as np
    >>> axes = plot_confusion_matrices([np.eye(2), np.ones((2, 2))], ["cat", "dog"], titles=["a", "b"])
    >>> [ax.get_title() for ax in axes], [t.get_text() for t in axes[1].texts]
    (['a', 'b'], ['0.50', '0.50', '0.50', '0.50'])
    """
    matrices = list(matrices)
    if not matrices:
        raise ValueError("matrices must hold at least one confusion matrix, got none")
    if titles is not None:
        titles = [None if t is None else str(t) for t in titles]
        if len(titles) != len(matrices):
            raise ValueError(f"titles must have {len(matrices)} entries like matrices, got {len(titles)}")
    else:
        titles = [None] * len(matrices)
    if axes is None:
        check_scalar(ncols, "ncols", kind=numbers.Integral, low=1)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        columns = min(int(ncols), len(matrices))
        rows = -(-len(matrices) // columns)
        side = float(np.clip(0.55 * len(class_names) + 2.5, 4.0, 14.0))
        figure = Figure(figsize=(side * columns, side * rows))
        FigureCanvasAgg(figure)
        grid = list(figure.subplots(rows, columns, squeeze=False).ravel())
        for unused in grid[len(matrices):]:
            unused.set_axis_off()
        axes = grid
    else:
        axes = list(axes)
        if len(axes) < len(matrices):
            raise ValueError(f"axes must hold at least {len(matrices)} Axes like matrices, got {len(axes)}")
    for ax, matrix, title in zip(axes, matrices, titles):
        plot_confusion_matrix(matrix, class_names, normalize=normalize, ax=ax, title=title)
    return axes[:len(matrices)]


def save_confusion_matrices(path, matrices, class_names, *, titles=None, normalize: bool = True, ncols: int = 3,
                            dpi: int = 100) -> Path:
    """Write :func:`plot_confusion_matrices` to ``path`` (format from the extension) and return its path."""
    save_format(path)
    axes = plot_confusion_matrices(matrices, class_names, titles=titles, normalize=normalize, ncols=ncols)
    return _save(axes[0], path, dpi)


def save_training_curves(path, history, *, title=None, dpi: int = 100) -> Path:
    """Plot per-epoch training curves (format from the extension): losses left, everything else right.

    Parameters
    ----------
    path : path of the picture to write (``.png``, ``.jpg``, ``.pdf``, ... see :func:`save_format`)
    history : dict of str -> sequence of numbers
        e.g. ``{'loss': [...], 'train_accuracy': [...], 'val_accuracy': [...]}``; keys containing
        ``'loss'`` go on the left panel. Sequences may differ in length (epoch ``1..len``);
        NaN entries are left as gaps.
    title : str or None
    dpi : int

    Returns
    -------
    path : pathlib.Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     out = save_training_curves(pathlib.Path(folder) / "curves.png",
    ...                                {"loss": [1.0, 0.5], "val_accuracy": [0.4, 0.6]})
    ...     out.is_file()
    True
    """
    save_format(path)
    if not isinstance(history, dict) or not history:
        raise ValueError(f"history must be a non-empty dict of lists, got {history!r}")
    curves = {}
    for key, values in history.items():
        values = np.asarray(values)
        if values.ndim != 1 or values.size == 0 or values.dtype.kind not in "uif":
            raise ValueError(f"history[{key!r}] must be a non-empty 1-D sequence of numbers, "
                             f"got {values.dtype} array of shape {values.shape}")
        curves[str(key)] = values.astype(np.float64)
    losses = {k: v for k, v in curves.items() if "loss" in k.lower()}
    others = {k: v for k, v in curves.items() if "loss" not in k.lower()}
    panels = [group for group in (losses, others) if group]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.0 * len(panels), 4.0))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, group in zip(axes, panels):
        for key, values in group.items():
            ax.plot(np.arange(1, values.size + 1), values, marker="o", markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" if group is losses else "value")
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title is not None:
        figure.suptitle(str(title))
    figure.tight_layout()
    return _save(axes[0], path, dpi)
