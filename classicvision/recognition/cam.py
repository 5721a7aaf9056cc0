"""What a trained CNN looks at: feature maps and Grad-CAM class activation maps (optional torch).

Both functions take a fitted :class:`~classicvision.recognition.cnn.CNNClassifier` and images as
``fit`` does, and work on the centred crops the network sees (:meth:`CNNClassifier.network_inputs
<classicvision.recognition.cnn.CNNClassifier.network_inputs>`), without test-time augmentation.

Grad-CAM (Selvaraju et al. 2017, eq. 1-2): with ``A`` the ``(C, h, w)`` output of the network's
last stage and ``y_c`` the logit (before the softmax) of class ``c``, each channel gets the weight
``alpha_k = mean_ij d y_c / d A_k[i, j]`` and the map is ``ReLU(sum_k alpha_k A_k)``, upsampled
bilinearly to the input's size. For these networks, whose head is average pooling then one
linear layer, ``alpha_k = W[c, k] / (h w)``: Grad-CAM is Zhou et al. 2016's class activation map
divided by ``h w``.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .networks import memory_format

__all__ = ["feature_maps", "grad_cam"]


def _inputs(classifier, images):
    import torch

    check_is_fitted(classifier, "model_")
    crops = classifier.network_inputs(images, standardized=True)
    x = torch.from_numpy(crops).unsqueeze(1).to(classifier.device_)
    return torch, x.contiguous(memory_format=memory_format(classifier.model_))


def feature_maps(classifier, images) -> list[np.ndarray]:
    """The outputs of the stem (ResNet) and of every stage or block, for each image.

    Parameters
    ----------
    classifier : CNNClassifier
        Fitted.
    images : list of 2-D float32 arrays
        Any sizes, as for ``predict``.

    Returns
    -------
    list of (n, C, h, w) float32 arrays
        In the order of the network, the last one the map that is pooled into the features.

    Examples
    --------
    >>> from classicvision.recognition.cnn import CNNClassifier
    >>> images = [np.full((20, 20), i % 2, np.float32) for i in range(4)]
    >>> clf = CNNClassifier(epochs=1, image_size=16, channels=(4, 8), random_state=0, val_fraction=0)
    >>> [m.shape for m in feature_maps(clf.fit(images, [0, 1, 0, 1]), images[:1])]
    [(1, 4, 8, 8), (1, 4, 8, 8), (1, 8, 4, 4)]
    """
    torch, x = _inputs(classifier, images)
    classifier.model_.eval()
    with torch.inference_mode():
        return [m.float().cpu().numpy() for m in classifier.model_.feature_maps(x)]


def grad_cam(classifier, images, target=None) -> np.ndarray:
    """Gradient-weighted class activation maps of the network's last stage.

    Parameters
    ----------
    classifier : CNNClassifier
        Fitted.
    images : list of 2-D float32 arrays
        Any sizes, as for ``predict``; the maps are those of the centred crops the network sees.
    target : None, label, or (n,) array of labels
        The class explained for each image (labels as in ``classifier.classes_``); None: the
        class the network predicts from the centred crop.

    Returns
    -------
    (n, S, S) float32 array
        ``ReLU(sum_k alpha_k A_k)`` upsampled bilinearly (``align_corners=False``), not
        normalized: 0 where nothing speaks for the class; rows and columns as in
        ``classifier.network_inputs(images)``.

    References
    ----------
    Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra, "Grad-CAM: visual explanations from deep
    networks via gradient-based localization", ICCV 2017, eq. 1-2.
    Zhou, Khosla, Lapedriza, Oliva & Torralba, "Learning deep features for discriminative
    localization", CVPR 2016 (class activation maps).

    Examples
    --------
    >>> from classicvision.recognition.cnn import CNNClassifier
    >>> images = [np.full((20, 20), i % 2, np.float32) for i in range(4)]
    >>> clf = CNNClassifier(epochs=1, image_size=16, channels=(4, 8), random_state=0, val_fraction=0)
    >>> maps = grad_cam(clf.fit(images, [0, 1, 0, 1]), images, target=1)
    >>> maps.shape, maps.dtype, bool((maps >= 0).all())
    ((4, 16, 16), dtype('float32'), True)
    """
    torch, x = _inputs(classifier, images)
    n, size = x.shape[0], x.shape[-1]
    if n == 0:
        return np.zeros((0, size, size), np.float32)
    model = classifier.model_
    model.eval()
    with torch.enable_grad():
        last = model.feature_maps(x)[-1].detach().requires_grad_(True)
        logits = model.classifier(model.dropout(last.mean(dim=(2, 3))))
        if target is None:
            codes = logits.argmax(1)
        else:
            labels = np.broadcast_to(np.asarray(target), (n,))
            lookup = {label: i for i, label in enumerate(classifier.classes_.tolist())}
            missing = [label for label in labels.tolist() if label not in lookup]
            if missing:
                raise ValueError(f"target must be labels of classifier.classes_, got {missing[0]!r}")
            codes = torch.as_tensor([lookup[label] for label in labels.tolist()], device=logits.device)
        score = logits.gather(1, codes[:, None]).sum()
        (gradient,) = torch.autograd.grad(score, last)
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * last.detach()).sum(dim=1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, size=(size, size), mode="bilinear", align_corners=False)
    return cam[:, 0].float().cpu().numpy()
