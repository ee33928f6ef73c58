"""The node's once-a-second state file never takes the node down."""

from __future__ import annotations

import logging
import os
import resource
from pathlib import Path

import pytest

from fanout.node.server import StateWriter
from fanout.statefile import read_json


def test_state_write_survives_emfile(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Out of descriptors, the write fails (logged once), and succeeds at the next tick."""
    w = StateWriter(tmp_path / "node.json")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held: list[int] = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        try:
            while True:
                held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass  # EMFILE: the state of a node an attacker has exhausted
        with caplog.at_level(logging.ERROR, "fanout.node"):
            assert w.write({"tick": 1}) is False
            assert w.write({"tick": 2}) is False
        assert w.failures == 2
        assert sum("cannot write the state file" in r.message for r in caplog.records) == 1
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert w.write({"tick": 3}) is True
    assert read_json(tmp_path / "node.json") == {"tick": 3}
    assert w.failures == 0
