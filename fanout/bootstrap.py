"""Initial sync of a target: snapshot the local node, restore it into the target, stream
to stream, never holding the snapshot in memory.

Used by ``fanout bootstrap`` and by a forwarder with ``auto_resync: true`` that finds a
gap. The order is what makes it exact (ArangoDB's rule): linking into the target's source
directory must already be running, so every record after the snapshot's tick is waiting
there; the snapshot's per-origin marks then make the target skip the overlap.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from fanout.config import NodeConfig
from fanout.errors import ERROR_START_TICK_NOT_PRESENT, ConfigError, FanoutError
from fanout.node.tokens import load_tokens
from fanout.tlsconfig import NO_CLIENT_TLS, ClientTLS, self_client

Progress = Callable[[int, float], None]  # bytes streamed so far, seconds elapsed


class BootstrapError(FanoutError):
    error_num = ERROR_START_TICK_NOT_PRESENT


@dataclass(frozen=True)
class Endpoint:
    url: str
    token: str = ""
    tls: ClientTLS = NO_CLIENT_TLS  # for an https:// url

    def ssl(self) -> ssl.SSLContext | bool:
        """The context aiohttp verifies the endpoint with (True: the default)."""
        return self.tls.context() if self.url.startswith("https://") else True

    def __repr__(self) -> str:  # never show the token
        return f"Endpoint({self.url!r})"


def local_endpoint(cfg: NodeConfig) -> Endpoint:
    """The local node, with a token of its own that has ``replicate``."""
    table = load_tokens(cfg.tokens_file)
    secret = table.secret_with("replicate")
    if secret is None:
        raise ConfigError(cfg.tokens_file, None, "no token with the 'replicate' permission",
                          hint="add one, e.g. replicator: {secret: ..., "
                               "permissions: [replicate]}")
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::", "") else cfg.host
    if cfg.tls is not None:
        return Endpoint(f"https://{host}:{cfg.port}", secret, self_client(cfg.tls))
    return Endpoint(f"http://{host}:{cfg.port}", secret)


async def copy_snapshot(source: Endpoint, target: Endpoint, replace: bool,
                        progress: Progress | None = None,
                        timeout: float = 3600.0) -> dict[str, Any]:
    """GET the source's snapshot and POST it to the target's restore as it arrives.
    Returns the target's reply (series, points, marks, lastLogTick). A TLS failure is a
    BootstrapError naming its cause (fanout.tlsdiag)."""
    try:
        return await _copy_snapshot(source, target, replace, progress, timeout)
    except aiohttp.ClientError as exc:
        from fanout.tlsdiag import diagnose

        for end in (target, source):
            ctx = end.ssl()
            if isinstance(ctx, ssl.SSLContext):
                found = await diagnose(exc, end.url, end.tls, ctx)
                if found is not None:
                    raise BootstrapError(found.message) from None
        raise


async def _copy_snapshot(source: Endpoint, target: Endpoint, replace: bool,
                         progress: Progress | None, timeout: float) -> dict[str, Any]:
    t0 = time.monotonic()
    tmo = aiohttp.ClientTimeout(total=timeout, sock_connect=10)
    async with aiohttp.ClientSession(timeout=tmo) as session, session.get(
            f"{source.url}/api/v0/replication/snapshot", ssl=source.ssl(),
            headers={"X-Warp10-Token": source.token}) as snap:
        if snap.status != 200:
            raise BootstrapError(f"snapshot from {source.url}: HTTP {snap.status}: "
                                 f"{(await snap.text()).strip()[:300]}")

        async def body() -> AsyncIterator[bytes]:
            sent = 0
            last = 0.0
            async for chunk in snap.content.iter_chunked(1 << 20):
                sent += len(chunk)
                now = time.monotonic()
                if progress is not None and now - last >= 1.0:
                    progress(sent, now - t0)
                    last = now
                yield chunk
            if progress is not None:
                progress(sent, time.monotonic() - t0)

        url = f"{target.url}/api/v0/replication/restore"
        async with session.post(url, data=body(), params={"replace": str(replace).lower()},
                                ssl=target.ssl(),
                                headers={"X-Warp10-Token": target.token,
                                         "Content-Type": "text/plain"}) as resp:
            text = await resp.text()
            if resp.status != 200:
                hint = " (the target is not empty: use --replace)" \
                    if resp.status == 409 else ""
                if resp.status == 403 and replace:
                    hint = (" (replacing a store needs the 'admin' permission: give the "
                            "token this target's forwarder uses 'admin' in the target's "
                            "tokens file, e.g. its 'admin' token from fanout init)")
                raise BootstrapError(f"restore on {target.url}: HTTP {resp.status}: "
                                     f"{text.strip()[:300]}{hint}")
            return dict(json.loads(text))
