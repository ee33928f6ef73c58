"""``fanout demo``: a node from ``fanout init``, a stream of writes, and proof they landed.

Runs in a fresh directory (a previous demo's directory, recognised by its marker file, is
replaced; anything else is refused) and leaves it behind for the operator to look at.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from pathlib import Path

from fanout.cli.datalog_cmd import verify
from fanout.errors import ConfigError
from fanout.testing import NodeProc

MARKER = ".fanout-demo"


def fresh_dir(path: Path) -> Path:
    path = path.resolve()
    if path.exists():
        if not (path / MARKER).exists() and any(path.iterdir()):
            raise ConfigError(path, None, "exists and is not a previous demo directory",
                              hint="fanout demo --dir SOME_NEW_DIR")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("made by fanout demo\n")
    return path


WRITERS = 4


def _write(node: NodeProc, i: int, until: float, counts: list[int]) -> None:
    client = node.client("ingest")
    base = int(time.time() * 1e6)
    n = 0
    while time.time() < until:
        client.update("".join(
            f"{base + n * 100 + j}/48.85:2.35/35 demo.temperature{{room=r{i}}} {20 + j / 10}\n"
            for j in range(100)))
        n += 1
    counts[i] = n
    client.close()


def run_demo(directory: Path, seconds: float = 10.0) -> int:
    root = fresh_dir(directory)
    say = print
    node = NodeProc.init(root / "paris-1", "paris-1")
    say(f"== node paris-1 initialised in {node.dir} (listening on {node.url})")
    node.start_and_wait()
    try:
        say(f"== writing a stream of points for {seconds:.0f}s from {WRITERS} concurrent clients")
        t0 = time.time()
        counts = [0] * WRITERS
        threads = [threading.Thread(target=_write, args=(node, i, t0 + seconds, counts))
                   for i in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent, requests = sum(counts) * 100, sum(counts)
        rate = sent / (time.time() - t0)
        say(f"   {sent} points acknowledged in {requests} requests ({rate:,.0f} points/s)")
        reader = node.client("reader")
        got = reader.fetch("demo.temperature{}").count("\n")
        state = reader.logger_state()["state"]
        say(f"== fetch returns {got} points; logger state: lastLogTick={state['lastLogTick']} "
            f"totalEvents={state['totalEvents']}")
        files = sorted(node.datalog_dir.glob("*.dlog"))
        say(f"== datalog: {len(files)} files for {requests} requests "
            "(group commit: requests that arrive during an fsync share the next file)")
        verify(node.datalog_dir)
        if got != sent:
            say(f"FAILED: wrote {sent} points, fetched {got}", file=sys.stderr)
            return 1
    finally:
        node.stop()
    say("== done. Look around:")
    say(f"   fanout datalog dump {files[0] if files else node.datalog_dir}")
    say(f"   fanout node --config {node.config}      # run the node again")
    say(f"   cat {node.state_dir / 'node.json'}")
    return 0
