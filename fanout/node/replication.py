"""``POST /api/v0/replicate``: apply a forwarder's batch of raw datalog records.

The body is records framed exactly as in a datalog file (no file header), so every record's
CRC is checked on arrival. A batch commits as one unit (one transaction, per-origin dedup);
loops are dropped before they reach the committer.
"""

from __future__ import annotations

import logging

from aiohttp import web

from fanout.datalog.format import Record, decode_frames
from fanout.errors import DatalogCorruptError, GTSParseError, SelectorError
from fanout.node.app import NODE, _commit
from fanout.node.changes import Pending, change_of
from fanout.node.http import authorize, fail, json_reply, read_body
from fanout.node.validate import RecordInvalid, validate_batch
from fanout.store.base import Update

log = logging.getLogger("fanout.node.replication")

CONTENT_TYPE = "application/x-fanout-records"


async def handle_replicate(request: web.Request) -> web.Response:
    node = request.app[NODE]
    authorize(request, node.tokens, "replicate")
    body = await read_body(request, node.config.max_body_size)
    try:
        records = decode_frames(memoryview(body), 0, "request body")
    except DatalogCorruptError as exc:
        fail(400, f"corrupt batch: {exc}")
    _validate(records)
    me = node.config.id
    pending: list[Pending] = []
    loops = 0
    for rec in records:
        if rec.origin == me or me in rec.via:
            loops += 1  # ArangoDB 1405: our own write coming back around a ring
            continue
        try:
            change = change_of(rec)
        except (GTSParseError, SelectorError, ValueError, KeyError, TypeError) as exc:
            fail(400, f"record seq {rec.seq} from origin {rec.origin} oseq {rec.oseq}: {exc}")
        pending.append(Pending(
            rec.op, rec.token_id, rec.params, rec.body, change,
            points=len(change.readings) if isinstance(change, Update) else 0,
            origin=rec.origin, oseq=rec.oseq, time=rec.time, via=rec.via,
            log=node.config.log_remote_changes,
        ))
    node.replication.loops += loops
    node.replication.batches += 1
    node.replication.records += len(records)
    outcomes = await _commit(node, pending) if pending else []
    counts = {"applied": 0, "duplicate": 0, "gap": 0}
    for o in outcomes:
        counts[o.status] += 1
    counts["applied"] += counts["gap"]  # a gap record is applied too; "gap" says how many
    counts["loop"] = loops
    counts["received"] = len(records)
    counts["lastLogTick"] = str(node.committer.last_seq)  # type: ignore[assignment]
    return json_reply(counts)


def _validate(records: list[Record]) -> None:
    """The whole batch is refused (400 naming record and field) if one header is bad,
    before any record reaches the committer and its marks."""
    try:
        validate_batch(records)
    except RecordInvalid as exc:
        log.warning("refused a replicated batch of %d records: %s", len(records), exc)
        fail(400, f"invalid record: {exc}")
