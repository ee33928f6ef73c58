"""Durable ingest throughput and acknowledgement latency of one node.

Runs, in one go and on the same machine state:
  A. group commit on, 8 clients, 1,000-point requests      (the headline figure)
  B. group commit on, 8 clients, 1-point requests
  C. group commit off (fsync per request), 8 clients, 1-point requests   (the baseline)
and prints points/s, requests/s, p50/p99 acknowledgement latency, files written and the
node's peak RSS, with the ratios A/C and B/C.

    python bench/ingest.py [--seconds 10] [--clients 8]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import psutil

from fanout.testing import NodeProc


async def load(url: str, token: str, clients: int, points: int, seconds: float) -> dict:
    lat: list[float] = []
    done_points = 0
    stop_at = time.perf_counter() + seconds
    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn, headers={"X-Warp10-Token": token}) as s:

        async def client(i: int) -> None:
            nonlocal done_points
            ts = i * 10**12
            while time.perf_counter() < stop_at:
                body = "".join(f"{ts + j}// bench.metric{{host=h{j % 10},client=c{i}}} {j}.5\n"
                               for j in range(points))
                ts += points
                t0 = time.perf_counter()
                async with s.post(url + "/api/v0/update", data=body) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"HTTP {r.status}")
                lat.append(time.perf_counter() - t0)
                done_points += points

        t0 = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.perf_counter() - t0
    lat.sort()
    return {
        "points_s": done_points / elapsed,
        "req_s": len(lat) / elapsed,
        "p50_ms": lat[len(lat) // 2] * 1000,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
    }


def run_case(root: Path, name: str, group_commit: bool, clients: int, points: int,
             seconds: float) -> dict:
    node = NodeProc.init(root / name, name, group_commit=group_commit).start_and_wait()
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        p = psutil.Process(node.pid)
        while not stop.is_set():
            try:
                peak = max(peak, p.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        res = asyncio.run(load(node.url, node.tokens["ingest"], clients, points, seconds))
    finally:
        stop.set()
        sampler.join()
        node.stop()
    res["files"] = len(list(node.datalog_dir.glob("*.dlog")))
    res["rss_mb"] = peak / 2**20
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fanout-bench-ingest-"))
    try:
        cases = [
            ("A", "group commit, 1000-point requests", True, 1000),
            ("B", "group commit, 1-point requests", True, 1),
            ("C", "fsync per request, 1-point requests (baseline)", False, 1),
        ]
        results = {}
        for key, label, gc, pts in cases:
            results[key] = run_case(root, f"bench{key}", gc, args.clients, pts, args.seconds)
            r = results[key]
            print(f"{key} {label}: {r['points_s']:,.0f} points/s, {r['req_s']:,.0f} req/s, "
                  f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                  f"{r['files']} files, node peak RSS {r['rss_mb']:.0f} MB", flush=True)
        a, b, c = results["A"], results["B"], results["C"]
        print()
        print(f"clients={args.clients} seconds={args.seconds} per case")
        print(f"A/C points/s ratio (durable ingest vs fsync-per-request 1-point): "
              f"{a['points_s'] / c['points_s']:.1f}x")
        print(f"B/C request ratio at 1-point requests (group commit on vs off):   "
              f"{b['req_s'] / c['req_s']:.1f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
