"""Helpers for distributor tests: a node directory, target files, a fast publisher, checks.

Files are published the way a node publishes them (written under ``.tmp/``, renamed into
the datalog directory) but without the node's fsyncs: the distributor's behaviour does not
depend on them, and tests publish thousands of files.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from fanout.datalog.format import Record, encode_record, file_header, file_name
from fanout.datalog.reader import is_datalog_name
from fanout.ops.init import init_node, write_private
from fanout.statefile import read_json
from fanout.testing import Proc, fanout_cmd, free_port, wait_until


def write_target(node_root: Path, name: str, source_dir: Path | str, max_files: int = 0,
                 max_bytes: int = 0) -> Path:
    """Write ``forwarders.d/<name>.yaml`` of the node in ``node_root``, as ``fanout target
    add`` would (atomically: the distributor may be re-reading the directory)."""
    token = node_root / "secrets" / f"{name}.token"
    write_private(token, "secret\n")
    data: dict[str, Any] = {
        "target": name,
        "source_dir": str(source_dir),
        "sink": {"type": "fanout", "endpoint": "http://127.0.0.1:9", "token_file": str(token)},
    }
    if max_files or max_bytes:
        data["retention"] = {"max_files": max_files, "max_bytes": max_bytes}
    path = node_root / "forwarders.d" / f"{name}.yaml"
    tmp = path.with_name(f".{name}.yaml.tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)
    return path


class NodeDir:
    """A node directory made by ``fanout init``; the distributor only needs its config."""

    def __init__(self, root: Path, node_id: str = "n1"):
        self.root = root
        self.id = node_id
        self.config = init_node(root, node_id, f"127.0.0.1:{free_port()}", "memory")
        self.datalog = root / "data" / "datalog"
        self.state_dir = root / "data" / "state"
        self.targets_dir = root / "forwarders.d"
        self.datalog.mkdir(parents=True, exist_ok=True)
        (self.datalog / ".tmp").mkdir(exist_ok=True)
        self.seq = 0
        self.published: list[str] = []
        self._lock = threading.Lock()

    def target_dir(self, name: str) -> Path:
        return self.root / "data" / "targets" / name

    def add_target(self, name: str, source_dir: Path | str | None = None, max_files: int = 0,
                   max_bytes: int = 0) -> Path:
        return write_target(self.root, name, source_dir or self.target_dir(name),
                            max_files, max_bytes)

    def publish(self, n: int = 1, size: int = 100) -> list[str]:
        """Publish ``n`` datalog files of about ``size`` bytes each; returns their names."""
        names = []
        body = b"x" * max(size - 120, 1)
        for _ in range(n):
            with self._lock:
                self.seq += 1
                seq = self.seq
            name = file_name(seq, self.id)
            rec = Record(seq, self.id, seq, 0, "update", "ingest", {}, (), body)
            tmp = self.datalog / ".tmp" / name
            with open(tmp, "wb") as f:
                f.write(file_header(1) + encode_record(rec))
            os.rename(tmp, self.datalog / name)
            names.append(name)
        with self._lock:
            self.published.extend(names)
        return names

    def distributor(self, env: dict[str, str] | None = None, log: str = "distributor.log"
                    ) -> Proc:
        return Proc(fanout_cmd("distribute", "--config", str(self.config)), self.root / log,
                    env=env)

    def state(self) -> dict[str, Any]:
        return read_json(self.state_dir / "distributor.json") or {}


def datalog_names(directory: Path) -> set[str]:
    try:
        return {n for n in os.listdir(directory) if is_datalog_name(n)}
    except FileNotFoundError:
        return set()


def datalog_empty(directory: Path) -> bool:
    """No datalog file left; stops at the first one (cheap on a large directory)."""
    with os.scandir(directory) as it:
        return not any(is_datalog_name(e.name) for e in it)


def wait_running(node: NodeDir, proc: Proc, timeout: float = 20.0) -> dict[str, Any]:
    def running() -> dict[str, Any] | None:
        if not proc.alive():
            raise AssertionError(f"distributor exited with {proc.popen and proc.popen.returncode}"
                                 f":\n{proc.log_text()[-3000:]}")
        st = node.state()
        return st if st.get("running") and st.get("pid") == proc.pid else None

    return wait_until(running, timeout, what="distributor running")


def wait_distributed(node: NodeDir, names: list[str] | set[str], targets: list[Path],
                     timeout: float = 60.0) -> None:
    """Until no published name is left in the datalog and every target holds them all."""
    want = set(names)

    def done() -> bool:
        if datalog_names(node.datalog) & want:
            return False
        return all(want <= datalog_names(t) for t in targets)

    wait_until(done, timeout, interval=0.1, what=f"{len(want)} files distributed")


def assert_exactly_once(node: NodeDir, names: list[str] | set[str], targets: list[Path]) -> None:
    """Every name in every target, nothing else there, one inode per name shared by all
    targets, and nothing left in the datalog directory but ``.tmp/``."""
    want = set(names)
    assert not datalog_names(node.datalog) & want
    for t in targets:
        entries = set(os.listdir(t))
        assert entries == want, (t, sorted(entries ^ want)[:10])
    for name in want:
        stats = [os.stat(t / name) for t in targets]
        assert len({(s.st_dev, s.st_ino) for s in stats}) == 1, name
        assert stats[0].st_nlink == len(targets), (name, stats[0].st_nlink)


def restart_completes(node: NodeDir, dirs: list[Path], procs: list[Proc], log: str,
                      env: dict[str, str] | None = None, timeout: float = 60.0) -> None:
    """Start a distributor after one was killed: it distributes every file published so
    far exactly once, stops cleanly on SIGTERM and leaves no error in its state."""
    p = node.distributor(env=env, log=log)
    procs.append(p.start())
    wait_running(node, p)
    wait_distributed(node, node.published, dirs, timeout=timeout)
    assert_exactly_once(node, node.published, dirs)
    assert p.stop() == 0
    assert node.state()["lastError"] is None


def pace(rate: float, start: float, i: int) -> None:
    """Sleep until item ``i`` of a steady ``rate``/s stream that began at ``start``."""
    delay = start + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
