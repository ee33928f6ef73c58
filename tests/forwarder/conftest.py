from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fanout.testing import Topology


@pytest.fixture
def topo(tmp_path: Path) -> Iterator[Topology]:
    t = Topology(tmp_path)
    try:
        yield t
    finally:
        t.close()
