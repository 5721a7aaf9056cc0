"""Images -> local features -> encodings -> classifiers, as scikit-learn estimators (the CNN needs torch)."""

from .._lazy import attach

NAMES = {
    "codebook": ["assign_words", "learn_codebook"],
    "encoding": ["BagOfWords"],
    "fisher": ["FisherVector", "fisher_vector"],
    "gmm": ["GaussianMixtureDiag", "fit_gmm", "gmm_posteriors"],
    "vlad": ["VLAD"],
    "transformers": ["DenseSIFT", "ImageFeatures", "TinyImages"],
    "cnn": ["CNNClassifier", "CNNFeatures"],
    "cam": ["grad_cam"],
}
__getattr__, __dir__, __all__ = attach(__name__, NAMES, tuple(NAMES))
