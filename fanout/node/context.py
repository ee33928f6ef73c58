"""What the node's HTTP handlers share: the ``Node`` (config, tokens, store, committer and
its counters), the app key it is stored under, and ``commit`` (every write path - update,
meta, delete, replicate - acknowledges through it). Handler modules (``app``,
``replication``, ``snapshot``, ``metrics``) import this module and never each other.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from aiohttp import web

from fanout.config import NodeConfig
from fanout.errors import DiskFullError, FanoutError
from fanout.node.changes import Pending
from fanout.node.committer import CommitFatal, Committer
from fanout.node.health import WriteHealth
from fanout.node.http import fail
from fanout.node.tokens import TokenTable
from fanout.statefile import iso_now
from fanout.store.base import Outcome, Store


@dataclass
class ReplicationStats:
    batches: int = 0
    records: int = 0
    loops: int = 0
    collisions: int = 0  # batches refused with 1420 (a record of our id, foreign history)
    last_collision: dict[str, object] | None = None


@dataclass
class Node:
    config: NodeConfig
    tokens: TokenTable
    store: Store
    committer: Committer
    requests: int = 0
    rejected: int = 0
    started: float = 0.0
    replication: ReplicationStats = field(default_factory=ReplicationStats)
    writes: WriteHealth = field(default_factory=WriteHealth)

    def logger_state(self) -> dict[str, object]:
        """ArangoDB's logger-state reply shape; ticks leave the process as strings."""
        c = self.committer
        return {
            "state": {
                "running": True,
                "lastLogTick": str(c.last_seq),
                "totalEvents": c.stats.records_logged,
                "time": iso_now(),
            },
            "server": {"serverId": self.config.id, "version": "fanout"},
        }


NODE = web.AppKey("node", Node)


async def commit(node: Node, pending: list[Pending]) -> list[Outcome]:
    """Commit parsed changes through the group committer; a failure becomes the HTTP error
    that says what was (not) acknowledged, and the node's write health records it."""
    try:
        outcomes = await node.committer.submit(pending)
    except DiskFullError as exc:
        node.writes.failed(f"disk full: {exc}")
        fail(507, f"not written: {exc}")
    except CommitFatal as exc:
        node.writes.failed(str(exc))
        fail(503, f"not acknowledged, the node is stopping: {exc}")
    except (OSError, sqlite3.Error) as exc:  # read-only datalog or store, I/O error, ...
        node.writes.failed(str(exc))
        fail(503, f"not written, nothing acknowledged: the node cannot commit: {exc}; "
                  "see the node's log and fanout status")
    except Exception as exc:
        if not isinstance(exc, FanoutError | web.HTTPException):
            node.writes.failed(f"{type(exc).__name__}: {exc}")
        raise
    node.writes.committed()
    return outcomes
