"""The rendered template units under a real systemd (PID 1 of a private namespace):
start from `fanout init`, replication, READY, restarts, the watchdog, config errors and
their alert, `fanout reload` and `fanout down`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from fanout.testing import NodeProc, Topology, eventually, wait_until
from tests.supervise.systemd_ns import SystemdHost

pytestmark = pytest.mark.slow

WATCHDOG_SEC = 3


@pytest.fixture
def host(systemd_host: SystemdHost) -> SystemdHost:
    return systemd_host


def write(node: NodeProc, lines: str) -> None:
    with node.client() as c:
        c.update(lines)


def test_two_nodes_replicate_under_systemd(host: SystemdHost) -> None:
    n1, n2 = host.node("n1"), host.node("n2")
    host.topo.link(n1, n2)
    host.topo.link(n2, n1)
    shutil.rmtree(n2.dir / "data")  # a node made before fanout init created data/
    host.render(n1)
    host.render(n2)  # one set of templates serves every node of the host
    host.ns.boot()
    assert Path("/tmp").is_dir() and any(Path("/tmp").iterdir())
    host.up(n1)  # fresh from fanout init: starts (no 226/NAMESPACE)
    host.up(n2)
    again = host.cli(n1, "up")
    assert again.returncode == 0 and again.stdout.startswith("already up"), again.stdout
    # a node outside ROOT: the installed units would run another fanout.yaml
    stray = Topology(host.root / "elsewhere").node("n9", manager="systemd")
    res = host.ns.fanout("up", "--config", str(stray.config))
    assert res.returncode != 0 and "does not read this file" in res.stderr, res.stderr
    assert "fanout systemd-units --config" in res.stderr
    for unit in ("fanout-node@n1.service", "fanout-distributor@n1.service",
                 "fanout-forwarder@n1:n2.service", "fanout-node@n2.service",
                 "fanout-forwarder@n2:n1.service"):
        u = host.unit(unit)
        assert (u["ActiveState"], u["SubState"]) == ("active", "running"), (unit, u)
    write(n1, "1000// a{} 1\n1001// a{} 2\n")
    write(n2, "2000// b{} 3\n")
    text = host.topo.wait_converged(n1, [n2], timeout=90)
    assert "a{}" in text and "b{}" in text

    def caught_up() -> None:
        code, st = host.status(n1)
        assert code == 0, st["reasons"]
        assert st["supervisor"]["manager"] == "systemd"
        assert {p["name"]: p["state"] for p in st["processes"]} == {
            "node": "RUNNING", "distributor": "RUNNING", "forwarder-n2": "RUNNING"}
        assert st["targets"][0]["ticksBehind"] == "0"  # state files: about once a second

    eventually(caught_up, "n1's status to show n2 caught up", 60)


def test_ready_only_when_the_process_serves(host: SystemdHost) -> None:
    n1 = host.node("n1")
    host.render(n1)
    host.ns.boot()
    # Type=notify: the start job ends at READY=1, which the node sends once it listens
    host.ns.systemctl("start", "fanout-node@n1.service")
    with n1.client("reader") as c:
        assert c.logger_state()["state"]["running"] is True  # no retry: it serves already
    u = host.unit("fanout-node@n1.service")
    assert (u["ActiveState"], u["SubState"]) == ("active", "running")
    status = host.ns.show("fanout-node@n1.service", "StatusText")["StatusText"]
    assert status.startswith("listening on 127.0.0.1:")


def _forwarder_setup(host: SystemdHost) -> tuple[NodeProc, NodeProc]:
    n1, n2 = host.node("n1"), host.node("n2")
    host.topo.link(n1, n2)
    n2.start_and_wait()  # the target: a plain process outside systemd
    host.render(n1)
    host.ns.boot()
    host.up(n1)
    write(n1, "1000// a{} 1\n")
    host.topo.wait_converged(n1, [n2], timeout=90)
    return n1, n2


def test_sigkill_forwarder_is_restarted_and_counted(host: SystemdHost) -> None:
    n1, n2 = _forwarder_setup(host)
    unit = "fanout-forwarder@n1:n2.service"
    old = host.unit(unit)["MainPID"]
    host.ns.run("kill", "-KILL", old)
    wait_until(lambda: (u := host.unit(unit))["MainPID"] not in ("0", old)
               and u["ActiveState"] == "active" and u["NRestarts"] == "1",
               90, interval=0.2, what="systemd to restart the killed forwarder")
    write(n1, "1001// a{} 2\n1002// a{} 3\n")
    text = host.topo.wait_converged(n1, [n2], timeout=90)
    assert text.count("a{}") >= 1 and "1002" in text  # nothing lost
    code, st = host.status(n1)
    fwd = next(p for p in st["processes"] if p["name"] == "forwarder-n2")
    assert fwd["state"] == "RUNNING" and fwd["pid"] == int(host.unit(unit)["MainPID"])
    assert fwd["restarts5m"] == 1, fwd
    assert code == 0, st["reasons"]  # one restart is not a crash loop


def test_sigstop_forwarder_the_watchdog_restarts_it(host: SystemdHost) -> None:
    n1, n2 = _forwarder_setup(host)
    unit = "fanout-forwarder@n1:n2.service"
    # a longer pause before the restart, so that the test sees systemd's verdict
    # (Result=watchdog lasts from the kill to the restart)
    dropin = host.ns.units / "fanout-forwarder@.service.d"
    dropin.mkdir()
    (dropin / "test.conf").write_text("[Service]\nRestartSec=5\n")
    host.ns.systemctl("daemon-reload")
    old = host.unit(unit)["MainPID"]
    host.ns.run("kill", "-STOP", old)
    verdict = wait_until(lambda: (u := host.unit(unit))["SubState"] == "auto-restart" and u,
                         90, interval=0.1, what="the watchdog to kill the stopped forwarder")
    assert verdict["Result"] == "watchdog", verdict
    wait_until(lambda: (u := host.unit(unit))["MainPID"] not in ("0", old)
               and u["ActiveState"] == "active",
               90, interval=0.2, what="systemd to restart the forwarder")
    assert host.unit(unit)["NRestarts"] == "1"
    assert host.ns.run("kill", "-0", old, check=False).returncode != 0  # the old one died
    write(n1, "1001// a{} 2\n")
    assert "1001" in host.topo.wait_converged(n1, [n2], timeout=90)


def test_broken_target_file_exits_78_without_a_loop_and_alerts(host: SystemdHost) -> None:
    n1, _ = _forwarder_setup(host)
    bad = n1.dir / "forwarders.d" / "bad.yaml"
    data = yaml.safe_load((n1.dir / "forwarders.d" / "n2.yaml").read_text())
    data.update(target="bad", source_dir="../data/targets/bad", chunk_size="big")
    bad.write_text(yaml.safe_dump(data))
    res = host.cli(n1, "reload")
    assert res.returncode == 78 and "chunk_size" in res.stderr, res.stderr
    unit = "fanout-forwarder@n1:bad.service"
    alerts = n1.state_dir / "alerts.jsonl"
    wait_until(lambda: alerts.exists() and "forwarder-bad" in alerts.read_text(), 90,
               interval=0.2, what="the OnFailure alert")
    u = host.unit(unit)
    assert (u["ActiveState"], u["Result"], u["ExecMainStatus"]) == \
        ("failed", "exit-code", "78"), u
    assert u["NRestarts"] == "0"  # RestartPreventExitStatus=78: no loop
    alert = json.loads(alerts.read_text().splitlines()[-1])
    assert alert["unit"] == unit and alert["exitStatus"] == 78 and alert["node"] == "n1"
    assert "chunk_size" in alert["detail"], alert
    sent = [json.loads(line) for line in host.alert_out.read_text().splitlines()]
    assert sent[-1]["unit"] == unit  # the alert command got it on stdin
    code, st = host.status(n1)
    assert code == 2
    assert any("forwarder-bad is FATAL" in r and "chunk_size" in r for r in st["reasons"]), \
        st["reasons"]
    assert host.unit(unit)["NRestarts"] == "0"


def test_reload_after_target_add_and_remove(host: SystemdHost) -> None:
    n1, _ = _forwarder_setup(host)
    n3 = host.topo.node("n3")
    n3.start_and_wait()
    units = ("fanout-node@n1.service", "fanout-distributor@n1.service",
             "fanout-forwarder@n1:n2.service")
    pids = {u: host.unit(u)["MainPID"] for u in units}
    # n1 has history already: n3 is seeded by the forwarder (auto_resync), or its
    # forwarder would stop at once with 1414 (start tick not present)
    host.topo.link(n1, n3, auto_resync=True)
    res = host.cli(n1, "reload")
    assert res.returncode == 0 and "added and started forwarder-n3" in res.stdout, res.stderr
    u = host.unit("fanout-forwarder@n1:n3.service")
    assert u["ActiveState"] == "active"
    wants = host.ns.show("fanout@n1.target", "Wants")["Wants"].split()
    assert "fanout-forwarder@n1:n3.service" in wants
    dist = n1.state_dir / "distributor.json"
    wait_until(lambda: "n3" in (json.loads(dist.read_text()).get("targets") or {}), 60,
               interval=0.2, what="the distributor to link for n3 (SIGHUP)")
    write(n1, "1001// c{} 1\n")
    wait_until(lambda: "c{}" in host.topo.fetch_all(n3), 90, interval=0.2,
               what="the write to reach n3")
    assert {u: host.unit(u)["MainPID"] for u in units} == pids  # the others kept theirs

    res = host.ns.fanout("target", "remove", "--config", str(n1.config), "--name", "n3")
    assert res.returncode == 0, res.stderr
    assert "forwarder-n3 stopped" in res.stdout, res.stdout
    assert host.unit("fanout-forwarder@n1:n3.service")["ActiveState"] == "inactive"
    wants = host.ns.show("fanout@n1.target", "Wants")["Wants"].split()
    assert "fanout-forwarder@n1:n3.service" not in wants
    assert {u: host.unit(u)["MainPID"] for u in units} == pids
    code, st = host.status(n1)
    assert [p["name"] for p in st["processes"]] == ["node", "distributor", "forwarder-n2"]
    assert code == 0, st["reasons"]


def test_down_leaves_no_process(host: SystemdHost) -> None:
    n1, _ = _forwarder_setup(host)
    # node, distributor, forwarder; a short-lived process naming the config (a CLI call
    # still exiting) may be seen beside them for a moment
    def three() -> None:
        got = host.processes_of(n1)
        assert len(got) == 3, got

    eventually(three, "exactly n1's three services", 30)
    res = host.cli(n1, "down")
    assert res.returncode == 0 and "stopped" in res.stdout, res.stdout + res.stderr
    assert host.processes_of(n1) == []
    for unit in ("fanout-node@n1.service", "fanout-distributor@n1.service",
                 "fanout-forwarder@n1:n2.service", "fanout@n1.target"):
        assert host.unit(unit)["ActiveState"] == "inactive", unit
    code, st = host.status(n1)
    assert code == 2 and "node is STOPPED" in " ".join(st["reasons"])
