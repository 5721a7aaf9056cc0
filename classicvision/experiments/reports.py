"""Reports of the 15-Scene experiments: one JSON encoder, one score dict, one report writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["json_default"]


def json_default(value):
    """``json.dumps(default=...)`` for numpy scalars and arrays and paths; anything else raises."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
