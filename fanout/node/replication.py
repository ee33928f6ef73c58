"""``POST /api/v0/replicate``: apply a forwarder's batch of raw datalog records.

The body is records framed exactly as in a datalog file (no file header), so every record's
CRC is checked on arrival. A batch commits as one unit (one transaction, per-(origin,
history) dedup); loops are dropped before they reach the committer.

A record whose origin is this node's own id is a loop (dropped and counted, ArangoDB 1405)
when its history is one of this node's own or its ``via`` holds this node: it is our own
write coming back. Otherwise another live node uses our id: an **id collision** (1420).
The whole batch is refused with 409 and nothing of it is applied; the forwarder keeps it
pending and retries, so it replicates once the operator gives one of the nodes another id.
"""

from __future__ import annotations

import json
import logging
from typing import Any, NoReturn

from aiohttp import web

from fanout.datalog.format import Record, decode_frames
from fanout.errors import ERROR_ID_COLLISION, DatalogCorruptError, GTSParseError, SelectorError
from fanout.node.changes import Pending, replicated_pending
from fanout.node.committer import is_own_write
from fanout.node.context import NODE, commit
from fanout.node.http import authorize, fail, json_reply, read_body
from fanout.node.validate import RecordInvalid, validate_batch
from fanout.statefile import iso_now

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
    own = node.committer.own_limits
    for rec in records:
        if rec.origin == me and me not in rec.via and not is_own_write(own, rec.history,
                                                                       rec.oseq):
            refuse_collision(node, rec)
    pending: list[Pending] = []
    loops = 0
    for rec in records:
        if rec.origin == me or me in rec.via:
            loops += 1  # ArangoDB 1405: our own write coming back around a ring
            continue
        try:
            pending.append(replicated_pending(rec, node.config.log_remote_changes))
        except (GTSParseError, SelectorError, ValueError, KeyError, TypeError) as exc:
            fail(400, f"record seq {rec.seq} from origin {rec.origin} oseq {rec.oseq}: {exc}")
    node.replication.loops += loops
    node.replication.batches += 1
    node.replication.records += len(records)
    outcomes = await commit(node, pending) if pending else []
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


def refuse_collision(node: Any, rec: Record) -> NoReturn:
    """409 with errorNum 1420: two live nodes have one id (see the module docstring)."""
    me = node.config.id
    message = (f"id collision: this batch holds a write of origin {me!r} from history "
               f"{rec.history} (seq {rec.seq}, oseq {rec.oseq}) that node {me!r} here did not "
               "write (it never had that history, or left it before that oseq): two running "
               f"nodes are configured with id {me!r} (a second process, a cloned VM or "
               "store), or this node was wiped or restored inside a ring and these are its "
               "lost writes coming back (docs/operations.md, error 1420). Nothing of this "
               "batch was applied; the sender keeps it and retries")
    node.replication.collisions += 1
    node.replication.last_collision = {"origin": me, "history": rec.history,
                                       "time": iso_now(), "message": message}
    log.error("%s", message)
    raise web.HTTPConflict(text=json.dumps({
        "error": True, "code": 409, "errorNum": ERROR_ID_COLLISION, "errorMessage": message,
        "origin": me, "history": rec.history}), content_type="application/json")
