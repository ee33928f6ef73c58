"""The aiohttp client session every sink uses: keep-alive, one connection, two timeouts."""

from __future__ import annotations

import asyncio
import logging
import ssl
import zlib

import aiohttp

from fanout.tlsconfig import ClientTLS
from forwarder.sinks.base import SinkUnavailable, invalid_response

# Replies are a small JSON document or an error text: anything larger, as sent or once
# inflated, is a hostile or mistaken target, answered with 1401 and retried, never read.
MAX_REPLY = 1 << 20
log = logging.getLogger("fanout.forwarder")


def make_session(
    connect_timeout: float, request_timeout: float, token: str,
    ssl_context: ssl.SSLContext | None = None,
) -> aiohttp.ClientSession:
    """``connect_timeout`` bounds connecting (the TLS handshake included);
    ``request_timeout`` the whole request. Replies are inflated by ``read_reply``
    (bounded), never by aiohttp. ``ssl_context`` verifies an https target."""
    timeout = aiohttp.ClientTimeout(total=request_timeout, connect=connect_timeout,
                                    sock_connect=connect_timeout)
    connector = aiohttp.TCPConnector(limit=1, force_close=False, enable_cleanup_closed=True,
                                     ssl=ssl_context if ssl_context is not None else True)
    return aiohttp.ClientSession(timeout=timeout, connector=connector,
                                 headers={"X-Warp10-Token": token}, auto_decompress=False)


def unavailable(exc: BaseException, url: str) -> SinkUnavailable:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return SinkUnavailable(f"timed out talking to {url}")
    return SinkUnavailable(f"cannot reach {url}: {exc.__class__.__name__}: {exc}")


NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError, OSError)


class Transport:
    """An endpoint's TLS settings and context. Built at start (a key file that is not
    private, or a certificate that does not load, stops the forwarder with 1410); re-read
    after every TLS failure and on SIGHUP, so a fixed or renewed certificate file is used
    without a restart (a file that does not load then keeps the previous context)."""

    def __init__(self, endpoint: str, tls: ClientTLS):
        self.endpoint = endpoint
        self.tls = tls
        self.context = tls.context() if endpoint.startswith("https://") else None

    @property
    def ssl(self) -> ssl.SSLContext | bool:
        """aiohttp's per-request ``ssl`` argument (a new context means new connections)."""
        return self.context if self.context is not None else True

    def reload(self) -> None:
        if self.context is None:
            return
        from fanout.errors import ConfigError

        try:
            self.context = self.tls.context()
        except ConfigError as exc:
            log.error("TLS files of %s cannot be loaded, keeping the previous ones: %s",
                      self.endpoint, exc)

    async def failure(self, exc: BaseException, url: str) -> SinkUnavailable:
        """The retryable error a failed request means; a TLS failure gets its own error
        number and names the certificate (fanout.tlsdiag)."""
        if self.context is not None:
            from fanout.tlsdiag import diagnose

            found = await diagnose(exc, self.endpoint, self.tls, self.context)
            if found is not None:
                self.reload()  # the operator may be fixing a file: the next try reads it
                return SinkUnavailable(found.message, None, found.error_num)
        return unavailable(exc, url)


async def read_reply(resp: aiohttp.ClientResponse, url: str, limit: int = MAX_REPLY) -> str:
    """The reply's text, at most ``limit`` bytes both as sent and inflated."""
    enc = resp.headers.get("Content-Encoding", "").strip().lower()
    d = None
    if enc in ("gzip", "x-gzip"):
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    elif enc == "deflate":
        d = zlib.decompressobj()
    elif enc not in ("", "identity"):
        raise invalid_response(f"{url}: reply in an unknown Content-Encoding {enc[:40]!r}",
                               resp.status)
    if (resp.content_length or 0) > limit:
        raise invalid_response(f"{url}: reply of {resp.content_length} bytes is over the "
                               f"{limit} bytes a reply may have", resp.status)
    if d is None and resp.content_length is not None:
        return (await resp.read()).decode("utf-8", errors="replace")  # bounded just above
    parts: list[bytes] = []
    raw = size = 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        raw += len(chunk)
        if raw > limit:
            raise invalid_response(f"{url}: reply over {limit} bytes", resp.status)
        if d is not None:
            try:
                chunk = d.decompress(chunk, limit - size + 1)
            except zlib.error as exc:
                raise invalid_response(f"{url}: reply is not valid {enc}: {exc}",
                                       resp.status) from None
            if d.unconsumed_tail or size + len(chunk) > limit:
                raise invalid_response(f"{url}: reply inflates to over {limit} bytes",
                                       resp.status)
        size += len(chunk)
        parts.append(chunk)
    return b"".join(parts).decode("utf-8", errors="replace")
