"""A read-only datalog: every write a clear 503, and the node's state says so.

The datalog directory is bind-mounted over itself read-only (what a filesystem remounted
read-only after I/O errors looks like; a mode of 0555 would not stop root). Before, every
write was a bare 500 with a traceback in the log while ``fanout status`` said healthy.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fanout.statefile import read_json
from fanout.testing import HTTPError, NodeProc, eventually

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` read-only for everyone, root included, until the block ends."""
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _writes(node: NodeProc) -> dict:
    st = read_json(node.state_dir / "node.json") or {}
    return st.get("writes") or {}


def test_read_only_datalog_gives_503_and_unhealthy_state(make_node) -> None:
    node: NodeProc = make_node("n1").start_and_wait()
    c, r = node.client("ingest"), node.client("reader")
    c.update("1// before{} 1\n")
    eventually(lambda: _eq(_writes(node).get("datalogWritable"), True), "first probe")
    with read_only(node.datalog_dir):
        # the probe notices before any write fails
        eventually(lambda: _eq(_writes(node).get("datalogWritable"), False), "probe",
                   timeout=20)
        for i in range(6):
            with pytest.raises(HTTPError) as err:
                c.update(f"{i + 10}// during{{}} {i}\n")
            assert err.value.status == 503, err.value.body
            assert "not written, nothing acknowledged" in err.value.body
            assert "Read-only file system" in err.value.body
        with pytest.raises(HTTPError) as err:  # a delete is told the same
            c.request("GET", "/api/v0/delete?selector=before%7B%7D&deleteall=true")
        assert err.value.status == 503
        assert r.fetch("~.*{}") == "1// before{} 1\n"  # nothing half-applied

        def failing() -> None:
            w = _writes(node)
            assert w["failingInRow"] == 7 and w["totalFailed"] == 7, w
            assert "Read-only file system" in w["lastError"]["errorMessage"], w
            assert w["datalogWritable"] is False and "not writable" in w["datalogError"]

        eventually(failing, "the state file to count the failures", timeout=20)
        with node.client("reader") as m:
            _, body = m.request("GET", "/metrics")
        text = body.decode()
        assert "fanout_node_failing_writes_in_row 7.0" in text
        assert "fanout_node_datalog_writable 0.0" in text
    # writable again: the next write commits and the state heals
    c.update("2// after{} 2\n")
    assert r.fetch("~.*{}") == "2// after{} 2\n1// before{} 1\n"  # class order
    assert r.logger_state()["state"]["lastLogTick"] == "2"  # the failed ones took no seq

    def healed() -> None:
        w = _writes(node)
        assert w["failingInRow"] == 0 and w["totalFailed"] == 7 and w["datalogWritable"], w

    eventually(healed, "state to heal", timeout=20)
    log = node.log_text()
    assert "Traceback" not in log, log[-3000:]
    assert log.count("a write failed, nothing acknowledged") == 1  # then rate-limited
    assert "writes commit again after 7 failed in a row" in log
    node.stop()
    assert node.popen is not None and node.popen.returncode == 0


def _eq(x: object, y: object) -> None:
    assert x == y, (x, y)
