"""The ``fanout`` command: parses arguments, calls the library, maps errors to exit codes.

This is the only place that prints errors for operators: ``Error: ...`` and, where the
error knows one, ``Try: ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from fanout.errors import (
    ERROR_START_TICK_NOT_PRESENT,
    ConfigError,
    DatalogCorruptError,
    FanoutError,
)
from fanout.exitcodes import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
)
from fanout.fileio import InstanceLocked
from fanout.logsetup import setup_logging

# Which error ends the command with which exit code (fanout.exitcodes).
EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (ConfigError, EXIT_CONFIG),
    (InstanceLocked, EXIT_LOCKED),
    (DatalogCorruptError, EXIT_FAILURE),
    (FanoutError, EXIT_FAILURE),
]


def cmd_init(args: argparse.Namespace) -> int:
    from fanout.ops.init import init_node

    path = init_node(Path(args.dir), args.id, args.listen, args.store, args.force)
    print(f"created {path}")
    print(f"tokens (mode 0600): {path.parent / 'secrets' / 'tokens.yaml'}")
    print(f"run it: fanout node --config {path}")
    return EXIT_OK


def cmd_node(args: argparse.Namespace) -> int:
    from fanout.config import load_node_config
    from fanout.fileio import acquire

    setup_logging(args.verbose)
    cfg = load_node_config(Path(args.config))
    # the lock before the server's imports (aiohttp, the store): a second start exits at
    # once; and before recovery touches datalog/.tmp/ (fanout.node.server.run_node)
    with acquire(cfg.state_dir, "node"):
        from fanout.node.server import run_locked

        run_locked(cfg)
    return EXIT_OK


def cmd_datalog_dump(args: argparse.Namespace) -> int:
    from fanout.cli.datalog_cmd import dump

    dump([Path(p) for p in args.files])
    return EXIT_OK


def cmd_datalog_verify(args: argparse.Namespace) -> int:
    from fanout.cli.datalog_cmd import verify

    verify(Path(args.dir))
    return EXIT_OK


def cmd_target_add(args: argparse.Namespace) -> int:
    from fanout.ops.targets import add_target, node_history
    from fanout.tlsconfig import insecure_reason

    tls = {k: Path(v) for k, v in (("ca_file", args.ca_file), ("cert_file", args.cert_file),
                                   ("key_file", args.key_file)) if v}
    path = add_target(Path(args.config), args.name, args.endpoint, args.token,
                      Path(args.token_file) if args.token_file else None, args.sink,
                      args.source_dir, args.force, tls)
    print(f"wrote {path}")
    why = insecure_reason(args.endpoint)
    if why:
        print(f"Warning: {why}.\nTry: serve {args.name} with tls: in its fanout.yaml and "
              f"add it with an https:// endpoint and --ca-file (fanout tls makes the "
              "certificates); require_tls: true in fanout.yaml refuses such targets",
              file=sys.stderr)
    if args.bootstrap:
        from fanout.cli.replication_cmd import bootstrap

        try:
            r = bootstrap(Path(args.config), args.name, replace=False)
        except FanoutError as exc:
            exc.hint = (f"{exc.hint}; then " if exc.hint else "") + \
                f"fanout bootstrap --config {args.config} --target {args.name}"
            print(f"{path} is written but {args.name} is not bootstrapped (paused until it "
                  "is)", file=sys.stderr)
            raise
        print(f"{args.name}: bootstrapped with {r['series']} series, {r['points']} points at "
              f"tick {r['lastLogTick']}; continuous replication resumes after it")
        print(r["forwarder"])
        return EXIT_OK
    tick = node_history(Path(args.config))
    if tick:
        print(f"Warning: this node has history (last tick {tick}) that {args.name} does not "
              f"have; continuous replication alone cannot bring it (its forwarder would stop "
              f"with error {ERROR_START_TICK_NOT_PRESENT}).\n"
              f"Try: fanout bootstrap --config {args.config} --target {args.name}",
              file=sys.stderr)
    else:
        print(f"start its forwarder: fanout reload --config {args.config}")
    return EXIT_OK


def cmd_target_list(args: argparse.Namespace) -> int:
    from fanout.ops.targets import list_targets

    rows = list_targets(Path(args.config))
    if args.json:
        import json

        print(json.dumps([{"name": r.name, "file": str(r.file), "sink": r.sink,
                           "endpoint": r.endpoint,
                           "sourceDir": str(r.source_dir) if r.source_dir else None,
                           "forwarderPid": r.forwarder_pid, "phase": r.phase,
                           "error": r.error} for r in rows], indent=1))
        return EXIT_OK
    if not rows:
        print("no targets")
        return EXIT_OK
    width = max(len(r.name) for r in rows)
    for r in rows:
        fwd = f"forwarder pid {r.forwarder_pid}" if r.forwarder_pid else "forwarder not running"
        what = f"INVALID: {r.error}" if r.error else f"{r.sink} {r.endpoint}"
        print(f"{r.name:<{width}}  {what}  ({fwd}{', ' + r.phase if r.phase else ''})")
    return EXIT_OK


def cmd_target_remove(args: argparse.Namespace) -> int:
    from fanout.ops.targets import remove_target

    res = remove_target(Path(args.config), args.name)
    print(res.forwarder)
    for p in res.removed:
        print(f"removed {p}")
    for k in res.kept:
        print(f"kept {k}")
    return EXIT_OK


def cmd_distribute(args: argparse.Namespace) -> int:
    from fanout.distributor import run_distributor

    setup_logging(args.verbose)
    return run_distributor(Path(args.config))


def cmd_demo(args: argparse.Namespace) -> int:
    from fanout.cli.demo import run_demo, stop_demo

    if args.stop:
        return stop_demo(Path(args.dir).resolve())
    return run_demo(Path(args.dir), seconds=args.seconds)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fanout", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("init", help="create a node directory (config and tokens)")
    s.add_argument("dir")
    s.add_argument("--id", required=True)
    s.add_argument("--listen", required=True, metavar="HOST:PORT")
    s.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    s.add_argument("--force", action="store_true", help="overwrite an existing fanout.yaml")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("node", help="run a node in the foreground")
    s.add_argument("--config", required=True)
    s.set_defaults(func=cmd_node)

    s = sub.add_parser("target", help="manage replication targets")
    tsub = s.add_subparsers(dest="target_command", required=True, metavar="ACTION")
    t = tsub.add_parser("add", help="write forwarders.d/NAME.yaml")
    t.add_argument("--config", required=True)
    t.add_argument("--name", required=True)
    t.add_argument("--endpoint", required=True, metavar="URL")
    g = t.add_mutually_exclusive_group(required=True)
    g.add_argument("--token", help="the target's secret (stored in secrets/NAME.token, 0600);"
                                   " one starting with '-' must be given as --token=VALUE")
    g.add_argument("--token-file", help="a private file holding the target's secret")
    t.add_argument("--sink", choices=("fanout", "warp10"), default="fanout")
    t.add_argument("--ca-file", help="https: the CA certificate(s) to verify the target with "
                                     "(default: the system store)")
    t.add_argument("--cert-file", help="https: our client certificate (mutual TLS)")
    t.add_argument("--key-file", help="https: its key (mode 0600)")
    t.add_argument("--source-dir", help="default: data/targets/NAME beside the datalog")
    t.add_argument("--force", action="store_true")
    t.add_argument("--bootstrap", action="store_true",
                   help="load the node's current data into the target now (fanout "
                        "bootstrap), for a node that already has history")
    t.set_defaults(func=cmd_target_add)
    t = tsub.add_parser("list", help="the node's targets and their forwarders")
    t.add_argument("--config", required=True)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_target_list)
    t = tsub.add_parser("remove", help="stop a target's forwarder, remove its file, source "
                                       "directory and state")
    t.add_argument("--config", required=True)
    t.add_argument("--name", required=True)
    t.set_defaults(func=cmd_target_remove)

    from fanout.cli.tls_cmd import add_tls_parser

    add_tls_parser(sub)
    s = sub.add_parser("distribute", help="run the distributor in the foreground")
    s.add_argument("--config", required=True)
    s.set_defaults(func=cmd_distribute)

    s = sub.add_parser("datalog", help="inspect datalog files")
    dsub = s.add_subparsers(dest="datalog_command", required=True, metavar="ACTION")
    d = dsub.add_parser("dump", help="print records readably")
    d.add_argument("files", nargs="+", metavar="FILE")
    d.set_defaults(func=cmd_datalog_dump)
    d = dsub.add_parser("verify", help="check every record's checksum in a directory")
    d.add_argument("dir", metavar="DIR")
    d.set_defaults(func=cmd_datalog_verify)

    from fanout.cli import replication_cmd, supervise_cmd

    supervise_cmd.register(sub)
    replication_cmd.register(sub)

    s = sub.add_parser("demo", help="set up and run a demonstration in a fresh directory")
    s.add_argument("--dir", default="demo")
    s.add_argument("--seconds", type=float, default=10.0)
    s.add_argument("--stop", action="store_true", help="stop a running demo's processes")
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`fanout target list --json | head`): nothing more to say,
        # and Python's flush at exit must not print a traceback for the same closed pipe
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except FanoutError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"Try: {exc.hint}", file=sys.stderr)
        for kind, code in EXIT_CODES:
            if isinstance(exc, kind):
                return code
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
