"""Fixtures for network fault tests: hosts in namespaces, always torn down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.netns import Hosts, NetTopology, available, sweep_leftovers


@pytest.fixture(scope="session")
def _netns_session() -> None:
    why = available()
    if why:
        pytest.skip(f"network namespaces: {why}")
    sweep_leftovers()


@pytest.fixture
def hosts(_netns_session: None) -> Iterator[Hosts]:
    h = Hosts()
    try:
        yield h
    finally:
        h.close()


@pytest.fixture
def net(tmp_path: Path, hosts: Hosts) -> Iterator[NetTopology]:
    t = NetTopology(tmp_path, hosts)
    try:
        yield t
    finally:
        t.close()
