"""``fanout-forwarder --config forwarders.d/T.yaml``: one target, in the foreground.

Exit codes: 0 stopped on SIGTERM/SIGINT; 3 stopped itself by policy (gave up after
max_connect_retries, target rejected data with on_reject: stop, corrupt file), with the
reason in the state file's lastError; 75 another forwarder of this target is running
(``fanout.fileio``); 78 invalid configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

import yaml

from fanout import fileio
from fanout.errors import ConfigError
from fanout.exitcodes import EXIT_CONFIG, EXIT_INTERRUPTED, EXIT_LOCKED
from fanout.fileio import InstanceLocked
from fanout.logsetup import setup_logging
from fanout.state import ErrorInfo, ForwarderState, forwarder_state_path
from fanout.target_config import TargetConfig, check_target_file, load_target_config

log = logging.getLogger("fanout.forwarder")


def _run(config: Path) -> int:
    cfg = load_target_config(config)
    # a self-target, a shared endpoint, a source_dir inside datalog/: exit 78 at start
    check_target_file(cfg.source)
    # Before the forwarder reads its state or touches its source directory, and before the
    # heavy imports, so that a second start exits at once.
    with fileio.acquire(cfg.state_dir, f"forwarder-{cfg.target}"):
        return asyncio.run(_forward(cfg))


async def _forward(cfg: TargetConfig) -> int:
    from forwarder.applier import Forwarder
    from forwarder.sinks import make_sink

    sink = make_sink(cfg, cfg.sink.secret())
    fwd = Forwarder(cfg, sink)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, fwd.request_stop)
    loop.add_signal_handler(signal.SIGUSR1, fwd.wake.set)  # fanout pause/resume
    transport = getattr(sink, "transport", None)
    if transport is not None:  # SIGHUP: re-read the TLS files (a renewed client certificate)
        loop.add_signal_handler(signal.SIGHUP, transport.reload)
    log.info("forwarder %s: %s -> %s (%s)", cfg.target, cfg.source_dir, cfg.sink.endpoint,
             cfg.sink.type)
    from fanout.tlsconfig import insecure_reason

    why = insecure_reason(cfg.sink.endpoint)
    if why:
        log.warning("forwarder %s: insecure target: %s", cfg.target, why)
    return await fwd.run()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fanout-forwarder", description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="forwarders.d/<target>.yaml")
    ap.add_argument("--instance", metavar="NODE:TARGET",
                    help="systemd's fanout-forwarder@NODE:TARGET: the target file of the "
                         "node ROOT/NODE/fanout.yaml (with --root)")
    ap.add_argument("--root", metavar="ROOT", help="the directory holding every node ROOT/<id>/")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    if (args.config is None) == (args.instance is None) or (args.instance and not args.root):
        ap.error("give --config FILE, or --instance NODE:TARGET with --root ROOT")
    try:
        if args.instance:
            args.config = str(instance_config(Path(args.root), args.instance))
        return _run(Path(args.config))
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"Try: {exc.hint}", file=sys.stderr)
        if args.config:
            _record_config_error(Path(args.config), exc)
        return EXIT_CONFIG
    except InstanceLocked as exc:
        print(f"Error: {exc}", file=sys.stderr)
        print(f"Try: {exc.hint}", file=sys.stderr)
        return EXIT_LOCKED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def instance_config(root: Path, instance: str) -> Path:
    """``NODE:TARGET`` -> the target file, found through ``ROOT/NODE/fanout.yaml``."""
    from fanout.config import load_node_config

    node, sep, target = instance.partition(":")
    node_config = root / node / "fanout.yaml"
    if not sep or not node or not target or "/" in instance:
        raise ConfigError(node_config, None, f"instance {instance!r} is not NODE:TARGET")
    return load_node_config(node_config).targets_dir / f"{target}.yaml"


def _record_config_error(config: Path, exc: ConfigError) -> None:
    """Leave the reason where ``fanout status`` looks: the file's own ``state_dir`` if
    that much of it can be read, else the default beside ``forwarders.d``."""
    base = config.resolve().parent
    state_dir = base / "../data/state"
    with contextlib.suppress(OSError, yaml.YAMLError, AttributeError, TypeError):
        raw = yaml.safe_load(config.read_text())
        if isinstance(raw.get("state_dir"), str):
            state_dir = base / raw["state_dir"]
    state_dir = state_dir.resolve()
    if state_dir.is_dir():
        ForwarderState(config.stem, phase="failed", running=False, brief=True,
                       last_error=ErrorInfo(str(exc), exc.error_num)).write(
            forwarder_state_path(state_dir, config.stem))


if __name__ == "__main__":
    sys.exit(main())
