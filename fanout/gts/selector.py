"""Series selectors ``CLASSSEL{LABELSELS}`` for delete and fetch.

The class selector is ``=name`` or a bare ``name`` (exact) or ``~regex``; each label
selector is ``name=value`` (exact) or ``name~regex``. Names, values and regexes are all
percent-decoded, so a regex needing ``{`` ``}`` ``,`` or ``%`` writes them as escapes.
Regexes are Python ``re`` patterns that must match the whole string (fullmatch), and
a label a series does not have is matched as the empty string, as in Warp 10.
"""

from __future__ import annotations

import re
from functools import lru_cache

from fanout.errors import SelectorError
from fanout.gts.encoding import decode, encode
from fanout.gts.model import Labels, LabelSelector, Selector

_OPS = ("=", "~")


@lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> re.Pattern[str]:
    """Compile once per distinct pattern; fetch may test it against every series."""
    try:
        return re.compile(pattern)
    except Exception as exc:  # re raises re.error, but also OverflowError, RecursionError...
        raise SelectorError(f"invalid regex {pattern!r}: {exc}") from None


def _decode(text: str, what: str) -> str:
    try:
        return decode(text)
    except ValueError as exc:
        raise SelectorError(f"invalid {what} {text!r}: {exc}") from None


def _label_selector(item: str, block: str) -> LabelSelector:
    ops = [i for i in (item.find("="), item.find("~")) if i >= 0]
    if not ops:
        if not item:
            raise SelectorError(f"empty label selector in {{{block}}}")
        raise SelectorError(f"label selector {item!r} has no '=' or '~'")
    i = min(ops)
    name = _decode(item[:i], "label name")
    if not name:
        raise SelectorError(f"empty label name in label selector {item!r}")
    op = item[i]
    pattern = _decode(item[i + 1 :], "label value" if op == "=" else "label regex")
    if op == "~":
        compile_regex(pattern)
    return LabelSelector(name, op, pattern)


def _sort_key(ls: LabelSelector) -> tuple[str, str, str]:
    return (ls.name, ls.op, ls.pattern)


def parse_selector(s: str) -> Selector:
    """Parse a selector into its canonical model (label selectors sorted, regexes checked).

    Raises SelectorError with the reason, naming the regex and re's message for a bad one.
    """
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SelectorError(f"invalid character U+{ord(s[exc.start]):04X} in selector") from None
    cls_text, brace, rest = s.partition("{")
    if not brace:
        raise SelectorError(f"selector {s!r} has no label selector block '{{...}}'")
    if "}" in cls_text:
        raise SelectorError(f"unexpected '}}' in class selector {cls_text!r}")
    if not rest.endswith("}"):
        raise SelectorError("unclosed label selector block")
    block = rest[:-1]
    if "{" in block or "}" in block:
        raise SelectorError(f"unexpected brace in label selector block {{{block}}}")
    if cls_text[:1] in _OPS:
        cls_op, cls_pattern_text = cls_text[0], cls_text[1:]
    else:
        cls_op, cls_pattern_text = "=", cls_text
    cls_pattern = _decode(cls_pattern_text, "class selector")
    if not cls_pattern:
        raise SelectorError("empty class selector")
    if cls_op == "~":
        compile_regex(cls_pattern)
    labels = [_label_selector(item, block) for item in block.split(",")] if block else []
    labels.sort(key=_sort_key)
    return Selector(cls_op, cls_pattern, tuple(labels))


def format_selector(sel: Selector) -> str:
    """Canonical text: class always prefixed by its op, label selectors sorted, all encoded."""
    parts = [
        f"{encode(ls.name)}{ls.op}{encode(ls.pattern)}" for ls in sorted(sel.labels, key=_sort_key)
    ]
    return f"{sel.cls_op}{encode(sel.cls_pattern)}{{{','.join(parts)}}}"


def _matches(op: str, pattern: str, text: str) -> bool:
    if op == "=":
        return text == pattern
    if op == "~":
        return compile_regex(pattern).fullmatch(text) is not None
    raise SelectorError(f"unknown selector operator {op!r}")


def selector_matches(sel: Selector, cls: str, labels: Labels) -> bool:
    """Whether series ``cls{labels}`` is selected; an absent label counts as ``""``."""
    if not _matches(sel.cls_op, sel.cls_pattern, cls):
        return False
    if not sel.labels:
        return True
    values = dict(labels)
    return all(_matches(ls.op, ls.pattern, values.get(ls.name, "")) for ls in sel.labels)
