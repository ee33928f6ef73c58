"""``fanout bootstrap``, ``fanout pause`` and ``fanout resume``: targets, online (the work
is in ``fanout.ops``).

``fanout.ops.bootstrap`` (and with it aiohttp, ~20 MB) is imported only by the commands
that use it: every ``fanout`` command builds this parser, ``fanout distribute`` included.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fanout.config import load_node_config


def _progress(sent: int, elapsed: float) -> None:
    rate = sent / elapsed / 2**20 if elapsed > 0 else 0.0
    print(f"  streamed {sent / 2**20:,.1f} MiB in {elapsed:.1f}s ({rate:,.1f} MiB/s)",
          file=sys.stderr, flush=True)


def bootstrap(config: Path, name: str, replace: bool, start: bool = True) -> dict:
    """``fanout.ops.bootstrap.bootstrap``, telling the operator each step on stderr."""
    from fanout.ops import bootstrap as ops_bootstrap

    return ops_bootstrap.bootstrap(config, name, replace, start, say=_say, progress=_progress)


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def cmd_bootstrap(args: argparse.Namespace) -> int:
    r = bootstrap(Path(args.config), args.target, args.replace)
    print(f"{args.target}: restored {r['series']} series, {r['points']} points at tick "
          f"{r['lastLogTick']}; continuous replication resumes after it")
    print(r["forwarder"])
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    from fanout.ops.pause import pause
    from fanout.ops.targets import target_of

    t = target_of(load_node_config(Path(args.config)), args.target)
    pause(t)
    print(f"paused {args.target}: its files keep arriving (retention still applies); "
          f"fanout resume --config {args.config} {args.target}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from fanout.ops.pause import resume
    from fanout.ops.targets import target_of

    t = target_of(load_node_config(Path(args.config)), args.target)
    resume(t)
    print(f"resumed {args.target}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
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
