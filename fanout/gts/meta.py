"""The meta format: ``CLASS{LABELS}{ATTRIBUTES}``, one series per line.

Same encoding and the same line rules as the update format (blank lines and ``#``
comments ignored, a trailing "\\r" dropped, blanks around the line ignored). Attribute
values may be empty: in delta mode an empty value means "remove this key", so it is kept.
"""

from __future__ import annotations

from collections.abc import Iterable

from fanout.errors import GTSParseError
from fanout.gts.model import MetaLine
from fanout.gts.series import FieldError, check_text, format_pairs, parse_series_attrs, series_key

_BLANKS = " \t"


def parse_meta(text: str) -> list[MetaLine]:
    """Parse a meta body; GTSParseError names the 1-based line and the reason."""
    check_text(text)
    out: list[MetaLine] = []
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw[:-1] if raw.endswith("\r") else raw
        s = line.strip(_BLANKS)
        if not s or s[0] == "#":
            continue
        try:
            if " " in s or "\t" in s:
                raise FieldError("unexpected blank inside CLASS{LABELS}{ATTRIBUTES}")
            cls, labels, attrs = parse_series_attrs(s)
        except FieldError as exc:
            raise GTSParseError(lineno, str(exc)) from None
        out.append(MetaLine(cls, labels, attrs))
    return out


def format_meta(lines: Iterable[MetaLine]) -> str:
    """Canonical meta body: one ``CLASS{LABELS}{ATTRIBUTES}`` line each, ending "\\n"."""
    return "".join([series_key(m.cls, m.labels) + format_pairs(m.attrs) + "\n" for m in lines])
