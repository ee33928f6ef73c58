# mypy: disable-error-code="func-returns-value"
# (the parametrized changes below are lambdas calling setattr for its effect)
"""Health rules of `fanout status` (exit 0 healthy, 1 degraded, 2 down), on synthetic
models, and the CLI paths that need no supervisord."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from fanout.cli.main import main
from fanout.supervise.status import (
    Health,
    ProcessRow,
    Status,
    SupervisorView,
    TargetRow,
    judge,
)
from fanout.supervise.status_view import as_json, table
from fanout.testing import Topology, fanout_cmd


def healthy() -> Status:
    st = Status("n1", "/x/fanout.yaml", "/x/data/state", SupervisorView("/x/s.sock", True, 1))
    for name, kind in (("node", "node"), ("distributor", "distributor"),
                       ("forwarder-a", "forwarder"), ("forwarder-b", "forwarder"),
                       ("alerts", "listener")):
        st.processes.append(ProcessRow(name, kind, "RUNNING", pid=100, uptime=60.0))
    st.node_state_age = st.distributor_state_age = 0.5
    st.node_state = {"lastLogTick": "12345678901234"}
    for t in ("a", "b"):
        st.targets.append(TargetRow(t, f"forwarder-{t}", "RUNNING", phase="idle", running=True,
                                    applied_tick=12345678901234, processed_tick=12345678901234,
                                    ticks_behind=0, pending_files=0, pending_bytes=0,
                                    state_age=0.5))
    return st


def judged(st: Status) -> Status:
    judge(st)
    return st


def test_healthy() -> None:
    st = judged(healthy())
    assert st.health is Health.HEALTHY and st.reasons == []
    doc = as_json(st)
    assert doc["exitCode"] == 0 and doc["health"] == "healthy"
    assert doc["targets"][0]["lastAppliedTick"] == "12345678901234"  # a string
    json.dumps(doc)
    assert "HEALTHY" in table(st)


@pytest.mark.parametrize("change,reason", [
    (lambda st: setattr(st.process("forwarder-a"), "restarts_5m", 4), "crash loop"),
    (lambda st: (setattr(st.targets[0], "phase", "backoff"),
                 setattr(st.targets[0], "last_error",
                         {"errorNum": 1400, "errorMessage": "connection refused"})),
     "forwarder-a is retrying: connection refused"),
    (lambda st: setattr(st.process("forwarder-b"), "state", "STARTING"), "STARTING"),
    (lambda st: setattr(st, "node_state_age", 60.0), "node: state file not updated"),
    (lambda st: setattr(st.process("alerts"), "state", "FATAL"), "no alerts are sent"),
    (lambda st: st.processes.append(ProcessRow("forwarder-c", "forwarder", "MISSING")),
     "run fanout reload"),
])
def test_degraded(change, reason: str) -> None:
    st = healthy()
    change(st)
    judge(st)
    assert st.health is Health.DEGRADED, st.reasons
    assert any(reason in r for r in st.reasons), st.reasons


def test_three_restarts_is_not_yet_a_loop() -> None:
    st = healthy()
    st.process("forwarder-a").restarts_5m = 3  # type: ignore[union-attr]
    assert judged(st).health is Health.HEALTHY


@pytest.mark.parametrize("change,reason", [
    (lambda st: setattr(st, "supervisor", SupervisorView("/x/s.sock", False, error="gone")),
     "supervisord is not running"),
    (lambda st: setattr(st.process("node"), "state", "STOPPED"), "node is STOPPED"),
    (lambda st: st.processes.remove(st.process("distributor")), "distributor: no such"),
    (lambda st: (setattr(st.process("forwarder-a"), "state", "FATAL"),
                 setattr(st.process("forwarder-a"), "detail", "a.yaml: sink: is required")),
     "forwarder-a is FATAL: a.yaml: sink: is required"),
    (lambda st: (setattr(st.process("forwarder-b"), "state", "EXITED"),
                 setattr(st.process("forwarder-b"), "exit_status", 3)),
     "forwarder-b is EXITED (exit 3)"),
    (lambda st: setattr(st.process("forwarder-a"), "state", "BACKOFF"), "BACKOFF"),
    (lambda st: (setattr(st.targets[1], "running", False),
                 setattr(st.targets[1], "phase", "failed"),
                 setattr(st.targets[1], "last_error", {"errorMessage": "rejected"})),
     "forwarder-b stopped replicating (failed): rejected"),
])
def test_down(change, reason: str) -> None:
    st = healthy()
    st.process("forwarder-a").restarts_5m = 5  # type: ignore[union-attr]
    change(st)
    judge(st)
    assert st.health is Health.DOWN, st.reasons
    assert any(reason in r for r in st.reasons), st.reasons
    assert as_json(st)["exitCode"] == 2


def test_state_of_a_previous_process_is_not_held_against_the_current_one() -> None:
    st = healthy()
    t = st.targets[0]
    t.running, t.phase, t.state_age = False, "stopped", 30.0  # older than the process
    st.process("forwarder-a").uptime = 5.0  # type: ignore[union-attr]
    assert judged(st).health is Health.HEALTHY


def test_status_without_supervisord_is_down(short_tmp: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    t = Topology(short_tmp)
    n1 = t.node("n1")
    t.link(n1, t.node("n2"))
    assert main(["status", "--json", "--config", str(n1.config)]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["health"] == "down" and doc["supervisor"]["reachable"] is False
    assert [x["name"] for x in doc["targets"]] == ["n2"]
    assert main(["status", "--config", str(n1.config)]) == 2
    assert "DOWN" in capsys.readouterr().out


def test_up_refuses_an_invalid_target_file(short_tmp: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    t = Topology(short_tmp)
    n1 = t.node("n1")
    path = t.link(n1, t.node("n2"))
    data = yaml.safe_load(path.read_text())
    data["chunk_size"] = "big"
    path.write_text(yaml.safe_dump(data))
    assert main(["up", "--config", str(n1.config)]) == 78
    err = capsys.readouterr().err
    assert f"Error: {path}: chunk_size: must be an integer" in err
    assert not (n1.state_dir / "supervisor" / "supervisord.pid").exists()
    assert main(["down", "--config", str(n1.config)]) == 0
    assert capsys.readouterr().out.strip() == "not running"


def test_watch_redraws_until_interrupted(short_tmp: Path) -> None:
    t = Topology(short_tmp)
    n1 = t.node("n1")
    proc = subprocess.Popen(fanout_cmd("status", "--watch", "--json", "--interval", "0.2",
                                       "--config", str(n1.config)),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        frames = [json.loads(proc.stdout.readline()) for _ in range(3)]
        assert all(f["health"] == "down" for f in frames)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == 2  # the last health seen
