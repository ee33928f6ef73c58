"""bench/e2e.py's load generator and lag probes: threads in the bench process.

- ``Writer``: a paced writer. Request k is due at ``t0 + k / rate``; a few threads (one
  keep-alive connection each) take the next due slot, so one slow acknowledgement does not
  shift the schedule. Each reply's ``X-Fanout-Oseq`` is kept with the time the reply was
  read: the primary's acknowledgement as its client sees it.
- ``Probe``: one thread per target polling ``GET /api/v0/replication/marks`` every
  ``interval`` seconds over one keep-alive connection (``fanout.testing.Client``: its own
  CPU, ~0.2 ms a poll, is reported with the bench's), keeping only the polls where
  ``marks[origin]`` moved: (time the reply was read, mark).
- ``lags``: for each acknowledged oseq, the first poll whose mark covers it; lag = that
  poll's time - the ack time. A target has applied a write once its mark reaches the
  write's oseq (marks and data commit in one transaction), so the figure is an upper
  bound of the true lag, by at most one poll interval plus one poll round trip.

Every time is ``time.perf_counter()`` of this process.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fanout.testing import Client

SERIES = 10


def body_of(k: int, points: int) -> bytes:
    """Request k's lines: ``points`` readings over SERIES series, timestamps unique."""
    base = 1_700_000_000_000_000 + k * points
    return "".join(f"{base + j}// e2e.load{{host=h{j % SERIES}}} {(k + j) % 1000}.5\n"
                   for j in range(points)).encode()


@dataclass
class Writer:
    """Paced writes to the primary until ``stop()``; see the module docstring.
    ``acks`` holds (oseq, sent, acked) per acknowledged request."""

    url: str
    token: str
    rate: float = 100.0
    points: int = 100
    threads: int = 3
    acks: list[tuple[int, float, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    late: int = 0  # requests sent more than one interval after they were due
    ssl_context: Any = None  # an https primary (e2e.py --tls)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._acked = threading.Condition(self._lock)  # notified at every acknowledgement
        self._next = 0
        self._head = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.t0 = 0.0
        self.origin: str | None = None

    def start(self) -> None:
        self.t0 = time.perf_counter() + 0.05
        for i in range(self.threads):
            th = threading.Thread(target=self._run, name=f"writer-{i}", daemon=True)
            th.start()
            self._threads.append(th)

    def stop(self) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(timeout=60)

    def head(self) -> int:
        """The highest oseq acknowledged so far."""
        return self._head

    def wait_beyond(self, oseq: int, timeout: float) -> None:
        """Until an oseq above ``oseq`` is acknowledged, or ``timeout`` s."""
        with self._acked:
            self._acked.wait_for(lambda: self._head > oseq, timeout)

    @property
    def points_acked(self) -> int:
        return len(self.acks) * self.points

    def _slot(self) -> int:
        with self._lock:
            k, self._next = self._next, self._next + 1
            return k

    def _run(self) -> None:
        period = 1.0 / self.rate
        conn = Client(self.url, self.token, timeout=30.0, ssl_context=self.ssl_context)
        try:
            while not self._stop.is_set():
                k = self._slot()
                due = self.t0 + k * period
                now = time.perf_counter()
                if due > now:
                    if self._stop.wait(due - now):
                        return
                elif now - due > period:
                    self.late += 1
                body = body_of(k, self.points)
                sent = time.perf_counter()
                try:
                    status, text = conn.request("POST", "/api/v0/update", body, check=False)
                except OSError as exc:  # reported, and the load goes on
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                acked = time.perf_counter()
                headers = conn.last_headers
                oseq = headers.get("x-fanout-oseq")
                if status != 200 or oseq is None:
                    self.errors.append(f"HTTP {status}: {text[:200]!r}")
                    continue
                self.origin = headers.get("x-fanout-origin")
                o = int(oseq)
                with self._lock:
                    self.acks.append((o, sent, acked))
                    self._head = max(self._head, o)
                    self._acked.notify_all()
        finally:
            conn.close()


class Probe:
    """Polls one node's marks for ``origin`` every ``interval`` s in its own thread.

    Given the ``writer``, it polls only while the node has acknowledged writes it has
    not applied (its mark is below the writer's head), and at once when a new
    acknowledgement arrives: every acknowledged write is still seen within one interval
    of being applied, and a node that has caught up is not polled for nothing (each poll
    costs the node ~0.5 ms of CPU here: see the calibration). ``always`` makes it poll
    regardless (the calibration, before any write).

    ``pause()`` returns once no poll is in flight (so the node can be frozen without a
    poll hanging on it); ``resume()`` starts polling again at once."""

    def __init__(self, name: str, url: str, token: str, origin: str, interval: float,
                 writer: Writer | None = None, ssl_context: Any = None):
        self.name = name
        self.origin = origin
        self.interval = interval
        self.writer = writer
        self.always = writer is None
        self.times: list[float] = []  # poll reply times where the mark moved ...
        self.marks: list[int] = []  # ... and the mark then
        self.polls = 0
        self.errors = 0
        self.rtt_sum = 0.0
        self._conn = Client(url, token, timeout=2.0, ssl_context=ssl_context)
        self._stop = threading.Event()
        self._run_ok = threading.Event()
        self._run_ok.set()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"probe-{name}", daemon=True)

    def start(self) -> Probe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._run_ok.set()
        self._thread.join(timeout=10)
        self._conn.close()

    def pause(self) -> None:
        self._idle.clear()
        self._run_ok.clear()
        self._idle.wait(timeout=10)

    def resume(self) -> None:
        self._run_ok.set()

    @property
    def mark(self) -> int:
        return self.marks[-1] if self.marks else 0

    def poll_once(self) -> int | None:
        t_send = time.perf_counter()
        try:
            status, body = self._conn.request("GET", "/api/v0/replication/marks", check=False)
        except (OSError, ValueError):
            self._conn.close()
            self.errors += 1
            return None
        now = time.perf_counter()
        if status != 200:
            self.errors += 1
            return None
        self.polls += 1
        self.rtt_sum += now - t_send
        m = int(json.loads(body)["marks"].get(self.origin, 0))
        if m > self.mark:
            self.times.append(now)
            self.marks.append(m)
        return m

    def _run(self) -> None:
        nxt = time.perf_counter()
        while not self._stop.is_set():
            if not self._run_ok.is_set():
                self._idle.set()
                self._run_ok.wait()
                nxt = time.perf_counter()
                continue
            w = self.writer
            if w is not None and not self.always and self.mark >= w.head():
                w.wait_beyond(self.mark, 0.05)  # short: pause() and stop() wait for it
                nxt = time.perf_counter()
                continue
            self.poll_once()
            nxt += self.interval
            now = time.perf_counter()
            if nxt < now:  # behind: skip the missed ticks rather than burst
                nxt = now + self.interval
            else:
                time.sleep(nxt - now)


def wait_caught_up(probes: list[Probe], head: int, timeout: float) -> bool:
    """Until every probe's mark reaches ``head`` (the probes keep polling)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if all(p.mark >= head for p in probes):
            return True
        time.sleep(0.05)
    return False


def lags(acks: list[tuple[int, float, float]], probe: Probe) -> list[tuple[float, float]]:
    """(ack time, lag s) for every acknowledged write ``probe`` saw applied, in ack
    order. A poll can see a write applied before its writer thread has read the reply:
    such lags count as 0."""
    times, marks = probe.times, probe.marks
    out = []
    for oseq, _sent, acked in sorted(acks, key=lambda a: a[2]):
        i = bisect.bisect_left(marks, oseq)
        if i < len(marks):
            out.append((acked, max(0.0, times[i] - acked)))
    return out


def first_seen(probe: Probe, oseq: int) -> float | None:
    """When ``probe`` first saw ``oseq`` applied."""
    i = bisect.bisect_left(probe.marks, oseq)
    return probe.times[i] if i < len(probe.marks) else None


def mark_at(probe: Probe, t: float) -> int:
    """The last mark ``probe`` had seen at time ``t``."""
    i = bisect.bisect_right(probe.times, t)
    return probe.marks[i - 1] if i else 0


def stop_all(probes: list[Probe]) -> None:
    for p in probes:
        with contextlib.suppress(Exception):
            p.stop()
