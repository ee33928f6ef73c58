"""`fanout supervisord-config`: every required setting, read back by supervisor's own
parser."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from supervisor.datatypes import RestartUnconditionally, RestartWhenExitUnexpected
from supervisor.events import ProcessStateEvent
from supervisor.options import ServerOptions

from fanout.cli.main import main
from fanout.config import load_node_config
from fanout.supervise.paths import SocketPathTooLong, SupervisePaths
from fanout.supervise.supervisord_conf import (
    AlertSettings,
    UnsafeValue,
    write_config,
    write_programs,
)
from fanout.testing import Topology


@pytest.fixture
def node(short_tmp: Path) -> tuple[Topology, Path]:
    t = Topology(short_tmp)
    n1, n2, n3 = t.node("n1"), t.node("n2"), t.node("n3")
    t.link(n1, n2)
    t.link(n1, n3)
    return t, n1.config


def parse(conf: Path) -> ServerOptions:
    opts = ServerOptions()
    opts.realize(["-c", str(conf)])
    return opts


def test_every_required_setting(node: tuple[Topology, Path],
                                capsys: pytest.CaptureFixture[str]) -> None:
    _, config = node
    assert main(["supervisord-config", "--config", str(config), "--alert-command",
                 "notify-send 'fanout 100%' \"$FANOUT_ALERT_MESSAGE\"",
                 "--alert-webhook", "http://127.0.0.1:9/hook?a=1&b=%41"]) == 0
    cfg = load_node_config(config)
    paths = SupervisePaths.of(cfg)
    out = capsys.readouterr().out
    assert f"wrote {paths.conf}" in out
    assert f"wrote {paths.programs_dir / 'forwarder-n2.conf'}" in out
    text = paths.conf.read_text()
    assert "[include]\nfiles = programs.d/*.conf" in text
    assert "[rpcinterface:supervisor]" in text and "[supervisorctl]" in text
    assert "/tmp" not in str(paths.socket.relative_to(cfg.state_dir))
    assert sorted(p.name for p in paths.programs_dir.iterdir()) == [
        "forwarder-n2.conf", "forwarder-n3.conf"]

    opts = parse(paths.conf)
    # socket and pid file under state_dir, a private socket, supervisorctl pointed at it
    (server,) = opts.server_configs
    assert server["file"] == str(cfg.state_dir / "supervisor" / "supervisord.sock")
    assert server["chmod"] == 0o700
    assert opts.pidfile == str(cfg.state_dir / "supervisor" / "supervisord.pid")
    assert opts.logfile.startswith(str(cfg.state_dir))
    assert opts.logfile_maxbytes == 10 * 1024 * 1024 and opts.logfile_backups == 5
    assert f"serverurl=unix://{server['file']}" in text
    assert "supervisor.rpcinterface:make_main_rpcinterface" in text

    groups = {g.name: g for g in opts.process_group_configs}
    assert set(groups) == {"node", "distributor", "forwarder-n2", "forwarder-n3", "alerts"}
    for name in ("node", "distributor", "forwarder-n2", "forwarder-n3"):
        (p,) = groups[name].process_configs
        assert p.environment == {"PYTHONUNBUFFERED": "1"}
        assert p.stopasgroup and p.killasgroup
        assert p.autorestart is RestartWhenExitUnexpected
        assert p.startretries == 3
        assert p.redirect_stderr
        assert p.stdout_logfile == str(cfg.state_dir / "logs" / f"{name}.log")
        assert (p.stdout_logfile_maxbytes, p.stdout_logfile_backups) == (10 * 1024 * 1024, 5)
        argv = shlex.split(p.command)
        assert argv[0] == sys.executable and Path(argv[-1]).is_absolute()
        assert p.directory == str(cfg.base_dir)
    node_p = groups["node"].process_configs[0]
    assert node_p.startsecs == 3 and node_p.exitcodes == [0, 78]
    assert shlex.split(node_p.command)[1:] == ["-m", "fanout.cli.main", "node", "--config",
                                               str(config)]
    dist = groups["distributor"].process_configs[0]
    assert dist.startsecs == 2 and dist.exitcodes == [0, 78]
    assert "distribute" in shlex.split(dist.command)
    fwd = groups["forwarder-n2"].process_configs[0]
    assert fwd.startsecs == 2 and fwd.exitcodes == [0, 3, 78]  # 3: stopped by policy
    assert shlex.split(fwd.command)[1:] == [
        "-m", "forwarder.main", "--config", str(cfg.targets_dir / "n2.yaml")]
    # priorities: the listener first, forwarders last (and stopped first)
    prio = {n: g.priority for n, g in groups.items()}
    assert prio["alerts"] < prio["node"] < prio["distributor"] < prio["forwarder-n2"]

    listener = groups["alerts"]
    assert listener.pool_events == [ProcessStateEvent]
    (lp,) = listener.process_configs
    assert lp.autorestart is RestartUnconditionally
    assert lp.stderr_logfile == str(cfg.state_dir / "logs" / "alerts.log")
    # the alert options survive supervisord's parser ('%' and quotes included)
    assert shlex.split(lp.command)[1:] == [
        "-m", "fanout.cli.main", "alert-listener", "--config", str(config),
        "--command", "notify-send 'fanout 100%' \"$FANOUT_ALERT_MESSAGE\"",
        "--webhook", "http://127.0.0.1:9/hook?a=1&b=%41"]


def test_up_keeps_the_alert_settings_and_targets_add_files(
        node: tuple[Topology, Path]) -> None:
    t, config = node
    cfg = load_node_config(config)
    write_config(cfg, AlertSettings(webhook="http://127.0.0.1:9/x"))
    write_config(cfg)  # what `fanout up` does: the saved settings are kept
    paths = SupervisePaths.of(cfg)
    assert "--webhook http://127.0.0.1:9/x" in paths.conf.read_text()

    (cfg.targets_dir / "n3.yaml").unlink()
    n4 = t.node("n4")
    t.link(t.nodes["n1"], n4)
    res = write_programs(cfg)
    assert [p.name for p in res.written] == ["forwarder-n4.conf"]
    assert [p.name for p in res.removed] == ["forwarder-n3.conf"]
    assert write_programs(cfg).written == []  # unchanged files are not rewritten


@pytest.mark.parametrize("bad", ["mail ops ; rm -rf /", "notify #ops", "two\nlines"])
def test_unsafe_alert_command_refused(node: tuple[Topology, Path], bad: str) -> None:
    _, config = node
    with pytest.raises(UnsafeValue):
        write_config(load_node_config(config), AlertSettings(command=bad))
    assert not SupervisePaths.of(load_node_config(config)).conf.exists()


def test_webhook_must_be_http(node: tuple[Topology, Path]) -> None:
    _, config = node
    with pytest.raises(UnsafeValue, match="http"):
        write_config(load_node_config(config), AlertSettings(webhook="ftp://x/y"))


def test_socket_path_too_long(short_tmp: Path) -> None:
    t = Topology(short_tmp)
    n1 = t.node("n1", state_dir="data/" + "s" * 120)
    with pytest.raises(SocketPathTooLong) as exc:
        write_config(load_node_config(n1.config))
    assert "state_dir" in (exc.value.hint or "")
