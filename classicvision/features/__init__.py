"""Image -> keypoints -> descriptors: filters, detectors (Harris, DoG), orientations, SIFT, dense SIFT."""

from .._lazy import attach

NAMES = {
    "filters": ["gaussian", "gaussian_derivative_kernel1d", "gaussian_gradient", "gaussian_kernel1d",
                "magnitude_orientation", "separable_filter", "sobel"],
    "keypoints": ["Keypoints", "from_cv2_keypoints", "to_cv2_keypoints"],
    "harris": ["harris", "harris_response"],
    "scale_space": ["GaussianPyramid", "dog_extrema", "dog_keypoints", "gaussian_pyramid", "level_of_scale"],
    "orientation": ["assign_orientations", "dominant_orientations", "orientation_histograms"],
    "sift": ["sift_descriptors"],
    "dense_sift": ["dense_grid", "dense_sift", "dense_sift_multi"],
    "extract": ["detect_and_describe", "detect_keypoints"],
    "affine": ["adapt_affine_shape", "detect_and_describe_affine", "harris_laplace", "hessian_laplace",
               "normalized_patches"],
    "view_synthesis": ["detect_and_describe_views", "map_to_image", "simulate_view", "simulated_views", "view_grid"],
}
__getattr__, __dir__, __all__ = attach(__name__, NAMES, tuple(NAMES))
