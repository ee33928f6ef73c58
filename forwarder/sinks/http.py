"""The aiohttp client session every sink uses: keep-alive, one connection, two timeouts."""

from __future__ import annotations

import asyncio

import aiohttp

from forwarder.sinks.base import SinkUnavailable


def make_session(
    connect_timeout: float, request_timeout: float, token: str
) -> aiohttp.ClientSession:
    """``connect_timeout`` bounds connecting; ``request_timeout`` the whole request."""
    timeout = aiohttp.ClientTimeout(total=request_timeout, connect=connect_timeout,
                                    sock_connect=connect_timeout)
    connector = aiohttp.TCPConnector(limit=1, force_close=False, enable_cleanup_closed=True)
    return aiohttp.ClientSession(timeout=timeout, connector=connector,
                                 headers={"X-Warp10-Token": token}, auto_decompress=True)


def unavailable(exc: BaseException, url: str) -> SinkUnavailable:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return SinkUnavailable(f"timed out talking to {url}")
    return SinkUnavailable(f"cannot reach {url}: {exc.__class__.__name__}: {exc}")


NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, TimeoutError, OSError)
