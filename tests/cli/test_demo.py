"""The README's main job: ``fanout demo`` builds a replicated topology that converges."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psutil
import pytest

from fanout.testing import fanout_cmd


def supervisords_under(root: Path) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "supervisord" in cmd and str(root) in cmd:
            out.append(p)
    return out


@pytest.mark.slow
def test_demo_converges_and_stops_cleanly(short_tmp: Path) -> None:
    root = short_tmp / "demo"
    try:
        res = subprocess.run(fanout_cmd("demo", "--dir", str(root), "--seconds", "2"),
                             text=True, capture_output=True, timeout=240)
        assert res.returncode == 0, res.stdout + res.stderr
        out = res.stdout
        assert "byte-identical to the primary's" in out
        assert "HEALTHY (exit 0)" in out
        for name in ("forwarder-replica-1", "forwarder-replica-2", "forwarder-replica-3"):
            assert name in out
        assert len(supervisords_under(root)) == 4  # left running to look around
        assert f"fanout demo --stop --dir {root}" in out
    finally:
        stop = subprocess.run(fanout_cmd("demo", "--stop", "--dir", str(root)), text=True,
                              capture_output=True, timeout=120)
    assert stop.returncode == 0, stop.stderr
    assert supervisords_under(root) == []
    # a second run in the same directory replaces the previous demo
    again = subprocess.run(fanout_cmd("demo", "--dir", str(root), "--seconds", "1"),
                           text=True, capture_output=True, timeout=240)
    subprocess.run(fanout_cmd("demo", "--stop", "--dir", str(root)), timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
