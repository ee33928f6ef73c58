"""The systemd manager's pure parts: state names, NRestarts windows, unit names, config key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fanout.config import load_node_config
from fanout.errors import ConfigError
from fanout.supervise import restarts
from fanout.supervise.systemd import parse_unit, recent_restarts, state_name
from fanout.supervise.systemd_units import forwarder_unit
from fanout.testing import Topology


@pytest.mark.parametrize("props,state", [
    ({"ActiveState": "active", "SubState": "running"}, "RUNNING"),
    ({"ActiveState": "activating", "SubState": "start"}, "STARTING"),
    ({"ActiveState": "activating", "SubState": "auto-restart"}, "BACKOFF"),
    ({"ActiveState": "failed", "SubState": "failed"}, "FATAL"),
    ({"ActiveState": "inactive", "SubState": "dead"}, "STOPPED"),
    ({"ActiveState": "deactivating", "SubState": "stop-sigterm"}, "STOPPING"),
    ({"LoadState": "not-found", "ActiveState": "inactive"}, "UNKNOWN"),
])
def test_state_names(props: dict[str, str], state: str) -> None:
    assert state_name(props) == state


def test_restarts_in_the_window_from_nrestarts_samples(tmp_path: Path) -> None:
    path = tmp_path / "nrestarts.json"
    t0 = 1_000_000.0
    # no older sample: every restart since the last manual start counts
    assert recent_restarts(path, {"forwarder-a": 2}, t0) == {"forwarder-a": 2}
    assert recent_restarts(path, {"forwarder-a": 6}, t0 + 60) == {"forwarder-a": 6}
    # once a sample is older than the window, only what came after it counts
    later = t0 + restarts.WINDOW + 120
    assert recent_restarts(path, {"forwarder-a": 7}, later) == {"forwarder-a": 1}
    # NRestarts went back to 0 (fanout up, a manual start): older samples no longer apply
    assert recent_restarts(path, {"forwarder-a": 0}, later + 1) == {"forwarder-a": 0}


def test_unit_names() -> None:
    assert parse_unit(forwarder_unit("paris-1", "london")) == ("paris-1", "forwarder-london")
    assert parse_unit("fanout-node@paris-1.service") == ("paris-1", "node")
    assert parse_unit("fanout-distributor@n1.service") == ("n1", "distributor")
    with pytest.raises(ConfigError):
        parse_unit("sshd.service")


def test_manager_key(short_tmp: Path) -> None:
    n1 = Topology(short_tmp).node("n1")
    assert load_node_config(n1.config).manager == "supervisord"
    assert (n1.dir / "data").is_dir()  # fanout init: ReadWritePaths= can name it at once
    data = yaml.safe_load(n1.config.read_text())
    data["manager"] = "systemd"
    n1.config.write_text(yaml.safe_dump(data))
    assert load_node_config(n1.config).manager == "systemd"
    data["manager"] = "runit"
    n1.config.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as exc:
        load_node_config(n1.config)
    assert "manager" in str(exc.value) and "supervisord, systemd" in str(exc.value)
