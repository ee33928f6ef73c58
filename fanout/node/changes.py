"""Between the three shapes of a write: HTTP request, datalog record, store change.

Every write is normalized once, at the origin, into the canonical body a datalog record
carries; every node (and every replay) rebuilds the store change from that body alone, so
applying a record gives the same result wherever and whenever it happens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fanout.config import Limits
from fanout.datalog.format import Record
from fanout.gts import (
    format_meta,
    format_selector,
    format_update,
    parse_meta,
    parse_selector,
    parse_update,
)
from fanout.gts.canonical import parse_canonical
from fanout.gts.limits import (
    FieldLimits,
    check_attr_blocks,
    check_meta,
    check_points,
    check_readings,
    check_record,
    columns_fit,
)
from fanout.gts.model import MetaLine
from fanout.gts.update import Now
from fanout.store.base import Change, Delete, Meta, Update


@dataclass(frozen=True)
class RequestLimits:
    """What one client write may be (defaults: ``fanout.config.Limits``)."""

    fields: FieldLimits = field(default_factory=FieldLimits)
    max_points: int = Limits.max_points_per_request
    max_record_bytes: int = Limits.max_record_bytes


@dataclass(slots=True)
class Pending:
    """One write waiting for the committer. ``origin`` None means a client write here."""

    op: str
    token_id: str
    params: dict[str, Any]
    body: bytes
    change: Change
    points: int = 0
    origin: str | None = None
    oseq: int = 0
    time: int = 0
    via: tuple[str, ...] = field(default_factory=tuple)
    history: str | None = None  # the origin's history; None for a client write here
    base: tuple[str, int] | None = None  # that history's base (replicated writes only)
    log: bool = True
    seq: int = 0  # set by the committer: the datalog seq this write was logged at


def update_pending(text: str, now_us: int, token_id: str,
                   limits: RequestLimits | None = None) -> Pending:
    if limits is not None:  # before parsing: the parsed form is ~10x the text in memory
        check_points(text.count("\n") + (not text.endswith("\n")), limits.max_points)
    readings = parse_update(text, now_us)
    if limits is not None:
        check_readings(text, readings, limits.fields)
    body = format_update(readings).encode()
    if limits is not None:
        check_record(len(body), limits.max_record_bytes)
    return Pending("update", token_id, {}, body, Update(readings), points=len(readings))


def update_pendings(text: str, now_us: Now, token_id: str,
                    limits: RequestLimits | None = None,
                    attributes: str = "replace") -> list[Pending]:
    """An update body as Warp 10 takes it with ``ingress.parse.attributes = true``: its
    readings, then one meta write for the ``{ATTRIBUTES}`` blocks after the labels of its
    lines (``attributes``: "replace", "delta" as X-Warp10-Attributes: delta, or "skip" to
    ignore them). Both are committed together, so the request stays all or nothing."""
    if limits is not None:
        check_points(text.count("\n") + (not text.endswith("\n")), limits.max_points)
    fast = _exact_canonical(text, token_id, limits)
    if fast is not None:
        return [fast]
    attrs: list[tuple[int, MetaLine]] = []
    readings = parse_update(text, now_us, attrs)
    if limits is not None:
        check_readings(text, readings, limits.fields)
        check_attr_blocks(attrs, limits.fields)
    body = format_update(readings).encode()
    if limits is not None:
        check_record(len(body), limits.max_record_bytes)
    out = [Pending("update", token_id, {}, body, Update(readings), points=len(readings))]
    if attrs and attributes != "skip":
        delta = attributes == "delta"
        lines = [m for _, m in attrs]
        meta_body = format_meta(lines).encode()
        if limits is not None:
            check_record(len(meta_body), limits.max_record_bytes)
        out.append(Pending("meta", token_id, {"delta": delta}, meta_body, Meta(lines, delta)))
    return out


def _exact_canonical(text: str, token_id: str, limits: RequestLimits | None) -> Pending | None:
    """A body already in canonical form, within the field limits (what most clients of
    the node send): read as columns (fanout.gts.canonical) and logged as it came, since
    formatting its readings would give it back byte for byte. None: take the general
    path, which also explains any error."""
    cols = parse_canonical(text, exact=True)
    if cols is None or (limits is not None
                        and not columns_fit(cols.keys.values(), cols.values, limits.fields)):
        return None
    body = text.encode()
    if limits is not None:
        check_record(len(body), limits.max_record_bytes)
    return Pending("update", token_id, {}, body, Update(cols), points=len(cols))


def meta_pending(text: str, delta: bool, token_id: str,
                 limits: RequestLimits | None = None) -> Pending:
    if limits is not None:
        check_points(text.count("\n") + (not text.endswith("\n")), limits.max_points)
    lines = parse_meta(text)
    if limits is not None:
        check_meta(text, lines, limits.fields)
    body = format_meta(lines).encode()
    if limits is not None:
        check_record(len(body), limits.max_record_bytes)
    return Pending("meta", token_id, {"delta": delta}, body, Meta(lines, delta))


def delete_pending(selector: str, start: int | None, end: int | None, token_id: str) -> Pending:
    sel = parse_selector(selector)
    params: dict[str, Any] = {"selector": format_selector(sel)}
    if start is None:
        params["deleteall"] = True
    else:
        params["start"], params["end"] = start, end
    return Pending("delete", token_id, params, b"", Delete(sel, start, end))


def replicated_pending(rec: Record, log: bool) -> Pending:
    """The write a peer's record asks for; ``log``: log it again here (chains, rings).
    Raises what change_of raises for a body or selector that does not parse."""
    change = change_of(rec)
    return Pending(rec.op, rec.token_id, rec.params, rec.body, change,
                   points=len(change.readings) if isinstance(change, Update) else 0,
                   origin=rec.origin, oseq=rec.oseq, time=rec.time, via=rec.via,
                   history=rec.history, base=rec.base, log=log)


def change_of(rec: Record) -> Change:
    """The store change a logged record stands for (its body is already canonical)."""
    if rec.op == "update":
        text = rec.body.decode()
        return Update(parse_canonical(text) or parse_update(text, 0))
    if rec.op == "meta":
        return Meta(parse_meta(rec.body.decode()), bool(rec.params.get("delta", False)))
    if rec.op == "delete":
        p = rec.params
        if p.get("deleteall"):
            return Delete(parse_selector(p["selector"]), None, None)
        return Delete(parse_selector(p["selector"]), int(p["start"]), int(p["end"]))
    raise ValueError(f"unknown op {rec.op!r}")
