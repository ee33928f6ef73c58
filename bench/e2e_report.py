"""bench/e2e.py's figures: lag statistics, the printed tables, the PNG, py-spy summaries.

matplotlib (the ``bench`` extra) is imported only to draw the PNG; without it the run
still prints its tables and writes its JSON, and says how to get the plot.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any


def pct(sorted_xs: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_xs:
        return float("nan")
    k = max(0, min(len(sorted_xs) - 1, round(q / 100 * len(sorted_xs) + 0.5) - 1))
    return sorted_xs[k]


def lag_stats(series: list[tuple[float, float]], start: float, end: float,
              acked: int) -> dict[str, Any]:
    """p50/p99/max in ms of the writes acknowledged in [start, end); ``acked`` is how many
    were, so writes never seen applied show as ``unseen``."""
    xs = sorted(lag for t, lag in series if start <= t < end)
    return {"writes": len(xs), "unseen": max(0, acked - len(xs)),
            "p50_ms": round(pct(xs, 50) * 1e3, 2), "p99_ms": round(pct(xs, 99) * 1e3, 2),
            "max_ms": round(xs[-1] * 1e3, 2) if xs else None}


def ms(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:,.1f}"


def lag_table(rows: list[tuple[str, str, dict[str, Any]]]) -> str:
    out = [f"  {'phase':<22} {'target':<7} {'writes':>7} {'p50 ms':>8} {'p99 ms':>8} "
           f"{'max ms':>10} {'unseen':>6}"]
    for phase, name, s in rows:
        out.append(f"  {phase:<22} {name:<7} {s['writes']:>7,} {ms(s['p50_ms']):>8} "
                   f"{ms(s['p99_ms']):>8} {ms(s['max_ms']):>10} {s['unseen']:>6}")
    return "\n".join(out)


def cpu_table(cpu: dict[str, Any]) -> str:
    out = [f"  {'process kind':<26} {'CPU s':>7} {'% of a core':>11} {'CPU s / M points':>16} "
           f"{'per target':>10}"]
    for kind, r in cpu["kinds"].items():
        per_t = "" if r["per_target_s_per_mpoints"] is None else \
            f"{r['per_target_s_per_mpoints']:.2f}"
        out.append(f"  {kind:<26} {r['cpu_s']:>7.2f} {r['core_pct']:>10.1f}% "
                   f"{r['s_per_mpoints']:>16.2f} {per_t:>10}")
    return "\n".join(out)


# -- py-spy ---------------------------------------------------------------------------------

def pyspy_summary(raw: Path, top: int = 8) -> dict[str, Any]:
    """From py-spy's ``--format raw`` (collapsed stacks, ``frame;frame count``): the
    functions with the most samples on top of the stack (self) and anywhere in it."""
    self_n: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    try:
        lines = raw.read_text().splitlines()
    except OSError:
        return {"samples": 0, "self": [], "inclusive": []}
    for line in lines:
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = [_short(f) for f in stack.split(";")]
        total += count
        self_n[frames[-1]] += count
        for f in set(frames):
            if f.split(" (", 1)[0] not in _PLUMBING:
                incl[f] += count

    def share(c: collections.Counter[str]) -> list[list[Any]]:
        return [[f, round(100 * k / total, 1)] for f, k in c.most_common(top)] if total else []

    return {"samples": total, "self": share(self_n), "inclusive": share(incl)}


# Frames on nearly every stack (interpreter start, event loop, thread pools): left out of
# the inclusive list so that it names the work.
_PLUMBING = frozenset({
    "<module>", "_run_code", "_run_module_as_main", "main", "run", "Runner.run",
    "BaseEventLoop.run_until_complete", "BaseEventLoop.run_forever", "BaseEventLoop._run_once",
    "Handle._run", "Thread._bootstrap", "Thread._bootstrap_inner", "Thread.run", "_worker",
    "_WorkItem.run", "run_node", "cmd_node", "cmd_distribute", "run_distributor", "_run",
})


def _short(frame: str) -> str:
    """``func (path/to/module.py:12)`` -> ``func (module.py:12)``."""
    head, sep, where = frame.partition(" (")
    if not sep:
        return frame
    return f"{head} ({where.rsplit('/', 1)[-1]}"


# -- the plot -------------------------------------------------------------------------------

def plot(path: Path, fan: dict[str, Any], chain: dict[str, Any] | None) -> str | None:
    """Lag over time per target: the fan-out run (all targets, log scale), its live
    targets alone (linear), and the chain. Returns why it could not, or None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: pip install -e '.[bench]' (or make bench)"
    panels = 4 if chain else 2
    fig, axes = plt.subplots(panels, 1, figsize=(12, 4.2 * panels), constrained_layout=True)
    frozen = fan["freeze"]["target"]
    _panel(axes[0], fan, None, log=True,
           title=f"fan-out: primary + {len(fan['targets'])} targets, {frozen} frozen "
                 "(SIGSTOP) then resumed")
    _panel(axes[1], fan, [t for t in fan["targets"] if t != frozen], log=False,
           title=f"fan-out: the other targets' lag, before and while {frozen} is frozen")
    if chain:
        _panel(axes[2], chain, None, log=True,
               title="chain primary->A->B->C->D (log_remote_changes), B frozen then resumed")
        _staleness(axes[3], chain)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return None


def _panel(ax: Any, run: dict[str, Any], names: list[str] | None, log: bool,
           title: str) -> None:
    for name, pts in run["series"].items():
        if names is not None and name not in names:
            continue
        if pts:
            xs, ys = zip(*pts, strict=True)
            if log:  # a lag under the probe's resolution is drawn at 1 ms, not off the axis
                ys = tuple(max(1.0, y) for y in ys)
            ax.plot(xs, ys, lw=0.6, marker=".", ms=1.5, label=name)
    f = run["freeze"]
    ax.axvspan(f["start_s"], f["end_s"], color="tab:blue", alpha=0.08,
               label=f"{f['target']} frozen")
    for i, (name, (s, _e)) in enumerate(run["phases_s"].items()):
        ax.axvline(s, color="grey", lw=0.6, ls=":")
        ax.text(s, 1.0 - 0.06 * (i % 2), f" {name}", transform=ax.get_xaxis_transform(),
                va="top", fontsize=8, color="grey")
    if log:
        ax.set_yscale("log")
    elif names is not None:
        ax.set_ylim(bottom=0)
    ax.set_xlabel("acknowledgement time at the primary (s since the load started)")
    ax.set_ylabel("replication lag (ms)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8, markerscale=4)


def _staleness(ax: Any, run: dict[str, Any]) -> None:
    """Age of the oldest acknowledged write each hop has not applied, over time: it grows
    at 1 s/s on every hop at or behind the frozen one."""
    for name, pts in run["staleness"].items():
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, lw=1.0, label=name)
    f = run["freeze"]
    ax.axvspan(f["start_s"], f["end_s"], color="tab:blue", alpha=0.08,
               label=f"{f['target']} frozen")
    ax.set_xlabel("time (s since the load started)")
    ax.set_ylabel("oldest unapplied write (s)")
    ax.set_title("chain: how far behind each hop is (age of its oldest acknowledged write "
                 "not yet applied)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
