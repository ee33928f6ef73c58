"""Shared fixtures: real node processes in temporary directories, always cleaned up."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fanout.testing import NodeProc


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory: supervisord's unix socket path must fit in 107 bytes, and pytest's
    tmp_path can be long."""
    d = Path(tempfile.mkdtemp(prefix="fo-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator:
    """Factory for initialised (not started) node processes; every one is killed at the end."""
    made: list[NodeProc] = []

    def make(node_id: str = "n1", store: str = "sqlite", **overrides: object) -> NodeProc:
        node = NodeProc.init(tmp_path / node_id, node_id, store, **overrides)
        made.append(node)
        return node

    yield make
    for node in made:
        node.kill()
