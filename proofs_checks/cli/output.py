"""Output helpers of the command line: JSON (NaN/inf as null) and number formatting."""
from __future__ import annotations

import json
import math
from typing import Any


def _json_default(o: Any) -> Any:
    try:
        return float(o)
    except (TypeError, ValueError):
        return str(o)


def _finite_or_none(x: Any) -> Any:
    """JSON cannot hold NaN/inf: map them to None recursively."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite_or_none(v) for v in x]
    return x


def print_json(data: Any) -> None:
    print(json.dumps(_finite_or_none(data), indent=2, default=_json_default))


def fmt(v: Any, digits: int = 6) -> str:
    """A number (or list of numbers) with ``digits`` significant digits; "-" for None."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(x, digits) for x in v) + "]"
    return str(v)
