"""``fanout status`` tells the truth when every write fails (a read-only datalog)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from fanout.testing import HTTPError, NodeProc, eventually, fanout_cmd
from tests.node.test_readonly_datalog import _eq, read_only
from tests.supervise.conftest import Supervised

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")


def _status(node: NodeProc) -> tuple[int, dict]:
    res = subprocess.run(fanout_cmd("status", "--json", "--config", str(node.config)),
                         text=True, capture_output=True, timeout=120, check=False)
    assert res.returncode in (0, 1, 2), res.stderr
    return res.returncode, json.loads(res.stdout)


@pytest.mark.slow
def test_status_is_down_while_every_write_fails(supervised: Supervised) -> None:
    s = supervised
    s.up()
    node = s.node
    eventually(lambda: _eq(_status(node)[0], 0), "healthy after up", timeout=60)
    node.client("ingest").update("1// a{} 1\n")
    with read_only(node.datalog_dir):
        def down() -> None:
            code, st = _status(node)
            assert code == 2, st["reasons"]
            assert any(r.startswith("node: every write fails: ") and "not writable" in r
                       for r in st["reasons"]), st["reasons"]

        eventually(down, "status down with the reason", timeout=60)
        with pytest.raises(HTTPError) as err:
            node.client("ingest").update("2// a{} 2\n")
        assert err.value.status == 503
        eventually(lambda: _eq(any("the last 1 write(s) failed" in r and
                                   "Read-only file system" in r
                                   for r in _status(node)[1]["reasons"]), True),
                   "status to show the write's error", timeout=60)
    node.client("ingest").update("3// a{} 3\n")

    def healthy() -> None:
        code, st = _status(node)
        assert code == 0, st["reasons"]

    eventually(healthy, "healthy once writes commit again", timeout=60)
