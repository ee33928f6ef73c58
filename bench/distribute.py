"""Distributor throughput, latency and disk use, against two shell baselines.

For 1, 4 and 16 targets, in one run and on the same machine state:

  throughput  files/s until every file is linked into every target and its original
              removed: a backlog is published while the distributor is frozen (SIGSTOP),
              the clock starts at SIGCONT and stops when datalog/ holds no file.
  latency     p50/p99 from a file's rename into datalog/ to its last target link, at a
              steady 1,000 files/s (target directories watched with inotify here).

Each is measured for ``fanout distribute`` and for two baselines doing the same job:

  periodic     the loop Warp 10's documentation leaves to an external script: every
               second, list datalog/*.dlog, ``ln`` the list into each target (one ln per
               target through xargs), ``rm`` the same list. No fsync.
  inotifywait  Debian's inotify-tools: ``inotifywait -m -e moved_to`` piped into a shell
               loop running ``ln`` once per target and ``rm`` per file. No fsync, and
               nothing rescans after an inotify queue overflow.

``--paced`` runs only what issue 17 measures instead: the distributor's CPU (user + system,
per 1,000 files and per million points per target) and its link and removal latency at a
live node's rates (100 and 250 files/s of 10 KB, 100-point files into 4 targets, each link
removed once seen as forwarders do), next to a minimal Python loop doing the same system
calls, and with ``--baseline DIR`` next to another checkout's code (before/after):

    git archive main fanout | tar -x -C /tmp/base
    python bench/distribute.py --paced --baseline /tmp/base [--seconds 15]

Also printed: the Python floor for link x4 + unlink (the same system calls as the
distributor's work for 4 targets, nothing else), and ``du -s`` of a backlog with 1 and
with 16 targets.

    python bench/distribute.py [--quick] [--paced [--rates 100,250] [--baseline DIR]]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml
from inotify_simple import INotify
from inotify_simple import flags as F

from fanout.datalog.format import Record, encode_record, file_header, file_name
from fanout.ops.init import init_node
from fanout.state import DistributorState, distributor_state_path
from fanout.testing import fanout_cmd, free_port

PERIODIC = r"""
D=$1; shift
while true; do
  files=("$D"/*.dlog)
  if [ -e "${files[0]}" ]; then
    for t in "$@"; do printf '%s\0' "${files[@]}" | xargs -0 ln -t "$t" -- ; done
    printf '%s\0' "${files[@]}" | xargs -0 rm -f --
  fi
  sleep 1
done
"""

INOTIFYWAIT = r"""
D=$1; shift
inotifywait -m -e moved_to --format '%f' "$D" | while IFS= read -r f; do
  case "$f" in *.dlog) ;; *) continue ;; esac
  for t in "$@"; do ln "$D/$f" "$t/$f"; done
  rm -f "$D/$f"
done
"""


# The least a Python distributor does per file at a live node's rates, for the paced runs:
# wake on inotify, read the event, stat, link into every target; every 0.2 s fsync the
# targets and unlink the originals. No state, no checks, no error handling.
FLOOR = r"""
import os, select, sys, time
from inotify_simple import INotify, flags as F, parse_events
dl = sys.argv[1] + "/"
tds = [t + "/" for t in sys.argv[2:]]
ino = INotify(nonblocking=True)
ino.add_watch(sys.argv[1], F.MOVED_TO)
pending = []
last = time.monotonic()
while True:
    r, _, _ = select.select([ino.fileno()], [], [], 0.2)
    if r:
        for ev in parse_events(os.read(ino.fileno(), 65536)):
            src = dl + ev.name
            os.stat(src)
            for t in tds:
                os.link(src, t + ev.name)
            pending.append(src)
    if time.monotonic() - last > 0.2:
        for t in tds:
            fd = os.open(t, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        for p in pending:
            os.unlink(p)
        pending = []
        last = time.monotonic()
"""


# ----------------------------------------------------------------------------- setup

class Node:
    """A node directory with N targets; files are published as a node does (.tmp, rename)."""

    def __init__(self, root: Path, n_targets: int):
        shutil.rmtree(root, ignore_errors=True)
        self.root = root
        self.config = init_node(root, "n1", f"127.0.0.1:{free_port()}", "memory")
        self.datalog = root / "data" / "datalog"
        self.tmp = self.datalog / ".tmp"
        self.tmp.mkdir(parents=True)
        self.targets = [root / "data" / "targets" / f"t{i:02d}" for i in range(n_targets)]
        for t in self.targets:
            t.mkdir(parents=True)
            doc = {"target": t.name, "source_dir": str(t),
                   "sink": {"endpoint": "http://127.0.0.1:9", "token": "x"}}
            path = root / "forwarders.d" / f"{t.name}.yaml"
            path.write_text(yaml.safe_dump(doc))
            os.chmod(path, 0o600)
        self.seq = 0

    def payload(self, size: int) -> bytes:
        self.seq += 1
        rec = Record(self.seq, "n1", self.seq, 0, "update", "bench", {}, (),
                     b"x" * max(size - 130, 1))
        return file_header(1) + encode_record(rec)

    def stage(self, n: int, size: int) -> list[str]:
        """Write n files under .tmp/ (not yet visible); returns their names."""
        names = []
        for _ in range(n):
            data = self.payload(size)
            name = file_name(self.seq, "n1")
            with open(self.tmp / name, "wb") as f:
                f.write(data)
            names.append(name)
        return names

    def publish_staged(self, names: list[str]) -> None:
        tmp, dst = str(self.tmp) + "/", str(self.datalog) + "/"
        for name in names:
            os.rename(tmp + name, dst + name)

    def datalog_empty(self) -> bool:
        with os.scandir(self.datalog) as it:
            return not any(e.name.endswith(".dlog") for e in it)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Runner:
    name: str
    start: Callable[[Node], subprocess.Popen[bytes]]
    ready: Callable[[Node, subprocess.Popen[bytes]], None]


def _popen(args: list[str], log: Path, env: dict[str, str] | None = None,
           cwd: Path | None = None) -> subprocess.Popen[bytes]:
    with open(log, "ab") as f:
        return subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env, cwd=cwd)


def _wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.01)


def start_fanout(node: Node) -> subprocess.Popen[bytes]:
    return _popen(fanout_cmd("distribute", "--config", str(node.config)), node.root / "run.log")


def ready_fanout(node: Node, p: subprocess.Popen[bytes]) -> None:
    path = distributor_state_path(node.root / "data" / "state")

    def running() -> bool:
        st = DistributorState.read(path)
        return st is not None and st.pid == p.pid and st.running

    _wait(running, 30, "distributor running")


def start_shell(script: str) -> Callable[[Node], subprocess.Popen[bytes]]:
    def start(node: Node) -> subprocess.Popen[bytes]:
        return _popen(["bash", "-c", script, "bash", str(node.datalog),
                       *map(str, node.targets)], node.root / "run.log")
    return start


def ready_periodic(node: Node, p: subprocess.Popen[bytes]) -> None:
    time.sleep(0.1)


def ready_inotifywait(node: Node, p: subprocess.Popen[bytes]) -> None:
    _wait(lambda: b"Watches established" in (node.root / "run.log").read_bytes(), 10,
          "inotifywait watching")


def stop(p: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGCONT)
        os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


# ----------------------------------------------------------------------------- measures

def settle() -> None:
    """Flush what earlier runs left dirty (staged files, removed trees) so that its
    writeback and journal commits do not land in the middle of the next measurement."""
    os.sync()
    time.sleep(0.5)


@dataclass
class Throughput:
    files: int
    done: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.done / self.seconds


def throughput(runner: Runner, node: Node, n: int, cap: float, freeze: bool = True
               ) -> Throughput:
    """Publish n files while the runner is frozen; time from SIGCONT to an empty datalog.
    ``freeze=False`` (periodic script): publish first, then start it: its first scan is
    at once, so the baseline does not pay for its one-second sleep here."""
    names = node.stage(n, 300)
    if freeze:
        p = runner.start(node)
        runner.ready(node, p)
        os.killpg(p.pid, signal.SIGSTOP)
        node.publish_staged(names)
        settle()
        t0 = time.monotonic()
        os.killpg(p.pid, signal.SIGCONT)
    else:
        node.publish_staged(names)
        settle()
        t0 = time.monotonic()
        p = runner.start(node)
    deadline = t0 + cap
    while not node.datalog_empty() and time.monotonic() < deadline:
        time.sleep(0.005)
    elapsed = time.monotonic() - t0
    stop(p)
    left = sum(1 for e in os.scandir(node.datalog) if e.name.endswith(".dlog"))
    return Throughput(n, n - left, elapsed)


@dataclass
class Latency:
    files: int
    late: int  # not linked everywhere within the drain window
    p50: float  # seconds
    p99: float

    def show(self) -> str:
        mark = ">" if self.late > self.files // 100 else ""
        return f"{mark}{fmt_s(self.p50)} / {mark}{fmt_s(self.p99)}"


class LinkWatch:
    """Watches every target directory; records when a name has appeared in all of them
    (with ``mask=F.DELETE`` on datalog/: when each original was removed)."""

    def __init__(self, dirs: list[Path], mask: int = F.CREATE | F.MOVED_TO,
                 consume: bool = False):
        self.ino = INotify()
        self.n = len(dirs)
        self.consume = consume  # unlink each file once seen, as a forwarder would
        self.prefix = {self.ino.add_watch(d, mask): f"{d}/" for d in dirs}
        self.count: dict[str, int] = {}
        self.done: dict[str, float] = {}
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            events = self.ino.read(timeout=50)
            now = time.perf_counter()
            for ev in events:
                if self.consume:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.prefix[ev.wd] + ev.name)
                c = self.count.get(ev.name, 0) + 1
                self.count[ev.name] = c
                if c == self.n:
                    self.done[ev.name] = now

    def close(self) -> None:
        self._stop = True
        self.thread.join()
        self.ino.close()


def publish_paced(node: Node, names: list[str], rate: float) -> dict[str, float]:
    """Publish the staged ``names`` into the datalog one every 1/``rate`` s, as a node's
    renames would; each name's publication time."""
    published: dict[str, float] = {}
    tmp, dst = str(node.tmp) + "/", str(node.datalog) + "/"
    start = time.perf_counter()
    for i, name in enumerate(names):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        os.rename(tmp + name, dst + name)
        published[name] = time.perf_counter()
    return published


def latency(runner: Runner, node: Node, rate: float, seconds: float, drain: float) -> Latency:
    n = int(rate * seconds)
    names = node.stage(n, 300)
    p = runner.start(node)
    runner.ready(node, p)
    watch = LinkWatch(node.targets)
    settle()
    published = publish_paced(node, names, rate)
    deadline = time.perf_counter() + drain
    while len(watch.done) < n and time.perf_counter() < deadline:
        time.sleep(0.01)
    end = time.perf_counter()
    watch.close()
    stop(p)
    lat = sorted(watch.done.get(name, end) - t for name, t in published.items())
    late = sum(1 for name in published if name not in watch.done)
    return Latency(n, late, statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))])


@dataclass
class Paced:
    """One paced run of ``fanout distribute``: its CPU and its latencies."""

    files: int
    targets: int
    cpu: float  # distributor process CPU seconds (user + system), publish start to empty
    link: Latency  # rename into datalog/ -> last target link
    removal: Latency  # rename into datalog/ -> original removed (fsynced first)

    def per_kfile(self) -> float:
        return self.cpu / self.files * 1000

    def per_mpoint_target(self, points: int) -> float:
        return self.cpu / (self.files * points) * 1e6 / self.targets


def _cpu(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def paced(node: Node, rate: float, seconds: float, size: int,
          code: str | None = None, floor: bool = False) -> Paced:
    """Publish ``rate`` files/s of ``size`` bytes for ``seconds`` into a running distributor
    (its code from directory ``code`` when given, for a before/after comparison); CPU is
    read from the process from the first publish until datalog/ is empty again. Each link
    is removed once seen, as the forwarders do, so the target directories stay as small
    as a healthy node's (their periodic count costs a stat per file)."""
    n = int(rate * seconds)
    names = node.stage(n, size)
    env = None
    if code is not None:
        env = dict(os.environ, PYTHONPATH=code)
    # cwd: ``python -m`` puts it first on sys.path, before PYTHONPATH
    if floor:
        cmd = [sys.executable, "-c", FLOOR, str(node.datalog), *map(str, node.targets)]
    else:
        cmd = fanout_cmd("distribute", "--config", str(node.config))
    p = _popen(cmd, node.root / "run.log", env, cwd=node.root)
    try:
        if not floor:
            ready_fanout(node, p)
        links = LinkWatch(node.targets, consume=True)  # target directories stay small
        removals = LinkWatch([node.datalog], F.DELETE)
        settle()
        time.sleep(1.0)  # past the startup scan and audit
        cpu0 = _cpu(p.pid)
        published = publish_paced(node, names, rate)
        deadline = time.perf_counter() + 10
        while ((len(links.done) < n or len(removals.done) < n)
               and time.perf_counter() < deadline):
            time.sleep(0.005)
        cpu = _cpu(p.pid) - cpu0
        end = time.perf_counter()
        links.close()
        removals.close()
    finally:
        stop(p)

    def lat(done: dict[str, float]) -> Latency:
        v = sorted(done.get(name, end) - t for name, t in published.items())
        late = sum(1 for name in published if name not in done)
        return Latency(n, late, statistics.median(v), v[min(len(v) - 1, int(len(v) * 0.99))])

    return Paced(n, len(node.targets), cpu, lat(links.done), lat(removals.done))


def paced_main(base: Path, rates: list[float], seconds: float, targets: int, size: int,
               points: int, baseline: str | None) -> None:
    """The issue-17 figures: distributor CPU per file and per million points per target at
    a live node's paced rates, with link and removal latency."""
    codes: list[tuple[str, str | None]] = [("this tree", None), ("floor loop", None)]
    if baseline is not None:
        codes.insert(0, (f"baseline {baseline}", baseline))
    print(f"Paced runs: {targets} targets, {size:,}-byte files ({points} points each), "
          f"{seconds:.0f} s per run; CPU of the distributor process (user + system)")
    print(f"{'files/s':>7} {'points/s':>8} | {'code':<28} | {'CPU ms/1k files':>15} "
          f"{'CPU s/M points/target':>21} | {'link p50 / p99':>19} | "
          f"{'removal p50 / p99':>19}")
    for rate in rates:
        for label, code in codes:
            node = Node(base / f"paced-{int(rate)}", targets)
            r = paced(node, rate, seconds, size, code, floor=label == "floor loop")
            node.remove()
            print(f"{rate:>7,.0f} {rate * points:>8,.0f} | {label[:28]:<28} | "
                  f"{r.per_kfile() * 1000:>15,.0f} {r.per_mpoint_target(points):>21.3f} | "
                  f"{r.link.show():>19} | {r.removal.show():>19}", flush=True)
    print("(link: rename into datalog/ -> link in the last target, what a forwarder waits "
          "for; removal: -> original removed, after the target directories are fsynced;\n"
          " floor loop: the least a Python distributor does per file - inotify, stat, links, "
          "fsync and unlink every 0.2 s - without state, checks or error handling)")


def python_floor(root: Path, n: int, targets: int = 4) -> float:
    """link x targets + unlink per file, in a plain loop: what any Python distributor pays."""
    shutil.rmtree(root, ignore_errors=True)
    src = root / "src"
    src.mkdir(parents=True)
    dirs = []
    for i in range(targets):
        (root / f"t{i}").mkdir()
        dirs.append(f"{root}/t{i}/")
    names = [file_name(i, "n1") for i in range(1, n + 1)]
    for name in names:
        with open(src / name, "wb") as f:
            f.write(b"x" * 300)
    s = str(src) + "/"
    t0 = time.perf_counter()
    for name in names:
        path = s + name
        for d in dirs:
            os.link(path, d + name)
        os.unlink(path)
    rate = n / (time.perf_counter() - t0)
    shutil.rmtree(root)
    return rate


def du_backlog(base: Path, n_targets: int, files: int, size: int) -> tuple[int, int]:
    """(du -s KiB of all target directories, du -sl KiB counting each link as a copy)."""
    node = Node(base / f"du-{n_targets}", n_targets)
    names = node.stage(files, size)
    p = start_fanout(node)
    try:
        ready_fanout(node, p)
        node.publish_staged(names)
        _wait(node.datalog_empty, 60, "backlog distributed")
    finally:
        stop(p)
    tdir = str(node.root / "data" / "targets")

    def du(*flags: str) -> int:
        out = subprocess.run(["du", "-s", "--block-size=1K", *flags, tdir],
                             capture_output=True, text=True, check=True).stdout
        return int(out.split()[0])

    result = du(), du("-l")
    node.remove()
    return result


# ----------------------------------------------------------------------------- report

def fmt_s(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.2f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller runs (about a minute)")
    ap.add_argument("--paced", action="store_true",
                    help="only the paced CPU runs (a live node's rates, 10 KB files)")
    ap.add_argument("--rates", default="100,250",
                    help="files/s of the paced runs, comma-separated (default 100,250)")
    ap.add_argument("--seconds", type=float, default=None,
                    help="seconds per paced run (default 10, 4 with --quick)")
    ap.add_argument("--baseline", metavar="DIR", default=None,
                    help="also run the paced runs with the fanout package found in DIR "
                         "(e.g. `git archive main fanout | tar -x -C DIR`): before/after")
    args = ap.parse_args()
    quick = args.quick
    base = Path(tempfile.mkdtemp(prefix="fanout-bench-distribute-"))
    if args.paced:
        try:
            paced_main(base, [float(r) for r in args.rates.split(",")],
                       args.seconds or (4.0 if quick else 10.0), 4, 10_000, 100,
                       args.baseline)
        finally:
            shutil.rmtree(base, ignore_errors=True)
        return 0
    has_inotifywait = shutil.which("inotifywait") is not None
    runners = [
        Runner("fanout", start_fanout, ready_fanout),
        Runner("periodic", start_shell(PERIODIC), ready_periodic),
    ]
    if has_inotifywait:
        runners.append(Runner("inotifywait", start_shell(INOTIFYWAIT), ready_inotifywait))
    counts = (1, 4, 16)
    seconds = 3.0 if quick else 10.0
    tput: dict[tuple[str, int], Throughput] = {}
    lat: dict[tuple[str, int], Latency] = {}
    try:
        floor = python_floor(base / "floor", 5000 if quick else 20000)
        print(f"Python floor, link x4 + unlink: {floor:,.0f} files/s", flush=True)
        for t in counts:
            for r in runners:
                node = Node(base / f"{r.name}-{t}", t)
                if r.name == "fanout":
                    n = (8000 if quick else 30000) // (1 if t < 16 else 3)
                    tput[r.name, t] = throughput(r, node, n, 120)
                elif r.name == "periodic":
                    n = (4000 if quick else 10000) // (1 if t < 16 else 3)
                    tput[r.name, t] = throughput(r, node, n, 60, freeze=False)
                else:  # below max_queued_events: inotifywait would lose the rest
                    tput[r.name, t] = throughput(r, node, 2000, 4 if quick else 8)
                node.remove()
                node = Node(base / f"{r.name}-{t}", t)
                lat[r.name, t] = latency(r, node, 1000.0, seconds,
                                         drain=5.0 if r.name == "fanout" else 3.0)
                node.remove()
                tp, la = tput[r.name, t], lat[r.name, t]
                print(f"  {r.name:<11} {t:>2} target(s): {tp.rate:>9,.0f} files/s "
                      f"({tp.done}/{tp.files} in {tp.seconds:.2f} s); latency p50/p99 "
                      f"{la.show()} ({la.late} of {la.files} late)", flush=True)
        du_files, du_size = (200, 64 * 1024) if quick else (500, 64 * 1024)
        du1 = du_backlog(base, 1, du_files, du_size)
        du16 = du_backlog(base, 16, du_files, du_size)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print()
    print("Throughput, files/s until every file is linked into every target and removed")
    head = f"{'targets':>7} | {'fanout':>9} | {'periodic':>9} {'ratio':>6}"
    if has_inotifywait:
        head += f" | {'inotifywait':>11} {'ratio':>6}"
    print(head)
    for t in counts:
        ours = tput["fanout", t].rate
        row = f"{t:>7} | {ours:>9,.0f} | {tput['periodic', t].rate:>9,.0f} " \
              f"{ours / tput['periodic', t].rate:>5.2f}x"
        if has_inotifywait:
            row += f" | {tput['inotifywait', t].rate:>11,.0f} " \
                   f"{ours / tput['inotifywait', t].rate:>5.1f}x"
        print(row)
    print(f"(Python floor for link x4 + unlink: {floor:,.0f} files/s; fanout with 4 targets "
          f"reaches {tput['fanout', 4].rate / floor:.0%} of it)")
    print()
    print("Latency at a steady 1,000 files/s, publish to last target link, p50 / p99 "
          "(ratio: baseline p50 / fanout p50)")
    head = f"{'targets':>7} | {'fanout':>19} | {'periodic':>19} {'ratio':>7}"
    if has_inotifywait:
        head += f" | {'inotifywait':>19} {'ratio':>7}"
    print(head)
    for t in counts:
        mine = lat["fanout", t]
        row = f"{t:>7} | {mine.show():>19} | {lat['periodic', t].show():>19} " \
              f"{lat['periodic', t].p50 / mine.p50:>6.0f}x"
        if has_inotifywait:
            row += f" | {lat['inotifywait', t].show():>19} " \
                   f"{lat['inotifywait', t].p50 / mine.p50:>6.0f}x"
        print(row)
    print("('>': more than 1% of the files were not linked everywhere within the drain "
          "window; the figure is a lower bound)")
    if not has_inotifywait:
        print("inotifywait baseline skipped: inotifywait not found "
              "(apt-get install -y inotify-tools)")
    print()
    mib = du_files * du_size / 2**20
    print(f"Disk use of a backlog of {du_files} files x {du_size // 1024} KiB "
          f"({mib:.0f} MiB), du -s of the target directories:")
    print(f"   1 target : {du1[0]:>8,} KiB")
    print(f"  16 targets: {du16[0]:>8,} KiB   (du -sl, counting each link as a copy: "
          f"{du16[1]:,} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
