"""A full disk: 507, nothing acknowledged or half-written, and service resumes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fanout.testing import HTTPError, NodeProc

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


def test_full_disk_gives_507_and_recovers(make_node, small_fs: Path) -> None:
    node: NodeProc = make_node(
        "n1",
        datalog_dir=str(small_fs / "datalog"),
        store={"type": "sqlite", "path": str(small_fs / "store.sqlite")},
    ).start_and_wait()
    c, r = node.client("ingest"), node.client("reader")
    c.update("1// before{} 1\n")
    filler = small_fs / "filler"
    with open(filler, "wb", buffering=0) as f:  # take every free byte
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    try:
        body = "".join(f"{t}// during{{}} {t}\n" for t in range(2000))
        for _ in range(5):
            with pytest.raises(HTTPError) as err:
                c.update(body)
            assert err.value.status == 507 and "space" in err.value.body
        assert list((small_fs / "datalog" / ".tmp").iterdir()) == []  # nothing half-written
        assert r.fetch("during{}") == ""
    finally:
        filler.unlink()
    c.update(body)
    assert r.fetch("during{}").count("\n") == 2000
    assert r.fetch("before{}") == "1// before{} 1\n"
    assert r.logger_state()["state"]["lastLogTick"] == "2"  # the failed ones took no seq
    node.stop()
    assert node.popen is not None and node.popen.returncode == 0
