"""`fanout alert-listener`: supervisord's event listener protocol, fed by hand."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from fanout.config import load_node_config
from fanout.supervise import restarts
from fanout.supervise.alerts import AlertListener
from fanout.supervise.paths import SupervisePaths
from fanout.testing import NodeProc, fanout_cmd


@pytest.fixture
def node(short_tmp: Path) -> NodeProc:
    return NodeProc.init(short_tmp / "n1", "n1")


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/hook", received
    finally:
        srv.shutdown()
        srv.server_close()
        th.join()


def send(proc: subprocess.Popen[bytes], event: str, payload: str, serial: int) -> None:
    assert proc.stdin is not None
    body = payload.encode()
    header = (f"ver:3.0 server:supervisor serial:{serial} pool:alerts poolserial:{serial} "
              f"eventname:{event} len:{len(body)}\n")
    proc.stdin.write(header.encode() + body)
    proc.stdin.flush()


def expect(stream: IO[bytes], data: bytes) -> None:
    got = stream.read(len(data))
    assert got == data


def test_protocol_fatal_writes_alert_runs_command_and_posts(
        node: NodeProc, short_tmp: Path, webhook: tuple[str, list[dict]]) -> None:
    url, received = webhook
    cfg = load_node_config(node.config)
    paths = SupervisePaths.of(cfg)
    out_file = short_tmp / "command-ran.json"
    command = f"cat > {out_file}; echo \"$FANOUT_ALERT_EVENT $FANOUT_ALERT_PROCESS\" >> " \
              f"{out_file}.env"
    # what the forwarder left behind: its config error, in its log and its state file
    paths.logs_dir.mkdir(parents=True)
    (paths.logs_dir / "forwarder-london.log").write_text(
        "Error: /x/forwarders.d/london.yaml: retry_max: must be >= retry_min (got 0.1)\n")
    proc = subprocess.Popen(
        fanout_cmd("alert-listener", "--config", str(node.config), "--command", command,
                   "--webhook", url),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        expect(proc.stdout, b"READY\n")
        send(proc, "PROCESS_STATE_FATAL",
             "processname:forwarder-london groupname:forwarder-london from_state:BACKOFF", 1)
        expect(proc.stdout, b"RESULT 2\nOK")
        expect(proc.stdout, b"READY\n")

        (alert,) = [json.loads(ln) for ln in paths.alerts.read_text().splitlines()]
        assert alert["event"] == "FATAL" and alert["process"] == "forwarder-london"
        assert alert["node"] == "n1" and alert["target"] == "london"
        assert alert["fromState"] == "BACKOFF"
        assert "retry_max: must be >= retry_min" in alert["detail"]
        assert json.loads(out_file.read_text()) == alert  # the command got it on stdin
        assert Path(f"{out_file}.env").read_text() == "FATAL forwarder-london\n"
        assert received == [alert]

        # not alerts: STARTING, and events of other types
        send(proc, "PROCESS_STATE_STARTING",
             "processname:node groupname:node from_state:EXITED tries:0", 2)
        expect(proc.stdout, b"RESULT 2\nOK")
        expect(proc.stdout, b"READY\n")
        send(proc, "TICK_5", "when:1700000000", 3)
        expect(proc.stdout, b"RESULT 2\nOK")
        expect(proc.stdout, b"READY\n")
        # RUNNING is recorded for crash-loop detection
        send(proc, "PROCESS_STATE_RUNNING",
             "processname:node groupname:node from_state:STARTING pid:4242", 4)
        expect(proc.stdout, b"RESULT 2\nOK")
        expect(proc.stdout, b"READY\n")
        assert len(paths.alerts.read_text().splitlines()) == 1
        assert restarts.counts(paths.restarts) == {"node": 0}
        # an unexpected exit and a backoff are alerts too
        send(proc, "PROCESS_STATE_EXITED",
             "processname:node groupname:node from_state:RUNNING expected:0 pid:4242", 5)
        expect(proc.stdout, b"RESULT 2\nOK")
        expect(proc.stdout, b"READY\n")
        send(proc, "PROCESS_STATE_BACKOFF",
             "processname:node groupname:node from_state:STARTING tries:2", 6)
        expect(proc.stdout, b"RESULT 2\nOK")
        expect(proc.stdout, b"READY\n")
        alerts = [json.loads(ln) for ln in paths.alerts.read_text().splitlines()]
        assert [(a["event"], a.get("expected"), a.get("tries")) for a in alerts[1:]] == [
            ("EXITED", False, None), ("BACKOFF", None, 2)]
        assert alerts[1]["pid"] == 4242
        assert len(received) == 3
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0  # end of input: supervisord went away


def test_failing_command_and_webhook_do_not_stop_it(node: NodeProc) -> None:
    cfg = load_node_config(node.config)
    paths = SupervisePaths.of(cfg)
    listener = AlertListener(cfg.id, paths, command="exit 3",
                             webhook="http://127.0.0.1:9/unreachable")
    alert = listener.handle({"eventname": "PROCESS_STATE_EXITED"},
                            "processname:forwarder-x groupname:forwarder-x "
                            "from_state:RUNNING expected:1 pid:7")
    assert alert is not None and alert["expected"] is True
    assert "not restarted" in alert["message"]
    assert paths.alerts.read_text().count("\n") == 1


def test_restart_history(short_tmp: Path) -> None:
    path = short_tmp / "restarts.json"
    t0 = 1_000_000.0
    restarts.record(path, [("f", 10, t0)], now=t0)
    restarts.record(path, [("f", 10, t0 + 5)], now=t0 + 5)  # same pid: same start
    assert restarts.counts(path, now=t0 + 6) == {"f": 0}  # the first start is no restart
    for i in range(1, 5):
        restarts.record(path, [("f", 10 + i, t0 + 10 * i)], now=t0 + 10 * i)
    assert restarts.counts(path, now=t0 + 60) == {"f": 4}
    # five minutes later the old ones no longer count, and are pruned
    assert restarts.counts(path, now=t0 + 10 + restarts.WINDOW + 1) == {"f": 3}
    restarts.record(path, [("g", 99, t0 + 400)], now=t0 + 400)
    data = json.loads(path.read_text())["processes"]
    assert set(data["f"]["starts"]) == {"10"}  # the first pid is kept to exclude it
    restarts.forget(path, ["f"])
    assert restarts.counts(path, now=t0 + 400) == {"g": 0}
    restarts.reset(path)
    assert restarts.counts(path) == {}
