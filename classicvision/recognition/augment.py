"""Batched data augmentation and test-time views for the CNN (optional torch).

Every geometric view of an image is one 2x3 affine map in the normalized coordinates of
:func:`torch.nn.functional.affine_grid` (x and y in ``[-1, 1]`` across the stored image, x along
the columns, y down the rows, ``align_corners=False``): an output pixel at ``(u, v)`` samples the
input at

    (x, y) = R(a) diag(f * s_x, s_y) (u, v) + (c_x, c_y)

with ``s_x, s_y`` the crop's half-sides as fractions of the input's (1 = the whole width), ``(c_x,
c_y)`` its centre, ``a`` a rotation and ``f = -1`` for a horizontal mirror. A whole batch is then
resampled by one bilinear :func:`~torch.nn.functional.grid_sample` call (reflection outside the
image), so augmenting costs a small fraction of a training step.

* :func:`random_crop_transforms`: random resized crops (Szegedy et al. 2015's "Inception"
  crops: a random area fraction in ``scale`` and aspect ratio in ``ratio``, placed at random
  inside the image), a small random rotation and a random mirror.
* :func:`jitter_batch`: random brightness offset and contrast factor per image.
* :func:`augment_batch`: both, as the training loop uses them.
* :func:`test_time_transforms`: the fixed views averaged at prediction time (the centre crop, its
  mirror, and four corner crops with their mirrors: Krizhevsky et al. 2012's ten views).

All randomness comes from an explicit :class:`torch.Generator` (on the CPU, whatever the device
of the images), so a seeded run draws the same views on every device and every run.
"""

from __future__ import annotations

import math

__all__ = ["TTA_VIEWS", "augment_batch", "jitter_batch", "random_crop_transforms", "test_time_transforms",
           "warp_batch"]

#: Test-time view sets and the number of views in each.
TTA_VIEWS = {"none": 1, "flip": 2, "crops": 10}

#: Side of the corner crops of ``tta='crops'``, as a fraction of the stored image's side.
CORNER_SIDE = 0.75


def _theta(torch, scale_x, scale_y, centre_x, centre_y, angle, mirror):
    """(n, 2, 3) affine maps from 1-D tensors of half-sides, centres, angles (radians) and mirrors (+-1)."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    row0 = torch.stack([cos * scale_x * mirror, -sin * scale_y, centre_x], dim=1)
    row1 = torch.stack([sin * scale_x * mirror, cos * scale_y, centre_y], dim=1)
    return torch.stack([row0, row1], dim=1)


def random_crop_transforms(n: int, generator, *, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3), rotation: float = 10.0,
                           flip: bool = True, base_scale: float = 1.0):
    """Random resized crops, rotations and mirrors as affine maps (see the module docstring).

    Parameters
    ----------
    n : int
        Number of maps.
    generator : torch.Generator
        CPU generator, the only source of randomness.
    scale : (float, float) or None
        Range of the crop's area as a fraction of the stored image (uniform); None: no random
        crop, every map takes the centred square of side ``base_scale``.
    ratio : (float, float)
        Range of the crop's width / height (log-uniform). Sides above the image's are clipped.
    rotation : float
        Largest rotation, in degrees (uniform in ``[-rotation, rotation]``).
    flip : bool
        Mirror half of the crops, at random.
    base_scale : float
        Side of the fixed centred crop used when ``scale`` is None.

    Returns
    -------
    (n, 2, 3) float32 torch.Tensor
        For :func:`warp_batch`; the crop lies inside the image before rotation.

    References
    ----------
    Szegedy et al., "Going deeper with convolutions", CVPR 2015, §6 (area and aspect-ratio crops).
    """
    import torch

    uniform = lambda low, high: low + (high - low) * torch.rand(n, generator=generator)  # noqa: E731
    if scale is None:
        side_x = side_y = torch.full((n,), float(base_scale))
        centre_x = centre_y = torch.zeros(n)
    else:
        area = uniform(*scale)
        aspect = torch.exp(uniform(math.log(ratio[0]), math.log(ratio[1])))
        side_x = torch.sqrt(area * aspect).clamp(max=1.0)
        side_y = torch.sqrt(area / aspect).clamp(max=1.0)
        centre_x = (2 * torch.rand(n, generator=generator) - 1) * (1 - side_x)
        centre_y = (2 * torch.rand(n, generator=generator) - 1) * (1 - side_y)
    angle = uniform(-math.radians(rotation), math.radians(rotation)) if rotation else torch.zeros(n)
    mirror = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    return _theta(torch, side_x, side_y, centre_x, centre_y, angle, mirror)


def test_time_transforms(tta: str = "flip", *, base_scale: float = 1.0, corner_side: float = CORNER_SIDE):
    """The fixed views of test-time augmentation as affine maps.

    Parameters
    ----------
    tta : {'none', 'flip', 'crops'}
        ``'none'``: the centred crop of side ``base_scale``; ``'flip'``: it and its mirror;
        ``'crops'``: those two and the four corner crops of side ``corner_side`` with their
        mirrors (ten views).
    base_scale : float
        Side of the centred crop, as a fraction of the stored image's.
    corner_side : float
        Side of the corner crops.

    Returns
    -------
    (v, 2, 3) float32 torch.Tensor
        ``v = TTA_VIEWS[tta]`` maps, the plain centred crop first.

    References
    ----------
    Krizhevsky, Sutskever & Hinton, "ImageNet classification with deep convolutional neural
    networks", NIPS 2012, §4.1 (ten views: four corners, the centre, and their mirrors).
    """
    import torch

    if tta not in TTA_VIEWS:
        raise ValueError(f"tta must be one of {', '.join(map(repr, TTA_VIEWS))}, got {tta!r}")
    views = [(base_scale, 0.0, 0.0, 1.0)]
    if tta in ("flip", "crops"):
        views.append((base_scale, 0.0, 0.0, -1.0))
    if tta == "crops":
        shift = 1 - corner_side
        views += [(corner_side, sx * shift, sy * shift, mirror) for sx in (-1, 1) for sy in (-1, 1)
                  for mirror in (1.0, -1.0)]
    side, cx, cy, mirror = (torch.tensor(column, dtype=torch.float32) for column in zip(*views))
    return _theta(torch, side, side, cx, cy, torch.zeros(len(views)), mirror)


def warp_batch(batch, transforms, size: int):
    """Resample a ``(n, C, H, W)`` batch through ``(n, 2, 3)`` affine maps into ``(n, C, size, size)``.

    Bilinear interpolation, reflection at the border, ``align_corners=False``: a centred map of
    half-side ``size / W`` (``W - size`` even) lands every output pixel on an input pixel, so a
    crop or a mirror is exact.
    """
    import torch.nn.functional as F

    transforms = transforms.to(device=batch.device, dtype=batch.dtype)
    grid = F.affine_grid(transforms, [batch.shape[0], batch.shape[1], size, size], align_corners=False)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def jitter_batch(batch, generator, jitter: float):
    """Random contrast factor in ``1 +- jitter`` about each image's mean, then a brightness offset in ``+- jitter``.

    ``batch`` is ``(n, C, H, W)`` in ``[0, 1]`` units; the result is not clipped. ``jitter=0`` returns
    ``batch`` itself and draws nothing from ``generator``.
    """
    import torch

    if not jitter:
        return batch
    n = batch.shape[0]
    contrast = 1 + jitter * (2 * torch.rand(n, 1, 1, 1, generator=generator) - 1)
    brightness = jitter * (2 * torch.rand(n, 1, 1, 1, generator=generator) - 1)
    contrast, brightness = contrast.to(batch.device), brightness.to(batch.device)
    mean = batch.mean(dim=(1, 2, 3), keepdim=True)
    return (batch - mean) * contrast + mean + brightness


def augment_batch(batch, size: int, generator, *, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3), rotation: float = 10.0,
                  flip: bool = True, jitter: float = 0.2, base_scale: float | None = None):
    """Random resized crop, rotation and mirror (:func:`random_crop_transforms`), then :func:`jitter_batch`.

    Parameters
    ----------
    batch : (n, 1, H, W) float32 torch.Tensor
        Stored images in ``[0, 1]`` (square, ``H = W >= size`` usually).
    size : int
        Side of the output crops, in pixels.
    generator : torch.Generator
        CPU generator, the only source of randomness.
    scale, ratio, rotation, flip
        See :func:`random_crop_transforms`.
    jitter : float
        See :func:`jitter_batch`.
    base_scale : float or None
        Side of the centred crop when ``scale`` is None; default ``size / W``, the test-time centre crop.

    Returns
    -------
    (n, 1, size, size) float32 torch.Tensor

    Examples
    --------
    >>> import torch
    >>> generator = torch.Generator().manual_seed(0)
    >>> tuple(augment_batch(torch.rand(4, 1, 36, 36), 32, generator).shape)
    (4, 1, 32, 32)
    """
    if base_scale is None:
        base_scale = size / batch.shape[-1]
    transforms = random_crop_transforms(batch.shape[0], generator, scale=scale, ratio=ratio, rotation=rotation,
                                        flip=flip, base_scale=base_scale)
    return jitter_batch(warp_batch(batch, transforms, size), generator, jitter)
