"""Two images to verified matches: keypoints, descriptors, the ratio test, a robust model, timed.

:func:`match_images` is what ``classicvision match`` and the notebooks run. Each stage is a
public function of its own module; this module chains them with one set of defaults and
measures the time of each stage:

1. :func:`classicvision.features.extract.detect_and_describe` on each image (DoG keypoints with
   dominant orientations and RootSIFT by default; upright Harris with ``detector="harris"``);
2. :func:`classicvision.matching.ratio.match_descriptors`: Lowe's ratio test at 0.8 (section
   7.1), optionally with a mutual check;
3. optionally :func:`classicvision.matching.geometry.verify_matches`: the inliers of a robust
   homography or fundamental matrix.

With ``tilts`` (ASIFT-style view synthesis, Morel & Yu 2009), step 1 runs on every simulated view
of each image (:func:`classicvision.features.view_synthesis.detect_and_describe_views`: the
image itself and its tilts at several longitudes), the points mapped back into the image; step
2 matches the two pools of descriptors with the same ratio test, as ASIFT does, and then keeps
one match per pair of positions (:func:`unique_matches`: the same physical pair found in several
views would otherwise count several times).

Why it is off by default: on the synthetic viewpoint suite (``benchmarks/bench_viewpoint.py``,
``benchmarks/results/viewpoint.md``: 32 pairs, tilts 1-6) it is what recovers tilts of 4 and
more (top-100 accuracy 89.5% against 5.3% for the plain path, and OpenCV ASIFT's 87.0% in 0.28x
its time), and it helps at tilt 2 (99.1% against 80.6%), but it costs about 7x the plain
path's time (16 views of detection per image with the recommended :data:`ASIFT_TILTS`: 0.4 s
against 0.06 s per pair) and gains nothing without an out-of-plane turn (tilt 1: 100% top-100
for both). Pass it for wide
baselines (more than about 45 degrees of viewpoint change).

The defaults follow the literature (Lowe's ratio 0.8, magnification 3, clip 0.2) and were
checked on the embedded data only (the motorcycle stereo pair and homography-warped bundled
images); see :mod:`classicvision.features.extract` for why the default detector is DoG.
"""

from __future__ import annotations

import numbers
import time
from typing import NamedTuple

import numpy as np

from .._validation import check_choice, check_scalar
from ..features.affine import AFFINE_DETECTORS, detect_and_describe_affine
from ..features.extract import DETECTORS, detect_and_describe
from ..features.keypoints import Keypoints
from ..features.view_synthesis import check_tilts, detect_and_describe_views
from .geometry import verify_matches
from .ratio import match_descriptors

__all__ = ["PairMatches", "match_images", "unique_matches", "VERIFY_MODELS", "ASIFT_TILTS"]

VERIFY_MODELS = ("homography", "fundamental")
#: Recommended ``tilts`` of :func:`match_images`: 16 views per image (tilt 2 at 5 longitudes, 4 at
#: 10, and the image itself), chosen on the synthetic viewpoint suite's camera image.
ASIFT_TILTS = (2.0, 4.0)
#: Cell in pixels of :func:`unique_matches`.
DUPLICATE_CELL = 2.0


class PairMatches(NamedTuple):
    """The result of :func:`match_images`.

    Attributes
    ----------
    keypoints1, keypoints2 : Keypoints
        Keypoints of each image (``points`` (x, y), ``scale``, ``orientation``, ``response``).
    matches : (M, 2) int64 array
        Index pairs into ``keypoints1`` and ``keypoints2``, most confident first.
    confidence : (M,) float32 array
        ``1 - d1 / d2`` of the ratio test, non-increasing.
    inliers : (M,) bool array or None
        Matches consistent with the verified model; None when ``verify`` is None.
    model : (3, 3) float64 array or None
        The fitted homography (image 1 to image 2) or fundamental matrix; None when not verified
        or when no model was found.
    seconds : dict of str to float
        Wall time of each stage: ``detect``, ``orient`` (when orientations are assigned),
        ``describe`` (both images together), ``match``, ``verify`` (when verified) and ``total``.
        With ``tilts``, detect/orient/describe are the frontal views' and ``views`` is the whole
        of both images' view synthesis, detection and description.
    """

    keypoints1: Keypoints
    keypoints2: Keypoints
    matches: np.ndarray
    confidence: np.ndarray
    inliers: np.ndarray | None
    model: np.ndarray | None
    seconds: dict

    @property
    def points1(self) -> np.ndarray:
        """``keypoints1.points``: (N1, 2) float32 of (x, y)."""
        return self.keypoints1.points

    @property
    def points2(self) -> np.ndarray:
        """``keypoints2.points``: (N2, 2) float32 of (x, y)."""
        return self.keypoints2.points

    def verified(self) -> PairMatches:
        """The same result restricted to the inliers (itself when not verified)."""
        if self.inliers is None:
            return self
        keep = self.inliers
        return self._replace(matches=self.matches[keep], confidence=self.confidence[keep],
                             inliers=np.ones(int(keep.sum()), bool))


def match_images(image1, image2, *, detector: str = "dog", descriptor: str = "rootsift",
                 max_points: int | None = None, upright: bool | None = None, upsample: bool | None = None,
                 max_ratio: float = 0.8, cross_check: bool = False, verify: str | None = None,
                 threshold: float = 3.0, random_state: int | None = 0, tilts=None) -> PairMatches:
    """Match two images: keypoints, SIFT descriptors, the ratio test and optional verification.

    Parameters
    ----------
    image1, image2 : (H, W) arrays (uint8, uint16 or float in [0, 1])
    detector : {'dog', 'harris', 'hessian-affine', 'harris-affine'}
        ``'dog'`` (default): scale- and rotation-invariant DoG keypoints with dominant
        orientations; ``'harris'``: upright single-scale Harris corners, the course's baseline and
        the fastest (see :mod:`classicvision.features.extract`); ``'hessian-affine'`` /
        ``'harris-affine'``: Hessian- or Harris-Laplace points with affine shape adaptation,
        described on their normalised patches (:mod:`classicvision.features.affine`; no
        ``upsample``, no ``tilts``).
    descriptor : {'rootsift', 'sift'}
        RootSIFT (default; Arandjelovic & Zisserman 2012) or plain SIFT.
    max_points, upright, upsample
        As in :func:`~classicvision.features.extract.detect_keypoints`.
    max_ratio : float
        Ratio-test threshold in (0, 1] (Lowe 2004, section 7.1: 0.8).
    cross_check : bool
        Keep only mutual nearest neighbours.
    verify : {None, 'homography', 'fundamental'}
        Fit this model to the matches with :func:`~classicvision.matching.geometry.verify_matches`
        (a plane or a rotating camera; any rigid scene).
    threshold : float
        Inlier bound in pixels for ``verify``.
    random_state : int or None
        Seed of the robust estimator.
    tilts : None or sequence of float >= 1
        None (default): each image as it is. Otherwise ASIFT-style view synthesis (module
        docstring): each image is also described on its simulated views of these tilts
        (longitudes every ``72 / t`` degrees; :func:`~classicvision.features.view_synthesis.view_grid`),
        ``max_points`` then applies to each view, and the keypoints hold every view's points in
        image pixels, duplicates removed from the matches. :data:`ASIFT_TILTS` ``(2, 4)`` is
        the recommended set (16 views per image); more tilts, more views, more time.

    Returns
    -------
    PairMatches

    Examples
    --------
    >>> from classicvision.datasets import embedded_pair
    >>> from classicvision.matching.evaluation import homography_accuracy
    >>> image1, image2, H = embedded_pair()
    >>> r = match_images(image1, image2, verify="homography")
    >>> bool(homography_accuracy(r.points1, r.points2, r.matches[:100], H) > 0.9), r.model.shape
    (True, (3, 3))
    """
    if verify is not None:
        check_choice(verify, "verify", VERIFY_MODELS)
        check_scalar(threshold, "threshold", low=0, low_inclusive=False)
        if random_state is not None:
            check_scalar(random_state, "random_state", kind=numbers.Integral, low=0)
    check_scalar(max_ratio, "max_ratio", low=0.0, high=1.0, low_inclusive=False)
    if not isinstance(cross_check, (bool, np.bool_)):
        raise TypeError(f"cross_check must be a bool, got {cross_check!r} ({type(cross_check).__name__})")
    check_choice(detector, "detector", DETECTORS + AFFINE_DETECTORS)
    affine = detector in AFFINE_DETECTORS
    if affine and (tilts is not None or upsample is not None):
        raise ValueError(f"detector={detector!r} takes neither tilts nor upsample, got tilts={tilts!r}, "
                         f"upsample={upsample!r}")
    if tilts is not None:
        tilts = check_tilts(tilts)
    seconds: dict = {}
    start = time.perf_counter()
    options = dict(detector=detector, descriptor=descriptor, max_points=max_points, upright=upright,
                   upsample=upsample, seconds=seconds)
    if affine:
        del options["upsample"]
        keypoints1, descriptors1 = detect_and_describe_affine(image1, name="image1", **options)
        keypoints2, descriptors2 = detect_and_describe_affine(image2, name="image2", **options)
    elif tilts is None:
        keypoints1, descriptors1 = detect_and_describe(image1, name="image1", **options)
        keypoints2, descriptors2 = detect_and_describe(image2, name="image2", **options)
    else:
        keypoints1, descriptors1, _ = detect_and_describe_views(image1, tilts, name="image1", **options)
        keypoints2, descriptors2, _ = detect_and_describe_views(image2, tilts, name="image2", **options)
    middle = time.perf_counter()
    matches, confidence = match_descriptors(descriptors1, descriptors2, max_ratio=max_ratio,
                                            cross_check=cross_check)
    if tilts is not None:
        keep = unique_matches(keypoints1.points, keypoints2.points, matches)
        matches, confidence = matches[keep], confidence[keep]
    seconds["match"] = time.perf_counter() - middle
    inliers = model = None
    if verify is not None:
        middle = time.perf_counter()
        inliers, model = verify_matches(keypoints1.points, keypoints2.points, matches, model=verify,
                                        threshold=threshold, random_state=random_state)
        seconds["verify"] = time.perf_counter() - middle
    seconds["total"] = time.perf_counter() - start
    return PairMatches(keypoints1, keypoints2, matches, confidence, inliers, model, seconds)


def unique_matches(points1, points2, matches, *, cell: float = DUPLICATE_CELL) -> np.ndarray:
    """Rows of ``matches`` to keep so that each pair of positions is matched once.

    Two matches are duplicates when both their ends fall in the same ``cell``-pixel square
    (``floor(x / cell), floor(y / cell)`` in each image): view synthesis finds one physical point
    in several views. The first row of each group is kept, the most confident when ``matches``
    is sorted as :func:`~classicvision.matching.ratio.match_descriptors` returns it.

    Parameters
    ----------
    points1, points2 : (N1, 2), (N2, 2) float32 arrays of (x, y)
    matches : (M, 2) int64 array
    cell : float
        Side of the squares in pixels (> 0).

    Returns
    -------
    keep : (K,) int64 array
        Increasing row indices into ``matches``.

    Examples
    --------
    >>> p1 = np.array([[10.0, 10.0], [10.4, 10.2], [30.0, 5.0]], np.float32)
    >>> p2 = np.array([[20.0, 20.0], [20.3, 20.1]], np.float32)
    >>> unique_matches(p1, p2, np.array([[0, 0], [1, 1], [2, 1]]))
    array([0, 2])
    """
    check_scalar(cell, "cell", low=0, low_inclusive=False)
    matches = np.asarray(matches, np.int64).reshape(-1, 2)
    if len(matches) == 0:
        return np.zeros(0, np.int64)
    key = np.floor(np.concatenate([np.asarray(points1, np.float64)[matches[:, 0]],
                                   np.asarray(points2, np.float64)[matches[:, 1]]], axis=1) / cell)
    _, first = np.unique(key.astype(np.int64), axis=0, return_index=True)
    return np.sort(first).astype(np.int64)
