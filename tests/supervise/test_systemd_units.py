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
from fanout.errors import ConfigError
from fanout.supervise.systemd_units import LayoutError, render_units, sd_word
from fanout.testing import Topology

UNITS = ["fanout-node@.service", "fanout-distributor@.service", "fanout-forwarder@.service",
         "fanout@.target", "fanout-alert@.service"]
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
    assert "systemctl enable fanout@n1.target" in capsys.readouterr().out
    root = load_node_config(config).base_dir.parent  # ROOT: every node is ROOT/<id>/

    units = {n: service((out / n).read_text()) for n in UNITS}
    for name in UNITS[:3]:
        u = units[name]
        assert u["Type"] == ["notify"]
        assert u["WatchdogSec"] == ["30"]
        assert u["Restart"] == ["on-failure"]
        assert u["ProtectSystem"] == ["strict"]
        assert u["NoNewPrivileges"] == ["yes"]
        assert u["Environment"][0] == "PYTHONUNBUFFERED=1"
        assert u["ExecStart"][0].startswith(sys.executable + " -m ")
        assert u["User"] == ["root"] and u["Group"] == ["root"]  # ROOT's owner here
        assert u["OnFailure"] == ["fanout-alert@%n.service"]
        assert "PrivateTmp" not in u  # the data is under /tmp here: it would be hidden
    for name in UNITS[:2]:  # the node's one data tree: one mount, hard links work
        assert units[name]["ReadWritePaths"] == [f"{root}/%i/data"]
        assert units[name]["PartOf"] == ["fanout@%i.target"]
        assert units[name]["Environment"][1] == f"FANOUT_CONFIG={root}/%i/fanout.yaml"
        assert units[name]["RestartPreventExitStatus"] == ["78 75"]
    assert units["fanout-forwarder@.service"]["ReadWritePaths"] == [str(root)]
    assert units["fanout-forwarder@.service"]["RestartPreventExitStatus"] == ["78 75 3"]
    assert units["fanout-node@.service"]["ExecStart"] == [
        f"{sys.executable} -m fanout.cli.main node --config {root}/%i/fanout.yaml"]
    assert units["fanout-distributor@.service"]["ExecStart"] == [
        f"{sys.executable} -m fanout.cli.main distribute --config {root}/%i/fanout.yaml"]
    assert units["fanout-forwarder@.service"]["ExecStart"] == [
        f"{sys.executable} -m forwarder.main --root {root} --instance %i"]
    assert units["fanout@.target"]["Wants"] == [
        "fanout-node@%i.service fanout-distributor@%i.service"]
    assert units["fanout-alert@.service"]["ExecStart"] == [
        f"{sys.executable} -m fanout.cli.main alert-unit --root {root} --unit %i"]


def test_forwarder_instance_finds_its_target_file(node: tuple[Topology, Path]) -> None:
    from forwarder.main import instance_config

    _, config = node
    root = config.parent.parent
    assert instance_config(root, "n1:london") == config.parent / "forwarders.d" / "london.yaml"
    with pytest.raises(ConfigError):
        instance_config(root, "n1")


def test_refuses_a_directory_not_named_after_the_id(short_tmp: Path) -> None:
    t = Topology(short_tmp)
    n = t.node("n1")
    moved = short_tmp / "elsewhere"
    n.dir.rename(moved)
    with pytest.raises(LayoutError) as exc:
        render_units(load_node_config(moved / "fanout.yaml"))
    assert "named after the node id 'n1'" in str(exc.value) and exc.value.hint


def test_one_set_of_templates_serves_one_root(node: tuple[Topology, Path], short_tmp: Path,
                                              tmp_path: Path) -> None:
    _, config = node
    out = short_tmp / "units"
    assert main(["systemd-units", "--config", str(config), "--out", str(out)]) == 0
    other = Topology(tmp_path).node("n9")
    assert main(["systemd-units", "--config", str(other.config), "--out", str(out)]) != 0


def test_systemd_analyze_verify(node: tuple[Topology, Path], short_tmp: Path) -> None:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed")
    _, config = node
    out = short_tmp / "units"
    assert main(["systemd-units", "--config", str(config), "--out", str(out),
                 "--user", "root", "--group", "root"]) == 0
    assert "User=root" in (out / "fanout-node@.service").read_text()
    # the templates are checked as themselves and as instances, as systemd would load
    # them (systemd-analyze 252 cannot take a path with ':', a forwarder's real instance
    # name: test_systemd_real starts those under a real systemd)
    files = [str(out / n) for n in UNITS] + [
        str(out / n) for n in ("fanout-node@n1.service", "fanout-forwarder@n1.service",
                               "fanout@n1.target", "fanout-alert@fanout-node@n1.service.service")]
    res = subprocess.run([exe, "verify", *files], capture_output=True, text=True,
                         timeout=60, check=False)
    output = res.stdout + res.stderr
    if res.returncode != 0 and any(m in output for m in NO_SYSTEMD):
        pytest.skip(f"systemd-analyze cannot run here: {output.strip()[:200]}")
    assert res.returncode == 0, output
    assert output.strip() == "", output  # no warning either (unknown key, bad value)


def test_refuses_a_writable_path_outside_the_data_tree(node: tuple[Topology, Path]) -> None:
    _, config = node
    path = load_node_config(config).targets_dir / "paris.yaml"
    data = yaml.safe_load(path.read_text())
    data["source_dir"] = "/srv/fanout-elsewhere/paris"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(LayoutError) as exc:
        render_units(load_node_config(config))
    assert "/srv/fanout-elsewhere/paris" in str(exc.value) and exc.value.hint


def test_exec_words_are_escaped() -> None:
    assert sd_word("/opt/fanout/bin/python3") == "/opt/fanout/bin/python3"
    assert sd_word("/data/my dir/fanout.yaml") == '"/data/my dir/fanout.yaml"'
    assert sd_word("/data/100%/x$y") == '"/data/100%%/x$$y"'
