"""Series selectors ``CLASSSEL{LABELSELS}`` for delete and fetch.

The class selector is ``=name`` or a bare ``name`` (exact) or ``~regex``; each label
selector is ``name=value`` (exact) or ``name~regex``. Names, values and regexes are all
percent-decoded, so a regex needing ``{`` ``}`` ``,`` or ``%`` writes them as escapes.
Regexes must match the whole string (as Java's ``Matcher.matches`` in Warp 10), and a
label a series does not have is matched as the empty string, as in Warp 10.

Regexes run on RE2 (``google-re2``), whose time is linear in the text whatever the
pattern: a read or write token must not be able to pin a CPU with ``(a+)+`` or ``(.|.)*!``
(a backtracking engine doubles its work per character there, and a delete's selector
runs on the commit thread). RE2 has the common Perl/Java syntax; what it lacks is what
needs backtracking (backreferences, lookaround, possessive quantifiers), and those are
refused at parse time with a 400 that says so. ``\\d``, ``\\w`` and ``\\s`` are ASCII, as
in Java.
"""

from __future__ import annotations

from functools import lru_cache

import re2

from fanout.errors import SelectorError
from fanout.gts.encoding import decode, encode
from fanout.gts.model import Labels, LabelSelector, Selector

_OPS = ("=", "~")

# RE2 error texts that mean "valid for a backtracking engine, not for RE2".
_UNSUPPORTED = ("invalid perl operator", "invalid escape sequence", "bad repetition operator",
                "invalid named capture group")
_SYNTAX_HINT = ("; selector regexes use RE2 syntax, which has no backreferences, "
                "lookaround or possessive quantifiers (https://github.com/google/re2/wiki/Syntax)")


def _options() -> re2.Options:
    opts = re2.Options()
    opts.log_errors = False  # a client's bad regex is a 400, not a line on the node's stderr
    opts.never_capture = True  # only "does it match": lets RE2 answer from its DFA
    return opts


_OPTIONS = _options()
# The wrapper's fullmatch() maps byte spans back to str offsets on every call (~2.5 us);
# asking the underlying RE2 object for an anchored match costs ~0.5 us. Both are private
# names of google-re2, so fall back to the public API if a release renames them.
_BOTH = getattr(getattr(re2, "_Anchor", None), "ANCHOR_BOTH", None)
_NO_MATCH = (-1, -1)


class Regex:
    """A compiled selector regex: ``fullmatch(text)`` in time linear in ``len(text)``."""

    __slots__ = ("_compiled", "_rx", "pattern")

    def __init__(self, pattern: str, compiled: re2._Regexp):
        self.pattern = pattern
        self._compiled = compiled
        self._rx = getattr(compiled, "_regexp", None) if _BOTH is not None else None

    def fullmatch(self, text: str) -> bool:
        if self._rx is None:
            return self._compiled.fullmatch(text) is not None
        data = text.encode("utf-8", "surrogatepass")
        return bool(self._rx.Match(_BOTH, data, 0, len(data))[0] != _NO_MATCH)

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"


@lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> Regex:
    """Compile once per distinct pattern; fetch may test it against every series."""
    try:
        return Regex(pattern, re2.compile(pattern, _OPTIONS))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "not a valid regex"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        hint = _SYNTAX_HINT if str(reason).startswith(_UNSUPPORTED) else ""
        raise SelectorError(f"invalid regex {pattern!r}: {reason}{hint}") from None
    except (UnicodeEncodeError, ValueError, TypeError) as exc:
        raise SelectorError(f"invalid regex {pattern!r}: {exc}") from None


def _check_regex(pattern: str, selector: str) -> None:
    """Compile now, so a bad regex is a 400 naming it and the selector it came in."""
    try:
        compile_regex(pattern)
    except SelectorError as exc:
        raise SelectorError(f"{exc} (in selector {selector[:200]!r})") from None


def _decode(text: str, what: str) -> str:
    try:
        return decode(text)
    except ValueError as exc:
        raise SelectorError(f"invalid {what} {text!r}: {exc}") from None


def _label_selector(item: str, block: str, selector: str) -> LabelSelector:
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
        _check_regex(pattern, selector)
    return LabelSelector(name, op, pattern)


def _sort_key(ls: LabelSelector) -> tuple[str, str, str]:
    return (ls.name, ls.op, ls.pattern)


def parse_selector(s: str) -> Selector:
    """Parse a selector into its canonical model (label selectors sorted, regexes checked).

    Raises SelectorError with the reason; for a bad regex it names the regex, RE2's
    message and the selector.
    """
    if not isinstance(s, str):  # a replicated record's params come from a peer's JSON
        raise SelectorError(f"selector must be a string, got {type(s).__name__}")
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
        _check_regex(cls_pattern, s)
    labels = [_label_selector(item, block, s) for item in block.split(",")] if block else []
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
        return compile_regex(pattern).fullmatch(text)
    raise SelectorError(f"unknown selector operator {op!r}")


def selector_matches(sel: Selector, cls: str, labels: Labels) -> bool:
    """Whether series ``cls{labels}`` is selected; an absent label counts as ``""``."""
    if not _matches(sel.cls_op, sel.cls_pattern, cls):
        return False
    if not sel.labels:
        return True
    values = dict(labels)
    return all(_matches(ls.op, ls.pattern, values.get(ls.name, "")) for ls in sel.labels)
