"""Start, run and stop a node: recovery first, then HTTP, then a state file every second."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from fanout.config import NodeConfig
from fanout.datalog.writer import DatalogWriter
from fanout.errors import FanoutError, NodeIdMismatchError
from fanout.node.app import build_app
from fanout.node.badrequests import quiet_bad_requests
from fanout.node.committer import Committer
from fanout.node.context import Node
from fanout.node.guard import FdHeadroom, guarded_factory, raise_nofile
from fanout.node.tlsserver import ServerCerts, quiet_bad_server_names
from fanout.node.tokens import load_tokens
from fanout.sdnotify import Notifier
from fanout.secretfile import read_token_file
from fanout.state import Collision, Divergence, NodeState, ReplicationFigures, node_state_path
from fanout.state.node import TLSFigures
from fanout.statefile import iso_now, write_json_atomic
from fanout.store import open_store
from fanout.tlsconfig import HANDSHAKE_TIMEOUT

log = logging.getLogger("fanout.node")


class StoreMismatchError(FanoutError):
    """The datalog holds records the store never committed: wrong store or datalog dir."""


def node_state(node: Node, running: bool, phase: str,
               tls: TLSFigures | None = None) -> NodeState:
    c = node.committer
    s = c.stats
    return NodeState(
        phase=phase,
        running=running,
        server_id=node.config.id,
        last_log_tick=c.last_seq,
        total_events=s.records_logged,
        time=iso_now(),
        started=node.started,
        total_requests=node.requests,
        total_rejected=node.rejected,
        total_commits=s.commits,
        total_files=s.files,
        total_points=s.points,
        total_duplicates=s.duplicates,
        total_gaps=s.gaps,
        gap_origins=dict(s.gap_origins),
        failed_commits=s.failed_commits,
        last_error=s.last_error,
        writes=node.writes.state(),
        marks=dict(c.marks),
        history=c.history.id,
        history_base=c.history.base,
        replication=ReplicationFigures(
            batches=node.replication.batches,
            records=node.replication.records,
            loops=node.replication.loops,
            duplicates=s.duplicates,
            gaps=s.gaps,
            collisions=node.replication.collisions,
            last_collision=Collision.from_json(node.replication.last_collision),
            divergence=[Divergence.from_json(d) for d in s.divergence],
        ),
        tls=tls,
    )


def open_node(cfg: NodeConfig) -> Node:
    """Load secrets, open the store and reconcile the datalog with it (crash recovery)."""
    tokens = load_tokens(cfg.tokens_file)
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(cfg.store.kind, cfg.store.path, cfg.state_dir)
    writer = DatalogWriter(cfg.datalog_dir, cfg.id)
    committed = store.last_seq()
    published, discarded = writer.recover(committed)
    if published or discarded:
        log.warning("recovery: published %d prepared file(s) the store had committed, "
                    "discarded %d it had not", published, discarded)
    newest = writer.newest_published_seq()
    if newest is not None and newest > committed:
        store.close()
        raise StoreMismatchError(
            f"datalog {cfg.datalog_dir} holds a file starting at seq {newest} but the store "
            f"{cfg.store.path or '(memory)'} has committed only up to {committed}: they do "
            "not belong together"
        )
    try:
        # A new history for this process start, durable before anything is served.
        history = store.begin_history(cfg.id)
    except NodeIdMismatchError as exc:
        store.close()
        raise NodeIdMismatchError(cfg.source, "id", f"{exc.problem} (store {exc.path})",
                                  exc.hint) from None
    except BaseException:
        store.close()
        raise
    log.info("node %s begins history %s (base %s)", cfg.id, history.id, history.base)
    committer = Committer(store, writer, cfg.id, cfg.group_commit, history=history)
    return Node(cfg, tokens, store, committer, started=time.time())


class StateWriter:
    """The once-a-second state file, which must never take the node down: out of file
    descriptors (EMFILE) or disk, it logs (at most once a minute) and tries again next tick."""

    def __init__(self, path: Path):
        self.path = path
        self.failures = 0
        self._logged = 0.0

    def write(self, state: NodeState | dict[str, object]) -> bool:
        try:
            write_json_atomic(self.path, state if isinstance(state, dict) else state.to_json())
        except OSError as exc:
            self.failures += 1
            now = time.monotonic()
            if now - self._logged > 60:
                self._logged = now
                log.error("cannot write the state file %s (%d failure(s) so far; retrying "
                          "every second): %s", self.path, self.failures, exc)
            return False
        if self.failures:
            log.warning("state file %s written again after %d failure(s)", self.path,
                        self.failures)
            self.failures = 0
        return True


async def serve(cfg: NodeConfig) -> None:
    soft, hard = raise_nofile()
    log.info("open-file limit %d (hard %d), %d kept in reserve", soft, hard,
             cfg.limits.fd_reserve)
    # the certificate first: a bad file is a config error (exit 78) before any recovery
    certs = ServerCerts(cfg.tls) if cfg.tls is not None else None
    figures = certs.figures if certs is not None else None
    node = open_node(cfg)
    state_path = node_state_path(cfg.state_dir)
    state = StateWriter(state_path)
    node.committer.start()
    if cfg.bootstrap_from is not None:
        node_state(node, True, "bootstrapping").write(state_path)
        await resync_from_seed(node)
    quiet_bad_requests()
    if certs is not None:
        quiet_bad_server_names()
    # keepalive_timeout runs from the moment a connection is accepted until its request's
    # headers are complete, and again between requests: it closes idle connections and
    # slow-loris header senders alike. Bodies are inflated by read_body (bounded, after
    # authorization), never by aiohttp, so lingering after an early 403 reads raw bytes only.
    runner = web.AppRunner(build_app(node), access_log=None, handle_signals=False,
                           keepalive_timeout=cfg.limits.idle_timeout, auto_decompress=False,
                           lingering_time=2.0)
    await runner.setup()
    loop = asyncio.get_running_loop()
    headroom = FdHeadroom(cfg.limits.fd_reserve)
    # TLS: the guard decides at accept, before any handshake; a handshake not done within
    # limits.idle_timeout (10 s at most) is dropped: garbage, a truncated ClientHello or a
    # silent client never holds a file descriptor for long.
    factory = guarded_factory(
        runner.server, headroom,  # type: ignore[arg-type]
        certs.listener if certs is not None else None,
        min(HANDSHAKE_TIMEOUT, cfg.limits.idle_timeout))
    # asyncio accepts up to `backlog` connections in one go before any protocol factory
    # (hence the headroom check) runs; TLS set-up per connection makes those bursts long,
    # so with TLS a burst is kept under the reserve (else accept() itself hits EMFILE).
    backlog = 100 if certs is None else max(8, min(100, cfg.limits.fd_reserve // 2))
    try:
        listener = await loop.create_server(factory, cfg.host, cfg.port, reuse_address=True,
                                            backlog=backlog)
    except OSError as exc:  # port in use, address not local: say so, not a traceback
        await runner.cleanup()
        await node.committer.stop()
        node.store.close()
        raise ListenError(cfg, exc) from None
    log.info("node %s listening on %s, last seq %d", cfg.id, cfg.url, node.committer.last_seq)
    node_state(node, True, "running", figures).write(state_path)
    notify = Notifier()
    notify.ready(f"listening on {cfg.host}:{cfg.port}, last seq {node.committer.last_seq}")

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: reload_certs(certs))
    node.committer.on_fatal = lambda _exc: stop.set()  # broken commit path: exit, restart
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            node.writes.probe(node.committer.writer.tmp, node.committer.writer.dir)
            state.write(node_state(node, True, "running", figures))
            notify.watchdog()
            notify.status(f"last seq {node.committer.last_seq}, "
                          f"{node.committer.stats.points} points")
    finally:
        log.info("node %s stopping", cfg.id)
        notify.stopping()
        listener.close()
        await runner.shutdown()
        await runner.cleanup()
        await node.committer.stop()
        node.store.close()
        state.write(node_state(node, False, "stopped", figures))
    if node.committer.fatal is not None:
        raise node.committer.fatal  # exit non-zero: the supervisor restarts, recovery runs


def reload_certs(certs: ServerCerts | None) -> None:
    """SIGHUP (sent by ``fanout reload``): re-read the certificate files."""
    if certs is None:
        log.info("SIGHUP: no tls: section, nothing to reload")
        return
    certs.reload()


async def resync_from_seed(node: Node) -> None:
    """Before serving: load the seed's snapshot into the (empty) memory store. Nothing is
    served until then, so a forwarder cannot deliver into a store about to be replaced;
    it retries, then dedups against the restored marks."""
    from fanout.node.snapshot import download_and_restore
    from fanout.ops.bootstrap import Endpoint

    b = node.config.bootstrap_from
    assert b is not None
    token = read_token_file(b.token_file)
    deadline = time.monotonic() + b.timeout
    delay = 0.5
    while True:
        try:
            result = await download_and_restore(node, Endpoint(b.url, token, b.tls))
            log.warning("re-synced from %s: %s series, %s points at its tick %s", b.url,
                        result["series"], result["points"], result["lastLogTick"])
            return
        except (OSError, aiohttp.ClientError, TimeoutError, FanoutError) as exc:
            if time.monotonic() > deadline:
                raise SeedUnavailableError(
                    f"cannot re-sync from {b.url} within {b.timeout:.0f}s: {exc}") from None
            log.warning("re-sync from %s failed (%s); retrying in %.1fs", b.url, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


class ListenError(FanoutError):
    """The node cannot listen on its address (in use, or not an address of this host)."""

    def __init__(self, cfg: NodeConfig, exc: OSError):
        why = exc.strerror or str(exc)
        super().__init__(f"cannot listen on {cfg.host}:{cfg.port}: {why} "
                         f"(listen in {cfg.source})")
        self.hint = (f"find what uses it: ss -ltnp 'sport = :{cfg.port}'; or change listen "
                     "in fanout.yaml")


class SeedUnavailableError(FanoutError):
    """A memory node's bootstrap_from seed could not be read at start."""


def run_node(config_path: Path) -> None:
    from fanout.config import load_node_config
    from fanout.fileio import acquire

    cfg = load_node_config(config_path)
    # Before recovery touches datalog/.tmp/: a second node would take the live one's
    # prepared file from under it.
    with acquire(cfg.state_dir, "node"):
        run_locked(cfg)


def run_locked(cfg: NodeConfig) -> None:
    """Serve until SIGTERM/SIGINT; the caller holds the node's instance lock."""
    asyncio.run(serve(cfg))
