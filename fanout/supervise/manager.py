"""One small interface over the two process managers: ``manager:`` in ``fanout.yaml``.

``fanout up|down|reload|status`` call a ``Manager``; ``supervisord`` (the default,
``fanout.supervise.supervisord``) and ``systemd`` (``fanout.supervise.systemd``) implement
it. ``observe`` returns the manager's view in supervisord's vocabulary (process names
``node``, ``distributor``, ``forwarder-T``; states RUNNING, STARTING, BACKOFF, FATAL, EXITED,
STOPPED...), so ``fanout status`` judges both with one set of rules and prints one table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from fanout.config import NodeConfig
from fanout.supervise.rpc import ProcessInfo


@dataclass
class Observation:
    """What the manager says about the node's processes at one moment."""

    manager: str  # supervisord | systemd
    address: str  # supervisord's socket, or "systemd"
    reachable: bool
    pid: int | None = None
    state: str | None = None
    error: str | None = None
    processes: list[ProcessInfo] = field(default_factory=list)
    restarts_5m: dict[str, int] = field(default_factory=dict)
    # the last exit status where ProcessInfo.exitstatus cannot be trusted (FATAL, BACKOFF)
    exit_status: dict[str, int | None] = field(default_factory=dict)
    # why a process is down, from the manager's logs (its last "Error:" line)
    details: dict[str, str] = field(default_factory=dict)


class Manager(Protocol):
    name: str

    def up(self, config: Path, foreground: bool = False) -> object: ...

    def down(self, config: Path) -> object: ...

    def reload(self, config: Path) -> object: ...

    def observe(self, cfg: NodeConfig, now: float) -> Observation: ...

