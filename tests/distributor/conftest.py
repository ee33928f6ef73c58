"""Fixtures for distributor tests: a node directory, processes and mounts that are always
cleaned up, even when a test fails."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fanout.testing import Proc

from .util import NodeDir


@pytest.fixture
def node(tmp_path: Path) -> NodeDir:
    return NodeDir(tmp_path / "node")


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Append every started process; each is resumed (if stopped) and killed at the end."""
    started: list[Proc] = []
    yield started
    for p in started:
        if p.alive():
            p.signal(signal.SIGCONT)
        p.kill()


@pytest.fixture
def mount() -> Iterator[Callable[..., Path]]:
    """``mount(args..., target=DIR)`` runs mount(8) (root only); unmounted at the end."""
    done: list[Path] = []

    def do(*args: str, target: Path) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount here ({r.stderr.strip()}): needs root")
        done.append(target)
        return target

    yield do
    for target in reversed(done):
        subprocess.run(["umount", "-l", str(target)], capture_output=True)
