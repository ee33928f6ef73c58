"""Resource guards of the node's HTTP server: concurrent requests, in-flight body bytes and
file descriptors. Each refuses the newcomer (503 + Retry-After, or a closed connection)
rather than letting one client take the node down for everyone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import ssl
import time
from asyncio import sslproto
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.typedefs import Handler

log = logging.getLogger("fanout.node")

RETRY_AFTER = "1"


def busy(message: str) -> web.HTTPServiceUnavailable:
    return web.HTTPServiceUnavailable(text=message + "\n", headers={"Retry-After": RETRY_AFTER})


class Guard:
    """Counters shared by the middleware and the body reader (event loop only)."""

    def __init__(self, max_requests: int, max_body_bytes: int, max_parses: int,
                 max_fetches: int = 16):
        self.max_requests = max_requests
        self.max_body_bytes = max_body_bytes
        self.requests = 0
        self.body_bytes = 0
        self.parses = asyncio.Semaphore(max_parses)
        self.fetches = asyncio.Semaphore(max_fetches)
        self.refused = 0

    def take_body(self, n: int) -> None:
        """Count ``n`` more body bytes held in memory, or 503 when over the budget."""
        if self.body_bytes + n > self.max_body_bytes:
            self.refused += 1
            raise busy(f"node busy: request bodies in flight over max_inflight_body_bytes "
                       f"({self.max_body_bytes}); retry later")
        self.body_bytes += n

    def give_body(self, n: int) -> None:
        self.body_bytes -= n

    def middleware(self) -> Any:
        @web.middleware
        async def limit_requests(request: web.Request,
                                 handler: Handler) -> web.StreamResponse:
            if self.requests >= self.max_requests:
                self.refused += 1
                raise busy(f"node busy: {self.requests} requests in progress, the "
                           f"max_concurrent_requests limit; retry later")
            self.requests += 1
            try:
                return await handler(request)
            finally:
                self.requests -= 1
        return limit_requests


def raise_nofile() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the (soft, hard) now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
    return soft, hard


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except FileNotFoundError:  # no procfs: count nothing, the accept loop copes with EMFILE
        return 0
    except OSError:  # EMFILE while listing: we are at the limit
        return 1 << 30


class FdHeadroom:
    """Decides at accept time whether a new connection may be served: when open fds come
    within ``reserve`` of the limit, new connections are closed at once, so the state file,
    the datalog and store keep the descriptors they need (EMFILE never reaches them)."""

    def __init__(self, reserve: int):
        self.reserve = reserve
        self.limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self._count = 0
        self._at = 0.0
        self.refused = 0
        self._logged = 0.0

    def admit(self) -> bool:
        now = time.monotonic()
        # Re-count when near the limit or every 50 ms; in between, count the accepts.
        if now - self._at > 0.05 or self._count + 2 * self.reserve >= self.limit:
            self._count = open_fds()
            self._at = now
        else:
            self._count += 1
        if self._count + self.reserve < self.limit:
            return True
        self.refused += 1
        if now - self._logged > 10:
            self._logged = now
            log.warning("%d of %d file descriptors open: refusing new connections "
                        "(fd_reserve %d; %d refused so far)", self._count, self.limit,
                        self.reserve, self.refused)
        return False


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]


def guarded_factory(factory: Callable[[], asyncio.Protocol],
                    headroom: FdHeadroom, ssl_context: ssl.SSLContext | None = None,
                    handshake_timeout: float | None = None) -> Callable[[], asyncio.Protocol]:
    """With ``ssl_context``, TLS is layered here rather than by ``create_server(ssl=)``:
    asyncio would run the whole handshake (up to its timeout) before a refusing protocol
    could close the connection, so descriptors would pile up past the headroom. Here a
    refused connection is closed at accept, before any handshake."""
    def make() -> asyncio.Protocol:
        if not headroom.admit():
            return _Refuse()
        if ssl_context is None:
            return factory()
        # asyncio's own server-side TLS protocol; typeshed wants a waiter future and an
        # int timeout, but the loop passes None and a float itself
        proto = sslproto.SSLProtocol(
            asyncio.get_running_loop(), factory(), ssl_context, None,  # type: ignore[arg-type]
            server_side=True,
            ssl_handshake_timeout=handshake_timeout)  # type: ignore[arg-type]
        return cast(asyncio.Protocol, proto)
    return make
