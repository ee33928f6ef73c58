"""Percent-encoding of class names, label/attribute names and values, and STRING values.

Warp 10 text formats reserve ``{}=,`` spaces and quotes as structure, so every name and
value travels percent-encoded. We write one *canonical* encoding (only ``A-Za-z0-9-._:/``
left as is, everything else ``%XX`` of its UTF-8 bytes, uppercase hex) so that equal models
format to identical bytes, but we read any valid escape, in either case, and raw characters
too, because real clients are less strict than we are.
"""

from __future__ import annotations

import re

_SAFE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._:/")
_ALL_SAFE = re.compile(r"[A-Za-z0-9._:/-]*")
# Maps each code point 0..255 that is not safe to its escape. Applied to the UTF-8 bytes
# seen as latin-1 text, so str.translate (C speed) does the whole job in one pass.
_BYTE_TABLE = {b: f"%{b:02X}" for b in range(256) if chr(b) not in _SAFE_CHARS}
_HEX_DIGITS = "0123456789abcdefABCDEF"
_HEX_BYTE = {a + b: bytes([int(a + b, 16)]) for a in _HEX_DIGITS for b in _HEX_DIGITS}


def encode(s: str) -> str:
    """Canonical percent-encoding of ``s``.

    Raises ValueError (UnicodeEncodeError) for a lone surrogate: it has no UTF-8 form, and
    no input we parse can produce one.
    """
    if _ALL_SAFE.fullmatch(s):
        return s
    return s.encode("utf-8").decode("latin-1").translate(_BYTE_TABLE)


def decode(s: str) -> str:
    """Undo percent-encoding: any ``%XX`` (either case); ``+`` and raw characters are literal.

    Raises ValueError for a ``%`` not followed by two hex digits or escapes that are not
    valid UTF-8, with a short reason meant to be shown to whoever sent the text.
    """
    if "%" not in s:
        return s
    # Work on UTF-8 bytes so raw characters and escaped bytes join into one byte string
    # that is validated once; a dict lookup per escape is much cheaper than unquote().
    parts = s.split("%")
    out = [parts[0].encode("utf-8")]
    for part in parts[1:]:
        byte = _HEX_BYTE.get(part[:2])
        if byte is None:
            raise ValueError(f"bad percent escape {'%' + part[:2]!r}")
        out.append(byte)
        out.append(part[2:].encode("utf-8"))
    try:
        return b"".join(out).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("percent escapes are not valid UTF-8") from None
