"""``fanout tls ca|cert``: argument parsing for the private CA tool (fanout.ops.tls)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def cmd_tls_ca(args: argparse.Namespace) -> int:
    from fanout.ops.tls import make_ca

    made = make_ca(Path(args.out), args.name, args.days, args.force)
    print(f"CA certificate: {made.cert}\nCA key (mode 0600, keep it offline): {made.key}")
    return 0


def cmd_tls_cert(args: argparse.Namespace) -> int:
    from fanout.ops.tls import make_cert

    made = make_cert(Path(args.ca), args.name, Path(args.out) if args.out else None,
                     args.dns, args.ip, args.client, args.days)
    kind = "client" if args.client else "node (server and client)"
    print(f"{kind} certificate: {made.cert}\nkey (mode 0600): {made.key}")
    return 0


def add_tls_parser(sub: Any) -> None:
    s = sub.add_parser("tls", help="make a private CA and node/client certificates")
    tsub = s.add_subparsers(dest="tls_command", required=True, metavar="ACTION")
    t = tsub.add_parser("ca", help="a new private CA: DIR/ca.crt and DIR/ca.key (0600)")
    t.add_argument("--out", required=True, metavar="DIR")
    t.add_argument("--name", default="fanout private CA", help="the CA's common name")
    t.add_argument("--days", type=int, default=3650)
    t.add_argument("--force", action="store_true", help="replace an existing CA")
    t.set_defaults(func=cmd_tls_ca)
    t = tsub.add_parser("cert", help="a certificate signed by the CA: OUT/NAME.crt, "
                                     "OUT/NAME.key (0600)")
    t.add_argument("--ca", required=True, metavar="DIR", help="the directory of fanout tls ca")
    t.add_argument("--name", required=True, help="common name and file name")
    t.add_argument("--dns", action="append", default=[], metavar="HOST",
                   help="a host name clients use to reach the node (repeatable)")
    t.add_argument("--ip", action="append", default=[], metavar="ADDRESS",
                   help="an IP address clients use to reach the node (repeatable)")
    t.add_argument("--client", action="store_true",
                   help="a client-only certificate (a forwarder's, for mutual TLS)")
    t.add_argument("--out", metavar="DIR", help="default: the CA directory")
    t.add_argument("--days", type=int, default=825)
    t.set_defaults(func=cmd_tls_cert)
