"""Values as plain JSON data: one conversion for API bodies, reports and model cards."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

SCALARS = (str, int, float, bool, type(None))


def jsonable(value: Any, non_finite: Callable[[float], Any] = str) -> Any:
    """``value`` as valid JSON data: numpy scalars as Python ones, NaN and infinities as
    ``non_finite(value)`` (``str``: ``"nan"``; a card passes ``lambda _: None``), other
    objects as their text, and text that is not valid Unicode with its bad code points
    escaped (echoed input)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v, non_finite) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, non_finite) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return non_finite(value)
    if not isinstance(value, SCALARS):
        return str(value)
    if isinstance(value, str) and not encodable(value):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def encodable(text: str) -> bool:
    """Whether ``text`` is valid Unicode (JSON's ``\\ud800`` escape decodes to a lone
    surrogate, which no response, log or report can encode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
