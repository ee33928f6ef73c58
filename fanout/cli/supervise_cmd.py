"""Subcommands for running fanout as a system (supervisord, systemd, status, alerts)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from fanout.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from fanout.logsetup import setup_logging

WATCH_INTERVAL = 2.0


def cmd_supervisord_config(args: argparse.Namespace) -> int:
    from fanout.config import load_node_config
    from fanout.supervise.paths import SupervisePaths
    from fanout.supervise.supervisord_conf import AlertSettings, write_config

    cfg = load_node_config(Path(args.config))
    write_config(cfg, AlertSettings(args.alert_command, args.alert_webhook))
    paths = SupervisePaths.of(cfg)
    print(f"wrote {paths.conf}")
    for p in sorted(paths.programs_dir.glob("*.conf")):
        print(f"wrote {p}")
    print(f"start it: fanout up --config {cfg.source}")
    return EXIT_OK


def _manager(config: str):
    from fanout.config import load_node_config
    from fanout.supervise.managers import manager_for

    return manager_for(load_node_config(Path(config)))


def cmd_up(args: argparse.Namespace) -> int:
    mgr = _manager(args.config)
    res = mgr.up(Path(args.config), foreground=args.foreground)
    who = "supervisord" if mgr.name == "supervisord" else "systemd"
    if res.already:
        print(f"already up: {who} pid {res.pid}; "
              f"to apply target changes: fanout reload --config {args.config}")
        return EXIT_OK
    print(f"{who} pid {res.pid}: "
          + ", ".join(f"{n} {s}" for n, s in sorted(res.states.items())))
    if not res.all_running:
        from fanout.config import load_node_config
        from fanout.supervise.status import gather

        st = gather(load_node_config(Path(args.config)))
        failed = [p for p in st.processes if p.state not in ("RUNNING", "STARTING")]
        print("Error: not every program is RUNNING", file=sys.stderr)
        for p in failed:  # the cause, from the failed program's own log
            exit_ = f", exit {p.exit_status}" if p.exit_status is not None else ""
            print(f"  {p.name} {p.state}{exit_}: {p.detail or 'see its log'}", file=sys.stderr)
            log = (f"journalctl -u {p.description}" if mgr.name == "systemd"
                   else f"{st.state_dir}/logs/{p.name}.log")
            print(f"    log: {log}", file=sys.stderr)
        print(f"Try: fanout status --config {args.config}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def cmd_down(args: argparse.Namespace) -> int:
    res = _manager(args.config).down(Path(args.config))
    for o in res.orphans:
        print(f"stopped orphan {o}" + (" (killed after the timeout)" if o.pid in res.killed
                                       else ""))
    if not res.was_running:
        if not res.orphans:
            print("not running")
    elif res.killed:
        print(f"stopped; killed pids that outlived the timeout: "
              f"{', '.join(map(str, res.killed))}")
    else:
        print("stopped")
    return EXIT_OK


def cmd_reload(args: argparse.Namespace) -> int:
    res = _manager(args.config).reload(Path(args.config))
    for name in res.added:
        print(f"added and started {name}")
    for name in res.removed:
        print(f"stopped and removed {name}")
    for name in res.changed:
        print(f"changed, left running with its old settings: {name} "
              f"(restart it to apply: fanout down and up)")
    if not (res.added or res.removed or res.changed):
        print("no change")
    for exc in res.errors:
        print(f"Error: {exc}", file=sys.stderr)
    if res.errors:
        print("Try: fix the file(s), then fanout reload again (a forwarder whose file does "
              "not load stays FATAL)", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from fanout.config import load_node_config
    from fanout.supervise.status import CpuSampler, Status, gather
    from fanout.supervise.status_view import as_json, table

    cfg = load_node_config(Path(args.config))

    def show(st: Status, clear: bool) -> None:
        if args.json:
            print(json.dumps(as_json(st), indent=None if args.watch else 1), flush=True)
            return
        text = table(st)
        if clear:
            text = "\x1b[H\x1b[2J" + text
        print(text, end="", flush=True)

    if not args.watch:
        st = gather(cfg)
        show(st, False)
        return int(st.health)
    sampler = CpuSampler()
    code = EXIT_OK
    # "Until Ctrl-C" must hold whoever started us: a shell without job control starts a
    # background command (`cmd &`, CI runners, nohup) with SIGINT ignored, and Python keeps
    # an inherited SIG_IGN instead of installing its KeyboardInterrupt handler, so Ctrl-C
    # or `kill -INT` did nothing and the loop ran on (a test waited 10 s for it in CI).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        first = True
        while True:
            st = gather(cfg, sampler if not first else None)
            first = False
            sampler.prime([p.pid for p in st.processes if p.pid])
            code = int(st.health)
            show(st, sys.stdout.isatty())
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return code


def cmd_alert_listener(args: argparse.Namespace) -> int:
    from fanout.config import load_node_config
    from fanout.supervise.alerts import AlertListener
    from fanout.supervise.paths import SupervisePaths

    setup_logging(args.verbose)
    cfg = load_node_config(Path(args.config))
    listener = AlertListener(cfg.id, SupervisePaths.of(cfg), args.command, args.webhook)
    return listener.serve(sys.stdin.buffer, sys.stdout.buffer)


def cmd_alert_unit(args: argparse.Namespace) -> int:
    from fanout.supervise.alerts import unit_alert

    setup_logging(args.verbose)
    alert = unit_alert(Path(args.root), args.unit, args.command, args.webhook)
    print(json.dumps(alert, sort_keys=True))
    return EXIT_OK


def cmd_systemd_units(args: argparse.Namespace) -> int:
    from fanout.config import load_node_config
    from fanout.supervise.systemd_units import (
        UnitOptions,
        data_tree,
        target_unit,
        write_units,
    )

    cfg = load_node_config(Path(args.config))
    out = Path(args.out)
    opts = UnitOptions(args.user, args.group, args.alert_command, args.alert_webhook,
                       watchdog_sec=args.watchdog_sec, restart_sec=args.restart_sec)
    for path in write_units(cfg, out, opts):
        print(f"wrote {path}")
    data_tree(cfg).mkdir(exist_ok=True)  # ReadWritePaths= must exist before the start
    if cfg.manager != "systemd":
        print(f"note: set manager: systemd in {cfg.source} so that fanout up|down|reload|"
              "status drive systemctl")
    print(f"install: cp {out}/fanout* /etc/systemd/system/ && systemctl daemon-reload "
          f"&& fanout up --config {cfg.source} && systemctl enable {target_unit(cfg.id)}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands to the ``fanout`` parser."""
    s = sub.add_parser("supervisord-config",
                       help="write state_dir/supervisor/supervisord.conf and programs.d/")
    s.add_argument("--config", required=True)
    s.add_argument("--alert-command", metavar="CMD",
                   help="run (sh -c) for each alert, the alert as JSON on stdin")
    s.add_argument("--alert-webhook", metavar="URL", help="POST each alert as JSON here")
    s.set_defaults(func=cmd_supervisord_config)

    s = sub.add_parser("up", help="start supervisord and every process of the node")
    s.add_argument("--config", required=True)
    s.add_argument("--foreground", action="store_true",
                   help="run supervisord in the foreground (supervisord -n) instead of a daemon")
    s.set_defaults(func=cmd_up)

    s = sub.add_parser("down", help="stop every process of the node and supervisord")
    s.add_argument("--config", required=True)
    s.set_defaults(func=cmd_down)

    s = sub.add_parser("reload", help="start forwarders of added targets, stop removed ones")
    s.add_argument("--config", required=True)
    s.set_defaults(func=cmd_reload)

    s = sub.add_parser("status", help="processes, replication lag and health "
                                      "(exit 0 healthy, 1 degraded, 2 down)")
    s.add_argument("--config", required=True)
    s.add_argument("--json", action="store_true", help="machine-readable (ticks as strings)")
    s.add_argument("--watch", action="store_true", help="redraw until Ctrl-C")
    s.add_argument("--interval", type=float, default=WATCH_INTERVAL, help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("alert-listener", help="supervisord event listener (run by supervisord)")
    s.add_argument("--config", required=True)
    s.add_argument("--command", metavar="CMD")
    s.add_argument("--webhook", metavar="URL")
    s.set_defaults(func=cmd_alert_listener)

    s = sub.add_parser("systemd-units", help="render systemd units for this node")
    s.add_argument("--config", required=True)
    s.add_argument("--out", required=True, metavar="DIR")
    s.add_argument("--user", help="User= of the services (default: the owner of ROOT, "
                                  "the directory holding the node directories)")
    s.add_argument("--group", help="Group= of the services (default: ROOT's group)")
    s.add_argument("--alert-command", metavar="CMD",
                   help="run (sh -c) for each alert, the alert as JSON on stdin")
    s.add_argument("--alert-webhook", metavar="URL", help="POST each alert as JSON here")
    s.add_argument("--watchdog-sec", type=float, default=30.0, metavar="S",
                   help="WatchdogSec=: a process whose main loop hangs this long is "
                        "killed and restarted (default 30)")
    s.add_argument("--restart-sec", type=float, default=2.0, metavar="S",
                   help="RestartSec= (default 2)")
    s.set_defaults(func=cmd_systemd_units)

    s = sub.add_parser("alert-unit", help="OnFailure= hook of the systemd units "
                                          "(run by fanout-alert@.service)")
    s.add_argument("--root", required=True)
    s.add_argument("--unit", required=True)
    s.add_argument("--command", metavar="CMD")
    s.add_argument("--webhook", metavar="URL")
    s.set_defaults(func=cmd_alert_unit)
