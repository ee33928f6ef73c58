"""Warp 10 text formats (update, meta, selectors) to and from the models in ``model``.

Everything the node reads or writes in Warp 10 format goes through here, so there is one
canonical spelling of every reading: two equal models always format to the same bytes.
"""

from __future__ import annotations

from fanout.gts.encoding import decode, encode
from fanout.gts.meta import format_meta, parse_meta
from fanout.gts.selector import format_selector, parse_selector, selector_matches
from fanout.gts.series import series_key, sort_key
from fanout.gts.update import format_reading, format_update, parse_update
from fanout.gts.values import format_value, parse_value

__all__ = [
    "decode",
    "encode",
    "format_meta",
    "format_reading",
    "format_selector",
    "format_update",
    "format_value",
    "parse_meta",
    "parse_selector",
    "parse_update",
    "parse_value",
    "selector_matches",
    "series_key",
    "sort_key",
]
