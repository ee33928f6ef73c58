"""The processes of one node and their exact commands, shared by supervisord and systemd.

Every command runs the Python that runs the CLI (``sys.executable``), with absolute paths,
so a virtualenv needs no activation and no ``PATH``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from fanout.config import NodeConfig
from fanout.exitcodes import EXIT_CONFIG, EXIT_POLICY_STOP
from fanout.target_config import target_files

NODE = "node"
DISTRIBUTOR = "distributor"
ALERTS = "alerts"
FORWARDER_PREFIX = "forwarder-"

# forwarder/main.py: 3 = stopped itself by policy, lastError in its state file.


@dataclass(frozen=True)
class Program:
    """One supervised process. ``exitcodes`` are the expected ones: not restarted.

    78 (bad configuration) is among them: a quick exit 78 ends FATAL through startretries
    anyway, but on a loaded machine a process can take longer than ``startsecs`` to find
    its config broken; supervisord would then call it RUNNING, restart it on the
    "unexpected" exit and reset its retries, a restart loop on a config error."""

    name: str
    argv: tuple[str, ...]
    startsecs: int
    exitcodes: tuple[int, ...]
    priority: int
    stopwaitsecs: int = 15
    target: str | None = None  # the target name, for forwarders


def python() -> str:
    return sys.executable


def fanout_argv(*args: str) -> tuple[str, ...]:
    return (python(), "-m", "fanout.cli.main", *args)


def node_program(cfg: NodeConfig) -> Program:
    return Program(NODE, fanout_argv("node", "--config", str(cfg.source)), startsecs=3,
                   exitcodes=(0, EXIT_CONFIG), priority=100, stopwaitsecs=30)


def distributor_program(cfg: NodeConfig) -> Program:
    return Program(DISTRIBUTOR, fanout_argv("distribute", "--config", str(cfg.source)),
                   startsecs=2, exitcodes=(0, EXIT_CONFIG), priority=200)


def forwarder_argv(config: Path | str) -> tuple[str, ...]:
    return (python(), "-m", "forwarder.main", "--config", str(config))


def forwarder_program(target_file: Path) -> Program:
    target = target_file.stem
    return Program(FORWARDER_PREFIX + target, forwarder_argv(target_file.resolve()),
                   startsecs=2, exitcodes=(0, EXIT_POLICY_STOP, EXIT_CONFIG), priority=300,
                   target=target)


def alerts_argv(cfg: NodeConfig, command: str | None, webhook: str | None) -> tuple[str, ...]:
    argv = [*fanout_argv("alert-listener", "--config", str(cfg.source))]
    if command:
        argv += ["--command", command]
    if webhook:
        argv += ["--webhook", webhook]
    return tuple(argv)


def forwarder_programs(cfg: NodeConfig) -> list[Program]:
    """One per target file, in name order (a file that does not load still gets one: its
    process exits 78 and supervisord shows it FATAL, naming the problem in its log)."""
    return [forwarder_program(p) for p in target_files(cfg.targets_dir)]


def target_of(process_name: str) -> str | None:
    if process_name.startswith(FORWARDER_PREFIX):
        return process_name[len(FORWARDER_PREFIX):]
    return None
