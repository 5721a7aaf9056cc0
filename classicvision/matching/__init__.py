"""Descriptors -> matches -> verified matches -> scores, and the two-image pipeline."""

from .._lazy import attach

NAMES = {
    "nearest": ["nearest_neighbors", "nearest_two"],
    "ratio": ["match_descriptors"],
    "geometry": ["verify_matches"],
    "evaluation": ["disparity_accuracy", "disparity_check", "disparity_correct", "ground_truth_accuracy",
                   "ground_truth_correct", "homography_accuracy", "homography_correct", "warp_points"],
    "pipeline": ["PairMatches", "match_images"],
}
__getattr__, __dir__, __all__ = attach(__name__, NAMES, tuple(NAMES))
