"""Atomic JSON state files under ``state_dir``: write a temp file, rename over the old one.

Readers (``fanout status``, ``/metrics``) never see a half-written file. No fsync: state is
a view for operators, rebuilt on every start, and fsyncing it every second would compete
with the datalog's fsyncs for nothing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fanout.fileio import write_atomic


def write_json_atomic(path: Path, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True) + "\n", durable=False)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def iso_now() -> str:
    return iso_time(time.time())


def iso_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
