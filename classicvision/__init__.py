"""classicvision: classical computer-vision features.

Gradients, Harris and DoG interest points, SIFT descriptors (sparse and dense), ratio-test
matching with ground-truth evaluation, and bag-of-visual-words scene classification. Images are
2-D float32 arrays in [0, 1]; points are (N, 2) float32 arrays of (x, y). Importing the package
never imports torch or matplotlib: ``classicvision.viz`` and ``classicvision.cnn`` load them.
"""

from .bovw import BagOfWords, DenseSIFT, ImageFeatures, TinyImages
from .codebook import assign_words, learn_codebook
from .datasets import data_dir, embedded_pair, load_image_folder, load_pair, read_images, stereo_pair
from .dense_sift import dense_grid, dense_sift, dense_sift_multi
from .evaluation import (disparity_accuracy, disparity_check, disparity_correct, ground_truth_accuracy,
                         ground_truth_correct, homography_accuracy, homography_correct, warp_points)
from .filters import (gaussian, gaussian_derivative_kernel1d, gaussian_gradient, gaussian_kernel1d,
                      magnitude_orientation, separable_filter, sobel)
from .geometry import verify_matches
from .harris import harris, harris_response
from .invariant import InvariantMatches, detect_and_describe_invariant, match_images_invariant
from .io import as_float_image, read_image
from .matching import match_descriptors, nearest_two
from .orientation import dominant_orientations
from .pipeline import PairMatches, detect_and_describe, match_images
from .scale_space import dog_keypoints, gaussian_pyramid
from .sift import sift_descriptors, to_cv2_keypoints

__version__ = "0.1.0"

__all__ = [
    "BagOfWords", "DenseSIFT", "ImageFeatures", "InvariantMatches", "PairMatches", "TinyImages",
    "as_float_image", "assign_words", "data_dir", "dense_grid", "dense_sift", "dense_sift_multi",
    "detect_and_describe", "detect_and_describe_invariant", "disparity_accuracy", "disparity_check",
    "disparity_correct", "dog_keypoints", "dominant_orientations", "embedded_pair", "gaussian",
    "gaussian_derivative_kernel1d", "gaussian_gradient", "gaussian_kernel1d", "gaussian_pyramid",
    "ground_truth_accuracy", "ground_truth_correct", "harris", "harris_response", "homography_accuracy",
    "homography_correct", "learn_codebook", "load_image_folder", "load_pair", "magnitude_orientation",
    "match_descriptors", "match_images", "match_images_invariant", "nearest_two", "read_image", "read_images",
    "separable_filter", "sift_descriptors", "sobel", "stereo_pair", "to_cv2_keypoints", "verify_matches",
    "warp_points",
]
