"""Scale space: the Gaussian pyramid and difference-of-Gaussian (DoG) keypoints (Lowe 2004).

Algorithm (Lowe 2004, sections 3-4; the numbers are Lowe's and OpenCV's defaults):

1. Base image. The input is assumed already blurred by ``assumed_blur = 0.5`` pixel. With
   ``upsample=True`` it is first doubled by linear interpolation *on the input's sample grid*
   (``base[2i] = image[i]``, ``base[2i + 1] = (image[i] + image[i + 1]) / 2``), so base pixel
   ``2x`` is input pixel ``x`` exactly (section 3.3: doubling gives about four times more
   stable points); its blur is then ``2 * 0.5 = 1``. It is blurred up to ``sigma = 1.6``.
2. Octaves of ``n_scales + 3`` Gaussian images ``G[l]`` with ``sigma_l = sigma 2**(l / s)``,
   ``s = n_scales = 3``, each blurred from the previous one by
   ``sqrt(sigma_l**2 - sigma_(l-1)**2)``: the kernel of
   :func:`classicvision.features.filters.gaussian_kernel1d` (radius ``4 sigma``, mirror border
   as OpenCV), applied by the package's blur (OpenCV's ``sepFilter2D`` computes the same sums).
   The next octave starts from ``G[s]``
   (blur ``2 sigma``) taking every second pixel, so octave ``o`` pixel ``x`` is base pixel
   ``2**o x``.
3. ``D[l] = G[l + 1] - G[l]`` (section 3, eq. 1-2) and its 3x3x3 extrema for ``1 <= l <= s``
   with ``|D| > 0.5 * contrast_threshold / s`` (a cheap pre-filter, as OpenCV), away from a
   5-pixel border.
4. Quadratic fit (section 4, eq. 2-3): ``x^ = -H^-1 g`` in ``(x, y, layer)``; when an offset
   exceeds 0.5 the sample moves to the neighbour and the fit is repeated, at most 5 times.
   Low contrast (eq. 3): rejected when ``|D(x^)| * n_scales < contrast_threshold``. Lowe's
   0.03 is scaled by the number of scales per octave as in OpenCV (``contrastThreshold``) and
   VLFeat, because the DoG of neighbouring scales shrinks with ``2**(1/s) - 1``: with the
   defaults a point needs ``|D| >= 0.01`` (intensities in [0, 1]); OpenCV's default 0.04 means
   ``|D| >= 0.0133``. Edges (section 4.1, eq. 4): rejected unless ``det > 0`` and
   ``trace**2 / det < (r + 1)**2 / r`` with ``r = edge_threshold = 10``.
5. A point at octave ``o``, sub-scale layer ``l`` and octave pixel ``(x, y)`` has scale
   ``sigma 2**(l / s)`` octave pixels; both are mapped back to *input* pixels by the octave's
   factor ``2**o / 2`` (or ``2**o`` without upsampling).

The work is in numba kernels: the doubling and the blurs in :mod:`classicvision._kernels.blur`,
the extrema search in bands of rows (the DoG formed on the fly, never stored) and the refinement,
a loop over the candidates inside one compiled call, in :mod:`classicvision._kernels.dog`.

References
----------
D. G. Lowe, "Distinctive image features from scale-invariant keypoints", IJCV 60(2), 2004,
sections 3-4.
M. Brown and D. G. Lowe, "Invariant features from interest point groups", BMVC 2002 (the fit).
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import cv2
import numpy as np

from .. import _limits
from .._kernels import dog as _k
from .._kernels.blur import _blur as _blur_kernel, _upsample2
from .._validation import check_image, check_scalar
from ._gaussian import cached_gaussian_kernel1d
from .keypoints import Keypoints

__all__ = ["GaussianPyramid", "ScaleSpacePoints", "gaussian_pyramid", "dog_extrema", "dog_keypoints",
           "level_of_scale"]

_BORDER = 5  # SIFT_IMG_BORDER of OpenCV: no extremum closer to an octave's edge
_MAX_ITER = 5  # quadratic-fit steps (Lowe 2004, section 4; OpenCV SIFT_MAX_INTERP_STEPS)
_MIN_OCTAVE_SIDE = 16


class GaussianPyramid(NamedTuple):
    """Gaussian scale space built by :func:`gaussian_pyramid`.

    Attributes
    ----------
    octaves : list of (n_scales + 3, H_o, W_o) float32 arrays
        ``octaves[o][l]`` is the image blurred to ``sigma 2**(l / n_scales)`` octave pixels.
    sigma : float
        Blur of level 0 of every octave, in that octave's pixels.
    n_scales : int
        Scales per octave ``s``.
    upsample : bool
        Whether octave 0 is the input doubled.
    """

    octaves: list
    sigma: float
    n_scales: int
    upsample: bool

    def octave_factor(self, octave) -> np.ndarray:
        """Input pixels per pixel of ``octave`` (int or array): ``2**octave / 2`` when upsampled."""
        return np.ldexp(0.5 if self.upsample else 1.0, np.asarray(octave, dtype=np.int64))


class ScaleSpacePoints(NamedTuple):
    """DoG keypoints with where they came from (:func:`dog_extrema`).

    Attributes
    ----------
    points : (N, 2) float32 array of (x, y) in input pixels
    scales : (N,) float32 array, sigma in input pixels
    responses : (N,) float32 array, the interpolated DoG value ``D(x^)`` (signed)
    octaves : (N,) int64 array
    layers : (N,) float32 array, the sub-scale layer ``l`` (scale ``sigma 2**(l / s)`` octave px)
    """

    points: np.ndarray
    scales: np.ndarray
    responses: np.ndarray
    octaves: np.ndarray
    layers: np.ndarray

    def keypoints(self) -> Keypoints:
        """These points as :class:`~classicvision.features.keypoints.Keypoints` (orientation 0),
        in detection order."""
        n = len(self.points)
        return Keypoints(self.points, self.scales, np.zeros(n, np.float32), self.responses)


def _blur(image: np.ndarray, sigma: float, out: np.ndarray | None = None) -> np.ndarray:
    """``filters.gaussian(image, sigma, mode='mirror')``: the same sampled kernel (radius 4 sigma)
    and border, by the blur of :mod:`classicvision._kernels.blur` (``'mirror'``, y-pass first),
    or by OpenCV's ``sepFilter2D`` on levels smaller than the kernel radius (OpenCV reflects
    more than once). Tests compare all three."""
    g = cached_gaussian_kernel1d(float(sigma))
    blurred = _blur_kernel(image, g, "mirror", out=out)
    if blurred is None:
        blurred = cv2.sepFilter2D(image, cv2.CV_32F, g, g, dst=out, borderType=cv2.BORDER_REFLECT_101)
    return blurred


def gaussian_pyramid(image, *, n_octaves: int | None = None, n_scales: int = 3, sigma: float = 1.6,
                     upsample: bool = True, assumed_blur: float = 0.5) -> GaussianPyramid:
    """Gaussian scale space of ``image``: octaves of ``n_scales + 3`` images (Lowe 2004, section 3).

    Parameters
    ----------
    image : (H, W) array (uint8, uint16 or float)
    n_octaves : int or None
        Number of octaves; default as many as keep the smallest octave at least 16 pixels a side.
        Octaves stop when they would be smaller than 2 pixels, so a larger number is the same.
    n_scales : int
        Scales per octave ``s`` (Lowe: 3), at most
        :data:`classicvision._limits.MAX_SCALES_PER_OCTAVE` (64).
    sigma : float
        Blur of each octave's first image, in octave pixels (Lowe: 1.6).
    upsample : bool
        Double the image first (Lowe 2004, section 3.3).
    assumed_blur : float
        Blur the input is assumed to have already (Lowe: 0.5).

    Returns
    -------
    GaussianPyramid

    Raises
    ------
    ValueError, TypeError
        Naming the argument, for values out of range and for costs past the limits of
        :mod:`classicvision._limits`: ``n_scales`` above ``MAX_SCALES_PER_OCTAVE``, a blur wider
        than twice the base image (``KERNEL_RADIUS_RELATIVE``), a first octave above
        ``MAX_ARRAY_BYTES``.

    Examples
    --------
    >>> pyramid = gaussian_pyramid(np.zeros((64, 48), np.float32))
    >>> len(pyramid.octaves), pyramid.octaves[0].shape, pyramid.octaves[1].shape
    (3, (6, 128, 96), (6, 64, 48))
    """
    image = check_image(image, check_range=True)
    check_scalar(n_scales, "n_scales", kind=numbers.Integral, low=1)
    _limits.check_limit(n_scales, "MAX_SCALES_PER_OCTAVE", f"n_scales={n_scales!r} scales per octave",
                        "pass fewer (Lowe: 3)")
    check_scalar(sigma, "sigma", low=0, low_inclusive=False)
    check_scalar(assumed_blur, "assumed_blur", low=0)
    if not isinstance(upsample, (bool, np.bool_)):
        raise TypeError(f"upsample must be a bool, got {upsample!r} ({type(upsample).__name__})")
    if n_octaves is not None:
        check_scalar(n_octaves, "n_octaves", kind=numbers.Integral, low=1)
    base_shape = (2 * image.shape[0], 2 * image.shape[1]) if upsample else image.shape
    # The widest blur of an octave is below its top level's sigma 2**((s + 2) / s).
    _limits.check_kernel_radius(4.0 * sigma * 2.0 ** ((n_scales + 2) / n_scales), base_shape,
                                f"sigma={sigma!r} (with n_scales={n_scales!r})", "pass a smaller sigma")
    _limits.check_array_bytes(4.0 * (n_scales + 3) * base_shape[0] * base_shape[1],
                              f"the first octave of {n_scales + 3} levels of {base_shape[0]}x{base_shape[1]} px",
                              "pass a smaller image, fewer n_scales or upsample=False")
    base = _upsample2(image) if upsample else image
    blur = assumed_blur * (2.0 if upsample else 1.0)
    if n_octaves is None:
        side = min(base.shape)
        n_octaves = max(1, int(math.floor(math.log2(max(side, 1) / _MIN_OCTAVE_SIDE))) + 1)
    check_scalar(n_octaves, "n_octaves", kind=numbers.Integral, low=1)
    sigmas = sigma * 2.0 ** (np.arange(n_scales + 3) / n_scales)
    first = math.sqrt(max(sigma ** 2 - blur ** 2, 0.01))
    octaves = []
    for o in range(int(n_octaves)):
        shape = base.shape if o == 0 else octaves[-1][n_scales][::2, ::2].shape
        if min(shape) < 2:
            break
        stack = np.empty((n_scales + 3,) + shape, np.float32)
        if o == 0:
            _blur(base, first, out=stack[0])
        else:
            stack[0] = octaves[-1][n_scales][::2, ::2]
        for layer in range(1, n_scales + 3):
            step = math.sqrt(sigmas[layer] ** 2 - sigmas[layer - 1] ** 2)
            _blur(stack[layer - 1], step, out=stack[layer])  # written in place
        octaves.append(stack)
    return GaussianPyramid(octaves, float(sigma), int(n_scales), bool(upsample))


def _empty_points() -> ScaleSpacePoints:
    return ScaleSpacePoints(np.zeros((0, 2), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32),
                            np.zeros(0, np.int64), np.zeros(0, np.float32))


def dog_extrema(pyramid: GaussianPyramid, *, contrast_threshold: float = 0.03,
                edge_threshold: float = 10.0) -> ScaleSpacePoints:
    """Refined DoG extrema of a Gaussian pyramid (Lowe 2004, sections 3.1, 4 and 4.1).

    Parameters
    ----------
    pyramid : GaussianPyramid
        From :func:`gaussian_pyramid`.
    contrast_threshold : float
        Lowe's 0.03 (intensities in [0, 1], ``s = 3``); a point is rejected when
        ``|D(x^)| * n_scales < contrast_threshold``.
    edge_threshold : float
        Lowe's ``r``: rejected unless ``trace(H)**2 / det(H) < (r + 1)**2 / r``.

    Returns
    -------
    ScaleSpacePoints
        In detection order (octave, layer, row, column), not sorted.
    """
    if not isinstance(pyramid, GaussianPyramid):
        raise TypeError(f"pyramid must be a GaussianPyramid, got {type(pyramid).__name__}")
    check_scalar(contrast_threshold, "contrast_threshold", low=0)
    check_scalar(edge_threshold, "edge_threshold", low=1, low_inclusive=False)
    s = pyramid.n_scales
    pre = np.float32(0.5 * contrast_threshold / s)
    found = []
    for o, stack in enumerate(pyramid.octaves):
        if min(stack.shape[1:]) <= 2 * _BORDER + 2:
            continue
        candidates = _k._extrema(stack, pre, _BORDER)
        if not len(candidates):
            continue
        keep, values, _ = _k._refine(stack, candidates, s, float(contrast_threshold),
                                     float(edge_threshold), _BORDER, _MAX_ITER)
        values = values[keep]
        factor = float(pyramid.octave_factor(o))
        found.append((values, o, factor))
    if not found:
        return _empty_points()
    values = np.concatenate([v for v, _, _ in found])
    octaves = np.concatenate([np.full(len(v), o, np.int64) for v, o, _ in found])
    factor = np.concatenate([np.full(len(v), f, np.float32) for v, _, f in found])
    points = (values[:, :2] * factor[:, None]).astype(np.float32)
    layers = values[:, 2].astype(np.float32)
    scales = (pyramid.sigma * np.exp2(layers / s) * factor).astype(np.float32)
    return ScaleSpacePoints(points, scales, values[:, 3].astype(np.float32), octaves, layers)


def level_of_scale(pyramid: GaussianPyramid, scales) -> tuple[np.ndarray, np.ndarray]:
    """The octave and Gaussian level whose blur is nearest to each scale.

    A scale ``sigma_in`` (input pixels) sits at ``u = s log2(sigma_in / (sigma f_0))`` layers
    above level 0 of octave 0 (``f_0`` the input pixels per octave-0 pixel). The octave is
    ``floor((u - 0.5) / s)`` and the level ``round(u - s o)``, so that DoG points land on the
    level they were detected at (``1 <= l <= s``); both are clipped to the pyramid.

    Returns
    -------
    octaves : (N,) int64 array
    levels : (N,) int64 array, in ``[0, n_scales + 2]``
    """
    scales = np.asarray(scales, dtype=np.float64)
    s = pyramid.n_scales
    u = s * np.log2(np.maximum(scales, 1e-12) / (pyramid.sigma * float(pyramid.octave_factor(0))))
    octaves = np.clip(np.floor((u - 0.5) / s), 0, len(pyramid.octaves) - 1).astype(np.int64)
    levels = np.clip(np.floor(u - s * octaves + 0.5), 0, s + 2).astype(np.int64)
    return octaves, levels


def dog_keypoints(image, *, n_octaves: int | None = None, n_scales: int = 3, sigma: float = 1.6,
                  contrast_threshold: float = 0.03, edge_threshold: float = 10.0, upsample: bool = True,
                  max_points: int | None = None) -> Keypoints:
    """Scale-invariant keypoints: refined extrema of the difference of Gaussians (Lowe 2004).

    See the module docstring for the algorithm and :func:`gaussian_pyramid` /
    :func:`dog_extrema` for the parameters. Orientations are left at 0: assign them with
    :func:`~classicvision.features.orientation.assign_orientations` (on the same pyramid, to
    avoid building it twice, as :func:`~classicvision.features.extract.detect_keypoints` does).

    Parameters
    ----------
    image : (H, W) array (uint8, uint16 or float)
    max_points : int or None
        Keep only the ``max_points`` of largest ``|response|``.

    Returns
    -------
    keypoints : Keypoints
        ``points`` (x, y) and ``scale`` (sigma) in input pixels (OpenCV's ``KeyPoint.size`` is
        ``2 * sigma``), ``orientation`` 0, ``response`` the interpolated DoG value ``D(x^)``,
        signed; rows sorted by ``|response|``, largest first.

    References
    ----------
    Lowe 2004, sections 3-4.

    Examples
    --------
    >>> yy, xx = np.mgrid[:64, :64]
    >>> blob = np.exp(-((xx - 32.0) ** 2 + (yy - 20.0) ** 2) / (2 * 4.0 ** 2)).astype(np.float32)
    >>> kp = dog_keypoints(blob)
    >>> kp.points[0].round(1).tolist(), bool(3.5 < kp.scale[0] < 4.5), bool(kp.response[0] < 0)
    ([32.0, 20.0], True, True)
    """
    if max_points is not None:
        check_scalar(max_points, "max_points", kind=numbers.Integral, low=1)
    pyramid = gaussian_pyramid(image, n_octaves=n_octaves, n_scales=n_scales, sigma=sigma, upsample=upsample)
    found = dog_extrema(pyramid, contrast_threshold=contrast_threshold, edge_threshold=edge_threshold)
    return found.keypoints().strongest(max_points)
