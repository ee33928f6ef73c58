"""Every record header a peer sends is checked here before it can touch a mark.

A replicated record is trusted with a lot: its ``origin`` and ``oseq`` move the receiver's
dedup marks, its ``via`` decides loops, its params become a store change, and with
``log_remote_changes`` it is written again into this node's datalog for every target
downstream. So each field is checked against what an honest origin can produce, and a
batch holding one bad record is refused whole (400 naming the record and the field),
never half applied. The checks are pure (no store, no node), so the same function serves
the HTTP handler, the tests and the fuzzers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fanout.datalog.format import FRAME, MAX_BODY, MAX_HEADER, OPS, Record
from fanout.errors import FanoutError, SelectorError
from fanout.gts import parse_selector
from fanout.gts.model import INT64_MAX, INT64_MIN
from fanout.ids import ID_RE, ID_RULE

MAX_TICK = INT64_MAX  # seq and oseq: positive int64, as every tick
# A chain or ring longer than this is not a topology anyone runs; a longer list is a forgery
# or a loop the via check failed to stop, and it would grow every header it passes through.
MAX_VIA = 64
# Token ids are names in tokens.yaml; the datalog keeps them for audit, not for auth.
MAX_TOKEN_ID_CHARS = 256
# Re-logging (log_remote_changes) appends one id to ``via`` and gives the record this
# node's seq: the worst case of both must still fit the reader's MAX_HEADER.
_LONGEST_ID = "x" * 64


@dataclass(frozen=True)
class RecordLimits:
    """Bounds a received record must respect. ``max_header`` is the header size after
    re-logging with one more ``via`` entry; ``max_body`` the body every reader accepts."""

    max_via: int = MAX_VIA
    max_token_id_chars: int = MAX_TOKEN_ID_CHARS
    max_header: int = MAX_HEADER
    max_body: int = MAX_BODY


DEFAULT_LIMITS = RecordLimits()


class RecordInvalid(FanoutError, ValueError):
    """A received record fails a header check; names the record and the field."""

    def __init__(self, rec: Record | None, field: str, reason: str):
        self.field = field
        self.reason = reason
        self.seq = getattr(rec, "seq", None)
        self.origin = getattr(rec, "origin", None)
        who = "" if rec is None else (
            f"record seq {_short(self.seq)} from origin {_short(self.origin)}: ")
        super().__init__(f"{who}field '{field}': {reason}")


def _short(value: object) -> str:
    """A hostile value in an error message: its repr, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_node_id(value: object) -> bool:
    """Whether ``value`` is a node id by the config's grammar (whole string, no newline)."""
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None


def validate_record(rec: Record, limits: RecordLimits = DEFAULT_LIMITS) -> None:
    """Raise RecordInvalid unless every header field of ``rec`` is one an honest node
    could have written and re-logging it here would still give a readable record."""
    if not is_node_id(rec.origin):
        raise RecordInvalid(rec, "origin", f"must be a node id: {ID_RULE} "
                                           f"(got {_short(rec.origin)})")
    for name in ("seq", "oseq"):
        value = getattr(rec, name)
        if not _is_int(value) or not 1 <= value <= MAX_TICK:
            raise RecordInvalid(rec, name, f"must be an integer in 1..{MAX_TICK} "
                                           f"(got {_short(value)})")
    if not _is_int(rec.time) or not INT64_MIN <= rec.time <= INT64_MAX:
        raise RecordInvalid(rec, "time", f"must be a 64-bit integer of milliseconds "
                                         f"(got {_short(rec.time)})")
    if not isinstance(rec.op, str) or rec.op not in OPS:
        raise RecordInvalid(rec, "op", f"must be one of {', '.join(OPS)} "
                                       f"(got {_short(rec.op)})")
    if not isinstance(rec.token_id, str) or len(rec.token_id) > limits.max_token_id_chars:
        raise RecordInvalid(rec, "token_id", f"must be a string of at most "
                                             f"{limits.max_token_id_chars} characters")
    _check_via(rec, limits)
    _check_header_size(rec, limits)  # before params: a huge selector is refused unparsed
    _check_params(rec)
    if not isinstance(rec.body, bytes | bytearray) or len(rec.body) > limits.max_body:
        raise RecordInvalid(rec, "body", f"must be at most {limits.max_body} bytes")
    if rec.op == "delete" and rec.body:
        raise RecordInvalid(rec, "body", "a delete carries no body")


def validate_batch(records: Sequence[Record], limits: RecordLimits = DEFAULT_LIMITS) -> None:
    """Every record valid, and their seqs strictly increasing: a batch is a stretch of one
    node's datalog, which is dense and ordered."""
    prev: int | None = None
    for rec in records:
        validate_record(rec, limits)
        if prev is not None and rec.seq <= prev:
            raise RecordInvalid(rec, "seq", f"must increase within a batch (follows {prev})")
        prev = rec.seq


def _check_via(rec: Record, limits: RecordLimits) -> None:
    via: Any = rec.via
    if not isinstance(via, tuple | list):
        raise RecordInvalid(rec, "via", "must be a list of node ids")
    if len(via) > limits.max_via:
        raise RecordInvalid(rec, "via", f"lists {len(via)} nodes, more than {limits.max_via}")
    for i, node in enumerate(via):
        if not is_node_id(node):
            raise RecordInvalid(rec, f"via[{i}]", f"must be a node id (got {_short(node)})")
    if len(set(via)) != len(via):
        raise RecordInvalid(rec, "via", "names a node twice: the record went round a loop")


def _check_params(rec: Record) -> None:
    params: Any = rec.params
    if not isinstance(params, dict):
        raise RecordInvalid(rec, "params", f"must be an object (got {_short(params)})")
    if rec.op == "update":
        if params:
            raise RecordInvalid(rec, "params", "an update takes no params")
    elif rec.op == "meta":
        if set(params) != {"delta"} or not isinstance(params["delta"], bool):
            raise RecordInvalid(rec, "params", 'a meta takes exactly {"delta": true|false}')
    else:
        _check_delete_params(rec, params)


def _check_delete_params(rec: Record, params: dict[str, Any]) -> None:
    selector = params.get("selector")
    if not isinstance(selector, str):
        raise RecordInvalid(rec, "params.selector", "a delete needs a selector string")
    try:
        parse_selector(selector)
    except (SelectorError, ValueError, RecursionError) as exc:
        raise RecordInvalid(rec, "params.selector", str(exc)[:300]) from None
    keys = set(params) - {"selector"}
    if keys == {"deleteall"}:
        if params["deleteall"] is not True:
            raise RecordInvalid(rec, "params.deleteall", "must be true when present")
        return
    if keys != {"start", "end"}:
        raise RecordInvalid(rec, "params", "a delete takes 'deleteall': true, or 'start' "
                                           f"and 'end' (got keys {sorted(params)[:8]})")
    start, end = params["start"], params["end"]
    for name, value in (("start", start), ("end", end)):
        if not _is_int(value) or not INT64_MIN <= value <= INT64_MAX:
            raise RecordInvalid(rec, f"params.{name}", "must be a 64-bit integer timestamp "
                                                       f"(got {_short(value)})")
    if start > end:
        raise RecordInvalid(rec, "params", f"start ({start}) is after end ({end})")


# Re-logging a header received as H bytes of JSON gives at most RELOG_GROWTH * H + RELOG_EXTRA
# bytes: every value is written again from its parsed form, and no JSON text grows more
# than 4.5 times that way (a number: "1E15" -> 1000000000000000.0; a string character
# at most 3 times, raw UTF-8 -> \\uXXXX; space and duplicate keys only shrink); then seq
# becomes MAX_TICK (+19), via takes one more id (+67) and a header without history or
# base gets both (+41).
RELOG_GROWTH = 6
RELOG_EXTRA = 256


def _check_header_size(rec: Record, limits: RecordLimits) -> None:
    if len(rec.frame) >= FRAME.size:  # as received: bounded without re-encoding it
        received = FRAME.unpack_from(rec.frame)[0]
        if RELOG_GROWTH * received + RELOG_EXTRA <= limits.max_header:
            return
    relogged = dataclasses.replace(rec, seq=MAX_TICK, via=(*rec.via, _LONGEST_ID),
                                   frame=b"")
    size = len(relogged.header_bytes())
    if size > limits.max_header:
        raise RecordInvalid(rec, "header", f"{size} bytes once re-logged here, over the "
                                           f"limit of {limits.max_header}")
