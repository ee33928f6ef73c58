"""Orphans: a node's processes still running without the supervisord that started them.

Found through their instance locks (``fanout.fileio``), not through supervisord: an
orphan is a live process holding a role lock in ``state_dir`` whose pid supervisord does not
know (supervisord killed with -9 leaves its children running, re-parented to init, and a
second ``fanout up`` would start a second set beside them). ``fanout status`` reports them
(down, exit 2), ``fanout down`` stops them, ``fanout up`` refuses to start beside them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from fanout.errors import FanoutError
from fanout.fileio import held_locks

STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Orphan:
    role: str  # node | distributor | forwarder-<target>
    pid: int
    cmdline: str

    def __str__(self) -> str:
        return f"{self.role} pid {self.pid} ({self.cmdline or '?'})"


class OrphansRunning(FanoutError):
    """``fanout up`` found processes of this node running without supervisord."""

    def __init__(self, orphans: list[Orphan], config: Path):
        self.orphans = orphans
        super().__init__("processes of this node are running without supervisord "
                         "(orphans; was supervisord killed?): "
                         + "; ".join(map(str, orphans)) + ". Starting a second set beside "
                         "them would run two instances on one store")
        self.hint = f"fanout down --config {config}   (stops them), then fanout up again"


def find(state_dir: Path, known_pids: Iterable[int] = ()) -> list[Orphan]:
    """Live holders of a role lock in ``state_dir`` whose pid is not in ``known_pids``."""
    known = set(known_pids)
    return [Orphan(role, h.pid, h.cmdline) for role, h in sorted(held_locks(state_dir).items())
            if h.pid not in known and h.pid != os.getpid()]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _signal(pid: int, sig: int) -> None:
    """To the whole process group when ``pid`` leads one (supervisord's programs and the
    test fixtures' processes do), else to the process alone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def stop(pids: Iterable[int], timeout: float = STOP_TIMEOUT) -> list[int]:
    """SIGTERM each, wait up to ``timeout`` for all to exit, SIGKILL what is left.
    Returns the pids that had to be killed."""
    pids = [p for p in pids if _alive(p)]
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(map(_alive, pids)):
        time.sleep(0.1)
    killed = [p for p in pids if _alive(p)]
    for pid in killed:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and any(map(_alive, killed)):
        time.sleep(0.05)
    return killed
