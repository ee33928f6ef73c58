"""fanout up / status / down / reload against a real supervisord and real nodes."""

from __future__ import annotations

import os
import signal
import subprocess

import psutil
import pytest
import yaml

from fanout.testing import eventually, fanout_cmd, wait_until

from .conftest import Supervised

pytestmark = pytest.mark.slow

PROGRAMS = {"node", "distributor", "forwarder-n2", "alerts"}


def write(s: Supervised, start: int, count: int) -> None:
    with s.node.client() as c:
        for i in range(start, start + count):
            c.update(f"{1000 + i}// temp{{room=r{i % 3}}} {i}\n")


def fetch(node) -> str:
    with node.client("reader") as c:
        return c.fetch("~.*{}")


def lines(text: str) -> int:
    return sum(1 for ln in text.splitlines() if ln.strip() and not ln.startswith("="))


def test_up_status_down(supervised: Supervised) -> None:
    s = supervised
    out = s.up().stdout
    assert "node RUNNING" in out and "forwarder-n2 RUNNING" in out

    code, st = s.status()
    assert code == 0, st["reasons"]
    assert {p["name"]: p["state"] for p in st["processes"]} == dict.fromkeys(PROGRAMS,
                                                                             "RUNNING")
    for p in st["processes"]:
        assert p["pid"] > 0 and p["uptimeSeconds"] >= 0 and p["rssBytes"] > 0
        assert p["restarts5m"] == 0

    write(s, 0, 30)
    n2 = s.topo.nodes["n2"]

    def lag_zero() -> None:
        code, st = s.status()
        (t,) = st["targets"]
        assert st["node"]["lastLogTick"] == "30"
        assert (t["lastAppliedTick"], t["ticksBehind"]) == ("30", "0"), t
        assert t["pending"]["files"] == 0
        assert code == 0, st["reasons"]

    eventually(lag_zero, "lag 0 on n2", timeout=30)
    assert fetch(n2) == fetch(s.node) and lines(fetch(n2)) >= 30

    pids = set(s.pids().values()) | {s.supervisord_pid()}
    res = s.cli("down", check=True)
    assert "stopped" in res.stdout and "killed" not in res.stdout
    alive = [p for p in pids if psutil.pid_exists(p)
             and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    assert not (s.state_dir / "supervisor" / "supervisord.sock").exists()
    code, st = s.status()
    assert code == 2 and not st["supervisor"]["reachable"]
    assert "supervisord is not running" in st["reasons"][0]
    assert s.cli("down").stdout.strip() == "not running"


def test_status_json_schema(supervised: Supervised) -> None:
    s = supervised
    s.up()
    write(s, 0, 5)
    eventually(lambda: s.status()[1]["targets"][0]["ticksBehind"] == "0",
               "caught up")
    _, st = s.status()
    assert set(st) >= {"time", "health", "exitCode", "reasons", "node", "distributor",
                       "supervisor", "processes", "targets"}
    assert st["health"] == "healthy" and st["exitCode"] == 0
    assert isinstance(st["node"]["lastLogTick"], str)
    assert st["supervisor"]["socket"].startswith(str(s.state_dir))
    proc_keys = {"name", "kind", "state", "pid", "uptimeSeconds", "cpuPercent", "rssBytes",
                 "restarts5m", "exitStatus", "description", "detail"}
    for p in st["processes"]:
        assert set(p) == proc_keys
    (t,) = st["targets"]
    assert set(t) == {"name", "process", "state", "phase", "running", "lastAppliedTick",
                      "lastProcessedTick", "ticksBehind", "pending", "lastError",
                      "stateAgeSeconds", "endpoint", "insecure"}
    assert t["insecure"] is None  # a loopback target: no token crosses a network
    for key in ("lastAppliedTick", "lastProcessedTick", "ticksBehind"):
        assert isinstance(t[key], str), key  # ticks leave the process as strings
    assert set(t["pending"]) == {"files", "bytes", "oldestAgeSeconds"}
    # the table shows the same
    table = s.cli("status").stdout
    assert "HEALTHY" in table and "forwarder-n2" in table and "APPLIED" in table


def test_sigkill_forwarder_is_restarted_and_nothing_is_lost(supervised: Supervised) -> None:
    s = supervised
    s.up()
    n2 = s.topo.nodes["n2"]
    write(s, 0, 20)
    eventually(lambda: s.status()[1]["targets"][0]["ticksBehind"] == "0",
               "first batch replicated", timeout=30)
    old = s.process("forwarder-n2")["pid"]
    os.kill(old, signal.SIGKILL)
    write(s, 20, 20)  # written while the forwarder is dead or restarting

    def restarted() -> None:
        p = s.process("forwarder-n2")
        assert p["state"] == "RUNNING" and p["pid"] not in (None, old), p
        assert p["restarts5m"] == 1, p

    eventually(restarted, "forwarder restarted by supervisord", timeout=30)
    assert "forwarder-n2" in s.cli("status").stdout
    exited = [a for a in s.alerts() if a["process"] == "forwarder-n2"]
    assert exited and exited[0]["event"] == "EXITED" and exited[0]["expected"] is False
    assert exited[0]["pid"] == old

    def caught_up() -> None:
        code, st = s.status()
        assert st["targets"][0]["ticksBehind"] == "0" and st["node"]["lastLogTick"] == "40"
        assert code == 0, st["reasons"]  # one restart is not a crash loop

    eventually(caught_up, "replication resumed", timeout=30)
    assert fetch(n2) == fetch(s.node)
    assert lines(fetch(n2)) == 40


def test_broken_forwarder_config_is_fatal_not_a_loop(supervised: Supervised) -> None:
    s = supervised
    s.up()
    others = s.pids()
    bad = s.node.dir / "forwarders.d" / "bad.yaml"
    data = yaml.safe_load((s.node.dir / "forwarders.d" / "n2.yaml").read_text())
    data.update(target="bad", source_dir="../data/targets/bad", retry_min=2, retry_max=1)
    bad.write_text(yaml.safe_dump(data))

    res = s.cli("reload")
    assert res.returncode == 78
    assert "added and started forwarder-bad" in res.stdout
    assert "bad.yaml: retry_max: must be >= retry_min" in res.stderr

    def fatal() -> None:
        assert s.process("forwarder-bad")["state"] == "FATAL"

    eventually(fatal, "forwarder-bad FATAL", timeout=40)

    def alerted() -> None:
        mine = [a for a in s.alerts() if a["process"] == "forwarder-bad"]
        assert [a["event"] for a in mine][-1] == "FATAL", mine
        assert "retry_max" in mine[-1]["detail"]
        backoffs = [a for a in mine if a["event"] == "BACKOFF"]
        assert 1 <= len(backoffs) <= 4  # startretries=3: a bounded number of tries

    # supervisord has passed the FATAL transition (its event listener wrote the alert);
    # FATAL is final there, so the process stays down with no restart counted
    eventually(alerted, "FATAL alert written", timeout=10)
    p = s.process("forwarder-bad")
    assert p["state"] == "FATAL" and p["pid"] is None and p["restarts5m"] == 0

    code, st = s.status()
    assert code == 2
    assert any("forwarder-bad is FATAL" in r and "bad.yaml: retry_max" in r
               for r in st["reasons"]), st["reasons"]
    assert "retry_max: must be >= retry_min" in (p["detail"] or "")
    table = s.cli("status")
    assert table.returncode == 2 and "forwarder-bad is FATAL" in table.stdout
    assert [a["event"] for a in s.alerts() if a["process"] == "forwarder-bad"][-1] == "FATAL"
    now = s.pids()
    assert {k: now[k] for k in others} == others  # nobody else was touched


def test_reload_after_target_add(supervised: Supervised) -> None:
    s = supervised
    n3 = s.topo.node("n3")  # not started yet: its forwarder must retry
    s.up()
    before = s.pids()
    assert set(before) == PROGRAMS

    res = s.cli("target", "add", "--name", "n3", "--endpoint", n3.url,
                "--token", n3.tokens["replicator"], check=True)
    assert "n3.yaml" in res.stdout
    cfg = s.node.dir / "forwarders.d" / "n3.yaml"  # retry fast in the test
    cfg.write_text(cfg.read_text() + "retry_min: 0.05\nretry_max: 0.5\nmax_connect_retries: 0\n")
    res = s.cli("reload", check=True)
    assert res.stdout.strip() == "added and started forwarder-n3"

    def started() -> None:
        assert s.process("forwarder-n3")["state"] == "RUNNING"

    eventually(started, "forwarder-n3 RUNNING", timeout=20)
    after = s.pids()
    assert {k: after[k] for k in before} == before  # the others kept their pids

    write(s, 0, 10)

    def retrying() -> None:
        code, st = s.status()
        assert code == 1, st["reasons"]
        assert any("forwarder-n3 is retrying" in r for r in st["reasons"]), st["reasons"]

    eventually(retrying, "degraded while n3 is down", timeout=20)

    n3.start_and_wait()
    eventually(lambda: s.status()[0] == 0, "healthy once n3 is up", timeout=30)
    wait_until(lambda: fetch(n3) == fetch(s.node), 30, 0.2, "n3 converged")
    assert lines(fetch(n3)) == 10

    (s.node.dir / "forwarders.d" / "n2.yaml").unlink()
    res = s.cli("reload", check=True)
    assert res.stdout.strip() == "stopped and removed forwarder-n2"
    final = s.pids()
    assert "forwarder-n2" not in final
    assert {k: final[k] for k in ("node", "distributor", "alerts", "forwarder-n3")} == \
        {k: after[k] for k in ("node", "distributor", "alerts", "forwarder-n3")}
    assert s.cli("reload", check=True).stdout.strip() == "no change"


def test_up_foreground_runs_supervisord_in_this_process(supervised: Supervised) -> None:
    s = supervised
    log = open(s.node.dir / "foreground.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(fanout_cmd("up", "--foreground", "--config", str(s.config)),
                            stdout=log, stderr=subprocess.STDOUT)
    s.supervisord_pids.add(proc.pid)  # exec: the same pid becomes supervisord
    try:
        def running() -> None:
            code, st = s.status()
            assert code == 0, st["reasons"]

        eventually(running, "everything RUNNING", timeout=30)
        assert s.supervisord_pid() == proc.pid
        pids = list(s.pids().values())
        proc.send_signal(signal.SIGTERM)  # as a container runtime would
        assert proc.wait(60) == 0
        assert not [p for p in pids if psutil.pid_exists(p)
                    and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
