"""Small HTTP helpers shared by the node's handlers: tokens, bodies, typed errors."""

from __future__ import annotations

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


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, gunzipped when the client says so, never more than ``limit``."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        fail(413, f"request body over the limit of {limit} bytes")
    ctype = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if ctype in ("application/gzip", "application/x-gzip"):
        raw = gunzip(raw, limit)
    return raw


def gunzip(data: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            fail(413, f"decompressed body over the limit of {limit} bytes")
        out += d.flush()
    except zlib.error as exc:
        fail(400, f"body is not valid gzip: {exc}")
    if not d.eof:
        fail(400, "body is not valid gzip: truncated stream")
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
