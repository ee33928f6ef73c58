"""Small HTTP helpers shared by the node's handlers: tokens, bodies, typed errors."""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any, NoReturn

from aiohttp import web

from fanout.node.tokens import AuthError, TokenTable

TOKEN_HEADER = "X-Warp10-Token"


def fail(status: int, message: str) -> NoReturn:
    """Raise a plain-text error reply (Warp 10 clients show the body to the user)."""
    cls = {
        400: web.HTTPBadRequest,
        403: web.HTTPForbidden,
        408: web.HTTPRequestTimeout,
        415: web.HTTPUnsupportedMediaType,
        413: web.HTTPRequestEntityTooLarge,
        503: web.HTTPServiceUnavailable,
        507: web.HTTPInsufficientStorage,
    }.get(status, web.HTTPInternalServerError)
    if cls is web.HTTPRequestEntityTooLarge:
        raise web.HTTPRequestEntityTooLarge(max_size=0, actual_size=0, text=message)
    raise cls(text=message + "\n")


def json_reply(obj: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(obj, sort_keys=True), status=status, content_type="application/json"
    )


def authorize(request: web.Request, tokens: TokenTable, permission: str) -> str:
    """Token id of the request's token, or 403. The token comes from X-Warp10-Token, the
    path's ``{token}`` (Warp 10 clients), or ``Authorization: Bearer`` (Prometheus)."""
    secret = request.headers.get(TOKEN_HEADER) or request.match_info.get("token")
    if not secret:
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            secret = auth[7:].strip()
    try:
        return tokens.check(secret, permission)
    except AuthError as exc:
        fail(403, str(exc))


# (Guard, body_timeout) set by build_app; Any: fanout.node.guard imports this module
BODY_GUARD: web.AppKey[tuple[Any, float]] = web.AppKey("body_guard")
READ_CHUNK = 1 << 16
ENCODINGS = ("", "identity", "gzip", "x-gzip", "deflate")


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, inflated when the client says so, never more than ``limit``
    bytes either as sent or inflated. Read a chunk at a time and inflated incrementally,
    so a gzip bomb costs at most ``limit`` bytes of output before its 413; the whole read
    has a deadline (``body_timeout``) and counts against the node's in-flight body budget.
    Call only after ``authorize``: strangers get their 403 before a byte is read."""
    guard, timeout = request.app.get(BODY_GUARD) or (None, None)
    enc = request.headers.get("Content-Encoding", "").strip().lower()
    if enc not in ENCODINGS:
        fail(415, f"Content-Encoding {enc[:40]!r} is not supported (use gzip or none)")
    ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    d = None
    if enc in ("gzip", "x-gzip") or ctype in ("application/gzip", "application/x-gzip"):
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    elif enc == "deflate":
        d = zlib.decompressobj()
    clen = request.content_length
    if clen is not None and clen > limit:
        fail(413, f"request body over the limit of {limit} bytes")
    parts: list[bytes] = []
    size = raw = held = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.content.iter_chunked(READ_CHUNK):
                raw += len(chunk)
                if raw > limit:
                    fail(413, f"request body over the limit of {limit} bytes")
                if d is not None:
                    chunk = _inflate(d, chunk, limit - size, limit)
                if guard is not None:
                    guard.take_body(len(chunk))
                    held += len(chunk)
                size += len(chunk)
                parts.append(chunk)
            if d is not None and not d.eof:
                fail(400, "body is not valid gzip: truncated stream")
    except TimeoutError:
        fail(408, f"request body not received within body_timeout ({timeout:.0f}s)")
    finally:
        if guard is not None:
            guard.give_body(held)
    return b"".join(parts)


def _inflate(d: Any, chunk: bytes, room: int, limit: int) -> bytes:
    try:
        out = d.decompress(chunk, room + 1)
    except zlib.error as exc:
        fail(400, f"body is not valid gzip: {exc}")
    if len(out) > room or d.unconsumed_tail:
        fail(413, f"decompressed body over the limit of {limit} bytes")
    return out


def decode_text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        fail(400, f"line {line}: not valid UTF-8 at byte {exc.start}")


def int_param(request: web.Request, name: str, *alts: str) -> int | None:
    for key in (name, *alts):
        value = request.query.get(key)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                fail(400, f"parameter '{key}' must be an integer timestamp in microseconds, "
                          f"got {value[:40]!r}")
    return None
