"""supervisord's XML-RPC API over its unix socket, through supervisor's own transport.

Only the calls fanout needs, with typed results and typed errors: ``Unreachable`` when no
supervisord answers on the socket (not started, stopped, stale socket), ``RPCFault`` when
it answers with a fault (its numeric ``faultCode`` kept, as supervisor's API documents).
"""

from __future__ import annotations

import http.client
import socket
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor import xmlrpc as sv_xmlrpc

from fanout.errors import FanoutError

DEFAULT_TIMEOUT = 10.0

# supervisor.xmlrpc.Faults, the ones fanout looks at
SHUTDOWN_STATE = 6
NOT_RUNNING = 70


class Unreachable(FanoutError):
    """No supervisord answers on the node's socket."""


class RPCFault(FanoutError):
    def __init__(self, method: str, code: int, text: str):
        self.code = code
        super().__init__(f"supervisord {method}: {text} (fault {code})")


class _TimeoutUnixConnection(sv_xmlrpc.UnixStreamHTTPConnection):
    """supervisor's connection, with a timeout: a hung supervisord must not hang status."""

    def __init__(self, socketfile: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.socketfile = socketfile

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socketfile)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class _Transport(sv_xmlrpc.SupervisorTransport):
    def __init__(self, socket_path: Path, timeout: float):
        super().__init__(None, None, f"unix://{socket_path}")
        self._get_connection = lambda: _TimeoutUnixConnection(str(socket_path), timeout)


@dataclass(frozen=True)
class ProcessInfo:
    """One entry of ``getAllProcessInfo`` (times are epoch seconds, 0 when never)."""

    name: str
    group: str
    statename: str
    pid: int
    start: int
    stop: int
    now: int
    exitstatus: int
    spawnerr: str
    description: str

    @classmethod
    def from_rpc(cls, d: dict[str, Any]) -> ProcessInfo:
        return cls(str(d["name"]), str(d["group"]), str(d["statename"]), int(d["pid"]),
                   int(d["start"]), int(d["stop"]), int(d["now"]), int(d["exitstatus"]),
                   str(d.get("spawnerr", "")), str(d.get("description", "")))

    @property
    def namespec(self) -> str:
        return self.name if self.name == self.group else f"{self.group}:{self.name}"


class Supervisor:
    """A connection to one supervisord; use as a context manager (closes the socket)."""

    def __init__(self, socket_path: Path, timeout: float = DEFAULT_TIMEOUT):
        self.socket_path = Path(socket_path)
        self._transport = _Transport(self.socket_path, timeout)
        self._proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=self._transport)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, *args: Any) -> Any:
        fn = self._proxy
        for part in method.split("."):
            fn = getattr(fn, part)
        try:
            return fn(*args)
        except xmlrpc.client.Fault as exc:
            raise RPCFault(method, exc.faultCode, exc.faultString) from None
        except (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError) as exc:
            self._transport.close()
            err = Unreachable(f"no supervisord answers on {self.socket_path}: {exc}")
            err.hint = "fanout up --config FANOUT_YAML"
            raise err from None

    # -- the calls fanout uses -------------------------------------------------------------

    def state(self) -> str:
        return str(self.call("supervisor.getState")["statename"])

    def pid(self) -> int:
        return int(self.call("supervisor.getPID"))

    def processes(self) -> list[ProcessInfo]:
        return [ProcessInfo.from_rpc(d) for d in self.call("supervisor.getAllProcessInfo")]

    def reload_config(self) -> tuple[list[str], list[str], list[str]]:
        """(added, changed, removed) group names since the running configuration."""
        added, changed, removed = self.call("supervisor.reloadConfig")[0]
        return list(added), list(changed), list(removed)

    def add_group(self, name: str) -> None:
        self.call("supervisor.addProcessGroup", name)

    def stop_group(self, name: str) -> None:
        try:
            self.call("supervisor.stopProcessGroup", name, True)
        except RPCFault as exc:
            if exc.code != NOT_RUNNING:
                raise

    def remove_group(self, name: str) -> None:
        self.call("supervisor.removeProcessGroup", name)

    def signal(self, name: str, sig: str) -> None:
        self.call("supervisor.signalProcess", name, sig)

    def shutdown(self) -> None:
        """Ask supervisord to stop everything and exit; already shutting down is fine."""
        try:
            self.call("supervisor.shutdown")
        except RPCFault as exc:
            if exc.code != SHUTDOWN_STATE:
                raise
