"""Forwarder throughput from a pre-filled backlog, against its ceiling, in one run.

  1. ceiling: the backlog's bytes POSTed in the forwarder's batch sizes over one keep-alive
     connection to a receiver that reads and discards (bench/discard_receiver.py);
  2. the forwarder (a real fanout-forwarder process) into that same receiver;
  3. the forwarder into a real sqlite fanout node (catch-up rate, points/s);
  4. forwarder peak RSS with a 100,000-file backlog;
  5. (--tls, or --tls-only) the forwarder into a sqlite node over plain HTTP and over
     mutual TLS, same run, alternated: catch-up throughput, CPU (forwarder + node) per
     million points, and lag p99 at a paced 10,000 points/s.

    python bench/forward.py [--points 1000000] [--files 100000] [--tls | --tls-only]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp
import psutil
import yaml

from fanout.datalog import DatalogWriter, Record, encode_record, oldest_names, read_file
from fanout.state import ForwarderState, forwarder_state_path
from fanout.testing import NodeProc, free_port, wait_until

HERE = Path(__file__).resolve().parent
CHUNK = 1048576
POINTS_PER_RECORD = 1000
RECORDS_PER_FILE = 2


def make_backlog(master: Path, points: int, first_seq: int = 1) -> tuple[int, int]:
    """Datalog files as a node would write them: 2 records of 1,000 points per file.
    Each run gets new seqs: a forwarder skips records at or below its cursor."""
    w = DatalogWriter(master, "src")
    recs: list[Record] = []
    nrec = points // POINTS_PER_RECORD
    for seq in range(first_seq, first_seq + nrec):
        base = seq * POINTS_PER_RECORD
        body = "".join(f"{base + j}// bench.fwd{{host=h{j % 10}}} {j}.25\n"
                       for j in range(POINTS_PER_RECORD)).encode()
        recs.append(Record(seq, "src", seq, 0, "update", "ingest", {}, (), body))
        if len(recs) == RECORDS_PER_FILE:
            w.publish(w.prepare(recs))
            recs = []
    if recs:
        w.publish(w.prepare(recs))
    files = oldest_names(master, 10**9)
    return len(files), sum((master / n).stat().st_size for n in files)


def payloads(master: Path) -> list[bytes]:
    """The backlog cut into batches exactly as the forwarder cuts it (<= CHUNK bytes)."""
    out: list[bytes] = []
    cur: list[bytes] = []
    size = 0
    for n in oldest_names(master, 10**9):
        for rec in read_file(master / n):
            frame = encode_record(rec)
            if cur and size + len(frame) > CHUNK:
                out.append(b"".join(cur))
                cur, size = [], 0
            cur.append(frame)
            size += len(frame)
    if cur:
        out.append(b"".join(cur))
    return out


async def post_all(url: str, bodies: list[bytes]) -> float:
    conn = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=conn) as s:
        t0 = time.perf_counter()
        for b in bodies:
            async with s.post(url, data=b) as r:
                await r.read()
        return time.perf_counter() - t0


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as f:
        return subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))


def forward_config(root: Path, name: str, src: Path, endpoint: str, token: str,
                   tls: dict[str, str] | None = None) -> Path:
    (root / "secrets").mkdir(exist_ok=True, mode=0o700)
    tok = root / "secrets" / f"{name}.token"
    tok.write_text(token)
    tok.chmod(0o600)
    cfg_dir = root / "forwarders.d"
    cfg_dir.mkdir(exist_ok=True)
    cfg = cfg_dir / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump({
        "target": name, "source_dir": str(src), "state_dir": str(root / "state"),
        "sink": {"type": "fanout", "endpoint": endpoint, "token_file": str(tok),
                 **({"tls": tls} if tls else {})},
        "chunk_size": CHUNK, "poll_interval": 0.1,
    }))
    return cfg


class RunningForwarder:
    """A forwarder process started on an empty source directory and connected, so that
    timing a backlog measures forwarding, not Python's start-up."""

    def __init__(self, cfg: Path, src: Path, log: Path):
        self.src = src
        src.mkdir(parents=True, exist_ok=True)
        self.state = forwarder_state_path(Path(yaml.safe_load(cfg.read_text())["state_dir"]),
                                          cfg.stem)
        self.p = start([sys.executable, "-m", "forwarder.main", "--config", str(cfg)], log)
        self.log = log
        self.proc = psutil.Process(self.p.pid)
        self.peak = 0
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._sample, daemon=True)
        self._th.start()
        wait_until(lambda: self.phase() == "idle", 30, what="forwarder to connect")

    def phase(self) -> str | None:
        st = ForwarderState.read(self.state)
        return None if st is None else st.phase

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)

    def drain(self, master: Path) -> float:
        """Move the backlog in, return seconds until the source directory is empty."""
        t0 = time.perf_counter()
        for n in oldest_names(master, 10**9):
            os.rename(master / n, self.src / n)
        wait_until(lambda: not any(os.scandir(self.src)) or self.p.poll() is not None,
                   3600, 0.005, "backlog to drain")
        if self.p.poll() is not None:
            raise RuntimeError(f"forwarder exited: {self.log.read_text()[-2000:]}")
        return time.perf_counter() - t0

    def close(self) -> float:
        self._stop.set()
        self._th.join()
        self.p.terminate()
        self.p.wait()
        return self.peak / 2**20


def cpu_seconds(*pids: int) -> float:
    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


def paced_lag(src: Path, master: Path, every: float,
              proc: subprocess.Popen[bytes] | None = None, log: Path | None = None
              ) -> list[float]:
    """Move the backlog's files into ``src`` one every ``every`` s; each file's seconds
    from its arrival to its removal (acknowledged by the target, then unlinked). If
    ``proc`` (the process emptying ``src``) exits meanwhile, the run fails at once."""
    names = oldest_names(master, 10**9)
    arrived: dict[str, float] = {}
    gone: dict[str, float] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() or len(gone) < len(names):
            if proc is not None and proc.poll() is not None:
                return
            present = {e.name for e in os.scandir(src)}
            now = time.perf_counter()
            for n in list(arrived):
                if n not in gone and n not in present:
                    gone[n] = now
            if done.is_set() and len(gone) == len(arrived) == len(names):
                return
            time.sleep(0.002)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    t0 = time.perf_counter()
    for i, n in enumerate(names):
        delay = t0 + i * every - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        arrived[n] = time.perf_counter()
        os.rename(master / n, src / n)
    done.set()
    th.join(600)
    if proc is not None and proc.poll() is not None:
        tail = log.read_text()[-2000:] if log is not None else ""
        raise RuntimeError(f"the process emptying {src} exited ({proc.returncode}): {tail}")
    return sorted(gone[n] - arrived[n] for n in names if n in gone)


def tls_compare(root: Path, points: int, runs: int, rate: float, seconds: float) -> None:
    """Section 5: plain HTTP against mutual TLS, same machine, same run, alternated."""
    from fanout.ops.tls import make_ca, make_cert

    pki = root / "pki"
    make_ca(pki)
    node_cert = make_cert(pki, "target", dns=["localhost"], ips=["127.0.0.1"])
    client = make_cert(pki, "fwd", client=True)
    results: dict[str, dict[str, list[float]]] = {}
    nrec = points // POINTS_PER_RECORD
    paced_points = int(rate * seconds)
    for run in range(runs):
        for mode in ("plain", "tls"):
            seq = 1  # every target is a fresh node
            tgt = root / f"tgt-{mode}-{run}"
            node = NodeProc.init(tgt, "target")
            tls = None
            if mode == "tls":
                node.use_tls(node_cert.cert, node_cert.key, pki / "ca.crt", client.cert,
                             client.key)
                tls = {"ca_file": str(pki / "ca.crt"), "cert_file": str(client.cert),
                       "key_file": str(client.key)}
            node.start_and_wait()
            try:
                name = f"{mode}{run}"
                cfg = forward_config(root, name, root / f"src-{name}", node.url,
                                     node.tokens["replicator"], tls)
                fwd = RunningForwarder(cfg, root / f"src-{name}", root / f"fwd-{name}.log")
                fresh = root / f"bl-{name}"
                make_backlog(fresh, points, first_seq=seq)
                seq += nrec
                cpu0 = cpu_seconds(fwd.p.pid, node.pid)
                t = fwd.drain(fresh)
                cpu = cpu_seconds(fwd.p.pid, node.pid) - cpu0
                paced = root / f"paced-{name}"
                make_backlog(paced, paced_points, first_seq=seq)
                seq += paced_points // POINTS_PER_RECORD
                lags = paced_lag(fwd.src, paced, POINTS_PER_RECORD * RECORDS_PER_FILE / rate,
                                 fwd.p, fwd.log)
                fwd.close()
            finally:
                node.stop()
            r = results.setdefault(mode, {"pps": [], "cpu": [], "p99": [], "p50": []})
            r["pps"].append(points / t)
            r["cpu"].append(cpu / points * 1e6)
            r["p99"].append(lags[int(len(lags) * 0.99) - 1] * 1000 if lags else float("nan"))
            r["p50"].append(lags[len(lags) // 2] * 1000 if lags else float("nan"))
            print(f"   run {run} {mode:5}: {points / t:,.0f} points/s caught up, "
                  f"CPU {cpu / points * 1e6:.2f} s per million points (forwarder + node), "
                  f"lag p50 {r['p50'][-1]:.0f} ms p99 {r['p99'][-1]:.0f} ms at "
                  f"{rate:,.0f} points/s", flush=True)
    for mode, r in results.items():
        print(f"5. {mode:5} median of {runs}: {median(r['pps']):,.0f} points/s, "
              f"{median(r['cpu']):.2f} CPU s per million points, lag p50 "
              f"{median(r['p50']):.0f} ms, p99 {median(r['p99']):.0f} ms")
    pl, tl = results["plain"], results["tls"]
    print(f"   TLS vs plain: throughput {median(tl['pps']) / median(pl['pps']) * 100 - 100:+.0f}%,"
          f" CPU per point {median(tl['cpu']) / median(pl['cpu']) * 100 - 100:+.0f}%, "
          f"lag p99 {median(tl['p99']) - median(pl['p99']):+.0f} ms; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


LIVE_POINTS = 100  # points per file on the live path: one 100-point request per file


def make_live_files(master: Path, count: int, first_seq: int) -> None:
    """``count`` datalog files of one 100-point record each, as a primary writes them
    when 100-point requests arrive one at a time (the live path)."""
    w = DatalogWriter(master, "src")
    for seq in range(first_seq, first_seq + count):
        base = seq * LIVE_POINTS
        body = "".join(f"{base + j}// bench.live{{host=h{j % 10}}} {j}.25\n"
                       for j in range(LIVE_POINTS)).encode()
        w.publish(w.prepare([Record(seq, "src", seq, 0, "update", "ingest", {}, (), body)]))


class FloorLoop:
    """bench/floor_forward.py as a process, shaped like RunningForwarder."""

    def __init__(self, src: Path, url: str, log: Path):
        self.src = src
        src.mkdir(parents=True, exist_ok=True)
        self.p = start([sys.executable, str(HERE / "floor_forward.py"), str(src),
                        url + "/api/v0/replicate"], log)
        wait_until(lambda: "ready" in log.read_text(), 30, what="floor loop to start")

    def close(self) -> float:
        self.p.terminate()
        self.p.wait()
        return 0.0


def live_compare(root: Path, url: str, rates: list[float], seconds: float,
                 runs: int) -> None:
    """Section 6: CPU per file on the live path (files arriving one by one at a paced
    rate), the forwarder against the floor loop, side by side, alternated, same run."""
    for rate in rates:
        count = int(rate * seconds)
        got: dict[str, dict[str, list[float]]] = {}
        for run in range(runs):
            for kind in ("floor", "forwarder"):
                name = f"live-{kind}-{rate:.0f}-{run}"
                src = root / f"src-{name}"
                if kind == "floor":
                    proc: FloorLoop | RunningForwarder = FloorLoop(src, url,
                                                                   root / f"{name}.log")
                else:
                    cfg = forward_config(root, name, src, url, "x" * 32)
                    proc = RunningForwarder(cfg, src, root / f"{name}.log")
                master = root / f"master-{name}"
                make_live_files(master, count, 1)  # a new target name: a fresh cursor
                cpu0 = cpu_seconds(proc.p.pid)
                lags = paced_lag(src, master, 1 / rate, proc.p, root / f"{name}.log")
                cpu = cpu_seconds(proc.p.pid) - cpu0
                proc.close()
                if kind == "forwarder":  # one endpoint, one target file at a time
                    cfg.unlink()
                r = got.setdefault(kind, {"us": [], "p50": [], "p99": []})
                r["us"].append(cpu / count * 1e6)
                r["p50"].append(lags[len(lags) // 2] * 1000)
                r["p99"].append(lags[int(len(lags) * 0.99) - 1] * 1000)
                print(f"   {rate:.0f} files/s run {run} {kind:9}: {r['us'][-1]:.0f} us CPU per "
                      f"file, lag p50 {r['p50'][-1]:.1f} ms p99 {r['p99'][-1]:.1f} ms",
                      flush=True)
        fl, fw = got["floor"], got["forwarder"]
        print(f"6. live path at {rate:,.0f} files/s ({rate * LIVE_POINTS:,.0f} points/s), median"
              f" of {runs}: floor loop {median(fl['us']):.0f} us CPU per file, forwarder "
              f"{median(fw['us']):.0f} us ({median(fw['us']) / LIVE_POINTS:.2f} "
              f"CPU s per million points) => {median(fw['us']) / median(fl['us']):.2f}x the "
              f"floor; lag p50/p99 floor {median(fl['p50']):.1f}/{median(fl['p99']):.1f} ms, "
              f"forwarder {median(fw['p50']):.1f}/{median(fw['p99']):.1f} ms; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


def median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tls", action="store_true", help="add section 5: TLS against plain")
    ap.add_argument("--tls-only", action="store_true", help="run section 5 only")
    ap.add_argument("--rate", type=float, default=10_000, help="section 5 paced points/s")
    ap.add_argument("--paced-seconds", type=float, default=20)
    ap.add_argument("--live", action="store_true",
                    help="add section 6: live-path CPU per file against the floor loop")
    ap.add_argument("--live-only", action="store_true", help="run section 6 only")
    ap.add_argument("--live-rates", default="100,250", help="section 6 files/s, comma-separated")
    ap.add_argument("--live-seconds", type=float, default=20)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="fanout-bench-forward-"))
    recv = None
    live_rates = [float(x) for x in args.live_rates.split(",")]
    if args.live_only:
        try:
            print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            port = free_port()
            recv = start([sys.executable, str(HERE / "discard_receiver.py"), str(port)],
                         root / "recv.log")
            wait_until(lambda: _answers(port), 10, what="discarding receiver")
            live_compare(root, f"http://127.0.0.1:{port}", live_rates, args.live_seconds,
                         args.runs)
        finally:
            if recv is not None:
                recv.terminate()
                recv.wait()
            shutil.rmtree(root, ignore_errors=True)
        return
    if args.tls_only:
        try:
            print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            tls_compare(root, args.points, args.runs, args.rate, args.paced_seconds)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    try:
        master = root / "master"
        nfiles, nbytes = make_backlog(master, args.points)
        nrec = args.points // POINTS_PER_RECORD
        mb = nbytes / 2**20
        print(f"backlog: {args.points:,} points, {nrec:,} records, {nfiles:,} files, "
              f"{mb:.1f} MiB")
        port = free_port()
        recv = start([sys.executable, str(HERE / "discard_receiver.py"), str(port)],
                     root / "recv.log")
        url = f"http://127.0.0.1:{port}"
        bodies = payloads(master)
        wait_until(lambda: _answers(port), 10, what="discarding receiver")
        ceilings = [asyncio.run(post_all(url + "/api/v0/replicate", bodies))
                    for _ in range(args.runs)]
        ceiling = median(ceilings)
        print(f"1. ceiling (same bytes, {len(bodies)} POSTs, one keep-alive connection): "
              f"median of {args.runs} {ceiling:.3f} s, {mb / ceiling:.1f} MiB/s, "
              f"{args.points / ceiling:,.0f} points/s", flush=True)

        cfg = forward_config(root, "discard", root / "src-discard", url, "x" * 32)
        fwd = RunningForwarder(cfg, root / "src-discard", root / "fwd-discard.log")
        nrec = args.points // POINTS_PER_RECORD
        times = []
        for run in range(args.runs):
            fresh = root / f"run{run}"
            make_backlog(fresh, args.points, first_seq=1 + run * nrec)
            times.append(fwd.drain(fresh))
        rss = fwd.close()
        t = median(times)
        print(f"2. forwarder -> discarding receiver: median of {args.runs} {t:.3f} s, "
              f"{mb / t:.1f} MiB/s, {nrec / t:,.0f} records/s, {args.points / t:,.0f} points/s,"
              f" peak RSS {rss:.0f} MB  => {ceiling / t * 100:.0f}% of the ceiling", flush=True)

        node = NodeProc.init(root / "target", "target").start_and_wait()
        try:
            cfg = forward_config(root, "node", root / "src-node", node.url,
                                 node.tokens["replicator"])
            fwd = RunningForwarder(cfg, root / "src-node", root / "fwd-node.log")
            fresh = root / "run-node"
            make_backlog(fresh, args.points)
            t_node = fwd.drain(fresh)
            rss = fwd.close()
            print(f"3. forwarder -> sqlite fanout node: {t_node:.2f} s, "
                  f"{args.points / t_node:,.0f} points/s caught up, peak RSS {rss:.0f} MB",
                  flush=True)
        finally:
            node.stop()
        shutil.rmtree(master)

        big = root / "master-many"
        w = DatalogWriter(big, "src")
        for i in range(1, args.files + 1):
            w.publish(w.prepare([Record(i, "src", i, 0, "update", "ingest", {}, (),
                                        f"{i}// many{{}} {i}\n".encode())]))
        cfg = forward_config(root, "many", root / "src-many", url, "x" * 32)
        fwd = RunningForwarder(cfg, root / "src-many", root / "fwd-many.log")
        t_many = fwd.drain(big)
        rss = fwd.close()
        print(f"4. forwarder with a {args.files:,}-file backlog -> discarding receiver: "
              f"{t_many:.1f} s ({args.files / t_many:,.0f} files/s), peak RSS {rss:.0f} MB",
              flush=True)
        if args.live:
            live_compare(root, url, live_rates, args.live_seconds, args.runs)
        if args.tls:
            tls_compare(root, args.points, args.runs, args.rate, args.paced_seconds)
    finally:
        if recv is not None:
            recv.terminate()
            recv.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
