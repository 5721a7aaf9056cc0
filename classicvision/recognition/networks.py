"""The two convolutional networks of :class:`~classicvision.recognition.cnn.CNNClassifier` (optional torch).

``"resnet"`` (the default) is a small residual network in the shape of He et al. 2016's ResNet:
a stride-2 3x3 stem convolution (``channels[0]`` wide), then one stage per entry of ``channels``,
each of ``blocks`` basic residual blocks (two 3x3 convolution -> batch normalization (Ioffe &
Szegedy 2015) pairs and an identity, or a strided 1x1 projection where the shape changes), the
first stage at the stem's resolution and every later one halving it; then global average
pooling, dropout (Srivastava et al. 2014) and one linear layer. The last batch normalization of
every residual branch starts at zero (Goyal et al. 2017, §5.1), so each block starts as the
identity. An ``S x S`` input ends as an ``S / 2**len(channels)`` map: 112 px and four stages give
7 x 7.

``"simple"`` is the SimpleNet of the usual scene-recognition course project (Georgia Tech CS 6476,
projects 4/5) that this library used before: blocks of 3x3 convolution -> batch normalization ->
ReLU -> 2x2 max-pooling, then the same head. Its parameter names are those of the weights files
written before the ResNet existed, which therefore still load.

Both networks take ``(n, 1, S, S)`` float32 tensors (standardized grey images) and offer
``forward`` (``(n, n_classes)`` logits), ``embed`` (the pooled ``(n, channels[-1])`` features
before dropout) and ``feature_maps`` (the output of the stem and of every stage, for pictures and
for Grad-CAM); ``classifier`` is the last linear layer.

torch is imported when a network is built, never when this module is imported.
"""

from __future__ import annotations

import functools

__all__ = ["ARCHITECTURES", "build_network", "memory_format"]

#: The names :func:`build_network` accepts.
ARCHITECTURES = ("resnet", "simple")


@functools.lru_cache(maxsize=1)
def _modules():
    """The nn.Module classes, defined once torch is imported."""
    import torch
    from torch import nn

    class BasicBlock(nn.Module):
        """conv3x3-BN-ReLU-conv3x3-BN plus the shortcut, then ReLU (He et al. 2016, Fig. 2)."""

        def __init__(self, inputs: int, outputs: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(outputs)
            self.conv2 = nn.Conv2d(outputs, outputs, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(outputs)
            nn.init.zeros_(self.bn2.weight)
            self.shortcut = nn.Identity()
            if stride != 1 or inputs != outputs:
                self.shortcut = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride=stride, bias=False),
                                              nn.BatchNorm2d(outputs))

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class _Head(nn.Module):
        """Shared by both networks: average pooling, dropout, linear."""

        def embed(self, x):
            return self.feature_maps(x)[-1].mean(dim=(2, 3))

        def forward(self, x):
            return self.classifier(self.dropout(self.embed(x)))

    class ResNet(_Head):
        def __init__(self, n_classes, channels, blocks, dropout):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, channels[0], 3, stride=2, padding=1, bias=False),
                                      nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True))
            stages, previous = [], channels[0]
            for i, width in enumerate(channels):
                stage = [BasicBlock(previous if b == 0 else width, width, 2 if (b == 0 and i > 0) else 1)
                         for b in range(blocks)]
                stages.append(nn.Sequential(*stage))
                previous = width
            self.stages = nn.ModuleList(stages)
            self.dropout = nn.Dropout(dropout)
            self.classifier = nn.Linear(previous, n_classes)
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

        def feature_maps(self, x):
            maps = [self.stem(x)]
            for stage in self.stages:
                maps.append(stage(maps[-1]))
            return maps

    class SimpleNet(_Head):
        def __init__(self, n_classes, channels, dropout):
            super().__init__()
            layers, previous = [], 1
            for width in channels:
                layers += [nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                           nn.ReLU(inplace=True), nn.MaxPool2d(2)]
                previous = width
            self.features = nn.Sequential(*layers)
            self.dropout = nn.Dropout(dropout)
            self.classifier = nn.Linear(previous, n_classes)

        def feature_maps(self, x):
            maps = []
            for start in range(0, len(self.features), 4):  # one conv-BN-ReLU-pool block at a time
                x = self.features[start:start + 4](x)
                maps.append(x)
            return maps

    return ResNet, SimpleNet


def build_network(n_classes: int, *, architecture: str = "resnet", channels=(32, 64, 128, 256), blocks: int = 1,
                  dropout: float = 0.3):
    """A residual network or the SimpleNet-style one, for ``(n, 1, S, S)`` grey inputs.

    Parameters
    ----------
    n_classes : int
        Outputs of the last layer.
    architecture : {'resnet', 'simple'}
        ``'resnet'``: stride-2 stem and one stage of ``blocks`` basic residual blocks per entry
        of ``channels`` (He et al. 2016), the size halved at every stage but the first.
        ``'simple'``: conv-BN-ReLU-maxpool blocks, the size halved at every block.
    channels : sequence of int
        Width of each stage (ResNet; the stem has ``channels[0]``) or block (SimpleNet).
    blocks : int
        Residual blocks per stage (ResNet only; ignored by the SimpleNet).
    dropout : float
        Drop probability before the classifier.

    Returns
    -------
    torch.nn.Module
        Maps a ``(n, 1, S, S)`` float32 tensor to ``(n, n_classes)`` logits; ``.embed(x)`` gives the
        ``(n, channels[-1])`` pooled features, ``.feature_maps(x)`` the list of ``(n, C, h, w)``
        outputs of the stem (ResNet) and of each stage or block, the last one pooled by ``embed``.
        ``S`` must be a multiple of ``2 ** len(channels)`` for the maps to halve exactly (other
        sizes round the odd sides, as the convolutions do).

    References
    ----------
    He, Zhang, Ren & Sun, "Deep residual learning for image recognition", CVPR 2016, §3-4.
    Goyal et al., "Accurate, large minibatch SGD: training ImageNet in 1 hour", 2017, §5.1
    (zero-initialized last batch normalization of each residual block).

    Examples
    --------
    >>> import torch
    >>> net = build_network(3, channels=(4, 8))
    >>> tuple(net(torch.zeros(2, 1, 16, 16)).shape), tuple(net.embed(torch.zeros(2, 1, 16, 16)).shape)
    ((2, 3), (2, 8))
    >>> [tuple(m.shape[1:]) for m in net.feature_maps(torch.zeros(1, 1, 16, 16))]
    [(4, 8, 8), (4, 8, 8), (8, 4, 4)]
    >>> tuple(build_network(2, architecture="simple", channels=(4,))(torch.zeros(1, 1, 8, 8)).shape)
    (1, 2)
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(map(repr, ARCHITECTURES))}, got {architecture!r}")
    channels = tuple(int(c) for c in channels)
    if not channels or min(channels) < 1:
        raise ValueError(f"channels must be a non-empty sequence of positive integers, got {channels}")
    resnet, simple = _modules()
    if architecture == "simple":
        return simple(n_classes, channels, dropout)
    if int(blocks) < 1:
        raise ValueError(f"blocks must be >= 1, got {blocks}")
    return resnet(n_classes, channels, int(blocks), dropout)


#: Input channels below which a strided 1x1 convolution is kept out of channels-last memory.
_NARROW_STRIDED_INPUT = 8


def memory_format(model):
    """The memory format to train and run ``model`` in: ``torch.channels_last`` (NHWC, the fast
    layout of oneDNN's CPU convolutions), or ``torch.contiguous_format`` when ``model`` has a
    strided 1x1 convolution (a residual shortcut) with fewer than 8 input channels.

    The backward pass of that convolution in channels-last corrupts the heap in the CPU build of
    torch 2.13 on AVX2 machines (one or two threads; 1->8, 2->8, 4->4, 4->8, 6->12, 7->8
    channels crash, 8->8, 10->20 and up do not, nor the same convolution in NCHW): the process
    aborts with "corrupted double-linked list" or a segmentation fault. Such narrow networks
    are test-sized anyway, where the layout does not matter for speed.
    """
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d) and tuple(module.kernel_size) == (1, 1) \
                and tuple(module.stride) != (1, 1) and module.in_channels < _NARROW_STRIDED_INPUT:
            return torch.contiguous_format
    return torch.channels_last
