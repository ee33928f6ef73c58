"""CPU of one node per million points, on its two write paths, at a paced load.

1. ``update``: 8 keep-alive clients send ``--points``-point requests in Warp 10 text to a
   primary node at ``--rate`` requests/s in total for ``--seconds``.
2. ``replicate``: the records that primary logged are read back from its datalog, cut into
   batches of ``--records-per-batch`` records (a forwarder's batch), and posted to a fresh
   target node's ``/api/v0/replicate`` with the replicator token over one keep-alive
   connection, at the same points/s.

3. ``floor``: the same batches, at the same rate, to a minimal aiohttp server (read the
   body, answer a small JSON object): what HTTP alone costs per batch in this language.

Each phase prints the node process's CPU seconds (user + system, psutil) per million
points and the achieved rate; the load generator runs in this process, not in the node.
``--pyspy DIR`` records a py-spy raw profile of the node for each phase.

    .venv/bin/python bench/node_cpu.py [--rate 100] [--seconds 20] [--records-per-batch 1]

``--baseline DIR --rounds N`` runs another checkout's node (e.g. main's) on the same
load, alternating with this one's for N rounds, and prints the medians: the machine's
load drifts, so before and after are best compared this way.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

from fanout.datalog.format import encode_record
from fanout.datalog.reader import oldest_names, read_file
from fanout.testing import NodeProc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e_load import body_of  # the e2e load's request bodies

CLIENTS = 8


def cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the process, its threads included."""
    t = psutil.Process(pid).cpu_times()
    return t.user, t.system


async def paced(n: int, rate: float, workers: int, send: object) -> float:
    """Call ``send(i)`` for i in 0..n-1, request i due at i/rate, from ``workers``
    concurrent senders; returns the elapsed seconds."""
    t0 = time.perf_counter()
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await send(i)  # type: ignore[operator]

    await asyncio.gather(*(worker() for _ in range(workers)))
    return time.perf_counter() - t0


FLOOR_SERVER = """
import sys
from aiohttp import web
async def replicate(request):
    body = await request.read()
    return web.json_response({"applied": 1, "received": len(body)})
app = web.Application(client_max_size=1 << 26)
app.add_routes([web.post("/api/v0/replicate", replicate)])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


class Floor:
    """A minimal aiohttp server, for the HTTP floor of a replicated batch."""

    def __init__(self) -> None:
        from fanout.testing import free_port, wait_until
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tokens = {"replicator": "-"}
        self.p = subprocess.Popen([sys.executable, "-c", FLOOR_SERVER, str(self.port)])
        self.pid = self.p.pid

        def up() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(up, 30, what="floor server")

    def stop(self) -> None:
        self.p.terminate()
        self.p.wait(15)


class Spy:
    def __init__(self, pid: int, out: Path | None):
        self.p = None if out is None else subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--gil", "-r", "200",
             "-f", "raw", "-o", str(out), "-p", str(pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.p is not None:
            self.p.send_signal(2)
            self.p.wait(30)


async def phase_update(node: NodeProc, n: int, rate: float, points: int,
                       spy: Path | None) -> dict:
    bodies = [body_of(k, points) for k in range(n)]
    conn = aiohttp.TCPConnector(limit=CLIENTS)
    headers = {"X-Warp10-Token": node.tokens["ingest"]}
    async with aiohttp.ClientSession(connector=conn, headers=headers) as s:
        async def send(i: int) -> None:
            async with s.post(node.url + "/api/v0/update", data=bodies[i]) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"update: HTTP {r.status}: {await r.text()}")

        await send(0)  # warm: connection, first history write
        sp = Spy(node.pid, spy)
        c0 = cpu(node.pid)
        elapsed = await paced(n - 1, rate, CLIENTS, lambda i: send(i + 1))
        c1 = cpu(node.pid)
        sp.stop()
    return {"cpu": c1[0] + c1[1] - c0[0] - c0[1], "sys": c1[1] - c0[1],
            "points": (n - 1) * points, "elapsed": elapsed}


def batches_of(datalog: Path, per_batch: int) -> list[tuple[bytes, int]]:
    recs = [r for name in oldest_names(datalog, 10**9) for r in read_file(datalog / name)]
    out = []
    for i in range(0, len(recs), per_batch):
        part = recs[i:i + per_batch]
        pts = sum(r.body.count(b"\n") for r in part)
        out.append((b"".join(encode_record(r) for r in part), pts))
    return out


async def phase_replicate(node: NodeProc | Floor, batches: list[tuple[bytes, int]], rate: float,
                          spy: Path | None) -> dict:
    conn = aiohttp.TCPConnector(limit=1)
    headers = {"X-Warp10-Token": node.tokens["replicator"],
               "Content-Type": "application/x-fanout-records"}
    async with aiohttp.ClientSession(connector=conn, headers=headers) as s:
        async def send(i: int) -> None:
            async with s.post(node.url + "/api/v0/replicate", data=batches[i][0]) as r:
                text = await r.text()
                if r.status != 200 or '"applied": 0' in text:
                    raise RuntimeError(f"replicate: HTTP {r.status}: {text}")

        await send(0)
        sp = Spy(node.pid, spy)
        c0 = cpu(node.pid)
        elapsed = await paced(len(batches) - 1, rate, 1, lambda i: send(i + 1))
        c1 = cpu(node.pid)
        sp.stop()
    return {"cpu": c1[0] + c1[1] - c0[0] - c0[1], "sys": c1[1] - c0[1],
            "points": sum(p for _, p in batches[1:]), "elapsed": elapsed}


def show(name: str, r: dict) -> float:
    per_m = r["cpu"] / r["points"] * 1e6
    print(f"{name:<38} {r['points'] / r['elapsed']:>9,.0f} points/s  "
          f"CPU {r['cpu']:6.2f} s (system {r['sys']:5.2f})  = {per_m:6.2f} CPU s per million "
          "points", flush=True)
    return per_m


def node_from(checkout: Path | None, node_dir: Path, node_id: str) -> NodeProc:
    """A node made by ``fanout init``, running the code of ``checkout`` (None: this one)."""
    node = NodeProc.init(node_dir, node_id)
    if checkout is not None:
        boot = (f"import sys, runpy; sys.path[0:0] = [{str(checkout)!r}]; "
                "runpy.run_module('fanout.cli.main', run_name='__main__')")
        node.args = [sys.executable, "-c", boot, "node", "--config", str(node.config)]
        node.env = {"PYTHONDONTWRITEBYTECODE": "1"}  # leave that checkout untouched
    return node.start_and_wait()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=100, help="update requests/s (default 100)")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--points", type=int, default=100, help="points per request")
    ap.add_argument("--records-per-batch", type=int, default=1)
    ap.add_argument("--pyspy", type=Path, help="write py-spy raw profiles into this dir")
    ap.add_argument("--baseline", type=Path,
                    help="another checkout (e.g. main's): run its node too, alternately")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--no-floor", action="store_true")
    args = ap.parse_args()
    n = int(args.rate * args.seconds) + 1
    root = Path(tempfile.mkdtemp(prefix="fanout-nodecpu-"))
    nodes: list[NodeProc] = []
    codes: list[tuple[str, Path | None]] = [("this", None)]
    if args.baseline:
        codes.insert(0, ("baseline", args.baseline.resolve()))
    figures: dict[str, list[float]] = {}
    try:
        print(f"load: {args.rate:g} requests/s x {args.points} points for {args.seconds:g} s "
              f"({args.rate * args.points:,.0f} points/s); load average "
              f"{psutil.getloadavg()[0]:.2f}", flush=True)
        spy = args.pyspy
        if spy:
            spy.mkdir(parents=True, exist_ok=True)
        batches: list[tuple[bytes, int]] = []
        rate = args.rate / args.records_per_batch
        for rnd in range(args.rounds):
            for name, code in codes:
                p = node_from(code, root / f"p-{name}-{rnd}", "p")
                nodes.append(p)
                r = await phase_update(p, n, args.rate, args.points,
                                       spy and spy / f"update-{name}.txt")
                key = f"{name}: primary, update"
                figures.setdefault(key, []).append(show(key, r))
                if not batches:
                    batches = batches_of(p.datalog_dir, args.records_per_batch)
                p.stop()
            for name, code in codes:
                t = node_from(code, root / f"t-{name}-{rnd}", "t")
                nodes.append(t)
                r = await phase_replicate(t, batches, rate,
                                          spy and spy / f"replicate-{name}.txt")
                key = f"{name}: target, replicate x{args.records_per_batch}"
                figures.setdefault(key, []).append(show(key, r))
                t.stop()
            if not args.no_floor:
                floor = Floor()
                try:
                    r = await phase_replicate(floor, batches, rate, None)
                finally:
                    floor.stop()
                key = "floor: bare aiohttp, same batches"
                figures.setdefault(key, []).append(show(key, r))
        if args.rounds > 1:
            print("medians over rounds, CPU s per million points:")
            for key, vals in figures.items():
                print(f"  {key:<38} {statistics.median(vals):6.2f}  "
                      f"({', '.join(f'{v:.2f}' for v in vals)})")
    finally:
        for node in nodes:
            node.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
