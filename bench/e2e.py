"""End to end: replication lag, isolation from a dead target, and the CPU cost per target.

Two topologies on 127.0.0.1, every node under its own supervisord (``fanout up``), all
stores sqlite, one steady load throughout: ``--rate`` requests/s of ``--points`` points
(default 100 x 100 = 10,000 points/s) from a paced writer in this process.

Fan-out (primary + ``--targets`` targets, one forwarder each at the primary):
  calibrate  the lag probes alone, no writes: their CPU cost on the target nodes
  warm-up    load starts (not measured)
  steady     ``--phase`` s: lag per target; CPU s per million points by process kind
  freeze     the last target's node SIGSTOPped for ``--phase`` s: the others' lag
  catch-up   SIGCONT: the backlog (records acknowledged while it was frozen) and the
             seconds until its mark covers it; load goes on
Chain (primary -> A -> B -> C -> D, ``log_remote_changes`` on A, B, C; Warp 10's usual
design): warm-up, steady (a third of ``--phase``), B frozen for ``--phase`` s, catch-up.

Lag = first time a target's ``/api/v0/replication/marks`` covers a write's oseq - the
time its acknowledgement (X-Fanout-Oseq) was read. Marks are polled every ``--poll`` s
(5 ms): a lag is an upper bound, by at most one poll interval and one poll round trip.

Prints tables and the goals, writes bench/results/e2e-<time>.json (every figure, lag
series included) and .png (lag over time per target). ``--profile`` also runs py-spy on
the primary's node, distributor and one forwarder and on one target node during the
steady phase and prints where their time goes (py-spy costs CPU: compare with a run
without it).

    python bench/e2e.py [--quick] [--phase 60] [--no-chain] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from e2e_load import (  # noqa: E402
    Probe,
    Writer,
    first_seen,
    lags,
    mark_at,
    stop_all,
    wait_caught_up,
)
from e2e_report import cpu_table, lag_stats, lag_table, ms, plot, pyspy_summary  # noqa: E402
from e2e_topology import Cluster, OtherCPU, chain, cpu_seconds, fan_out  # noqa: E402

RESULTS = HERE / "results"
ORIGIN = "primary"
GOAL_P99_MS = 100.0
GOAL_ISOLATION = 1.10
GOAL_CATCHUP_X = 5.0
STALENESS_STEP = 0.1


def say(text: str = "") -> None:
    print(text, flush=True)


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@dataclass
class Run:
    """One topology's live parts."""

    cluster: Cluster
    writer: Writer
    probes: dict[str, Probe]

    def rel(self, t: float) -> float:
        return round(t - self.writer.t0, 3)

    def acked_in(self, start: float, end: float) -> int:
        return sum(1 for _o, _s, a in self.writer.acks if start <= a < end)

    def series(self) -> dict[str, list[tuple[float, float]]]:
        return {n: lags(self.writer.acks, p) for n, p in self.probes.items()}

    def staleness(self, name: str, start: float, end: float) -> list[list[float]]:
        """Every STALENESS_STEP s: age of the oldest acknowledged write this target had
        not applied (0 when none), as the probe saw it."""
        by_oseq = {o: a for o, _s, a in self.writer.acks}
        probe = self.probes[name]
        out = []
        t = start
        while t < end:
            a = by_oseq.get(mark_at(probe, t) + 1)
            out.append([self.rel(t), round(max(0.0, t - a) if a is not None and a <= t
                                           else 0.0, 3)])
            t += STALENESS_STEP
        return out

    def stop(self) -> None:
        self.writer.stop()
        stop_all(list(self.probes.values()))


def start_run(cluster: Cluster, args: argparse.Namespace, watched: list[str],
              always: bool = False) -> Run:
    prim = cluster.nodes[ORIGIN]
    writer = Writer(prim.url, prim.tokens["ingest"], args.rate, args.points, threads=8,
                    ssl_context=prim.ssl_context)
    probes = {n: Probe(n, cluster.nodes[n].url, cluster.nodes[n].tokens["reader"], ORIGIN,
                       args.poll, writer, cluster.nodes[n].ssl_context) for n in watched}
    for p in probes.values():
        p.always = always
        p.start()
    return Run(cluster, writer, probes)


def process_kinds(cl: Cluster, targets: list[str]) -> dict[str, list[int]]:
    prim = cl.pids(ORIGIN)
    supervision = cl.supervisord_pids()
    for name in cl.nodes:
        supervision += [pid for kind, pid in cl.pids(name).values() if kind == "listener"]
    return {
        "primary node": [prim["node"][1]],
        "primary distributor": [prim["distributor"][1]],
        "primary forwarders": [pid for kind, pid in prim.values() if kind == "forwarder"],
        "target nodes": [cl.pids(t)["node"][1] for t in targets],
        "supervision (all nodes)": supervision,
        "bench (load + probes)": [os.getpid()],
    }


def snapshot(kinds: dict[str, list[int]]) -> dict[str, float]:
    return {k: cpu_seconds(pids) for k, pids in kinds.items()}


def pyspy(pids: dict[str, int], seconds: float, out: Path) -> list[tuple[str, Path, Any]]:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        say("   --profile: py-spy not found (pip install py-spy into the venv); skipped")
        return []
    procs = []
    for name, pid in pids.items():
        raw = out.with_name(f"{out.name}-{name}.txt")
        p = subprocess.Popen([exe, "record", "--pid", str(pid), "--duration",
                              str(int(seconds)), "--rate", "100", "--format", "raw",
                              "--nolineno", "--nonblocking", "--output", str(raw)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append((name, raw, p))
    return procs


# -- fan-out ---------------------------------------------------------------------------------

def run_fanout(args: argparse.Namespace, root: Path, out: Path) -> dict[str, Any]:
    names = [f"t{i}" for i in range(1, args.targets + 1)]
    frozen = names[-1]
    cl = fan_out(root / "fan", args.targets, args.tls)
    say(f"== fan-out: primary + {args.targets} targets under supervisord in {cl.root}")
    run: Run | None = None
    try:
        cl.up()
        kinds = process_kinds(cl, names)
        run = start_run(cl, args, names, always=True)
        w, probes = run.writer, run.probes

        # calibrate: the probes' own cost on the target nodes (no writes yet)
        polls0 = sum(p.polls for p in probes.values())
        c0 = snapshot(kinds)
        time.sleep(args.calibrate)
        c1 = snapshot(kinds)
        calib_polls = sum(p.polls for p in probes.values()) - polls0
        per_poll = (c1["target nodes"] - c0["target nodes"]) / max(1, calib_polls)
        bench_per_poll = (c1["bench (load + probes)"] - c0["bench (load + probes)"]) / \
            max(1, calib_polls)
        say(f"   probes alone: {calib_polls / args.calibrate:,.0f} polls/s, "
            f"{per_poll * 1e6:.0f} us target-node CPU per poll")
        for p in probes.values():
            p.always = False  # from now on, only while a target has writes to apply

        w.start()
        say(f"   load: {args.rate:g} req/s x {args.points} points; warm-up {args.warmup:g} s")
        time.sleep(args.warmup)

        t_s0 = time.perf_counter()
        polls_s0 = sum(p.polls for p in probes.values())
        cpu0 = snapshot(kinds)
        others = OtherCPU(cl)
        spies = []
        if args.profile:
            prim = cl.pids(ORIGIN)
            spies = pyspy({"primary-node": prim["node"][1],
                           "distributor": prim["distributor"][1],
                           "forwarder-t1": prim["forwarder-t1"][1],
                           "t1-node": cl.pids("t1")["node"][1]}, args.phase, out)
        time.sleep(args.phase)
        t_s1 = time.perf_counter()
        cpu1 = snapshot(kinds)
        polls_steady = sum(p.polls for p in probes.values()) - polls_s0
        load_steady = load_avg()
        other_steady = others.pct()
        for _n, _raw, p in spies:
            p.wait(timeout=60)
        say(f"   steady {args.phase:g} s done (load average {load_steady})")
        # load goes on, unmeasured, so that no write of the steady window is still on
        # its way to the target about to be frozen (its lag would count the freeze)
        time.sleep(args.gap)

        fpid = cl.pids(frozen)["node"][1]
        fprobe = probes[frozen]
        fprobe.pause()
        mark_frozen = fprobe.mark
        t_f0 = time.perf_counter()
        others.start()
        cl.freeze(fpid)
        time.sleep(args.phase)
        head_resume = w.head()
        t_f1 = time.perf_counter()
        cl.thaw(fpid)
        fprobe.resume()
        load_freeze = load_avg()
        other_freeze = others.pct()
        say(f"   {frozen} frozen {t_f1 - t_f0:.1f} s (load average {load_freeze}); resumed "
            f"with {head_resume - mark_frozen:,} records behind")

        cap = max(60.0, args.phase)
        caught = wait_caught_up([fprobe], head_resume, cap)
        t_caught = first_seen(fprobe, head_resume) if caught else None
        time.sleep(args.tail)
        t_end = time.perf_counter()
        run.writer.stop()
        final = w.head()
        drained = wait_caught_up(list(probes.values()), final, 120)
        load_end = load_avg()
        health = cl.health()
        series = run.series()
    finally:
        if run is not None:
            run.stop()
        cl.down()
    say(f"   stopped; every target at the last write: {drained}")

    def rel_phase(a: float, b: float) -> list[float]:
        return [run.rel(a), run.rel(b)]

    steady = {n: lag_stats(series[n], t_s0, t_s1, run.acked_in(t_s0, t_s1)) for n in names}
    freeze = {n: lag_stats(series[n], t_f0, t_f1, run.acked_in(t_f0, t_f1)) for n in names}
    after = {n: lag_stats(series[n], t_f1, t_end, run.acked_in(t_f1, t_end)) for n in names}
    isolation = {n: round(freeze[n]["p99_ms"] / steady[n]["p99_ms"], 3)
                 for n in names if n != frozen}
    backlog = head_resume - mark_frozen
    catch_s = (t_caught - t_f1) if t_caught is not None else None
    slow = [a for a, lag in series[frozen] if a >= t_f1 and lag >= 1.0]
    catchup = {
        "target": frozen, "backlog_records": backlog, "backlog_points": backlog * args.points,
        "seconds": round(catch_s, 3) if catch_s is not None else None,
        "records_per_s": round(backlog / catch_s, 1) if catch_s else None,
        "x_write_rate": round(backlog / catch_s / args.rate, 2) if catch_s else None,
        "lag_under_1s_for_writes_acked_after_s":
            round(max(slow) - t_f1, 3) if slow else 0.0,
    }
    dur = t_s1 - t_s0
    points = run.acked_in(t_s0, t_s1) * args.points
    cpu = cpu_figures(cpu0, cpu1, dur, points, args.targets,
                      probe_cost=per_poll * polls_steady,
                      bench_probe_cost=bench_per_poll * polls_steady)
    ack = sorted(a - s for _o, s, a in w.acks)
    result = {
        "targets": names,
        "writer": writer_figures(w, args, ack, t_end),
        "probe": {"interval_ms": args.poll * 1e3, "calibration_polls": calib_polls,
                  "steady_polls_per_s": round(polls_steady / dur, 1),
                  "target_cpu_us_per_poll": round(per_poll * 1e6, 1),
                  "bench_cpu_us_per_poll": round(bench_per_poll * 1e6, 1),
                  "rtt_ms": {n: round(p.rtt_sum / max(1, p.polls) * 1e3, 3)
                             for n, p in probes.items()},
                  "errors": {n: p.errors for n, p in probes.items()}},
        "phases_s": {"warm-up": rel_phase(w.t0, t_s0), "steady": rel_phase(t_s0, t_s1),
                     "freeze": rel_phase(t_f0, t_f1), "catch-up": rel_phase(t_f1, t_end)},
        "load_average": {"steady": load_steady, "freeze": load_freeze, "end": load_end},
        "other_cpu_pct": {"steady": other_steady, "freeze": other_freeze},
        "lag": {"steady": steady, "freeze": freeze, "after_resume": after},
        "isolation_p99_ratio": isolation,
        "freeze": {"target": frozen, "start_s": run.rel(t_f0), "end_s": run.rel(t_f1)},
        "catchup": catchup,
        "cpu": cpu,
        "drained": drained,
        "health_at_end": health,
        "series": {n: [[run.rel(a), round(lag * 1e3, 2)] for a, lag in s]
                   for n, s in series.items()},
        "staleness": {n: run.staleness(n, w.t0, t_end) for n in names},
    }
    if spies:
        result["profile"] = {n: pyspy_summary(raw) | {"file": str(raw)}
                             for n, raw, _p in spies}
    return result


def writer_figures(w: Writer, args: argparse.Namespace, ack: list[float],
                   t_end: float) -> dict[str, Any]:
    from e2e_report import pct

    secs = t_end - w.t0
    return {"requests": len(w.acks), "points": w.points_acked,
            "points_per_s": round(w.points_acked / secs, 1), "late_requests": w.late,
            "errors": len(w.errors), "first_errors": w.errors[:5],
            "ack_p50_ms": round(pct(ack, 50) * 1e3, 2),
            "ack_p99_ms": round(pct(ack, 99) * 1e3, 2)}


def cpu_figures(c0: dict[str, float], c1: dict[str, float], dur: float, points: int,
                ntargets: int, probe_cost: float, bench_probe_cost: float) -> dict[str, Any]:
    per_target = {"primary distributor", "primary forwarders", "target nodes",
                  "target nodes (net of probes)"}
    delta = {k: c1[k] - c0[k] for k in c0}
    delta["target nodes (net of probes)"] = delta["target nodes"] - probe_cost
    delta["bench (net of probes)"] = delta["bench (load + probes)"] - bench_probe_cost
    mp = points / 1e6
    kinds = {}
    for k, v in delta.items():
        s = v / mp if mp else float("nan")
        kinds[k] = {"cpu_s": round(v, 3), "core_pct": round(100 * v / dur, 2),
                    "s_per_mpoints": round(s, 3),
                    "per_target_s_per_mpoints": round(s / ntargets, 3)
                    if k in per_target else None}
    return {"seconds": round(dur, 2), "points": points, "kinds": kinds,
            "probe_cost_s_on_targets": round(probe_cost, 3)}


# -- chain -----------------------------------------------------------------------------------

def run_chain(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    hops = ["A", "B", "C", "D"]
    cl = chain(root / "chain", tuple(hops), args.tls)
    say(f"== chain: primary -> {' -> '.join(hops)} (log_remote_changes) in {cl.root}")
    steady_s = max(5.0, args.phase / 3)
    run: Run | None = None
    try:
        cl.up()
        run = start_run(cl, args, hops)
        w, probes = run.writer, run.probes
        w.start()
        time.sleep(args.warmup)
        t_s0 = time.perf_counter()
        others = OtherCPU(cl)
        time.sleep(steady_s)
        t_s1 = time.perf_counter()
        load_steady = load_avg()
        other_steady = others.pct()
        time.sleep(args.gap)
        t_f0 = time.perf_counter()
        others.start()
        bpid = cl.pids("B")["node"][1]
        probes["B"].pause()
        cl.freeze(bpid)
        time.sleep(args.phase)
        head_resume = w.head()
        t_f1 = time.perf_counter()
        cl.thaw(bpid)
        probes["B"].resume()
        load_freeze = load_avg()
        other_freeze = others.pct()
        say(f"   B frozen {t_f1 - t_f0:.1f} s (load average {load_freeze})")
        caught = wait_caught_up([probes[h] for h in hops], head_resume, max(60.0, args.phase))
        time.sleep(args.tail)
        t_end = time.perf_counter()
        run.writer.stop()
        drained = wait_caught_up(list(probes.values()), w.head(), 120)
        health = cl.health()
        series = run.series()
    finally:
        if run is not None:
            run.stop()
        cl.down()
    say(f"   stopped; every hop at the last write: {drained}")
    catch = {}
    for h in hops:
        t = first_seen(probes[h], head_resume) if caught else None
        catch[h] = round(t - t_f1, 3) if t is not None else None
    return {
        "hops": hops,
        "writer": writer_figures(w, args, sorted(a - s for _o, s, a in w.acks), t_end),
        "phases_s": {"warm-up": [0.0, run.rel(t_s0)], "steady": [run.rel(t_s0), run.rel(t_s1)],
                     "B frozen": [run.rel(t_f0), run.rel(t_f1)],
                     "catch-up": [run.rel(t_f1), run.rel(t_end)]},
        "load_average": {"steady": load_steady, "freeze": load_freeze},
        "other_cpu_pct": {"steady": other_steady, "freeze": other_freeze},
        "lag": {
            "steady": {h: lag_stats(series[h], t_s0, t_s1, run.acked_in(t_s0, t_s1))
                       for h in hops},
            "B frozen": {h: lag_stats(series[h], t_f0, t_f1, run.acked_in(t_f0, t_f1))
                         for h in hops},
        },
        "staleness_at_resume_s": {h: round(t_f1 - a, 3) if (a := _ack_of(w, mark_at(
            probes[h], t_f1) + 1)) is not None else 0.0 for h in hops},
        "caught_up_after_resume_s": catch,
        "freeze": {"target": "B", "start_s": run.rel(t_f0), "end_s": run.rel(t_f1)},
        "drained": drained,
        "health_at_end": health,
        "series": {n: [[run.rel(a), round(lag * 1e3, 2)] for a, lag in s]
                   for n, s in series.items()},
        "staleness": {h: run.staleness(h, w.t0, t_end) for h in hops},
    }


def _ack_of(w: Writer, oseq: int) -> float | None:
    return next((a for o, _s, a in w.acks if o == oseq), None)


# -- report ----------------------------------------------------------------------------------

def report(res: dict[str, Any], args: argparse.Namespace) -> list[tuple[str, bool, str]]:
    fan = res["fanout"]
    wr = fan["writer"]
    names, frozen = fan["targets"], fan["freeze"]["target"]
    say()
    say(f"== fan-out report: primary + {len(names)} targets, {args.rate:g} req/s x "
        f"{args.points} points, {args.phase:g} s phases, lag resolution {args.poll * 1e3:g} "
        "ms (marks polled; lags are upper bounds)")
    say(f"   writer: {wr['requests']:,} requests, {wr['points_per_s']:,.0f} points/s, "
        f"ack p50 {wr['ack_p50_ms']:.1f} ms p99 {wr['ack_p99_ms']:.1f} ms, "
        f"{wr['late_requests']} late, {wr['errors']} errors")
    la = fan["load_average"]
    say(f"   load average (1, 5, 15 min) at the end of steady {la['steady']}, of freeze "
        f"{la['freeze']}, at the end {la['end']}")
    oc = fan["other_cpu_pct"]
    say(f"   CPU used by anything but this run (other processes, kernel threads), % of a "
        f"core: steady {oc['steady']:.0f}%, freeze {oc['freeze']:.0f}%")
    rows = [("steady", n, fan["lag"]["steady"][n]) for n in names]
    rows += [(f"freeze ({frozen} frozen)", n, fan["lag"]["freeze"][n]) for n in names]
    rows += [("after resume", n, fan["lag"]["after_resume"][n]) for n in names]
    say(lag_table(rows))
    iso = fan["isolation_p99_ratio"]
    say("   isolation, p99 while frozen / before: "
        + ", ".join(f"{n} {r:.2f}x" for n, r in iso.items()))
    c = fan["catchup"]
    say(f"   catch-up of {frozen}: {c['backlog_records']:,} records "
        f"({c['backlog_points']:,} points) behind at SIGCONT, covered in "
        f"{ms(c['seconds'])} s = {ms(c['records_per_s'])} records/s = "
        f"{ms(c['x_write_rate'])}x the write rate; every write acknowledged from "
        f"+{c['lag_under_1s_for_writes_acked_after_s']:.1f} s on was applied within 1 s")
    cpu = fan["cpu"]
    per_poll = fan["probe"]["target_cpu_us_per_poll"]
    say(f"   CPU during steady ({cpu['seconds']:.0f} s, {cpu['points']:,} points; "
        f"'per target' = CPU s per million points / {len(names)}; the probes' "
        f"{fan['probe']['steady_polls_per_s']:,.0f} polls/s cost the target nodes "
        f"{cpu['probe_cost_s_on_targets']:.2f} s, {per_poll:.0f} us a poll as measured "
        "before the load):")
    say(cpu_table(cpu))
    for name, prof in fan.get("profile", {}).items():
        say(f"   py-spy {name} ({prof['samples']} samples; % of samples, self):")
        for f, share in prof["self"]:
            say(f"     {share:5.1f}%  {f}")
        say("     inclusive: " + "; ".join(f"{f} {s}%" for f, s in prof["inclusive"][:6]))

    ch = res.get("chain")
    if ch:
        say()
        oc = ch["other_cpu_pct"]
        say(f"== chain report: primary -> A -> B -> C -> D, B frozen "
            f"{ch['freeze']['end_s'] - ch['freeze']['start_s']:.0f} s; load average "
            f"{ch['load_average']}; CPU of anything else: steady {oc['steady']:.0f}%, "
            f"freeze {oc['freeze']:.0f}% of a core")
        rows = [("steady", h, ch["lag"]["steady"][h]) for h in ch["hops"]]
        rows += [("writes while B frozen", h, ch["lag"]["B frozen"][h]) for h in ch["hops"]]
        say(lag_table(rows))
        say("   staleness at SIGCONT (age of the oldest acknowledged write not applied): "
            + ", ".join(f"{h} {v:.1f} s" for h, v in ch["staleness_at_resume_s"].items()))
        say("   caught up with the head at SIGCONT after: "
            + ", ".join(f"{h} {ms(v)} s" for h, v in ch["caught_up_after_resume_s"].items()))

    goals = []
    worst = max(fan["lag"]["steady"][n]["p99_ms"] for n in names)
    goals.append(("p99 lag < 100 ms for every target (steady)", worst < GOAL_P99_MS,
                  f"worst p99 {worst:.1f} ms"))
    worst_iso = max(iso.values())
    goals.append(("others' p99 within 10% while one is frozen", worst_iso <= GOAL_ISOLATION,
                  f"worst ratio {worst_iso:.2f}x"))
    x = c["x_write_rate"] or 0.0
    goals.append(("catch-up >= 5x the write rate", x >= GOAL_CATCHUP_X, f"{x:.1f}x"))
    say()
    say("== goals")
    for what, ok, fig in goals:
        say(f"   [{'MET' if ok else 'NOT MET'}] {what}: {fig}")
    return goals


SWEEP_ROWS = [("primary node", "s_per_mpoints", "primary node"),
              ("primary distributor", "per_target_s_per_mpoints", "distributor/t"),
              ("primary forwarders", "per_target_s_per_mpoints", "forwarder/t"),
              ("target nodes (net of probes)", "per_target_s_per_mpoints", "target node/t")]
MAX_LATE = 0.01  # a rate is held only if the writer kept its schedule (late <= 1%)


def sweep(args: argparse.Namespace, rates: list[float], root: Path, out: Path,
          res: dict[str, Any]) -> int:
    """The fan-out topology once per rate (no chain), each with its full report, then
    one table: which rates met every goal, and the highest that did."""
    rows = []
    try:
        for i, rate in enumerate(rates):
            args.rate = rate
            say(f"\n=== sweep {i + 1}/{len(rates)}: {rate:g} req/s x {args.points} points")
            run = {"fanout": run_fanout(args, root / f"r{i}", out.with_name(f"{out.name}-r{i}"))}
            goals = report(run, args)
            wr = run["fanout"]["writer"]
            on_time = wr["late_requests"] <= MAX_LATE * max(1, wr["requests"])
            goals.append((f"writer on schedule (late <= {MAX_LATE:.0%})", on_time,
                          f"{wr['late_requests']} late of {wr['requests']}"))
            say(f"   [{'MET' if on_time else 'NOT MET'}] {goals[-1][0]}: {goals[-1][2]}")
            kinds = run["fanout"]["cpu"]["kinds"]
            rows.append({"rate": rate, "points_per_s": rate * args.points,
                         "goals": [{"goal": g, "met": ok, "figure": f} for g, ok, f in goals],
                         "met": all(ok for _, ok, _ in goals),
                         "cpu": {k: kinds[k][field] for k, field, _ in SWEEP_ROWS},
                         "load_average": run["fanout"]["load_average"]})
    except KeyboardInterrupt:
        say("interrupted: every node was stopped")
        return 130
    finally:
        shutil.rmtree(root, ignore_errors=True)
    say("\n== sweep: fan-out, primary + "
        f"{args.targets} targets, {args.points}-point requests, {args.phase:g} s phases")
    head = "".join(f"{label:>15}" for _, _, label in SWEEP_ROWS)
    say("   CPU s per million points (/t: per target; target nodes net of the probes)")
    say(f"  {'req/s':>7} {'points/s':>9} {'goals':>7}{head}")
    for r in rows:
        cells = "".join(f"{r['cpu'][k]:>15.2f}" for k, _, _ in SWEEP_ROWS)
        missed = [g["goal"].split(" ")[0] for g in r["goals"] if not g["met"]]
        say(f"  {r['rate']:>7g} {r['points_per_s']:>9,.0f} {'all' if r['met'] else 'NOT':>7}"
            f"{cells}   {'' if r['met'] else 'missed: ' + '; '.join(missed)}")
    held = [r for r in rows if r["met"]]
    best = max((r["points_per_s"] for r in held), default=None)
    say(f"   highest rate meeting every goal: {best:,.0f} points/s" if best is not None
        else "   no rate met every goal")
    res["sweep"] = rows
    res["highest_rate_meeting_goals"] = best
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps(res, indent=1) + "\n")
    say(f"wrote {json_path}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="15 s phases (a smoke run)")
    ap.add_argument("--phase", type=float, default=None, help="seconds per phase (60)")
    ap.add_argument("--targets", type=int, default=4)
    ap.add_argument("--rate", default="100",
                    help="requests/s; several, comma-separated (100,250,400): a sweep of the "
                         "fan-out topology that prints the highest rate meeting every goal")
    ap.add_argument("--points", type=int, default=100, help="points per request")
    ap.add_argument("--poll", type=float, default=0.005, help="marks poll interval, s")
    ap.add_argument("--no-chain", action="store_true", help="skip the chain topology")
    ap.add_argument("--tls", action="store_true",
                    help="every link over mutual TLS (compare with a run without)")
    ap.add_argument("--profile", action="store_true",
                    help="py-spy the primary's processes and t1 during steady")
    args = ap.parse_args()
    rates = [float(r) for r in str(args.rate).split(",") if r.strip()]
    args.rate = rates[0]
    args.phase = args.phase or (15.0 if args.quick else 60.0)
    args.warmup = 3.0 if args.quick else 5.0
    args.calibrate = 3.0 if args.quick else 5.0
    args.tail = min(10.0, args.phase / 3)
    args.gap = 2.0

    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"e2e-{stamp}"
    # short: supervisord's unix socket path must fit in 107 bytes
    root = Path(tempfile.mkdtemp(prefix="fo-", dir="/tmp"))

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C also when started with SIGINT ignored (a background job): nodes must not
    # outlive the run
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    res: dict[str, Any] = {"time": stamp, "args": vars(args), "cpus": os.cpu_count(),
                           "load_average_at_start": load_avg()}
    say(f"e2e benchmark, load average at start {res['load_average_at_start']}, "
        f"{os.cpu_count()} CPUs")
    if len(rates) > 1:
        return sweep(args, rates, root, out, res)
    try:
        res["fanout"] = run_fanout(args, root, out)
        if not args.no_chain:
            res["chain"] = run_chain(args, root)
    except KeyboardInterrupt:
        say("interrupted: every node was stopped")
        return 130
    finally:
        shutil.rmtree(root, ignore_errors=True)
    res["load_average_at_end"] = load_avg()
    goals = report(res, args)
    res["goals"] = [{"goal": g, "met": ok, "figure": f} for g, ok, f in goals]
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps(res, indent=1) + "\n")
    why = plot(out.with_suffix(".png"), res["fanout"], res.get("chain"))
    say(f"\nload average at end {res['load_average_at_end']}")
    say(f"wrote {json_path}")
    say(f"wrote {out.with_suffix('.png')}" if why is None else f"no PNG: {why}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
