"""`fanout systemd-units`: rendered units, checked by `systemd-analyze verify`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fanout.cli.main import main
from fanout.config import load_node_config
from fanout.supervise.systemd_units import NoCommonParent, render_units, sd_word
from fanout.testing import Topology

UNITS = ["fanout-node.service", "fanout-distributor.service", "fanout-forwarder@.service",
         "fanout.target"]
# what systemd-analyze prints when it cannot work at all in a container without systemd;
# only this failure makes the test skip
NO_SYSTEMD = ("System has not been booted with systemd", "Failed to connect to bus",
              "Failed to initialize manager")


@pytest.fixture
def node(short_tmp: Path) -> tuple[Topology, Path]:
    t = Topology(short_tmp)
    n1 = t.node("n1")
    t.link(n1, t.node("london"))
    t.link(n1, t.node("paris"))
    return t, n1.config


def service(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_render(node: tuple[Topology, Path], short_tmp: Path,
                capsys: pytest.CaptureFixture[str]) -> None:
    _, config = node
    out = short_tmp / "units"
    assert main(["systemd-units", "--config", str(config), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(UNITS)
    assert "systemctl enable --now fanout.target" in capsys.readouterr().out
    cfg = load_node_config(config)

    units = {n: service((out / n).read_text()) for n in UNITS}
    for name in UNITS[:3]:
        u = units[name]
        assert u["Type"] == ["notify"]
        assert u["WatchdogSec"] == ["30"]
        assert u["Restart"] == ["on-failure"]
        assert u["ProtectSystem"] == ["strict"]
        assert u["ReadWritePaths"] == [str(cfg.base_dir / "data")]  # one parent only
        assert u["NoNewPrivileges"] == ["yes"]
        assert u["Environment"] == ["PYTHONUNBUFFERED=1"]
        assert u["ExecStart"][0].startswith(sys.executable + " -m ")
        assert u["WantedBy"] == ["fanout.target"]
        assert "User" not in u
        assert "PrivateTmp" not in u  # the data is under /tmp here: it would be hidden
    assert units["fanout-node.service"]["RestartPreventExitStatus"] == ["78"]
    assert units["fanout-distributor.service"]["RestartPreventExitStatus"] == ["78"]
    assert units["fanout-forwarder@.service"]["RestartPreventExitStatus"] == ["78 3"]
    assert units["fanout-node.service"]["ExecStart"] == [
        f"{sys.executable} -m fanout.cli.main node --config {config}"]
    assert units["fanout-distributor.service"]["ExecStart"] == [
        f"{sys.executable} -m fanout.cli.main distribute --config {config}"]
    assert units["fanout-forwarder@.service"]["ExecStart"] == [
        f"{sys.executable} -m forwarder.main --config {cfg.targets_dir}/%i.yaml"]
    assert units["fanout.target"]["Wants"] == [
        "fanout-node.service fanout-distributor.service fanout-forwarder@london.service "
        "fanout-forwarder@paris.service"]


def test_systemd_analyze_verify(node: tuple[Topology, Path], short_tmp: Path) -> None:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed")
    _, config = node
    out = short_tmp / "units"
    assert main(["systemd-units", "--config", str(config), "--out", str(out),
                 "--user", "root", "--group", "root"]) == 0
    assert "User=root" in (out / "fanout-node.service").read_text()
    # the template is checked as itself and as an instance, as systemd would load it
    files = [str(out / n) for n in UNITS] + [str(out / "fanout-forwarder@london.service")]
    res = subprocess.run([exe, "verify", *files], capture_output=True, text=True,
                         timeout=60, check=False)
    output = res.stdout + res.stderr
    if res.returncode != 0 and any(m in output for m in NO_SYSTEMD):
        pytest.skip(f"systemd-analyze cannot run here: {output.strip()[:200]}")
    assert res.returncode == 0, output
    assert output.strip() == "", output  # no warning either (unknown key, bad value)


def test_refuses_without_a_common_parent(node: tuple[Topology, Path]) -> None:
    _, config = node
    path = load_node_config(config).targets_dir / "paris.yaml"
    data = yaml.safe_load(path.read_text())
    data["source_dir"] = "/srv/fanout-elsewhere/paris"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(NoCommonParent) as exc:
        render_units(load_node_config(config))
    assert "/srv/fanout-elsewhere/paris" in str(exc.value) and exc.value.hint


def test_exec_words_are_escaped() -> None:
    assert sd_word("/opt/fanout/bin/python3") == "/opt/fanout/bin/python3"
    assert sd_word("/data/my dir/fanout.yaml") == '"/data/my dir/fanout.yaml"'
    assert sd_word("/data/100%/x$y") == '"/data/100%%/x$$y"'
