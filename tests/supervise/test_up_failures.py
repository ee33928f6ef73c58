"""``fanout up`` says why a program cannot start, and ``status --watch`` stops on SIGINT
whoever started it (issue 11, "Smaller ones")."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fanout.testing import Topology, fanout_cmd

from .conftest import Supervised

pytestmark = pytest.mark.slow


def test_up_with_port_in_use_prints_the_cause(supervised: Supervised) -> None:
    s = supervised
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", s.node.port))
        busy.listen()
        res = s.cli("up")
        s.supervisord_pids.add(s.supervisord_pid())
        assert res.returncode == 1, res.stdout + res.stderr
        assert f"cannot listen on 127.0.0.1:{s.node.port}" in res.stderr, res.stderr
        assert "address already in use" in res.stderr.lower()
        assert "node FATAL, exit 1" in res.stderr and "node.log" in res.stderr

        code, st = s.status()
        assert code == 2
        node = next(p for p in st["processes"] if p["name"] == "node")
        assert node["state"] == "FATAL"
        assert node["exitStatus"] == 1
        assert f"cannot listen on 127.0.0.1:{s.node.port}" in node["detail"]
        assert any("cannot listen" in r for r in st["reasons"])


def test_watch_stops_on_sigint_even_if_started_with_sigint_ignored(short_tmp: Path) -> None:
    """A shell without job control starts `cmd &` with SIGINT ignored, and Python keeps an
    inherited SIG_IGN: the cause of the 10 s wait in test_watch_redraws_until_interrupted."""
    n1 = Topology(short_tmp).node("n1")
    argv = fanout_cmd("status", "--watch", "--json", "--interval", "0.2",
                      "--config", str(n1.config))
    proc = subprocess.Popen(
        [sys.executable, "-c", "import os, signal, sys; "
         "signal.signal(signal.SIGINT, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])",
         *argv], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["health"] == "down"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
