"""Access patterns as every engine walks them: up to four ``[stride, count]`` dimensions, outermost first,
strides in elements (signed), the innermost index fastest."""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_PATTERN_DIMS", "walk_offsets"]

MAX_PATTERN_DIMS = 4


def walk_offsets(dims) -> np.ndarray:
    """Element offsets of the walk over ``dims``, in walk order (int64)."""
    offsets = np.zeros(1, dtype=np.int64)
    for stride, count in dims:
        offsets = (offsets[:, None] + stride * np.arange(count, dtype=np.int64)[None, :]).reshape(-1)
    return offsets
