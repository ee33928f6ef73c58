"""Shared fixtures: real node processes in temporary directories, always cleaned up."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fanout.testing import NodeProc, Topology


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory: supervisord's unix socket path must fit in 107 bytes, and pytest's
    tmp_path can be long."""
    d = Path(tempfile.mkdtemp(prefix="fo-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def topo(short_tmp: Path) -> Iterator[Topology]:
    """A Topology whose every process is killed at the end (short path: supervisord)."""
    t = Topology(short_tmp)
    try:
        yield t
    finally:
        t.close()


@pytest.fixture
def small_fs(short_tmp: Path) -> Iterator[Path]:
    """A 4 MB tmpfs (root only), always unmounted: a disk that fills up for real."""
    mnt = short_tmp / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator:
    """Factory for initialised (not started) node processes; every one is killed at the end."""
    made: list[NodeProc] = []

    def make(node_id: str = "n1", store: str = "sqlite", **overrides: Any) -> NodeProc:
        node = NodeProc.init(tmp_path / node_id, node_id, store, **overrides)
        made.append(node)
        return node

    yield make
    for node in made:
        node.kill()
