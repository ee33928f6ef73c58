"""Checks of a target against its node and its sibling targets, shared by ``fanout target
add``, the forwarder's start and the distributor's load of ``forwarders.d/``.

- A target name is an id: 1 to 64 of ``[A-Za-z0-9_.-]``, not starting with ``.`` (a dotfile
  target file is ignored, so it would never run; ``.`` and ``..`` are path components) nor
  with ``-`` (it would read as an option on every command line that names it). It is
  checked before any path is built from it.
- A target whose endpoint is the node itself would replicate the node into itself.
- Two targets on one endpoint would each deliver everything twice and race on marks.
- ``require_tls: true`` in fanout.yaml: a plain ``http://`` endpoint that is not loopback
  would send the target's token in clear.
- A source directory inside ``datalog_dir`` (``.tmp/`` included) is scanned as data by the
  distributor and cleaned by the node's recovery.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import urllib.parse
from pathlib import Path

from fanout.config import NodeConfig
from fanout.errors import ConfigError
from fanout.ids import ID_PATTERN, ID_RULE
from fanout.tlsconfig import check_require_tls

TARGET_NAME_RE = re.compile(f"^(?![.-]){ID_PATTERN}$")  # an id, not starting with . or -
TARGET_NAME_RULE = f"{ID_RULE}, not starting with '.' or '-'"
_ANY = ("0.0.0.0", "::", "")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a target name, or None."""
    if not isinstance(name, str) or not TARGET_NAME_RE.match(name):
        return f"must be {TARGET_NAME_RULE} (got {name!r})"
    return None


def is_inside(path: Path, parent: Path) -> bool:
    """``path`` is ``parent`` or below it, symlinks resolved (the path need not exist)."""
    p, d = os.path.realpath(path), os.path.realpath(parent)
    return p == d or p.startswith(d.rstrip(os.sep) + os.sep)


def source_dir_problem(source_dir: Path, datalog_dir: Path) -> str | None:
    if is_inside(source_dir, datalog_dir):
        return (f"{source_dir} is inside datalog_dir {datalog_dir}: the distributor takes "
                "every file there for data and the node's recovery cleans .tmp/")
    return None


def endpoint_key(url: str) -> tuple[str, str, int, str]:
    """A URL's identity: scheme, host (lower case), port (default filled in), path."""
    u = urllib.parse.urlsplit(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    return u.scheme, (u.hostname or "").lower(), port, u.path.rstrip("/")


def _addresses(host: str, port: int) -> set[str]:
    with contextlib.suppress(OSError, UnicodeError):
        return {str(ai[4][0]) for ai in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    return {host}


def _local_addresses() -> set[str]:
    import psutil

    addrs = {"127.0.0.1", "::1"}
    with contextlib.suppress(OSError):
        for entries in psutil.net_if_addrs().values():
            addrs.update(e.address.split("%")[0] for e in entries)
    return addrs


def is_self(endpoint: str, node: NodeConfig) -> bool:
    """``endpoint`` reaches ``node``'s own listen address (same port, a shared address)."""
    _, host, port, _ = endpoint_key(endpoint)
    if port != node.port:
        return False  # the cheap test first: no name resolution for most targets
    addrs = _addresses(host, port)
    if node.host in _ANY:
        return bool(addrs & _local_addresses())
    return bool(addrs & _addresses(node.host, node.port))


def check_target(source: Path, name: str, endpoint: str, source_dir: Path,
                 node: NodeConfig | None, siblings: dict[str, tuple[Path, str]]) -> None:
    """Raise ConfigError (naming ``source`` and the key) if this target cannot be used.

    ``siblings``: the node's other targets, name -> (file, endpoint)."""
    problem = name_problem(name)
    if problem:
        raise ConfigError(source, "target", problem)
    if node is not None:
        problem = source_dir_problem(source_dir, node.datalog_dir)
        if problem:
            raise ConfigError(source, "source_dir", problem,
                              hint=f"use {node.datalog_dir.parent / 'targets' / name}")
        if is_self(endpoint, node):
            raise ConfigError(source, "sink.endpoint",
                              f"{endpoint} is this node itself ({node.id}, listening on "
                              f"{node.host}:{node.port}): it would replicate into itself")
        check_require_tls(node.require_tls, source, endpoint, "sink.endpoint")
    key = endpoint_key(endpoint)
    for other, (path, other_endpoint) in sorted(siblings.items()):
        if other != name and endpoint_key(other_endpoint) == key:
            raise ConfigError(source, "sink.endpoint",
                              f"{endpoint} is also the endpoint of target {other!r} ({path}): "
                              "two forwarders would deliver everything twice",
                              hint=f"fanout target remove --name {other}, or use another "
                                   "endpoint")

