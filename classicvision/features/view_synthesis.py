"""ASIFT-style view synthesis: simulate the camera tilts of a viewpoint change (Morel & Yu 2009).

A camera looking at a plane from latitude ``theta`` and longitude ``phi`` sees it, locally,
through the affine map ``lambda R(psi) T_t R(phi)`` with ``T_t = diag(t, 1)`` and tilt
``t = 1 / cos(theta)`` (Morel & Yu 2009, section 2, eq. 3). SIFT is invariant to ``lambda`` and
``psi`` but tolerates only a relative tilt of about 2 (section 5). ASIFT therefore simulates the
two remaining parameters: it warps the image by ``T_t R(phi)`` for a grid of tilts and longitudes,
detects and describes on every view, and maps the points back.

Algorithm (section 4; OpenCV ``AffineFeature``'s ``affineSkew``), for each ``(t, phi)``:

1. **Rotate** so that the input direction ``(cos phi, sin phi)`` (an angle as the package
   measures them, ``arctan2(dy, dx)`` with y down) becomes the x axis: the matrix
   ``[[cos, sin], [-sin, cos]]``, into the bounding box of the rotated image
   (``cv2.warpAffine``, bilinear, replicated border as OpenCV).
2. **Anti-alias** along x with a Gaussian of standard deviation ``c sqrt(t**2 - 1)``, ``c = 0.8``
   (section 4: the blur that lets the result be subsampled by ``t`` without aliasing).
3. **Subsample** x by ``t`` (bilinear on the blurred image, exact coordinates: view ``x' = x / t``).

The view is ``affine @ [x, y, 1]`` of the input: ``affine = diag(1/t, 1) [R(phi) | offset]``, a
``(2, 3)`` matrix known exactly, so keypoints found in a view map back through its inverse with no
approximation (:func:`map_to_image`). The longitudes of tilt ``t`` are ``phi = k b / t`` degrees,
``0 <= phi < 180``, with ``b = 72`` (section 4: ``Delta phi = 72 / t``); the tilts are usually
the geometric series ``sqrt(2)**k``. Tilt 1 is the image itself (one view, ``phi = 0``).

The number of views controls the cost: a tilt ``t`` adds about ``180 t / b`` views of about
``1.4 / t`` times the image's area (the rotated bounding box, then the subsampling), so each
tilt costs about ``2.5 * 1.4 = 3.5`` images whatever ``t`` is.

References
----------
J.-M. Morel and G. Yu, "ASIFT: A new framework for fully affine invariant image comparison",
SIAM Journal on Imaging Sciences 2(2), 2009, sections 2 (eq. 3), 4 and 5.
G. Yu and J.-M. Morel, "ASIFT: An algorithm for fully affine invariant comparison", Image
Processing On Line 1, 2011 (the reference implementation OpenCV follows).
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import cv2
import numpy as np

from .._kernels.jit import parallel_for
from .._validation import check_image, check_points, check_scalar
from ._gaussian import cached_gaussian_kernel1d
from .extract import detect_and_describe
from .keypoints import Keypoints, wrap_angle

__all__ = ["SimulatedView", "ANTIALIAS", "LONGITUDE_STEP", "view_grid", "simulate_view", "simulated_views",
           "map_to_image", "check_tilts", "detect_and_describe_views"]

#: ``c`` of the anti-aliasing blur ``c sqrt(t**2 - 1)`` (Morel & Yu 2009, section 4).
ANTIALIAS = 0.8
#: ``b`` of the longitude step ``b / t`` degrees (Morel & Yu 2009, section 4).
LONGITUDE_STEP = 72.0
_MAX_TILT = 64.0  # beyond this a 512 px image collapses to a few columns


class SimulatedView(NamedTuple):
    """One simulated view (:func:`simulate_view`).

    Attributes
    ----------
    image : (H', W') float32 array
        The view.
    affine : (2, 3) float64 array
        Maps input ``(x, y, 1)`` to view ``(x, y)``: ``diag(1/t, 1) [R(longitude) | offset]``.
    tilt : float
        ``t >= 1``.
    longitude : float
        ``phi`` in radians, ``[0, pi)``.
    """

    image: np.ndarray
    affine: np.ndarray
    tilt: float
    longitude: float


def check_tilts(tilts, name: str = "tilts") -> tuple:
    """``tilts`` as a sorted tuple of distinct floats in ``[1, 64]`` (1 is always added), or raise."""
    if isinstance(tilts, (str, bytes)) or not hasattr(tilts, "__iter__"):
        raise TypeError(f"{name} must be a sequence of numbers >= 1, got {tilts!r}")
    values = []
    for t in tilts:
        check_scalar(t, f"each of {name}", low=1.0, high=_MAX_TILT)
        values.append(float(t))
    return tuple(sorted(set(values) | {1.0}))


def view_grid(tilts, *, longitude_step: float = LONGITUDE_STEP) -> np.ndarray:
    """The ``(tilt, longitude)`` pairs of the simulated views (Morel & Yu 2009, section 4).

    Parameters
    ----------
    tilts : sequence of float >= 1
        Tilts to simulate; 1 (the image itself) is always included, once.
    longitude_step : float
        ``b`` in degrees: tilt ``t`` gets longitudes ``k b / t`` in ``[0, 180)``.

    Returns
    -------
    grid : (V, 2) float64 array
        Rows ``(t, phi)``, ``phi`` in radians, tilts increasing; the first row is ``(1, 0)``.

    Examples
    --------
    >>> g = view_grid([2 ** 0.5, 2, 2 * 2 ** 0.5, 4])     # OpenCV AffineFeature(maxTilt=4)
    >>> len(g), [int((g[:, 0] == t).sum()) for t in (1.0, 2.0, 4.0)]
    (28, [1, 5, 10])
    """
    tilts = check_tilts(tilts)
    check_scalar(longitude_step, "longitude_step", low=0, low_inclusive=False, high=180.0)
    rows = [(1.0, 0.0)]
    for t in tilts[1:]:
        step = longitude_step / t
        rows += [(t, math.radians(k * step)) for k in range(int(math.ceil(180.0 / step - 1e-9)))]
    return np.array(rows, np.float64)


def _rotation(longitude: float, shape) -> tuple[np.ndarray, tuple[int, int]]:
    """``[R | offset]`` (2, 3) rotating by ``longitude`` into the rotated image's bounding box, and
    that box's ``(width, height)``."""
    height, width = shape
    c, s = math.cos(longitude), math.sin(longitude)
    A = np.array([[c, s, 0.0], [-s, c, 0.0]])
    corners = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], np.float64)
    turned = corners @ A[:, :2].T
    low = np.floor(turned.min(axis=0))
    A[:, 2] = -low
    size = np.ceil(turned.max(axis=0) - low).astype(int) + 1
    return A, (int(size[0]), int(size[1]))


def _simulate(image: np.ndarray, tilt: float, longitude: float) -> SimulatedView:
    """:func:`simulate_view` on a checked float32 image."""
    if tilt == 1.0 and longitude == 0.0:
        return SimulatedView(image, np.array([[1.0, 0, 0], [0, 1.0, 0]]), 1.0, 0.0)
    A, size = _rotation(longitude, image.shape)
    view = image
    if longitude != 0.0:
        view = cv2.warpAffine(image, A, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if tilt != 1.0:
        g = cached_gaussian_kernel1d(ANTIALIAS * math.sqrt(tilt * tilt - 1.0))
        view = cv2.sepFilter2D(view, cv2.CV_32F, g, np.ones(1, np.float32), borderType=cv2.BORDER_REPLICATE)
        width = max(1, int(math.floor((view.shape[1] - 1) / tilt)) + 1)
        squeeze = np.array([[tilt, 0.0, 0.0], [0.0, 1.0, 0.0]])  # view (x', y) reads (t x', y)
        view = cv2.warpAffine(view, squeeze, (width, view.shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
        A = np.diag([1.0 / tilt, 1.0]) @ A
    return SimulatedView(np.ascontiguousarray(view, np.float32), A, float(tilt), float(longitude))


def simulate_view(image, tilt: float, longitude: float) -> SimulatedView:
    """The view of ``image`` from tilt ``t`` at longitude ``phi`` (module docstring, steps 1-3).

    Parameters
    ----------
    image : (H, W) array (uint8, uint16 or float in [0, 1])
    tilt : float in [1, 64]
        ``t = 1 / cos(latitude)``.
    longitude : float
        ``phi`` in radians: the input direction ``(cos phi, sin phi)`` (x, y; y down) is
        compressed by ``t``, the perpendicular one kept.

    Returns
    -------
    SimulatedView
        ``image`` (float32), the exact ``affine`` (2, 3) from input to view pixels, ``tilt``,
        ``longitude``. ``tilt=1, longitude=0`` returns the input itself.

    References
    ----------
    Morel & Yu 2009, section 4.

    Examples
    --------
    >>> v = simulate_view(np.ones((40, 60), np.float32), 2.0, 0.0)
    >>> v.image.shape, v.affine[0].tolist()
    ((40, 30), [0.5, 0.0, 0.0])
    """
    image = check_image(image, check_range=True)
    check_scalar(tilt, "tilt", low=1.0, high=_MAX_TILT)
    check_scalar(longitude, "longitude")
    return _simulate(image, float(tilt), float(longitude) % math.pi)


def simulated_views(image, tilts, *, longitude_step: float = LONGITUDE_STEP) -> list[SimulatedView]:
    """Every view of :func:`view_grid` ``(tilts, longitude_step)``, the image itself first."""
    image = check_image(image, check_range=True)
    return [_simulate(image, float(t), float(phi)) for t, phi in view_grid(tilts, longitude_step=longitude_step)]


def map_to_image(keypoints, affine) -> Keypoints:
    """Keypoints found in a view, in the input image's pixels (through the inverse of ``affine``).

    Parameters
    ----------
    keypoints : Keypoints or (N, 2) array of (x, y)
        In view pixels.
    affine : (2, 3) array
        Input to view, as :attr:`SimulatedView.affine`.

    Returns
    -------
    Keypoints
        ``points`` exactly ``A^-1 (p - b)`` (computed in float64); ``scale`` times
        ``sqrt(|det A^-1|)`` (the geometric mean of the ellipse's axes); ``orientation`` the
        direction of the view's orientation vector mapped back; ``response`` unchanged.

    Examples
    --------
    >>> v = simulate_view(np.ones((40, 60), np.float32), 2.0, 0.0)
    >>> map_to_image(np.array([[10.0, 5.0]]), v.affine).points.tolist()
    [[20.0, 5.0]]
    """
    affine = np.asarray(affine, np.float64)
    if affine.shape != (2, 3) or not np.isfinite(affine).all():
        raise ValueError(f"affine must be a finite (2, 3) array, got shape {affine.shape}")
    if not isinstance(keypoints, Keypoints):
        keypoints = Keypoints.from_points(check_points(keypoints, "keypoints"))
    inverse = np.linalg.inv(affine[:, :2])
    points = (keypoints.points.astype(np.float64) - affine[:, 2]) @ inverse.T
    scale = keypoints.scale * np.float32(math.sqrt(abs(np.linalg.det(inverse))))
    theta = keypoints.orientation.astype(np.float64)
    direction = np.stack([np.cos(theta), np.sin(theta)], axis=1) @ inverse.T
    orientation = wrap_angle(np.arctan2(direction[:, 1], direction[:, 0]).astype(np.float32))
    return Keypoints(points.astype(np.float32), scale.astype(np.float32), orientation, keypoints.response)


def detect_and_describe_views(image, tilts, *, longitude_step: float = LONGITUDE_STEP, seconds: dict | None = None,
                              name: str = "image", **options) -> tuple[Keypoints, np.ndarray, np.ndarray]:
    """Keypoints and descriptors of every simulated view, mapped back into ``image``'s pixels.

    Each view of :func:`simulated_views` goes through
    :func:`~classicvision.features.extract.detect_and_describe` (``options``: detector,
    descriptor, max_points (per view), upright, upsample, ...; with ``upsample`` left to its
    default, views of a tilt below :data:`UPSAMPLE_FROM_TILT` are not doubled); its keypoints are
    mapped back by
    :func:`map_to_image`, and those that land outside the input image (on the replicated border
    of a rotated view) are dropped, as OpenCV's ``AffineFeature`` does with its mask. Views
    thinner than 16 px are skipped.

    Parameters
    ----------
    image : (H, W) array (uint8, uint16 or float in [0, 1])
    tilts : sequence of float >= 1
        As in :func:`view_grid`; ``(1,)`` gives :func:`detect_and_describe` of the image alone.
    longitude_step : float
        As in :func:`view_grid`.
    seconds : dict or None
        When given, the frontal view's ``detect``, ``orient`` and ``describe`` times are added
        to it, and ``views``: the wall time of the whole call.

    Returns
    -------
    keypoints : Keypoints
        In input pixels, the frontal view's first, then each view's in :func:`view_grid` order.
    descriptors : (N, 128) float32 array
    view : (N,) int64 array
        Row of :func:`view_grid` each keypoint was found in (0: the image itself).

    References
    ----------
    Morel & Yu 2009, section 4 (ASIFT: every simulated view described, the points pooled).

    Examples
    --------
    >>> from skimage import data
    >>> kp, d, view = detect_and_describe_views(data.camera()[::2, ::2], [2.0], max_points=50)
    >>> d.shape[1], sorted(set(view.tolist()))
    (128, [0, 1, 2, 3, 4, 5])
    """
    image = check_image(image, name, check_range=True)
    grid = view_grid(tilts, longitude_step=longitude_step)
    start = time.perf_counter()
    results = [None] * len(grid)
    frontal = detect_and_describe(image, name=name, seconds=seconds, **options)  # checks the options
    results[0] = (frontal[0], frontal[1], np.zeros(len(frontal[0]), np.int64))
    parallel_for(_describe_views, len(grid) - 1, image, grid, options, results, uniform=False)
    if seconds is not None:
        seconds["views"] = seconds.get("views", 0.0) + time.perf_counter() - start
    keypoints = Keypoints(*(np.concatenate([getattr(r[0], f) for r in results]) for f in
                            ("points", "scale", "orientation", "response")))
    return keypoints, np.concatenate([r[1] for r in results]), np.concatenate([r[2] for r in results])


#: Simulated views of a tilt below this are described without the doubled first octave when
#: ``upsample`` is left to its default (the image itself and the steeper views keep it). Chosen on
#: the synthetic viewpoint suite (``benchmarks/bench_viewpoint.py``, quiet 2-core machine) with
#: ``tilts=(2, 4)``: every view doubled, 0.57 s per pair of 512 px images; none, 0.25 s but the
#: top-100 accuracy at tilt 6 falls from 94% to 44% (``--quick``); from tilt 3, 0.40 s, and on
#: the whole suite at tilt >= 4 89.5% top-100 against OpenCV ASIFT's 87.0%, in 0.28x its time.
UPSAMPLE_FROM_TILT = 3.0


def _describe_views(start, stop, image, grid, options, results):
    """Views ``1 + start .. 1 + stop`` of :func:`detect_and_describe_views`: a task of
    :func:`~classicvision._kernels.jit.parallel_for`, so two views are described at once and each
    one's kernels run inline (0.57 s against 0.70 s per pair of 512 px images with tilts (2, 4)
    and the thread pool inside each view, quiet 2-core machine)."""
    height, width = image.shape
    shallow = dict(options, upsample=False) if options.get("upsample") is None else options
    for index in range(1 + start, 1 + stop):
        t, phi = grid[index]
        view = _simulate(image, float(t), float(phi))
        if min(view.image.shape) < 16:
            keypoints, descriptors = Keypoints.empty(), np.zeros((0, 128), np.float32)
        else:
            view_options = shallow if t < UPSAMPLE_FROM_TILT else options
            keypoints, descriptors = detect_and_describe(view.image, **view_options)
            keypoints = map_to_image(keypoints, view.affine)
            x, y = keypoints.points.T
            inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
            keypoints, descriptors = keypoints[inside], descriptors[inside]
        results[index] = (keypoints, descriptors, np.full(len(keypoints), index, np.int64))
