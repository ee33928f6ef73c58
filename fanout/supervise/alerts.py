"""``fanout alert-listener``: a supervisord event listener for one node.

Protocol (supervisor's "event listener" docs): write ``READY\\n`` on stdout; read one
header line of ``key:value`` tokens from stdin, then ``len`` bytes of payload; handle it;
write ``RESULT 2\\nOK``; repeat. stdout belongs to the protocol: everything else goes to
stderr.

Subscribed to PROCESS_STATE. On FATAL, BACKOFF and EXITED it appends one JSON line to
``state_dir/alerts.jsonl`` and, when configured, runs a command (``sh -c``, the alert as
JSON on stdin and in ``$FANOUT_ALERT_JSON``) and POSTs the JSON to a webhook. Both get a
timeout; a failing command or webhook is logged and never stops the listener. EXITED
alerts whether ``expected`` or not: an expected exit is not restarted (a forwarder's
exit 3, stopped by policy), so somebody must act. On RUNNING it records the start in
``restarts.json`` for crash-loop detection.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from fanout.state import ForwarderState, forwarder_state_path
from fanout.statefile import iso_now
from fanout.supervise import restarts
from fanout.supervise.paths import SupervisePaths
from fanout.supervise.programs import target_of

log = logging.getLogger("fanout.alerts")

ALERT_STATES = ("FATAL", "BACKOFF", "EXITED")
COMMAND_TIMEOUT = 30.0
WEBHOOK_TIMEOUT = 10.0
PREFIX = "PROCESS_STATE_"


def parse_tokens(text: str) -> dict[str, str]:
    """``a:1 b:2`` -> {"a": "1", "b": "2"} (supervisor's header and payload format)."""
    out: dict[str, str] = {}
    for tok in text.split():
        key, sep, value = tok.partition(":")
        if sep:
            out[key] = value
    return out


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)(: |$)")


def last_error_line(log_path: Path, limit: int = 16384) -> str | None:
    """The last ``Error: ...`` line a fanout process printed (its config error, say)."""
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    found = [ln.strip() for ln in text.splitlines() if ln.startswith("Error: ")]
    if found:
        return found[-1][len("Error: "):]
    # no message of ours (a crash): the last line of its last traceback
    crash = [ln.strip() for ln in text.splitlines() if _EXCEPTION_LINE.match(ln)]
    return crash[-1] if crash else None


@dataclass
class AlertListener:
    node_id: str
    paths: SupervisePaths
    command: str | None = None
    webhook: str | None = None
    clock: Callable[[], float] = time.time

    def handle(self, headers: dict[str, str], payload: str) -> dict[str, Any] | None:
        """One event; returns the alert written, if any."""
        event = headers.get("eventname", "")
        if not event.startswith(PREFIX):
            return None
        state = event[len(PREFIX):]
        data = parse_tokens(payload)
        name = data.get("processname", "?")
        if state == "RUNNING":
            pid = int(data.get("pid", "0") or 0)
            restarts.record(self.paths.restarts, [(name, pid, self.clock())])
            return None
        if state not in ALERT_STATES:
            return None
        alert = self.build(state, data)
        self.emit(alert)
        return alert

    def build(self, state: str, data: dict[str, str]) -> dict[str, Any]:
        name = data.get("processname", "?")
        alert: dict[str, Any] = {
            "time": iso_now(),
            "epoch": round(self.clock(), 3),
            "node": self.node_id,
            "event": state,
            "process": name,
            "group": data.get("groupname", name),
            "fromState": data.get("from_state"),
        }
        if "pid" in data:
            alert["pid"] = int(data["pid"])
        if "expected" in data:
            alert["expected"] = data["expected"] == "1"
        if "tries" in data:
            alert["tries"] = int(data["tries"])
        alert["message"] = self._message(state, name, alert)
        target = target_of(name)
        if target is not None:
            alert["target"] = target
            st = ForwarderState.read(forwarder_state_path(self.paths.state_dir, target))
            if st is not None and st.last_error is not None:
                alert["lastError"] = st.last_error.to_json()
        detail = last_error_line(self.paths.logs_dir / f"{name}.log")
        if detail:
            alert["detail"] = detail
        return alert

    @staticmethod
    def _message(state: str, name: str, alert: dict[str, Any]) -> str:
        if state == "FATAL":
            return f"{name} kept exiting before startsecs; supervisord gave up on it (FATAL)"
        if state == "BACKOFF":
            return f"{name} exited too quickly after starting (try {alert.get('tries', '?')})"
        if alert.get("expected"):
            return f"{name} stopped by itself with an expected exit code: not restarted"
        return f"{name} exited unexpectedly; supervisord restarts it"

    def emit(self, alert: dict[str, Any]) -> None:
        line = json.dumps(alert, sort_keys=True)
        self.paths.alerts.parent.mkdir(parents=True, exist_ok=True)
        with open(self.paths.alerts, "a") as f:
            f.write(line + "\n")
        log.warning("alert: %s", alert["message"])
        if self.command:
            self._run_command(line, alert)
        if self.webhook:
            self._post(line)

    def _run_command(self, line: str, alert: dict[str, Any]) -> None:
        env = dict(os.environ, FANOUT_ALERT_JSON=line, FANOUT_ALERT_EVENT=alert["event"],
                   FANOUT_ALERT_PROCESS=alert["process"], FANOUT_ALERT_NODE=self.node_id,
                   FANOUT_ALERT_MESSAGE=alert["message"])
        try:
            res = subprocess.run(["/bin/sh", "-c", self.command or ""], input=line.encode(),
                                 env=env, stdout=sys.stderr, stderr=sys.stderr,
                                 timeout=COMMAND_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error("alert command failed: %s", exc)
            return
        if res.returncode != 0:
            log.error("alert command exited with %d", res.returncode)

    def _post(self, line: str) -> None:
        req = urllib.request.Request(self.webhook or "", data=line.encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=WEBHOOK_TIMEOUT) as resp:
                resp.read()
        except (OSError, urllib.error.URLError) as exc:
            log.error("alert webhook %s failed: %s", self.webhook, exc)

    def serve(self, stdin: BinaryIO, stdout: BinaryIO) -> int:
        """The protocol loop; returns 0 at end of input (supervisord went away)."""
        while True:
            stdout.write(b"READY\n")
            stdout.flush()
            line = stdin.readline()
            if not line:
                return 0
            headers = parse_tokens(line.decode("utf-8", "replace"))
            length = int(headers.get("len", "0") or 0)
            payload = stdin.read(length) if length else b""
            try:
                self.handle(headers, payload.decode("utf-8", "replace"))
            except Exception:  # one bad event must not kill monitoring; say so loudly
                log.exception("cannot handle event %s", headers.get("eventname"))
            stdout.write(b"RESULT 2\nOK")
            stdout.flush()



def unit_alert(root: Path, unit: str, command: str | None = None,
               webhook: str | None = None) -> dict[str, Any]:
    """``OnFailure=`` under systemd (``fanout-alert@<failed unit>.service``): the same alert
    as the event listener's FATAL (alerts.jsonl line, command, webhook), with what
    ``systemctl show`` says about the failure."""
    from fanout.config import load_node_config
    from fanout.supervise.systemd import journal_error, parse_unit, show

    node_id, name = parse_unit(unit)
    cfg = load_node_config(root / node_id / "fanout.yaml")
    props = show([unit])[unit]
    listener = AlertListener(cfg.id, SupervisePaths.of(cfg), command, webhook)
    data = {"processname": name, "groupname": name,
            "from_state": props.get("ActiveState", "?"), "expected": "0"}
    if (pid := props.get("MainPID", "0")) and pid != "0":
        data["pid"] = pid
    alert = listener.build("FATAL", data)
    status = int(props.get("ExecMainStatus") or 0)
    result = props.get("Result", "?")
    alert["unit"] = unit
    alert["result"] = result
    alert["restarts"] = int(props.get("NRestarts") or 0)
    if props.get("ExecMainCode") == "1":  # CLD_EXITED: the status is an exit code
        alert["exitStatus"] = status
        how = f"exit {status}"
    else:
        how = f"signal {status}" if status else result
    alert["message"] = f"{name} failed ({result}, {how}); systemd does not restart it"
    detail = journal_error(unit)
    if detail and "detail" not in alert:
        alert["detail"] = detail
    target = alert.get("target")
    if "detail" not in alert and target is not None:
        st = ForwarderState.read(forwarder_state_path(cfg.state_dir, target))
        if st is not None and st.last_error is not None:
            alert["detail"] = st.last_error.message
    listener.emit(alert)
    return alert
