"""Type-checked reads of one JSON value, for the state readers.

A state file is written by one version of fanout and read by another (``fanout status``
after an upgrade, ``/metrics`` scraping a forwarder that still runs the old code): every
reader takes what it finds, keeps a value only if it has the expected type, and falls
back to the field's default otherwise, so a missing or renamed key reads as a typed
default and never as an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def as_dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_int(value: Any, default: int = 0) -> int:
    """An int, or a 64-bit tick written as a decimal string (ArangoDB style)."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return default
    return default


def as_opt_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def as_float(value: Any, default: float = 0.0) -> float:
    if isinstance(value, bool):
        return default
    return float(value) if isinstance(value, int | float) else default


def as_opt_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    return float(value) if isinstance(value, int | float) else None


def as_bool(value: Any, default: bool = False) -> bool:
    return value if isinstance(value, bool) else default


def as_str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def as_opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
