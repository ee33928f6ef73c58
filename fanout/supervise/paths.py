"""Where a node's supervision files live: all under ``state_dir``, never under ``/tmp``.

::

    state_dir/supervisor/supervisord.conf       rendered by ``fanout supervisord-config``
    state_dir/supervisor/programs.d/forwarder-T.conf   one per target file (``[include]``)
    state_dir/supervisor/settings.json          options given to ``supervisord-config``
    state_dir/supervisor/supervisord.sock       XML-RPC (mode 0700)
    state_dir/supervisor/supervisord.pid
    state_dir/supervisor/restarts.json          recent starts, for crash-loop detection
    state_dir/alerts.jsonl                      one line per alert
    state_dir/logs/<program>.log                each program's stdout and stderr
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fanout.config import NodeConfig
from fanout.errors import FanoutError

# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107


class SocketPathTooLong(FanoutError):
    """The unix socket path under state_dir does not fit in sockaddr_un."""


@dataclass(frozen=True)
class SupervisePaths:
    state_dir: Path

    @classmethod
    def of(cls, cfg: NodeConfig) -> SupervisePaths:
        return cls(cfg.state_dir)

    @property
    def dir(self) -> Path:
        return self.state_dir / "supervisor"

    @property
    def conf(self) -> Path:
        return self.dir / "supervisord.conf"

    @property
    def programs_dir(self) -> Path:
        return self.dir / "programs.d"

    @property
    def settings(self) -> Path:
        return self.dir / "settings.json"

    @property
    def socket(self) -> Path:
        return self.dir / "supervisord.sock"

    @property
    def pidfile(self) -> Path:
        return self.dir / "supervisord.pid"

    @property
    def restarts(self) -> Path:
        return self.dir / "restarts.json"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def alerts(self) -> Path:
        return self.state_dir / "alerts.jsonl"

    @property
    def server_url(self) -> str:
        return f"unix://{self.socket}"

    def check_socket(self) -> None:
        if len(str(self.socket).encode()) > MAX_SOCKET_PATH:
            err = SocketPathTooLong(
                f"supervisord's socket path {self.socket} is longer than "
                f"{MAX_SOCKET_PATH} bytes, the limit of a unix socket address")
            err.hint = "set state_dir in fanout.yaml to a shorter path"
            raise err
