"""Report values as JSON takes them: numpy numbers and arrays, tuples and Paths made plain."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np


def to_plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays, tuples and Paths turned into JSON types."""
    if isinstance(value, Mapping):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return to_plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def is_number(value: Any) -> bool:
    """Whether ``value`` is an int or a float (a bool is not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
