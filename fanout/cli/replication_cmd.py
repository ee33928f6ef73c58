"""``fanout bootstrap``, ``fanout pause`` and ``fanout resume``: targets, online.

``fanout.bootstrap`` (and with it aiohttp, ~20 MB) is imported only by the commands that
use it: every ``fanout`` command builds this parser, ``fanout distribute`` included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from fanout.config import NodeConfig, load_node_config
from fanout.errors import ConfigError
from fanout.statefile import read_json
from forwarder.config import TargetConfig, load_target_config

LINK_WAIT = 30.0


def target_of(cfg: NodeConfig, name: str) -> TargetConfig:
    path = cfg.targets_dir / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(path, None, f"no target named {name!r}",
                          hint=f"fanout target add --config {cfg.source} --name {name} "
                               "--endpoint URL --token SECRET")
    return load_target_config(path)


def _wake_forwarder(t: TargetConfig) -> None:
    """Nudge a running forwarder to look at its pause file now (SIGUSR1)."""
    st = read_json(t.state_file) or {}
    pid = st.get("pid")
    if isinstance(pid, int) and st.get("running"):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGUSR1)


def pause(t: TargetConfig) -> None:
    t.state_dir.mkdir(parents=True, exist_ok=True)
    t.pause_file.write_text(f"paused at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    _wake_forwarder(t)


def resume(t: TargetConfig) -> None:
    t.pause_file.unlink(missing_ok=True)
    _wake_forwarder(t)


def ensure_linking(cfg: NodeConfig, name: str, timeout: float = LINK_WAIT) -> None:
    """Make the running distributor re-read its targets and wait until it links for
    ``name``: only then does every record after the snapshot reach the target's dir."""
    from fanout.bootstrap import BootstrapError

    path = cfg.state_dir / "distributor.json"
    st = read_json(path) or {}
    pid = st.get("pid")
    if not st.get("running") or not isinstance(pid, int):
        raise BootstrapError(f"the distributor is not running (state {path}): start it "
                             "first (fanout up, or fanout distribute)")
    asked = time.time()
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise BootstrapError(f"the distributor (pid {pid}) is gone: start it first") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = read_json(path) or {}
        with contextlib.suppress(OSError):
            if path.stat().st_mtime > asked and name in (st.get("targets") or {}):
                return
        time.sleep(0.1)
    raise BootstrapError(f"the distributor did not start linking for {name!r} within "
                         f"{timeout:.0f}s: see its lastError in {path}")


def start_forwarder(cfg: NodeConfig, name: str) -> str:
    """Under supervisord, add or start forwarder-NAME; otherwise say how to run it."""
    from fanout.supervise import control
    from fanout.supervise.paths import SupervisePaths
    from fanout.supervise.rpc import RPCFault, Supervisor, Unreachable

    paths = SupervisePaths.of(cfg)
    if paths.socket.exists():
        try:
            control.reload(cfg.source)
            with Supervisor(paths.socket) as sv, contextlib.suppress(RPCFault):
                sv.call("supervisor.startProcess", f"forwarder-{name}", True)
            return f"forwarder-{name} started under supervisord"
        except Unreachable:
            pass
    return (f"start its forwarder: fanout-forwarder --config {cfg.targets_dir / name}.yaml "
            "(or fanout up / fanout reload)")


def _progress(sent: int, elapsed: float) -> None:
    rate = sent / elapsed / 2**20 if elapsed > 0 else 0.0
    print(f"  streamed {sent / 2**20:,.1f} MiB in {elapsed:.1f}s ({rate:,.1f} MiB/s)",
          file=sys.stderr, flush=True)


def bootstrap(config: Path, name: str, replace: bool, start: bool = True) -> dict:
    from fanout.bootstrap import Endpoint, copy_snapshot, local_endpoint

    cfg = load_node_config(config)
    t = target_of(cfg, name)
    if t.sink.type != "fanout":
        raise ConfigError(t.source, "sink.type", "bootstrap needs a fanout target; load a "
                          "Warp 10 target with its own tools")
    print(f"pausing {name} while it is loaded", file=sys.stderr)
    pause(t)
    ensure_linking(cfg, name)
    print(f"distributor links every new datalog file for {name}; taking the snapshot",
          file=sys.stderr)
    result = asyncio.run(copy_snapshot(local_endpoint(cfg), Endpoint(t.sink.endpoint,
                                                                      t.sink.secret(),
                                                                      t.sink.tls),
                                       replace, _progress))
    resume(t)
    result["forwarder"] = start_forwarder(cfg, name) if start else "not started"
    return result


def cmd_bootstrap(args: argparse.Namespace) -> int:
    r = bootstrap(Path(args.config), args.target, args.replace)
    print(f"{args.target}: restored {r['series']} series, {r['points']} points at tick "
          f"{r['lastLogTick']}; continuous replication resumes after it")
    print(r["forwarder"])
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    t = target_of(load_node_config(Path(args.config)), args.target)
    pause(t)
    print(f"paused {args.target}: its files keep arriving (retention still applies); "
          f"fanout resume --config {args.config} {args.target}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    t = target_of(load_node_config(Path(args.config)), args.target)
    resume(t)
    print(f"resumed {args.target}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("bootstrap", help="initial sync of a target from a snapshot, online")
    s.add_argument("--config", required=True)
    s.add_argument("--target", required=True)
    s.add_argument("--replace", action="store_true",
                   help="replace a non-empty target's whole store with the snapshot")
    s.set_defaults(func=cmd_bootstrap)
    for name, fn, text in (("pause", cmd_pause, "stop sending to a target, keep its place"),
                           ("resume", cmd_resume, "resume sending to a paused target")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--config", required=True)
        s.add_argument("target")
        s.set_defaults(func=fn)
