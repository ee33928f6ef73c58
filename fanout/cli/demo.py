"""``fanout demo``: a whole replicated topology under supervisord, in a fresh directory.

A primary fans out to three replicas (one on the ``memory`` store, seeded from the primary
at every start); every node runs under its own supervisord. The demo writes a stream,
shows the primary's status table, checks that every replica's ``/fetch`` equals the
primary's, and leaves the topology running for the operator to look around.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path

import yaml

from fanout.config import load_node_config
from fanout.errors import ConfigError, FanoutError
from fanout.ops.targets import add_target
from fanout.supervise import control
from fanout.supervise.status import gather
from fanout.supervise.status_view import table
from fanout.testing import Client, HTTPError, NodeProc, wait_until

MARKER = ".fanout-demo"
WRITERS = 4
REPLICAS = (("replica-1", "sqlite"), ("replica-2", "sqlite"), ("replica-3", "memory"))


class DemoFailed(FanoutError):
    """The demo's own check failed: replicas did not converge to the primary."""


def fresh_dir(path: Path) -> Path:
    path = path.resolve()
    if path.exists():
        if not (path / MARKER).exists() and any(path.iterdir()):
            raise ConfigError(path, None, "exists and is not a previous demo directory",
                              hint="fanout demo --dir SOME_NEW_DIR")
        stop_demo(path, quiet=True)
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("made by fanout demo\n")
    return path


def node_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/fanout.yaml"))


def stop_demo(root: Path, quiet: bool = False) -> int:
    """``fanout demo --stop``: every node's supervisord down, primary first."""
    dirs = node_dirs(root)
    dirs.sort(key=lambda d: d.name != "primary")
    for d in dirs:
        try:
            control.down(d / "fanout.yaml")
            if not quiet:
                print(f"stopped {d.name}")
        except FanoutError as exc:
            if not quiet:
                print(f"{d.name}: {exc}", file=sys.stderr)
    return 0


def _write(primary: NodeProc, i: int, until: float, counts: list[int]) -> None:
    with primary.client("ingest") as client:
        base = int(time.time() * 1e6)
        n = 0
        while time.time() < until:
            client.update("".join(
                f"{base + n * 100 + j}/48.85:2.35/35 demo.temperature{{room=r{i}}} "
                f"{20 + j / 10}\n" for j in range(100)))
            n += 1
        counts[i] = n


def _answers(n: NodeProc) -> bool:
    try:
        with Client(n.url, n.tokens["reader"], timeout=5) as c:
            c.logger_state()
        return True
    except (OSError, HTTPError):
        return False


def build(root: Path) -> tuple[NodeProc, list[NodeProc]]:
    primary = NodeProc.init(root / "primary", "primary")
    replicas = [NodeProc.init(root / name, name, store) for name, store in REPLICAS]
    for r in replicas:
        add_target(primary.config, r.dir.name, r.url, r.tokens["replicator"], None)
        if r.dir.name == "replica-3":  # the memory replica re-syncs from the primary
            tok = r.dir / "secrets" / "seed.token"
            tok.write_text(primary.tokens["replicator"] + "\n")
            os.chmod(tok, 0o600)
            data = yaml.safe_load(r.config.read_text())
            data["bootstrap_from"] = {"url": primary.url, "token_file": "secrets/seed.token"}
            r.config.write_text(yaml.safe_dump(data, sort_keys=False))
    return primary, replicas


def run_demo(directory: Path, seconds: float = 10.0) -> int:
    root = fresh_dir(directory)
    say = print
    primary, replicas = build(root)
    say(f"== a primary and {len(replicas)} replicas in {root}")
    for n in (*replicas, primary):  # replicas first: the primary's forwarders find them up
        res = control.up(n.config)
        say(f"   {n.dir.name:10} {n.url}  supervisord pid {res.pid}"
            f"{'' if res.all_running else '  (not all programs running!)'}")
    for n in (primary, *replicas):
        # RUNNING means up for startsecs; on a busy machine the node may still be opening
        # its store and port (the memory replica first re-syncs from the primary)
        wait_until(lambda n=n: _answers(n), 120, 0.2, f"{n.dir.name} to answer")
    say(f"== writing to the primary for {seconds:.0f}s from {WRITERS} concurrent clients")
    t0 = time.time()
    counts = [0] * WRITERS
    threads = [threading.Thread(target=_write, args=(primary, i, t0 + seconds, counts))
               for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    points = sum(counts) * 100
    say(f"   {points:,} points acknowledged ({points / (time.time() - t0):,.0f} points/s)")

    def fetch(n: NodeProc) -> str:
        with Client(n.url, n.tokens["reader"]) as c:
            return c.fetch("~.*{}", showattr=True)

    try:
        wait_until(lambda: all(fetch(r) == fetch(primary) for r in replicas), 60, 0.5,
                   "replicas to converge")
    except TimeoutError:
        raise DemoFailed("replicas did not converge within 60s: "
                         f"fanout status --config {primary.config}") from None
    ref = fetch(primary)
    say(f"== every replica's /fetch is byte-identical to the primary's "
        f"({ref.count(chr(10)):,} lines)")
    time.sleep(1.5)  # one more state-file round, so the table shows the final lags
    say("== fanout status --config primary/fanout.yaml")
    sys.stdout.write(table(gather(load_node_config(primary.config))))
    rel = os.path.relpath(root) if root.is_relative_to(Path.cwd()) else str(root)
    say("== the topology keeps running. Look around:")
    say(f"   fanout status --config {rel}/primary/fanout.yaml --watch")
    say(f"   curl -s -H 'X-Warp10-Token: <reader token from {rel}/primary/secrets/"
        f"tokens.yaml>' {primary.url}/metrics")
    say(f"   ls {rel}/primary/data/targets/*   # each replica's waiting files")
    say(f"   fanout datalog dump {rel}/replica-1/data/datalog/*.dlog 2>/dev/null | head")
    say("== stop it all:")
    say(f"   fanout demo --stop --dir {rel}")
    return 0

