"""``promtool`` and ``prometheus`` from Debian's ``prometheus`` package (``make tools``
installs it; so does this fixture, as root with apt-get, when the tests run alone)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "fanout-rules.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "fanout-rules.test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "fanout-dashboard.json"


@dataclass(frozen=True)
class PromTools:
    promtool: str
    prometheus: str


def _install() -> None:
    """The same steps as the Makefile's ``tools`` target. The package's init script would
    start a daemon on :9090 where no policy forbids it: stop that one (its pid file only)."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"],
                   check=True, env=env, timeout=900)
    if os.access("/etc/init.d/prometheus", os.X_OK):
        subprocess.run(["/etc/init.d/prometheus", "stop"], check=False, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def prom_tools() -> PromTools:
    if not (shutil.which("promtool") and shutil.which("prometheus")):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip("promtool/prometheus missing and not installable here (needs root and "
                        "apt-get): install Debian's 'prometheus' package (`make tools`)")
        _install()
    promtool, prometheus = shutil.which("promtool"), shutil.which("prometheus")
    assert promtool and prometheus, "apt-get installed 'prometheus' but not its binaries"
    return PromTools(promtool, prometheus)
