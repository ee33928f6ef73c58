"""Decisions both store backends share, written once.

Everything that decides *what* an apply or a fetch does lives here (dedup against the
per-origin marks, attribute merging, value type codes, series ordering, the delete range
rule, turning an OSError or a sqlite error into DiskFullError); the backends only decide
*how* to keep the data.
"""

from __future__ import annotations

import errno
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypeVar, cast

from fanout.errors import DiskFullError
from fanout.gts import format_reading, series_key, sort_key
from fanout.gts.model import INT64_MAX, INT64_MIN, Labels, MultiValue, Reading, Value
from fanout.gts.values import parse_multi

from .base import LEGACY_HISTORY, Base, Entry, History, HistoryMarks, Status, base_short

# Type codes stored beside each value, so every type comes back exactly.
# bool is its own type for type(): type(True) is bool, not int.
T_BOOL = 0
T_LONG = 1
T_DOUBLE = 2
T_STRING = 3
T_BINARY = 4  # bytes, kept as a BLOB
T_MULTI = 5  # a multi-value, kept as its canonical ``[ ... ]`` text
TYPE_CODES: dict[type, int] = {bool: T_BOOL, int: T_LONG, float: T_DOUBLE, str: T_STRING,
                               bytes: T_BINARY, MultiValue: T_MULTI}

_DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}

T = TypeVar("T")


def classify(marks: HistoryMarks, entry: Entry) -> Status:
    """Dedup decision for one entry against the (origin, history) mark.

    A history never seen before is never a duplicate: its writes are new whatever their
    oseq (a re-created or restored origin reuses oseqs of an earlier history). Its first
    entry is expected at base oseq + 1 (1 without a base); anything above is a gap. So is
    a base history known here but short of the base oseq: the writes the origin made in
    it before it moved on (a restart) never arrived."""
    mark = marks.get(entry.origin, {}).get(entry.history)
    if mark is None:
        expected = (entry.base[1] if entry.base is not None else 0) + 1
        if entry.oseq > expected or base_short(marks, entry.origin, entry.base) is not None:
            return "gap"
        return "applied"
    if entry.oseq <= mark:
        return "duplicate"
    if entry.oseq > mark + 1:
        return "gap"
    return "applied"


def latest_marks(marks: HistoryMarks) -> dict[str, int]:
    """Per origin, the mark of its latest-known history (the last one first seen)."""
    out: dict[str, int] = {}
    for origin, hs in marks.items():
        if hs:
            out[origin] = hs[next(reversed(hs))]
    return out


def set_mark(marks: HistoryMarks, origin: str, history: str, oseq: int) -> None:
    marks.setdefault(origin, {})[history] = oseq


def new_history_id() -> str:
    """16 lowercase hex characters, 64 random bits: two starts never collide in practice."""
    return secrets.token_hex(8)


def copy_marks(marks: HistoryMarks | Mapping[str, int]) -> HistoryMarks:
    """A copy; plain per-origin marks (``{origin: oseq}``, the shape before histories) are
    taken as marks of the legacy history."""
    return {o: {LEGACY_HISTORY: hs} if isinstance(hs, int) else dict(hs)
            for o, hs in marks.items()}


class MarksView:
    """What both stores answer from the in-memory copy of their marks, kept in step with
    every committed transaction: reads here never touch the disk."""

    _last_seq: int
    _marks: HistoryMarks
    _bases: dict[tuple[str, str], Base | None]

    def last_seq(self) -> int:
        return self._last_seq

    def marks(self) -> dict[str, int]:
        return latest_marks(self._marks)

    def history_marks(self) -> HistoryMarks:
        return copy_marks(self._marks)

    def history_bases(self) -> dict[tuple[str, str], Base | None]:
        return dict(self._bases)


def value_code(value: object) -> int:
    """The type code of a reading's value; TypeError for anything a GTS cannot hold."""
    code = TYPE_CODES.get(type(value))
    if code is None:
        raise TypeError(f"unsupported reading value {value!r} of type {type(value).__name__}")
    return code


def check_reading(r: Reading) -> int:
    """Reject what no backend can keep (the parser never produces these), the way the
    sqlite backend does; return the value's type code."""
    if type(r.ts) is not int:
        raise TypeError(f"reading timestamp must be an int, not {r.ts!r}")
    if not INT64_MIN <= r.ts <= INT64_MAX or (
        r.elev is not None and not INT64_MIN <= r.elev <= INT64_MAX
    ):
        raise OverflowError("Python int too large to convert to SQLite INTEGER")
    return value_code(r.value)


def decode_value(code: int, raw: object) -> Value:
    """Inverse of the sqlite encoding: raw may be text for NaN or out-of-int64 longs, a
    BLOB for a binary value, the canonical text of a multi-value."""
    if code == T_DOUBLE:
        return float(raw)  # type: ignore[arg-type]
    if code == T_LONG:
        return int(raw)  # type: ignore[call-overload]
    if code == T_BOOL:
        return bool(raw)
    if code == T_STRING:
        return str(raw)
    if code == T_BINARY:
        return bytes(cast(bytes, raw))
    if code == T_MULTI:
        return parse_multi(str(raw))
    raise ValueError(f"unknown value type code {code!r}")


def merge_attrs(old: Labels, new: Labels, delta: bool) -> Labels:
    """Replace (delta False: exactly ``new``) or merge (an empty value removes the key)."""
    if not delta:
        return tuple(sorted(new))
    merged = dict(old)
    for name, value in new:
        if value == "":
            merged.pop(name, None)
        else:
            merged[name] = value
    return tuple(sorted(merged.items()))


def check_delete_range(start: int | None, end: int | None) -> bool:
    """True for deleteall (both None); a half-open range is a caller bug."""
    if start is None and end is None:
        return True
    if start is None or end is None:
        raise ValueError("Delete needs both start and end, or neither (deleteall)")
    return False


def range64(start: int, end: int) -> tuple[int, int] | None:
    """The inclusive range [start, end] cut to 64-bit timestamps; None when it is empty."""
    if start > end or start > INT64_MAX or end < INT64_MIN:
        return None
    return max(start, INT64_MIN), min(end, INT64_MAX)


def ordered(items: Iterable[T], cls_labels: Callable[[T], tuple[str, Labels]]) -> list[T]:
    """``items`` sorted by the GTS series order (class, then labels)."""
    return sorted(items, key=lambda s: sort_key(*cls_labels(s)))


def deleted_keys(matched: Iterable[tuple[str, Labels]]) -> tuple[str, ...]:
    """Canonical ``class{labels}`` of the matched series, in sort_key order."""
    return tuple(series_key(c, lb) for c, lb in ordered(matched, lambda s: s))


def format_series(
    cls: str,
    labels: Labels,
    attrs: Labels | None,
    points: Iterable[tuple[int, float | None, float | None, int | None, Value]],
) -> Iterator[str]:
    """Canonical lines of one series' points, given as (ts, lat, lon, elev, value)."""
    for ts, lat, lon, elev, value in points:
        yield format_reading(Reading(ts, lat, lon, elev, cls, labels, value), attrs)


def disk_full(exc: BaseException) -> DiskFullError | None:
    """The DiskFullError an exception stands for, or None if it is something else."""
    if isinstance(exc, DiskFullError):
        return exc
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
        return DiskFullError(f"store: no space left: {exc}")
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if (code is not None and code & 0xFF == sqlite3.SQLITE_FULL) or (
            "database or disk is full" in str(exc)
        ):
            return DiskFullError(f"store: database or disk is full: {exc}")
    return None


def next_base(own: list[History], own_marks: dict[str, int]) -> Base | None:
    """The base of a new own history: the latest own history that wrote anything (one
    that wrote nothing is skipped, so receivers can follow the chain), with its mark; a
    store upgraded from before histories continues the legacy history; None if the store
    holds no own history (new or wiped)."""
    if own:
        last = own[-1]
        return (last.id, own_marks[last.id]) if last.id in own_marks else last.base
    if LEGACY_HISTORY in own_marks:
        return LEGACY_HISTORY, own_marks[LEGACY_HISTORY]
    return None
