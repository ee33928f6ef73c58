"""Size limits on parsed series names and values: a write the store and every fetch must
carry for ever is refused at the door when one of its fields is absurdly large.

Checked after parsing (the parser is the hot path and stays limit-free); a reading's
series is checked once per run of readings sharing it, so the cost is one identity test
per reading. Errors name the 1-based line of the body, the field and the limit's key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fanout.errors import GTSParseError
from fanout.gts.model import Labels, MetaLine, MultiValue, Reading
from fanout.gts.values import format_value


@dataclass(frozen=True)
class FieldLimits:
    max_class_length: int = 1024
    max_label_name_length: int = 256
    max_label_value_length: int = 4096
    max_labels: int = 256
    # STRING characters, BINARY bytes, and a multi-value's canonical text (as Warp 10's
    # maxValueSize bounds both strings and byte arrays, multi-values included)
    max_string_value_length: int = 1 << 20


def _line_of(text: str, index: int) -> int:
    """The 1-based line of the ``index``-th (0-based) reading or meta line: every line but
    blanks and ``#`` comments yields one (only computed for an error)."""
    seen = -1
    for lineno, raw in enumerate(text.split("\n"), 1):
        s = raw.strip(" \t\r")
        if s and s[0] != "#":
            seen += 1
            if seen == index:
                return lineno
    return 0


def _series_problem(cls: str, labels: Labels, lim: FieldLimits,
                    what: str = "label") -> str | None:
    if len(cls) > lim.max_class_length:
        return (f"class name of {len(cls)} characters is over max_class_length "
                f"({lim.max_class_length})")
    if len(labels) > lim.max_labels:
        return f"{len(labels)} {what}s are over max_labels ({lim.max_labels})"
    for k, v in labels:
        if len(k) > lim.max_label_name_length:
            return (f"{what} name of {len(k)} characters is over max_label_name_length "
                    f"({lim.max_label_name_length})")
        if len(v) > lim.max_label_value_length:
            return (f"{what} {k[:40]!r} value of {len(v)} characters is over "
                    f"max_label_value_length ({lim.max_label_value_length})")
    return None


def _fail(text: str, index: int, reason: str) -> GTSParseError:
    return GTSParseError(_line_of(text, index), reason)


def check_readings(text: str, readings: Sequence[Reading], lim: FieldLimits) -> None:
    """Raise GTSParseError for the first reading with a field over its limit."""
    last_cls: object = None
    last_labels: object = None
    max_str = lim.max_string_value_length
    for i, r in enumerate(readings):
        if r.cls is not last_cls or r.labels is not last_labels:
            bad = _series_problem(r.cls, r.labels, lim)
            if bad is not None:
                raise _fail(text, i, bad)
            last_cls, last_labels = r.cls, r.labels
        v = r.value
        if type(v) is str and len(v) > max_str:
            raise _fail(text, i, f"string value of {len(v)} characters is over "
                                 f"max_string_value_length ({max_str})")
        if type(v) is bytes and len(v) > max_str:
            raise _fail(text, i, f"binary value of {len(v)} bytes is over "
                                 f"max_string_value_length ({max_str})")
        if type(v) is MultiValue:
            size = len(format_value(v))
            if size > max_str:
                raise _fail(text, i, f"multi-value of {size} characters (canonical form) is "
                                     f"over max_string_value_length ({max_str})")


def columns_fit(keys: Iterable[tuple[str, Labels]], values: Iterable[object],
                lim: FieldLimits) -> bool:
    """Whether readings given as columns (fanout.gts.canonical: their distinct series,
    their values) are all within ``lim``. Only a yes: when it says no, check_readings on
    the readings says which line and why."""
    if any(_series_problem(cls, labels, lim) is not None for cls, labels in keys):
        return False
    max_str = lim.max_string_value_length
    return not any(type(v) is str and len(v) > max_str for v in values)


def check_meta(text: str, lines: Sequence[MetaLine], lim: FieldLimits) -> None:
    for i, m in enumerate(lines):
        bad = _series_problem(m.cls, m.labels, lim) or _series_problem(
            "", m.attrs, lim, "attribute")
        if bad is not None:
            raise _fail(text, i, bad)


def check_attr_blocks(blocks: Sequence[tuple[int, MetaLine]], lim: FieldLimits) -> None:
    """The ``{ATTRIBUTES}`` blocks of update lines, given with their line numbers."""
    for lineno, m in blocks:
        bad = _series_problem("", m.attrs, lim, "attribute")
        if bad is not None:
            raise GTSParseError(lineno, bad)


class RequestTooLargeError(ValueError):
    """The request is well formed but over a size limit: answered 413, naming the limit."""


def check_points(n: int, limit: int) -> None:
    if n > limit:
        raise RequestTooLargeError(
            f"{n} lines in one request are over max_points_per_request ({limit}); "
            "split the body")


def check_record(body_len: int, limit: int) -> None:
    """The canonical form of a write must fit what every receiver accepts, or the write
    would be acknowledged here and refused by every target for ever."""
    if body_len > limit:
        raise RequestTooLargeError(
            f"the canonical form of this request is {body_len} bytes, over max_record_bytes "
            f"({limit}) that replicas accept; split the body")
