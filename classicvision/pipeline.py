"""Local features end to end: Harris points -> SIFT descriptors -> ratio-test matches, timed.

:func:`match_images` is what ``classicvision match`` and the notebooks run. Each stage is a
public function of its own module; this module only chains them with one set of defaults and
measures the time of each stage. The defaults follow the literature
(Lowe's ratio 0.8, a 4x4x8 descriptor of 16 px); the Harris threshold (0.001 of the strongest
response) and RootSIFT were chosen on the embedded validation pairs only (the Middlebury
motorcycle stereo pair and the homography-warped ``camera`` image: top-100 accuracy 0.98 and
0.94), never on the evaluation pairs, and they are the same for every pair.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from ._validation import check_image
from .harris import harris
from .matching import match_descriptors
from .sift import sift_descriptors

__all__ = ["PairMatches", "detect_and_describe", "match_images"]


class PairMatches(NamedTuple):
    """The result of :func:`match_images`.

    Attributes
    ----------
    points1, points2 : (N1, 2), (N2, 2) float32 arrays of (x, y)
        Interest points in each image, strongest first.
    matches : (M, 2) int64 array
        Index pairs into ``points1`` and ``points2``, most confident first.
    confidence : (M,) float32 array
        ``1 - d1 / d2`` of the ratio test, decreasing.
    seconds : dict of str to float
        Wall time of each stage (``detect``, ``describe``, ``match``) and ``total``.
    """

    points1: np.ndarray
    points2: np.ndarray
    matches: np.ndarray
    confidence: np.ndarray
    seconds: dict


def detect_and_describe(image, *, max_points: int = 3000, sigma: float = 1.0, threshold_rel: float = 0.001,
                        size: float = 16.0, rootsift: bool = True, seconds: dict | None = None):
    """Harris points (strongest ``max_points``) and their upright SIFT descriptors.

    Returns
    -------
    points : (N, 2) float32 array of (x, y)
    descriptors : (N, 128) float32 array
    """
    image = check_image(image)
    start = time.perf_counter()
    points, _ = harris(image, sigma=sigma, threshold_rel=threshold_rel, max_points=max_points)
    middle = time.perf_counter()
    descriptors = sift_descriptors(image, points, size=size, rootsift=rootsift)
    end = time.perf_counter()
    if seconds is not None:
        seconds["detect"] = seconds.get("detect", 0.0) + middle - start
        seconds["describe"] = seconds.get("describe", 0.0) + end - middle
    return points, descriptors


def match_images(image1, image2, *, max_points: int = 3000, sigma: float = 1.0, threshold_rel: float = 0.001,
                 size: float = 16.0, max_ratio: float = 0.8, cross_check: bool = False,
                 rootsift: bool = True) -> PairMatches:
    """Match two images with Harris points, SIFT descriptors and the ratio test.

    Parameters
    ----------
    image1, image2 : (H, W) arrays (uint8, uint16 or float)
    max_points : int
        Strongest Harris points kept per image.
    sigma : float
        Integration scale of the Harris structure tensor.
    threshold_rel : float
        Harris points must exceed this fraction of the strongest response.
    size : float
        Side of the SIFT support in pixels.
    max_ratio : float
        Ratio-test threshold (Lowe 2004 section 7.1).
    cross_check : bool
        Keep only mutual nearest neighbours.
    rootsift : bool
        Use RootSIFT descriptors (Arandjelovic & Zisserman 2012).

    Returns
    -------
    PairMatches
    """
    image1 = check_image(image1, "image1")
    image2 = check_image(image2, "image2")
    seconds: dict = {}
    start = time.perf_counter()
    options = dict(max_points=max_points, sigma=sigma, threshold_rel=threshold_rel, size=size, rootsift=rootsift, seconds=seconds)
    points1, descriptors1 = detect_and_describe(image1, **options)
    points2, descriptors2 = detect_and_describe(image2, **options)
    middle = time.perf_counter()
    matches, confidence = match_descriptors(descriptors1, descriptors2, max_ratio=max_ratio,
                                            cross_check=cross_check)
    end = time.perf_counter()
    seconds["match"] = end - middle
    seconds["total"] = end - start
    return PairMatches(points1, points2, matches, confidence, seconds)
