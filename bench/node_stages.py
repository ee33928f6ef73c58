"""Where a node's CPU goes per write, stage by stage, in one process, without HTTP.

bench/node_cpu.py measures whole nodes; this says which stage of the write path costs
what, so that its figures can be read against the HTTP floor that node_cpu.py prints:

1. ``replicate``: batches of ``--records-per-batch`` (2) records of ``--points`` (100)
   points, as a forwarder posts them, go through the target's stages: decode the frames
   (CRC, JSON header), validate the headers, parse the bodies into columns, commit (store
   transaction with its fsync; no datalog, as on a fan-out target).
2. ``update``: client bodies of ``--points`` points in Warp 10 text go through the
   primary's stages: parse and check (the canonical fast path, logged as received), then
   the commit split in prepare (datalog file and its fsyncs), store transaction, publish
   (rename, fsync of datalog/).

Each stage is timed with this thread's CPU clock (user + system; indented lines are parts
of the line above them), on a real sqlite store and datalog in a temporary directory under
``--dir`` (default: the system's temporary directory).

Writes run back to back, unless ``--pace N`` spaces them N a second, as a live node gets
them: the same code then costs more CPU per write (caches gone cold, a sleeping core woken
between writes), which is why a live node measures above the sum of these stages.

    .venv/bin/python bench/node_stages.py [--writes 400] [--records-per-batch 2] [--pace N]
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fanout.datalog.format import Record, decode_frames, encode_record
from fanout.datalog.writer import DatalogWriter
from fanout.node.changes import Pending, RequestLimits, replicated_pending, update_pendings
from fanout.node.committer import Committer, Unit
from fanout.node.validate import validate_batch
from fanout.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e_load import body_of  # the e2e load's request bodies

HISTORY = "0123456789abcdef"


def thread_cpu() -> float:
    return time.clock_gettime(time.CLOCK_THREAD_CPUTIME_ID)


class Stages:
    """CPU seconds per named stage, and how many writes they covered."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            t0 = thread_cpu()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, thread_cpu() - t0)
        return run

    def show(self, title: str, writes: int, points: int) -> None:
        total = sum(v for k, v in self.seconds.items() if not k.startswith("  "))
        print(f"{title}: {writes} writes, {points:,} points; CPU us per write "
              f"(and CPU s per million points)")
        for name, sec in self.seconds.items():
            print(f"  {name:<24} {sec / writes * 1e6:8.1f} us  ({sec / points * 1e6:6.2f})")
        print(f"  {'total':<24} {total / writes * 1e6:8.1f} us  ({total / points * 1e6:6.2f})")


def committer_in(root: Path, node_id: str) -> tuple[Committer, Any, DatalogWriter]:
    (root / "state").mkdir(parents=True)
    store = open_store("sqlite", root / "store.sqlite", root / "state")
    writer = DatalogWriter(root / "datalog", node_id)
    return Committer(store, writer, node_id), store, writer


class Pacer:
    """Sleeps until write i+1 is due, ``pace`` writes a second from the first (0: never)."""

    def __init__(self, pace: float) -> None:
        self.pace = pace
        self.start = time.monotonic()
        self.done = 0

    def wait(self) -> None:
        self.done += 1
        if self.pace:
            time.sleep(max(0.0, self.start + self.done / self.pace - time.monotonic()))


def replicate(root: Path, batches: int, per_batch: int, points: int, pace: float) -> None:
    c, store, _ = committer_in(root / "target", "t")
    raw = []
    for b in range(batches):
        recs = [Record(per_batch * b + i + 1, "p", per_batch * b + i + 1, 1_700_000_000_000,
                       "update", "ingest", {}, (), body_of(per_batch * b + i, points),
                       HISTORY, None)
                for i in range(per_batch)]
        raw.append(b"".join(encode_record(r) for r in recs))
    st = Stages()
    decode = st.timed("decode frames", lambda body: decode_frames(memoryview(body), 0, "b"))
    validate = st.timed("validate headers", validate_batch)

    def pendings(records: list[Record]) -> list[Pending]:
        return [replicated_pending(r, log=False) for r in records]  # a fan-out target's

    parse = st.timed("parse bodies", pendings)
    commit = st.timed("commit (store + fsync)", c._commit)
    pacer = Pacer(pace)
    for body in raw:
        records = decode(body)
        validate(records)
        commit([Unit(parse(records), None, 0)])  # type: ignore[arg-type]
        pacer.wait()
    store.close()
    st.show(f"replicate, {per_batch} records per batch", batches, batches * per_batch * points)


def update(root: Path, writes: int, points: int, pace: float) -> None:
    c, store, writer = committer_in(root / "primary", "p")
    limits = RequestLimits()
    st = Stages()
    parse = st.timed("parse and check", update_pendings)
    commit = st.timed("commit", c._commit)
    writer.prepare = st.timed("  prepare (datalog)", writer.prepare)  # type: ignore[method-assign]
    store.apply = st.timed("  store transaction", store.apply)
    writer.publish = st.timed("  publish (datalog)", writer.publish)  # type: ignore[method-assign]
    bodies = [body_of(k, points).decode() for k in range(writes)]
    pacer = Pacer(pace)
    for body in bodies:
        pend = parse(body, 0, "ingest", limits)
        commit([Unit(pend, None, 0)])  # type: ignore[arg-type]
        pacer.wait()
    store.close()
    st.show("update (client body, canonical)", writes, writes * points)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--writes", type=int, default=400, help="batches, and client writes")
    ap.add_argument("--records-per-batch", type=int, default=2)
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--pace", type=float, default=0.0,
                    help="writes per second (default 0: back to back)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="node-stages-", dir=args.dir))
    try:
        print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}; "
              + (f"{args.pace:g} writes/s" if args.pace else "writes back to back"),
              flush=True)
        replicate(root, args.writes, args.records_per_batch, args.points, args.pace)
        update(root, args.writes, args.points, args.pace)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
