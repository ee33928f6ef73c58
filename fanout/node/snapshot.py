"""Initial sync: a consistent snapshot streamed out of one node and restored into another.

Stream format (text, one item a line)::

    {"format": "fanout-snapshot", "version": 1, "serverId": ..., "lastLogTick": "N",
     "marks": {"origin": "oseq", ...},
     "histories": {"origin": {"history": "oseq", ...}, ...},
     "latestHistories": {"origin": "history", ...}}
    S CLASS{LABELS}{ATTRS}          one per series, in (class, labels) order
    TS/LAT:LON/ELEV CLASS{LABELS} VALUE    its readings, canonical, ascending
    E {"series": n, "points": m}    the trailer: a cut stream is never restored

The marks and lastLogTick are those of exactly the data that follows (one read
transaction), so per-origin dedup makes the overlap with replication that resumes after
``lastLogTick`` exact: ArangoDB's "full sync, then continuous replication from the tick".

``marks`` is per origin its latest-known history's mark (what readers of version 1 used);
``histories`` has every (origin, history) mark and is what a restore loads, and
``latestHistories`` names each origin's latest-known one (JSON objects have no order). A stream
without it (written before histories) is read as all marks in the legacy history. The
restored-into node keeps its own histories: the source's histories arrive as marks only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from fanout.errors import DiskFullError, FanoutError, GTSParseError, StoreNotEmptyError
from fanout.gts import format_meta, format_reading, parse_meta, parse_update
from fanout.gts.model import MetaLine, Reading
from fanout.node.context import NODE
from fanout.node.http import authorize, fail, json_reply
from fanout.store.base import LEGACY_HISTORY, HistoryMarks, Point, SeriesDump, Snapshot

log = logging.getLogger("fanout.node.snapshot")

FORMAT = "fanout-snapshot"
VERSION = 1
CHUNK_LINES = 5000
# No line of a well-formed stream comes near this (field limits keep series lines to a
# few MiB); a longer one is refused instead of being read whole into memory.
MAX_LINE = 16 << 20


class SnapshotFormatError(FanoutError, ValueError):
    """The stream is not a complete, well-formed snapshot (names the line)."""


def header(server_id: str, snap: Snapshot) -> str:
    return json.dumps({
        "format": FORMAT, "version": VERSION, "serverId": server_id,
        "lastLogTick": str(snap.last_seq),
        "marks": {k: str(v) for k, v in sorted(snap.marks.items())},
        "histories": marks_json(snap.history_marks),
        "latestHistories": {o: next(reversed(hs)) for o, hs in snap.history_marks.items()
                            if hs},
    }, sort_keys=True) + "\n"


def marks_json(marks: HistoryMarks) -> dict[str, dict[str, str]]:
    """(origin, history) marks as JSON: oseqs as strings, like every tick leaving us."""
    copy = [(o, dict(hs)) for o, hs in list(marks.items())]  # the commit thread writes on
    return {o: {h: str(q) for h, q in hs.items()} for o, hs in sorted(copy)}


def encode(server_id: str, snap: Snapshot) -> Iterator[str]:
    """The whole stream, a chunk of lines at a time (memory stays one chunk)."""
    yield header(server_id, snap)
    nseries = npoints = 0
    buf: list[str] = []
    for cls, labels, attrs, points in snap.series():
        nseries += 1
        buf.append("S " + format_meta([MetaLine(cls, labels, attrs)]))
        for ts, lat, lon, elev, value in points:
            buf.append(format_reading(Reading(ts, lat, lon, elev, cls, labels, value)) + "\n")
            npoints += 1
            if len(buf) >= CHUNK_LINES:
                yield "".join(buf)
                buf = []
    buf.append("E " + json.dumps({"series": nseries, "points": npoints}) + "\n")
    yield "".join(buf)


class Reader:
    """Parses a spooled stream; ``series()`` feeds ``Store.restore`` and raises on the
    first malformed line or a missing/mismatched trailer (the restore then rolls back)."""

    def __init__(self, f: IO[str]):
        self._f = f
        self._lineno = 1
        first = f.readline(MAX_LINE + 1)
        try:
            if len(first) > MAX_LINE:
                raise ValueError(f"header line longer than {MAX_LINE} characters")
            h = json.loads(first)
            if h.get("format") != FORMAT or h.get("version") != VERSION:
                raise ValueError(f"not a {FORMAT} v{VERSION} stream")
            self.server_id = str(h["serverId"])
            self.last_log_tick = int(h["lastLogTick"])
            self.marks = {str(k): int(v) for k, v in h["marks"].items()}
            if "histories" in h:
                self.history_marks: HistoryMarks = {
                    str(o): {str(k): int(v) for k, v in hs.items()}
                    for o, hs in h["histories"].items()}
            else:
                self.history_marks = {o: {LEGACY_HISTORY: q} for o, q in self.marks.items()}
            for o, latest in (h.get("latestHistories") or {}).items():
                hs = self.history_marks.get(str(o), {})
                if latest in hs:
                    hs[latest] = hs.pop(latest)  # last: the origin's latest-known history
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SnapshotFormatError(f"line 1: bad snapshot header: {exc}") from None
        self._pending: str | None = None
        self.series_count = 0
        self.points = 0

    def _line(self) -> str:
        if self._pending is not None:
            line, self._pending = self._pending, None
            return line
        self._lineno += 1
        line = self._f.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise SnapshotFormatError(f"line {self._lineno}: longer than {MAX_LINE} characters")
        return line

    def series(self) -> Iterator[SeriesDump]:
        while True:
            line = self._line()
            if not line:
                raise SnapshotFormatError(f"line {self._lineno}: stream ends without trailer")
            if line.startswith("E "):
                self._trailer(line)
                return
            if not line.startswith("S "):
                raise SnapshotFormatError(f"line {self._lineno}: expected a series line")
            try:
                [ml] = parse_meta(line[2:])
            except (GTSParseError, ValueError) as exc:
                raise SnapshotFormatError(f"line {self._lineno}: {exc}") from None
            self.series_count += 1
            yield ml.cls, ml.labels, ml.attrs, self._points(ml)

    def _points(self, ml: MetaLine) -> Iterator[Point]:
        while True:
            batch: list[str] = []
            first = self._lineno
            while len(batch) < CHUNK_LINES:
                line = self._line()
                if not line or line.startswith(("S ", "E ")):
                    self._pending = line or None
                    break
                batch.append(line)
            if not batch:
                return
            try:
                readings = parse_update("".join(batch), 0)
            except GTSParseError as exc:
                raise SnapshotFormatError(f"line {first + exc.line}: {exc.reason}") from None
            for r in readings:
                if r.cls != ml.cls or r.labels != ml.labels:
                    raise SnapshotFormatError(f"near line {first}: reading of another series")
                self.points += 1
                yield r.ts, r.lat, r.lon, r.elev, r.value
            if self._pending is not None:
                return

    def _trailer(self, line: str) -> None:
        try:
            t = json.loads(line[2:])
            ok = t["series"] == self.series_count and t["points"] == self.points
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise SnapshotFormatError(
                f"line {self._lineno}: trailer {line[2:].strip()} does not match "
                f"{self.series_count} series, {self.points} points received")


# -- HTTP ---------------------------------------------------------------------------------

async def handle_snapshot(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    authorize(request, node.tokens, "replicate")
    loop = asyncio.get_running_loop()
    snap = await loop.run_in_executor(None, node.store.snapshot)
    try:
        chunks = encode(node.config.id, snap)
        resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8",
                                           "X-Fanout-Last-Log-Tick": str(snap.last_seq)})
        await resp.prepare(request)
        while True:
            chunk = await loop.run_in_executor(None, next, chunks, None)
            if chunk is None:
                break
            await resp.write(chunk.encode())
        await resp.write_eof()
        return resp
    finally:
        await loop.run_in_executor(None, snap.close)


async def handle_restore(request: web.Request) -> web.Response:
    """Spool the stream to disk (bounded memory), then load it in one transaction on the
    commit thread: a cut or malformed stream changes nothing."""
    node = request.app[NODE]
    replace = request.query.get("replace", "false").lower() == "true"
    # Filling an empty store is part of initial sync (replicate); replacing a store wipes
    # whatever it holds, so it needs a token an upstream peer does not get by default.
    authorize(request, node.tokens, "admin" if replace else "replicate")
    limit = node.config.limits.max_restore_bytes
    if request.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        fail(415, "a snapshot is restored as sent: no Content-Encoding")
    if (request.content_length or 0) > limit:
        fail(413, f"snapshot over max_restore_bytes ({limit})")
    spool = node.config.state_dir / f".restore-{os.getpid()}-{id(request)}.tmp"
    try:
        await _spool(request, spool, limit, node.config.limits.body_timeout)
        result = await node.committer.exclusive(lambda: _restore(node, spool, replace))
    except StoreNotEmptyError as exc:
        raise web.HTTPConflict(text=f"{exc}\n") from None
    except SnapshotFormatError as exc:
        fail(400, f"bad snapshot: {exc}")
    except UnicodeDecodeError as exc:
        fail(400, f"bad snapshot: not valid UTF-8 at byte {exc.start} of a line")
    except DiskFullError as exc:
        fail(507, f"not restored: {exc}")
    finally:
        with contextlib.suppress(FileNotFoundError):
            spool.unlink()
    log.warning("restored a snapshot of %s at tick %s: %d series, %d points (replace=%s)",
                result["serverId"], result["lastLogTick"], result["series"], result["points"],
                replace)
    return json_reply(result)


async def _spool(request: web.Request, spool: Path, limit: int, stall: float) -> None:
    """Copy the body to ``spool``: at most ``limit`` bytes, and never ``stall`` seconds
    without a byte (a stalled sender must not hold a spool and a connection for ever)."""
    size = 0
    try:
        with open(spool, "wb") as f:
            it = request.content.iter_chunked(1 << 20).__aiter__()
            while True:
                try:
                    async with asyncio.timeout(stall):
                        chunk = await it.__anext__()
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    fail(408, f"snapshot stalled: no data for body_timeout ({stall:.0f}s)")
                size += len(chunk)
                if size > limit:
                    fail(413, f"snapshot over max_restore_bytes ({limit})")
                f.write(chunk)
    except OSError as exc:
        fail(507, f"cannot spool the snapshot: {exc}")


def _restore(node: Any, spool: Path, replace: bool) -> dict[str, Any]:
    """On the commit thread. This node's own marks never go down: its next client write
    must not reuse an oseq it already gave out in its history."""
    c = node.committer
    with open(spool, encoding="utf-8") as f:
        reader = Reader(f)
        marks = {o: dict(hs) for o, hs in reader.history_marks.items()}
        me = node.config.id
        for h, q in c.hmarks.get(me, {}).items():
            mine = marks.setdefault(me, {})
            mine[h] = max(mine.get(h, 0), q)
        node.store.restore(marks, reader.series(), replace)
    c.hmarks = node.store.history_marks()
    c.marks = node.store.marks()
    return {"serverId": reader.server_id, "lastLogTick": str(reader.last_log_tick),
            "series": reader.series_count, "points": reader.points,
            "marks": {k: str(v) for k, v in sorted(c.marks.items())},
            "histories": marks_json(c.hmarks)}


async def handle_marks(request: web.Request) -> web.Response:
    """Where this node stands per origin: the truth a forwarder resumes from."""
    node = request.app[NODE]
    if request.headers.get("X-Warp10-Token") and not _may(request, node, "replicate"):
        authorize(request, node.tokens, "read")
    else:
        authorize(request, node.tokens, "replicate")
    c = node.committer
    return json_reply({"serverId": node.config.id, "lastLogTick": str(c.last_seq),
                       "history": c.history.id,
                       "marks": {k: str(v) for k, v in sorted(c.marks.items())},
                       "histories": marks_json(c.hmarks),
                       "divergence": list(c.stats.divergence)})


def _may(request: web.Request, node: Any, permission: str) -> bool:
    try:
        authorize(request, node.tokens, permission)
        return True
    except web.HTTPForbidden:
        return False


async def download_and_restore(node: Any, source: Any) -> dict[str, Any]:
    """Spool ``source``'s snapshot locally, then restore it (replace: a restarted memory
    store is empty anyway, and replace keeps a half-seen seed from blocking a retry)."""
    import aiohttp

    spool = node.config.state_dir / f".seed-{os.getpid()}.tmp"
    try:
        tmo = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
        async with aiohttp.ClientSession(timeout=tmo) as s, s.get(
                f"{source.url}/api/v0/replication/snapshot", ssl=source.ssl(),
                allow_redirects=False, headers={"X-Warp10-Token": source.token}) as resp:
            if resp.status != 200:
                raise SnapshotFormatError(f"HTTP {resp.status}: {(await resp.text())[:300]}")
            limit = node.config.limits.max_restore_bytes
            size = 0
            with open(spool, "wb") as f:
                async for chunk in resp.content.iter_chunked(1 << 20):
                    size += len(chunk)
                    if size > limit:
                        raise SnapshotFormatError(f"seed snapshot over max_restore_bytes "
                                                  f"({limit})")
                    f.write(chunk)
        return dict(await node.committer.exclusive(lambda: _restore(node, spool, True)))
    finally:
        with contextlib.suppress(FileNotFoundError):
            spool.unlink()
