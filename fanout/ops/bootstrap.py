"""Initial sync of a target: snapshot the local node, restore it into the target, stream
to stream, never holding the snapshot in memory.

Used by ``fanout bootstrap`` and by a forwarder with ``auto_resync: true`` that finds a
gap. The order is what makes it exact (ArangoDB's rule): linking into the target's source
directory must already be running, so every record after the snapshot's tick is waiting
there; the snapshot's per-origin marks then make the target skip the overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from fanout.config import NodeConfig, load_node_config
from fanout.errors import ERROR_START_TICK_NOT_PRESENT, ConfigError, FanoutError
from fanout.node.tokens import load_tokens
from fanout.ops.pause import pause, resume
from fanout.ops.targets import target_of
from fanout.state import DistributorState, distributor_state_path
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
            allow_redirects=False, headers={"X-Warp10-Token": source.token}) as snap:
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
                                ssl=target.ssl(), allow_redirects=False,
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


LINK_WAIT = 30.0


def ensure_linking(cfg: NodeConfig, name: str, timeout: float = LINK_WAIT) -> None:
    """Make the running distributor re-read its targets and wait until it links for
    ``name``: only then does every record after the snapshot reach the target's dir."""
    path = distributor_state_path(cfg.state_dir)
    st = DistributorState.read(path)
    pid = st.pid if st else 0
    if st is None or not st.running or pid <= 0:
        raise BootstrapError(f"the distributor is not running (state {path}): start it "
                             "first (fanout up, or fanout distribute)")
    asked = time.time()
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise BootstrapError(f"the distributor (pid {pid}) is gone: start it first") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = DistributorState.read(path)
        with contextlib.suppress(OSError):
            if path.stat().st_mtime > asked and now is not None and name in now.targets:
                return
        time.sleep(0.1)
    raise BootstrapError(f"the distributor did not start linking for {name!r} within "
                         f"{timeout:.0f}s: see its lastError in {path}")


def start_forwarder(cfg: NodeConfig, name: str) -> str:
    """Under supervisord, add or start forwarder-NAME; otherwise say how to run it."""
    from fanout.supervise import control
    from fanout.supervise.paths import SupervisePaths
    from fanout.supervise.rpc import RPCFault, Supervisor, Unreachable

    paths = SupervisePaths.of(cfg)
    if paths.socket.exists():
        try:
            control.reload(cfg.source)
            with Supervisor(paths.socket) as sv, contextlib.suppress(RPCFault):
                sv.call("supervisor.startProcess", f"forwarder-{name}", True)
            return f"forwarder-{name} started under supervisord"
        except Unreachable:
            pass
    return (f"start its forwarder: fanout-forwarder --config {cfg.targets_dir / name}.yaml "
            "(or fanout up / fanout reload)")


def bootstrap(config: Path, name: str, replace: bool, start: bool = True,
              say: Callable[[str], None] | None = None,
              progress: Progress | None = None) -> dict:
    """Pause the target, make the distributor link for it, copy the node's snapshot into
    it, resume it and (``start``) start its forwarder. ``say`` hears each step,
    ``progress`` the bytes streamed; the reply adds ``forwarder`` (what became of it)."""
    tell = say or (lambda _msg: None)
    cfg = load_node_config(config)
    t = target_of(cfg, name)
    if t.sink.type != "fanout":
        raise ConfigError(t.source, "sink.type", "bootstrap needs a fanout target; load a "
                          "Warp 10 target with its own tools")
    tell(f"pausing {name} while it is loaded")
    pause(t)
    ensure_linking(cfg, name)
    tell(f"distributor links every new datalog file for {name}; taking the snapshot")
    result = asyncio.run(copy_snapshot(local_endpoint(cfg), Endpoint(t.sink.endpoint,
                                                                      t.sink.secret(),
                                                                      t.sink.tls),
                                       replace, progress))
    resume(t)
    result["forwarder"] = start_forwarder(cfg, name) if start else "not started"
    return result
