"""Keypoints: the one result type of every detector, and its conversion to and from OpenCV.

A keypoint is a location with a scale, an orientation and a detector response:

* ``points`` ``(N, 2)`` float32 of ``(x, y)``: x = column, y = row, origin at the top-left
  pixel centre (OpenCV's ``KeyPoint.pt``);
* ``scale`` ``(N,)`` float32: the Gaussian ``sigma`` of the point in input pixels (Lowe's
  ``sigma``; for single-scale Harris, the integration scale);
* ``orientation`` ``(N,)`` float32: radians in ``[-pi, pi)`` from ``arctan2(gy, gx)`` with y
  pointing down the rows (clockwise on screen), 0 for upright points;
* ``response`` ``(N,)`` float32: the detector's strength (Harris ``R``, the interpolated DoG
  value ``D(x^)``, signed), rows sorted by ``|response|``, strongest first, as detectors return
  them.

OpenCV correspondence (:func:`to_cv2_keypoints`, :func:`from_cv2_keypoints`): ``KeyPoint.size``
is a diameter; OpenCV's SIFT uses descriptor cells of ``3 * size / 2`` pixels (its
``SIFT_DESCR_SCL_FCTR = 3`` times the radius), ours of ``magnification * scale`` (Lowe's 3), so a
keypoint of ``scale`` sigma is ``KeyPoint(size=2 * scale)``, exactly OpenCV's own convention for
the points its DoG detector finds. ``KeyPoint.angle`` is ``degrees(orientation) mod 360``
(OpenCV's histogram flips both the y axis and the sign, which leaves the number unchanged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._validation import check_points

__all__ = ["Keypoints", "to_cv2_keypoints", "from_cv2_keypoints", "wrap_angle", "CV2_SIZE_FACTOR"]

#: ``cv2.KeyPoint.size`` = descriptor support side / ``CV2_SIZE_FACTOR`` (4 cells of 1.5 diameters).
CV2_SIZE_FACTOR = 6.0
_SMALLEST_SCALE = float(np.finfo(np.float32).tiny)  # below it, scale**2 and 1 / scale lose all precision


def wrap_angle(theta: np.ndarray) -> np.ndarray:
    """Angles (float array, finite) wrapped into ``[-pi, pi)``; values already in ``[-pi, pi]`` (pi
    rounded to the array's dtype) are returned unchanged, bit for bit, so huge angles cost one
    ``np.mod`` instead of a loop."""
    theta = np.asarray(theta)
    limit = np.float32(np.pi) if theta.dtype == np.float32 else np.pi
    outside = np.abs(theta) > limit
    if not outside.any():
        return theta
    return np.where(outside, np.mod(theta + np.pi, 2 * np.pi) - np.pi, theta).astype(theta.dtype)


def _column(value, name: str, n: int) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "uif":
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}")
    if array.ndim == 0:
        array = np.full(n, array)
    if array.shape != (n,):
        raise ValueError(f"{name} must be a number or have shape ({n},) like points, got shape {array.shape}")
    array = np.ascontiguousarray(array, np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


@dataclass(frozen=True, eq=False)
class Keypoints:
    """Interest points with scale, orientation and response (module docstring).

    Build them with a detector (:func:`~classicvision.features.harris.harris`,
    :func:`~classicvision.features.scale_space.dog_keypoints`) or with :meth:`from_points`;
    the constructor itself does not check its arrays.

    Attributes
    ----------
    points : (N, 2) float32 array of (x, y)
        x = column, y = row, in input pixels.
    scale : (N,) float32 array
        Sigma in input pixels (> 0).
    orientation : (N,) float32 array
        Radians in ``[-pi, pi)``, ``arctan2(gy, gx)`` with y down; 0 when upright.
    response : (N,) float32 array
        Detector response (signed for DoG).

    Notes
    -----
    ``len(keypoints)`` is ``N``; ``keypoints[index]`` (an integer array, a boolean mask or a
    slice) selects rows of all four arrays at once.

    Examples
    --------
    >>> kp = Keypoints.from_points([[3.0, 4.0], [5.0, 6.0]], scale=2.0)
    >>> len(kp), kp.scale.tolist(), kp[[1]].points.tolist()
    (2, [2.0, 2.0], [[5.0, 6.0]])
    """

    points: np.ndarray
    scale: np.ndarray
    orientation: np.ndarray
    response: np.ndarray

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def __getitem__(self, index) -> Keypoints:
        if isinstance(index, (int, np.integer)):
            index = [index]
        return Keypoints(self.points[index], self.scale[index], self.orientation[index], self.response[index])

    def __repr__(self) -> str:
        return f"Keypoints(n={len(self)})"

    @classmethod
    def empty(cls) -> Keypoints:
        """No keypoints: ``(0, 2)`` points and ``(0,)`` columns, all float32."""
        zero = np.zeros(0, np.float32)
        return cls(np.zeros((0, 2), np.float32), zero, zero.copy(), zero.copy())

    @classmethod
    def from_points(cls, points, *, scale=1.0, orientation=0.0, response=0.0) -> Keypoints:
        """Keypoints from ``(N, 2)`` points of ``(x, y)`` and scalars or ``(N,)`` columns (checked).

        Raises
        ------
        TypeError, ValueError
            Naming the argument: wrong shapes, NaN or infinity, a scale that is not > 0 (or is a
            subnormal float32, below ``1.2e-38``).
        """
        points = check_points(points)
        n = points.shape[0]
        scale = _column(scale, "scale", n)
        if n and not (scale >= _SMALLEST_SCALE).all():
            raise ValueError(f"scale must be > 0 and a normal float32 (>= {_SMALLEST_SCALE:.4g}), "
                             f"got minimum {float(scale.min())!r}")
        orientation = wrap_angle(_column(orientation, "orientation", n))
        return cls(points, scale, orientation, _column(response, "response", n))

    def strongest(self, max_points: int | None) -> Keypoints:
        """The ``max_points`` rows of largest ``|response|`` (stable order), all when None."""
        order = np.argsort(-np.abs(self.response), kind="stable")
        return self[order if max_points is None else order[:max_points]]


def check_keypoints(keypoints, name: str = "keypoints") -> Keypoints:
    """``keypoints`` if it is a :class:`Keypoints` with consistent, finite float32 arrays, else raise."""
    if not isinstance(keypoints, Keypoints):
        raise TypeError(f"{name} must be Keypoints, got {type(keypoints).__name__}")
    n = len(keypoints)
    for field in ("scale", "orientation", "response"):
        array = getattr(keypoints, field)
        if not isinstance(array, np.ndarray) or array.shape != (n,):
            raise ValueError(f"{name}.{field} must have shape ({n},) like {name}.points")
    return Keypoints.from_points(keypoints.points, scale=keypoints.scale, orientation=keypoints.orientation,
                                 response=keypoints.response)


def to_cv2_keypoints(keypoints, *, size=None, orientation=None) -> list:
    """OpenCV ``KeyPoint`` objects describing the same supports as our SIFT descriptors.

    Parameters
    ----------
    keypoints : Keypoints or (N, 2) array of (x, y)
    size : None, float or (N,) array
        Side of the descriptor support in pixels (``sift_descriptors(..., size=)``); the
        ``KeyPoint.size`` is ``size / 6``. None: ``2 * scale`` for Keypoints (Lowe's
        magnification 3 on 4 cells, OpenCV's convention), 16 px for bare points.
    orientation : None, float or (N,) array of radians
        None: the keypoints' orientation, or 0 for bare points.

    Returns
    -------
    list of cv2.KeyPoint, length N

    Examples
    --------
    >>> kp = to_cv2_keypoints([[3.0, 4.0]], size=12.0)
    >>> kp[0].pt, kp[0].size
    ((3.0, 4.0), 2.0)
    """
    import cv2

    if isinstance(keypoints, Keypoints):
        points, n = keypoints.points, len(keypoints)
        cv_size = 2.0 * keypoints.scale.astype(np.float64) if size is None else None
        angles = keypoints.orientation if orientation is None else orientation
        response = keypoints.response
    else:
        points = check_points(keypoints)
        n, cv_size, response = points.shape[0], None, np.zeros(points.shape[0], np.float32)
        angles = 0.0 if orientation is None else orientation
    if cv_size is None:
        support = _column(16.0 if size is None else size, "size", n)
        if n and not (support > 0).all():
            raise ValueError("size must be > 0")
        cv_size = support.astype(np.float64) / CV2_SIZE_FACTOR
    degrees = np.mod(np.degrees(_column(angles, "orientation", n).astype(np.float64)), 360.0)
    return [cv2.KeyPoint(float(x), float(y), float(s), float(a), float(r))
            for (x, y), s, a, r in zip(points, cv_size, degrees, response)]


def from_cv2_keypoints(keypoints) -> Keypoints:
    """:class:`Keypoints` from a sequence of ``cv2.KeyPoint`` (inverse of :func:`to_cv2_keypoints`
    for Keypoints): ``scale = size / 2``, ``orientation = radians(angle)`` wrapped into
    ``[-pi, pi)`` (an angle of -1, OpenCV's "none", gives 0), ``response`` as is."""
    keypoints = list(keypoints)
    points = np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2)
    scale = np.array([k.size / 2.0 for k in keypoints], np.float32)
    angle = np.array([math.radians(k.angle) if k.angle >= 0 else 0.0 for k in keypoints], np.float64)
    response = np.array([k.response for k in keypoints], np.float32)
    return Keypoints.from_points(points, scale=scale, orientation=wrap_angle(angle), response=response)
