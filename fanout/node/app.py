"""The node's HTTP API: the Warp 10 write/read subset and the replication logger state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from fanout.config import NodeConfig
from fanout.errors import GTSParseError, SelectorError
from fanout.gts import parse_selector, series_key
from fanout.gts.limits import FieldLimits, RequestTooLargeError
from fanout.gts.update import Now, now_from_header
from fanout.node.changes import (
    Pending,
    RequestLimits,
    delete_pending,
    meta_pending,
    update_pendings,
)
from fanout.node.context import NODE, Node, commit
from fanout.node.fetchformat import CANONICAL, output_format, render, series_text
from fanout.node.guard import Guard
from fanout.node.http import (
    BODY_GUARD,
    TOKEN_HEADER,
    authorize,
    decode_text,
    fail,
    int_param,
    json_reply,
    read_body,
)
from fanout.node.metrics import metrics_handler
from fanout.node.replication import handle_replicate
from fanout.node.snapshot import handle_marks, handle_restore, handle_snapshot
from fanout.node.timeparams import TimeParamError, delete_range, fetch_range
from fanout.node.tokens import AuthError

log = logging.getLogger("fanout.node")

# Bodies above this are parsed off the event loop so one huge request cannot stall others.
INLINE_PARSE_LIMIT = 256 * 1024
FETCH_CHUNK_LINES = 5000

GUARD = web.AppKey("guard", Guard)


def request_limits(cfg: NodeConfig) -> RequestLimits:
    lim = cfg.limits
    return RequestLimits(
        FieldLimits(lim.max_class_length, lim.max_label_name_length, lim.max_label_value_length,
                    lim.max_labels, lim.max_string_value_length),
        lim.max_points_per_request, lim.max_record_bytes)


def _big_write(request: web.Request,
               body: bytes) -> contextlib.AbstractAsyncContextManager[Any]:
    """A slot among ``max_concurrent_parses`` for a big body, held from decoding to commit:
    its decoded and parsed forms take ~10x its size, so this is what bounds the node's peak
    memory. Parsing is GIL-bound anyway, so the wait costs no throughput; small writes
    never wait here."""
    guard = request.app.get(GUARD)
    if guard is None or len(body) <= INLINE_PARSE_LIMIT:
        return contextlib.nullcontext()
    return guard.parses


_T = TypeVar("_T")

async def _parse(body: bytes, fn: Callable[..., _T], *args: Any) -> _T:
    """Run a parser, off the loop for big bodies; parse errors become 400 naming the line."""
    try:
        if len(body) > INLINE_PARSE_LIMIT:
            return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
        return fn(*args)
    except (GTSParseError, SelectorError) as exc:
        fail(400, str(exc))
    except RequestTooLargeError as exc:
        fail(413, str(exc))


def _ticked(node: Node, pending: Pending, resp: web.Response) -> web.Response:
    """Tell the client where its write stands: a replica has it once its marks reach
    (origin, history, oseq), which is how lag is measured end to end."""
    resp.headers["X-Fanout-Tick"] = str(pending.seq)
    resp.headers["X-Fanout-Origin"] = node.config.id
    resp.headers["X-Fanout-Oseq"] = str(pending.oseq)
    resp.headers["X-Fanout-History"] = pending.history or node.committer.history.id
    return resp


def _clock_us() -> int:
    return time.time_ns() // 1000


def _update_now(request: web.Request) -> Now:
    """The "now" of an update: the ``now`` parameter or the clock, moved or replaced by
    ``X-Warp10-Now`` (``+N``, ``-N``, ``*`` or an absolute time) as Warp 10 does."""
    base = int_param(request, "now") if "now" in request.query else None
    if base is None:
        base = _clock_us()
    hdr_now = request.headers.get("X-Warp10-Now")
    if hdr_now is None:
        return base
    try:
        return now_from_header(hdr_now, base, _clock_us)
    except ValueError as exc:
        fail(400, str(exc))


async def handle_update(request: web.Request) -> web.Response:
    node = request.app[NODE]
    token_id = authorize(request, node.tokens, "write")
    body = await read_body(request, node.config.max_body_size)
    now = _update_now(request)
    mode = request.headers.get("X-Warp10-Attributes", "").strip().lower()
    attributes = mode if mode in ("delta", "skip") else "replace"
    async with _big_write(request, body):
        text = decode_text(body)
        pending = await _parse(body, update_pendings, text, now, token_id,
                               request_limits(node.config), attributes)
        del text
        if not pending[0].points:
            return web.Response(status=200)
        await commit(node, pending)
    return _ticked(node, pending[-1], web.Response(status=200))


async def handle_meta(request: web.Request) -> web.Response:
    node = request.app[NODE]
    token_id = authorize(request, node.tokens, "write")
    body = await read_body(request, node.config.max_body_size)
    delta = request.headers.get("X-Warp10-Attributes", "").strip().lower() == "delta"
    async with _big_write(request, body):
        text = decode_text(body)
        pending = await _parse(body, meta_pending, text, delta, token_id,
                               request_limits(node.config))
        del text
        if not pending.body:
            return web.Response(status=200)
        await commit(node, [pending])
    return _ticked(node, pending, web.Response(status=200))


def _time_error(exc: TimeParamError) -> NoReturn:
    fail(400, str(exc))


# Warp 10 parameters that change which readings or series are answered, which the node
# does not implement: refused, so nobody takes a partial answer for Warp 10's. (Cache and
# persistence hints, sortmeta and showerrors change nothing here and are accepted.)
UNSUPPORTED_FETCH = ("skip", "step", "timestep", "sample", "gcount", "gskip", "boundary.pre",
                     "boundary.post", "activeafter", "quietafter", "unpack")
UNSUPPORTED_DELETE = ("metaonly", "activeafter", "quietafter")


def _refuse_unsupported(request: web.Request, names: tuple[str, ...], what: str) -> None:
    for name in names:
        if name in request.query:
            fail(400, f"the Warp 10 {what} parameter '{name}' is not supported by this node")


def _flag(request: web.Request, name: str) -> bool:
    """A Warp 10 flag parameter: present means set, whatever its value (``showattr``,
    ``dedup``, ``dryrun``, ``deleteall``)."""
    return name in request.query


async def handle_delete(request: web.Request) -> web.Response:
    """``StandaloneDeleteHandler``: the reply lists ``class{labels}{attrs}`` of every
    series the selector matches, one per CRLF-ended line; ``dryrun`` answers the same list
    and changes nothing (nothing is logged or replicated); ``minage`` is refused, as the
    standalone Warp 10 does."""
    node = request.app[NODE]
    token_id = authorize(request, node.tokens, "write")
    selector = request.query.get("selector")
    if not selector:
        fail(400, "parameter 'selector' is required")
    _refuse_unsupported(request, UNSUPPORTED_DELETE, "delete")
    if "minage" in request.query:
        fail(400, "the 'minage' parameter is not supported in delete requests (as in the "
                  "standalone Warp 10): delete with 'start' and 'end' instead")
    try:
        rng = delete_range(request.query)
    except TimeParamError as exc:
        _time_error(exc)
    start, end = rng if rng is not None else (None, None)
    deleteall = _flag(request, "deleteall")
    if deleteall == (rng is not None):
        fail(400, "give either 'start' and 'end', or 'deleteall'")
    if _flag(request, "dryrun"):
        try:
            parsed = parse_selector(selector)
        except SelectorError as exc:
            fail(400, str(exc))
        found = await asyncio.get_running_loop().run_in_executor(None, node.store.find, parsed)
        body = "".join(series_text(c, lb, a) + "\r\n" for c, lb, a in found)
        return web.Response(text=body, content_type="text/plain")
    pending = await _parse(b"", delete_pending, selector, start, end, token_id)
    # The attributes are gone once the delete is applied: read them first. A series
    # created between this read and the commit is listed with {}.
    found = await asyncio.get_running_loop().run_in_executor(
        None, node.store.find, parse_selector(selector))
    before = {series_key(c, lb): series_text(c, lb, a) for c, lb, a in found}
    [outcome] = await commit(node, [pending])
    text = "".join(before.get(key, key + "{}") + "\r\n" for key in outcome.deleted)
    return _ticked(node, pending, web.Response(text=text, content_type="text/plain"))


def _authorize_read(request: web.Request, node: Node) -> str:
    """Fetch takes its token from the ``token`` query parameter too (as Warp 10 does)
    when no X-Warp10-Token header is given."""
    if TOKEN_HEADER not in request.headers and "token" in request.query:
        try:
            return node.tokens.check(request.query["token"], "read")
        except AuthError as exc:
            fail(403, str(exc))
    return authorize(request, node.tokens, "read")


async def handle_fetch(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    _authorize_read(request, node)
    raw = request.query.get("selector")
    if not raw:
        fail(400, "parameter 'selector' is required")
    try:
        selector = parse_selector(raw)
    except SelectorError as exc:
        fail(400, str(exc))
    _refuse_unsupported(request, UNSUPPORTED_FETCH, "fetch")
    try:
        rng = fetch_range(request.query)
    except TimeParamError as exc:
        _time_error(exc)
    fmt = output_format(request.query.get("format"))
    showattr = _flag(request, "showattr")
    dedupe = _flag(request, "dedup")
    # Each running fetch holds a store reader (and, in SQLite, file descriptors that stay
    # open while any other reader is): at most max_concurrent_fetches at once; the others
    # wait their turn. The slot is given back only once the reader is closed.
    guard = request.app.get(GUARD)
    if guard is not None:
        await guard.fetches.acquire()
    source: Iterator[object] | None = None
    try:
        if fmt == CANONICAL:
            source = node.store.fetch(selector, rng.start, rng.end, last=rng.count,
                                      showattr=showattr)
            lines: Iterator[str] = (line + "\n" for line in source)
        else:
            source = node.store.scan(selector, rng.start, rng.end, last=rng.count)
            lines = render(source, fmt, showattr=showattr, dedupe=dedupe)
    except BaseException:
        if guard is not None:
            guard.fetches.release()
        raise
    ctype = "application/json" if fmt == "json" else "text/plain"
    lock = threading.Lock()
    loop = asyncio.get_running_loop()
    try:
        resp = web.StreamResponse(headers={"Content-Type": f"{ctype}; charset=utf-8",
                                           "X-Warp10-Timeunit": "1000000"})
        await resp.prepare(request)
        try:
            while True:
                chunk = await loop.run_in_executor(None, _take, lines, FETCH_CHUNK_LINES, lock)
                if not chunk:
                    break
                await resp.write(chunk.encode())
        except ConnectionResetError:
            pass  # the client left: nothing to answer, no traceback to log
        else:
            await resp.write_eof()
        return resp
    finally:
        # A client gone mid-reply must not leave the store's reader (a connection, a
        # cursor, a read transaction) open until garbage collection: close it now, on a
        # worker thread, after any _take still running there (the lock orders them).
        closing = loop.run_in_executor(None, _close, [lines, source], lock)
        if guard is not None:
            closing.add_done_callback(lambda _: guard.fetches.release())


def _take(pieces: Iterator[str], n: int, lock: threading.Lock) -> str:
    """Up to ``n`` pieces of the reply (each a line or less), joined."""
    out = []
    with lock:
        for piece in pieces:
            out.append(piece)
            if len(out) >= n:
                break
    return "".join(out)


def _close(iterators: Sequence[object], lock: threading.Lock) -> None:
    """Close the formatter first, then the store's iterator under it."""
    with lock:
        for it in iterators:
            close = getattr(it, "close", None)
            if close is not None:
                close()


async def handle_logger_state(request: web.Request) -> web.Response:
    node = request.app[NODE]
    tok = request.headers.get("X-Warp10-Token")
    try:
        authorize(request, node.tokens, "replicate")
    except web.HTTPForbidden:
        if tok is None:
            raise
        authorize(request, node.tokens, "read")
    return json_reply(node.logger_state())


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    node = request.app[NODE]
    node.requests += 1
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            node.rejected += 1
        raise


def build_app(node: Node) -> web.Application:
    lim = node.config.limits
    guard = Guard(lim.max_concurrent_requests, lim.max_inflight_body_bytes,
                  lim.max_concurrent_parses, lim.max_concurrent_fetches)
    app = web.Application(client_max_size=node.config.max_body_size,
                          middlewares=[count_requests, guard.middleware()])
    app[NODE] = node
    app[GUARD] = guard
    app[BODY_GUARD] = (guard, lim.body_timeout)
    app.add_routes(
        [
            web.post("/api/v0/update", handle_update),
            web.post("/api/v0/update/{token}", handle_update),
            web.post("/api/v0/meta", handle_meta),
            web.post("/api/v0/meta/{token}", handle_meta),
            web.get("/api/v0/delete", handle_delete),
            web.get("/api/v0/fetch", handle_fetch),
            web.get("/api/v0/replication/logger-state", handle_logger_state),
            web.post("/api/v0/replicate", handle_replicate),
            web.get("/api/v0/replication/snapshot", handle_snapshot),
            web.post("/api/v0/replication/restore", handle_restore),
            web.get("/api/v0/replication/marks", handle_marks),
            web.get("/metrics", metrics_handler(node.config.state_dir, node.tokens,
                                                   node.config.targets_dir,
                                                   node.config.datalog_dir)),
        ]
    )
    return app
