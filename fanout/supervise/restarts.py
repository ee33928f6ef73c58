"""Recent starts of each supervised process, so crash loops show in ``fanout status``.

supervisord restarts a process that passed ``startsecs`` forever and shows it RUNNING in
between (a crash loop it does not show). Two writers keep ``restarts.json``: the alert
listener records every RUNNING transition as it happens, and ``fanout status`` records the
pid and start time it sees (a fallback when the listener was down). Entries are keyed by
pid, so the two never count the same start twice, and pruned after ``WINDOW`` seconds.
The first pid seen since ``fanout up`` is a start, not a restart.

Format: ``{"processes": {NAME: {"first": PID, "starts": {PID: EPOCH}}}}`` (pids as
strings: JSON keys).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from fanout.fileio import exclusive, write_atomic

WINDOW = 300.0  # seconds: "more than 3 restarts in 5 minutes"
LOOP_THRESHOLD = 3


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[dict[str, Any]]:
    """Read-modify-write under an exclusive lock on a sibling lock file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(path.with_suffix(".lock")):
        try:
            data = json.loads(path.read_text())
            if not isinstance(data.get("processes"), dict):
                raise ValueError
        except (FileNotFoundError, ValueError, AttributeError):
            data = {"processes": {}}
        yield data
        # a view for operators, like every state file: atomic, not fsynced
        write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n", durable=False)


def _prune(entry: dict[str, Any], now: float) -> None:
    starts = entry.get("starts", {})
    entry["starts"] = {pid: t for pid, t in starts.items()
                       if now - float(t) <= WINDOW or pid == entry.get("first")}


def record(path: Path, starts: Iterable[tuple[str, int, float]],
           now: float | None = None) -> None:
    """Record ``(process name, pid, start time)`` triples; known pids are kept as they are."""
    now = time.time() if now is None else now
    with _locked(path) as data:
        procs = data["processes"]
        for name, pid, when in starts:
            if pid <= 0:
                continue
            entry = procs.setdefault(name, {"first": str(pid), "starts": {}})
            entry["starts"].setdefault(str(pid), float(when))
        for entry in procs.values():
            _prune(entry, now)


def forget(path: Path, names: Iterable[str]) -> None:
    with _locked(path) as data:
        for name in names:
            data["processes"].pop(name, None)


def reset(path: Path) -> None:
    """A new supervisord: no history (called by ``fanout up``)."""
    with _locked(path) as data:
        data["processes"] = {}


def counts(path: Path, now: float | None = None) -> dict[str, int]:
    """Restarts per process within the last ``WINDOW`` seconds."""
    now = time.time() if now is None else now
    try:
        data = json.loads(path.read_text())
        procs = data["processes"]
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return {}
    out: dict[str, int] = {}
    for name, entry in procs.items():
        first = entry.get("first")
        out[name] = sum(1 for pid, t in entry.get("starts", {}).items()
                        if pid != first and now - float(t) <= WINDOW)
    return out
