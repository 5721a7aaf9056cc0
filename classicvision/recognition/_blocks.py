"""Shared by the encoders' ``transform``: the descriptor-width check and the split of a list of
images' features into blocks of about a given number of descriptors (which bounds the memory of
an encoder's per-block matrices)."""

from __future__ import annotations

__all__ = ["check_descriptor_width", "feature_blocks"]


def check_descriptor_width(features: list, width: int, what: str) -> None:
    """``ValueError`` naming the first image whose descriptors are not ``width`` wide (``what``
    says where the width comes from); images without descriptors pass."""
    for i, f in enumerate(features):
        if len(f.descriptors) and f.descriptors.shape[1] != width:
            raise ValueError(f"X[{i}].descriptors must have {width} columns ({what}), "
                             f"got {f.descriptors.shape[1]}")


def feature_blocks(features: list, max_descriptors: int) -> list[list]:
    """Consecutive groups of ``features`` in order, each closed as soon as it holds at least
    ``max_descriptors`` descriptors; always at least one group (empty for no images).

    >>> from types import SimpleNamespace as F
    >>> import numpy as np
    >>> [len(g) for g in feature_blocks([F(descriptors=np.zeros((3, 2)))] * 5, 6)]
    [2, 2, 1]
    """
    groups, block, size = [], [], 0
    for f in features:
        block.append(f)
        size += len(f.descriptors)
        if size >= max_descriptors:
            groups.append(block)
            block, size = [], 0
    if block or not groups:
        groups.append(block)
    return groups
