"""Linear filters and image gradients: Gaussian smoothing, Sobel, derivative of Gaussian.

Every filter here is separable, ``K = k_y k_x^T``, and computed as two 1-D correlations by numba
kernels on threads: the Gaussian by the blur of :mod:`classicvision._kernels.blur`; the gradients
``gx, gy`` of Sobel and of the derivative of Gaussian together, in one sweep that folds the
symmetric smoothing and antisymmetric derivative taps (y-pass, then x-pass, reading the border
through index maps instead of a padded copy); any other kernel on a padded copy.
:func:`gaussian` uses the package's blur instead (:mod:`classicvision._kernels.blur`: folded
symmetric taps, the border read in place, no padded copy) for the modes it has, ``'reflect'``,
``'mirror'``, ``'nearest'`` and ``'wrap'``, when the kernel fits the image.

Conventions (STYLE.md):

* ``gx`` is the derivative along x (columns, left to right), ``gy`` along y (rows, top to
  bottom); for the ramp ``image[y, x] = x`` we return ``gx == 1`` and ``gy == 0``.
* Orientation is ``arctan2(gy, gx)`` in radians in ``[-pi, pi]`` with y pointing down the rows,
  i.e. clockwise on screen.
* Border modes keep scipy.ndimage's names: ``'reflect'`` (``dcba|abcd``, OpenCV's
  ``BORDER_REFLECT``, the default), ``'mirror'`` (``dcb|abcd``, OpenCV's default
  ``BORDER_REFLECT_101``), ``'nearest'`` (``aaa|abcd``), ``'constant'`` (zeros) and ``'wrap'``.

References
----------
I. Sobel and G. Feldman, "A 3x3 isotropic gradient operator for image processing", 1968.
R. Szeliski, *Computer Vision: Algorithms and Applications*, 2nd ed., 2022, section 3.2.
"""

from __future__ import annotations

import numpy as np

from .. import _limits
from .._kernels.blur import _blur
from .._kernels.gradient import border_map, gradient_pair
from .._kernels.separable import _separable_valid
from .._validation import check_choice, check_image, check_scalar

__all__ = [
    "gaussian_kernel1d",
    "gaussian_derivative_kernel1d",
    "separable_filter",
    "gaussian",
    "sobel",
    "gaussian_gradient",
    "magnitude_orientation",
    "BORDER_MODES",
]

# scipy.ndimage name -> numpy.pad name
_PAD_MODES = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "constant": "constant", "wrap": "wrap"}
BORDER_MODES = tuple(_PAD_MODES)
_BLUR_MODES = ("reflect", "mirror", "nearest", "wrap")   # the border modes of _kernels.blur

_SOBEL_SMOOTH = np.array([1.0, 2.0, 1.0], np.float32) / 4.0
_SOBEL_DERIVATIVE = np.array([-1.0, 0.0, 1.0], np.float32) / 2.0


def _radius(sigma: float, truncate: float) -> int:
    return max(1, int(truncate * float(sigma) + 0.5))


def gaussian_kernel1d(sigma: float, *, truncate: float = 4.0) -> np.ndarray:
    """Sampled 1-D Gaussian, normalized to sum to 1.

    Parameters
    ----------
    sigma : float
        Standard deviation in pixels, > 0.
    truncate : float
        The kernel has radius ``r = int(truncate * sigma + 0.5)`` (at least 1), as in scipy.ndimage.

    Returns
    -------
    kernel : (2r + 1,) float32 array
        ``g[k] = exp(-(k - r)**2 / (2 sigma**2)) / Z``.

    Raises
    ------
    ValueError
        For ``sigma`` or ``truncate`` not > 0, or a radius above
        :data:`classicvision._limits.MAX_KERNEL_RADIUS` (``2**20`` taps).

    Examples
    --------
    >>> k = gaussian_kernel1d(1.0)
    >>> k.shape, float(k.sum().round(6))
    ((9,), 1.0)
    """
    check_scalar(sigma, "sigma", low=0, low_inclusive=False)
    check_scalar(truncate, "truncate", low=0, low_inclusive=False)
    _limits.check_limit(float(truncate) * float(sigma), "MAX_KERNEL_RADIUS",
                        f"sigma={sigma!r} with truncate={truncate!r} gives a kernel radius of "
                        f"{float(truncate) * float(sigma):.4g} taps", "pass a smaller sigma or truncate")
    r = _radius(sigma, truncate)
    t = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return (g / g.sum()).astype(np.float32)


def gaussian_derivative_kernel1d(sigma: float, *, truncate: float = 4.0) -> np.ndarray:
    """Correlation kernel of the first derivative of a Gaussian (scipy.ndimage's ``order=1``).

    ``d[k] = (k - r) / sigma**2 * g[k]`` with ``g`` from :func:`gaussian_kernel1d`, so that
    correlating a signal with ``d`` estimates its derivative (``+1`` on the ramp ``f(t) = t``
    up to the truncation of the tails).

    Returns
    -------
    kernel : (2r + 1,) float32 array, antisymmetric
    """
    g = gaussian_kernel1d(sigma, truncate=truncate).astype(np.float64)
    r = g.size // 2
    t = np.arange(-r, r + 1, dtype=np.float64)
    return (t / float(sigma) ** 2 * g).astype(np.float32)


def _pad(image: np.ndarray, radius: int, mode: str) -> np.ndarray:
    return np.pad(image, radius, mode=_PAD_MODES[mode])


def _to_common_length(kernel: np.ndarray, radius: int) -> np.ndarray:
    extra = radius - kernel.size // 2
    return np.pad(kernel, extra) if extra else kernel


def _separable(image: np.ndarray, kernel_x: np.ndarray, kernel_y: np.ndarray, mode: str) -> np.ndarray:
    """Unchecked separable correlation of a float32 image with odd-length float32 kernels."""
    radius = max(kernel_x.size, kernel_y.size) // 2
    kx = _to_common_length(np.ascontiguousarray(kernel_x, np.float32), radius)
    ky = _to_common_length(np.ascontiguousarray(kernel_y, np.float32), radius)
    return _separable_valid(_pad(image, radius, mode), kx, ky)


def _check_sigma(sigma, truncate, shape) -> None:
    """``sigma`` and ``truncate`` > 0 and a kernel within the limit relative to the image
    (:func:`classicvision._limits.check_kernel_radius`)."""
    check_scalar(sigma, "sigma", low=0, low_inclusive=False)
    check_scalar(truncate, "truncate", low=0, low_inclusive=False)
    _limits.check_blur(sigma, shape, "sigma", float(truncate))


def _check_kernel(kernel, name: str) -> np.ndarray:
    kernel = np.asarray(kernel)
    if kernel.ndim != 1 or kernel.size % 2 == 0:
        raise ValueError(f"{name} must be 1-D of odd length, got shape {kernel.shape}")
    if kernel.dtype.kind not in "uif" or not np.isfinite(kernel).all():
        raise ValueError(f"{name} must hold finite numbers")
    return kernel.astype(np.float32)


def separable_filter(image, kernel_x, kernel_y, *, mode: str = "reflect") -> np.ndarray:
    """Correlate ``image`` with the separable kernel ``kernel_y[:, None] * kernel_x[None, :]``.

    Parameters
    ----------
    image : (H, W) array (uint8, uint16 or float)
    kernel_x : (2a + 1,) array
        Applied along x (each row); ``out[y, x] = sum_k kernel_x[k] image[y, x + k - a]``.
    kernel_y : (2b + 1,) array
        Applied along y (each column).
    mode : {'reflect', 'mirror', 'nearest', 'constant', 'wrap'}
        Border handling, see the module docstring.

    Returns
    -------
    out : (H, W) float32 array
    """
    image = check_image(image)
    check_choice(mode, "mode", BORDER_MODES)
    kernel_x, kernel_y = _check_kernel(kernel_x, "kernel_x"), _check_kernel(kernel_y, "kernel_y")
    _limits.check_kernel_radius(max(kernel_x.size, kernel_y.size) // 2, image.shape,
                                f"kernel_x and kernel_y of lengths {kernel_x.size} and {kernel_y.size}",
                                "pass shorter kernels")
    return _separable(image, kernel_x, kernel_y, mode)


def gaussian(image, sigma: float, *, mode: str = "reflect", truncate: float = 4.0) -> np.ndarray:
    """Smooth ``image`` with an isotropic Gaussian of standard deviation ``sigma`` pixels.

    Parameters
    ----------
    image : (H, W) array (uint8, uint16 or float)
    sigma : float
        Standard deviation in pixels, > 0.
    mode : str
        Border mode (module docstring); ``'reflect'`` matches ``scipy.ndimage.gaussian_filter``.
    truncate : float
        Kernel radius in standard deviations.

    Returns
    -------
    smoothed : (H, W) float32 array

    Raises
    ------
    ValueError
        For ``sigma``/``truncate`` not > 0, or a kernel radius ``truncate * sigma`` above
        ``KERNEL_RADIUS_RELATIVE * max(H, W, 64)`` (2x the image's larger side; see
        :mod:`classicvision._limits`): such a kernel only returns the image's mean.

    Examples
    --------
    >>> float(gaussian(np.ones((5, 5), np.float32), 1.0)[2, 2].round(6))
    1.0
    """
    image = check_image(image)
    check_choice(mode, "mode", BORDER_MODES)
    _check_sigma(sigma, truncate, image.shape)
    g = gaussian_kernel1d(sigma, truncate=truncate)
    blurred = _blur(image, g, mode) if mode in _BLUR_MODES else None
    return _separable(image, g, g, mode) if blurred is None else blurred


def sobel(image, *, mode: str = "reflect") -> tuple[np.ndarray, np.ndarray]:
    """Sobel derivatives, scaled to estimate the gradient in intensity per pixel.

    ``gx`` correlates rows with ``[-1, 0, 1] / 2`` and columns with ``[1, 2, 1] / 4``; ``gy``
    the other way round. This equals ``cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3) / 8`` (with
    the same border), and gives exactly 1 on a unit ramp.

    Parameters
    ----------
    image : (H, W) array (uint8, uint16 or float)
    mode : str
        Border mode (module docstring).

    Returns
    -------
    gx, gy : (H, W) float32 arrays
        Derivatives along x (columns) and y (rows).

    References
    ----------
    Sobel & Feldman 1968; Szeliski 2022, section 3.2.3, eq. 3.58 (edge operators).

    Examples
    --------
    >>> ramp = np.tile(np.arange(5, dtype=np.float32), (5, 1))
    >>> gx, gy = sobel(ramp)
    >>> float(gx[2, 2]), float(gy[2, 2])
    (1.0, 0.0)
    """
    image = check_image(image, finite=False)   # the gradient kernel checks every pixel
    check_choice(mode, "mode", BORDER_MODES)
    height, width = image.shape
    return gradient_pair(image, border_map(height, 1, mode), border_map(width, 1, mode), _SOBEL_SMOOTH,
                         _SOBEL_DERIVATIVE)


def gaussian_gradient(image, sigma: float, *, mode: str = "reflect",
                      truncate: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Derivative-of-Gaussian gradient: the gradient of ``image`` smoothed at scale ``sigma``.

    ``gx = image * (dG/dx)`` and ``gy = image * (dG/dy)``, computed separably; equal to
    ``scipy.ndimage.gaussian_filter(image, sigma, order=(0, 1))`` for ``gx`` (same border and
    truncation).

    Parameters
    ----------
    image : (H, W) array (uint8, uint16 or float)
    sigma : float
        Scale of the Gaussian in pixels, > 0.
    mode, truncate
        As in :func:`gaussian`.

    Returns
    -------
    gx, gy : (H, W) float32 arrays

    References
    ----------
    Szeliski 2022, section 3.2.3 (derivative of Gaussian); Canny 1986.

    Examples
    --------
    >>> ramp = np.tile(np.arange(32, dtype=np.float32), (32, 1))
    >>> gx, gy = gaussian_gradient(ramp, 1.0)
    >>> round(float(gx[16, 16]), 3), abs(float(gy[16, 16])) < 1e-6
    (1.0, True)
    """
    image = check_image(image, finite=False)   # the gradient kernel checks every pixel
    check_choice(mode, "mode", BORDER_MODES)
    _check_sigma(sigma, truncate, image.shape)
    g = gaussian_kernel1d(sigma, truncate=truncate)
    d = gaussian_derivative_kernel1d(sigma, truncate=truncate)
    height, width = image.shape
    r = g.size // 2
    return gradient_pair(image, border_map(height, r, mode), border_map(width, r, mode), g, d)


def magnitude_orientation(gx, gy) -> tuple[np.ndarray, np.ndarray]:
    """Gradient magnitude ``sqrt(gx**2 + gy**2)`` and orientation ``arctan2(gy, gx)``.

    Parameters
    ----------
    gx, gy : (H, W) float arrays of the same shape

    Returns
    -------
    magnitude : (H, W) float32 array, >= 0
    orientation : (H, W) float32 array of radians in ``[-pi, pi]``
        Measured from the +x axis towards +y (down the rows): clockwise on screen.

    Examples
    --------
    >>> m, o = magnitude_orientation(np.array([[0.0]]), np.array([[2.0]]))
    >>> float(m[0, 0]), round(float(o[0, 0]), 4)
    (2.0, 1.5708)
    """
    gx = np.asarray(gx)
    gy = np.asarray(gy)
    if gx.shape != gy.shape:
        raise ValueError(f"gx and gy must have the same shape, got {gx.shape} and {gy.shape}")
    for name, g in (("gx", gx), ("gy", gy)):
        if g.dtype.kind not in "uif":
            raise TypeError(f"{name} must be numeric, got dtype {g.dtype}")
    gx = gx.astype(np.float32, copy=False)
    gy = gy.astype(np.float32, copy=False)
    return np.hypot(gx, gy), np.arctan2(gy, gx)

