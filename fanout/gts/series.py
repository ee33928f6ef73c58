"""The series part of a line, ``CLASS{LABELS}``: parse, canonical key and sort order.

A body usually holds many readings of few series, so the text of the series part repeats;
parsing and formatting it are cached (lru_cache), which is most of what makes the update
path fast. The pair-block parser is shared with the meta format's attributes.
"""

from __future__ import annotations

from functools import lru_cache

from fanout.errors import GTSParseError
from fanout.gts.encoding import decode, encode
from fanout.gts.model import Labels

# Big enough for the series of a busy node, bounded so a flood of distinct series cannot
# grow memory without limit.
CACHE_SIZE = 1 << 16


class FieldError(ValueError):
    """A malformed field; the line parsers add the line number (GTSParseError)."""


def check_text(text: str) -> None:
    """Reject lone surrogates up front: they have no UTF-8 form, so a model holding one
    could be neither stored nor formatted. Raises GTSParseError naming the line."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        raise GTSParseError(line, f"invalid character U+{ord(text[exc.start]):04X}") from None


def decode_field(text: str, what: str) -> str:
    """Percent-decode ``text``, naming ``what`` (e.g. "class") if it is malformed."""
    try:
        return decode(text)
    except ValueError as exc:
        raise FieldError(f"invalid {what} {text!r}: {exc}") from None


def parse_pairs(block: str, what: str) -> Labels:
    """Parse the inside of a ``{k=v,k2=v2}`` block into sorted, unique (name, value) pairs.

    ``what`` ("label" or "attribute") only shapes error messages. Values may be empty (an
    empty attribute value means "remove" in delta meta), names may not. The name ends at the
    first ``=``; a raw ``=`` later in the value is unambiguous, so it is accepted.
    """
    if not block:
        return ()
    if "{" in block or "}" in block:
        brace = "{" if "{" in block else "}"
        raise FieldError(f"unexpected {brace!r} in {what} block {{{block}}}")
    pairs: dict[str, str] = {}
    for item in block.split(","):
        name_text, eq, value_text = item.partition("=")
        if not eq:
            if not item:
                raise FieldError(f"empty {what} in {{{block}}}")
            raise FieldError(f"{what} {item!r} has no '='")
        name = decode_field(name_text, f"{what} name")
        if not name:
            raise FieldError(f"empty {what} name in {item!r}")
        if name in pairs:
            raise FieldError(f"duplicate {what} {name!r}")
        pairs[name] = decode_field(value_text, f"{what} value")
    return tuple(sorted(pairs.items()))


def _split_class(text: str) -> tuple[str, str]:
    """Split ``CLASS{REST`` at the first ``{``; return (decoded class, text after ``{``)."""
    cls_text, brace, rest = text.partition("{")
    if not brace:
        raise FieldError(f"missing label block '{{...}}' after class {text!r}")
    if "}" in cls_text:
        raise FieldError(f"unexpected '}}' in class {cls_text!r}")
    cls = decode_field(cls_text, "class")
    if not cls:
        raise FieldError("empty class name")
    return cls, rest


@lru_cache(maxsize=CACHE_SIZE)
def parse_series(text: str) -> tuple[str, Labels]:
    """Parse ``CLASS{LABELS}`` (cached: the same text repeats on every line of a series)."""
    cls, rest = _split_class(text)
    block, brace, after = rest.partition("}")
    if not brace:
        raise FieldError("unclosed label block")
    if after:
        raise FieldError(f"unexpected text {after!r} after label block")
    return cls, parse_pairs(block, "label")


def parse_series_attrs(text: str) -> tuple[str, Labels, Labels]:
    """Parse ``CLASS{LABELS}{ATTRIBUTES}`` (the meta format); both blocks required."""
    cls, rest = _split_class(text)
    block, brace, after = rest.partition("}")
    if not brace:
        raise FieldError("unclosed label block")
    if not after.startswith("{"):
        if not after:
            raise FieldError("missing attribute block '{...}' after labels")
        raise FieldError(f"unexpected text {after!r} after label block")
    attr_block, brace, tail = after[1:].partition("}")
    if not brace:
        raise FieldError("unclosed attribute block")
    if tail:
        raise FieldError(f"unexpected text {tail!r} after attribute block")
    labels, attrs = parse_pairs(block, "label"), parse_pairs(attr_block, "attribute")
    check_attrs(labels, attrs)
    return cls, labels, attrs


# Labels every Warp 10 series carries (set from the token): no attribute may take their name.
RESERVED_ATTRIBUTES = frozenset({".producer", ".owner", ".app"})


def check_attrs(labels: Labels, attrs: Labels) -> None:
    """Refuse an attribute named like one of the series' labels (or a reserved one), as
    Warp 10 does: it would hide the label from selectors and replies."""
    names = {k for k, _ in labels}
    for k, _ in attrs:
        if k in names or k in RESERVED_ATTRIBUTES:
            what = "label" if k in names else "reserved label"
            raise FieldError(f"attribute {k!r} has the name of a {what} of the series")


def format_pairs(pairs: Labels) -> str:
    """Canonical ``{k=v,...}`` (pairs are already sorted and unique in the models)."""
    return "{" + ",".join(f"{encode(k)}={encode(v)}" for k, v in pairs) + "}"


@lru_cache(maxsize=CACHE_SIZE)
def series_key(cls: str, labels: Labels) -> str:
    """Canonical ``CLASS{LABELS}``: the series' identity in stores, replies and logs.

    Cached because every formatted reading needs it and a body has few distinct series.
    """
    return encode(cls) + format_pairs(labels)


def sort_key(cls: str, labels: Labels) -> tuple[str, Labels]:
    """Key ordering series by class, then labels (code point order of decoded text).

    Both store backends sort with this one function so their fetch replies are
    byte-identical; tuples of (name, value) compare name first, then value.
    """
    return (cls, labels)
