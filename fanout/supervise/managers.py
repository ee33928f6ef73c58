"""Which ``Manager`` drives a node: ``manager:`` in its ``fanout.yaml``.

Apart from ``fanout.supervise.manager`` (the interface) because the two implementations
import that interface: choosing one here keeps the imports one-way.
"""

from __future__ import annotations

from fanout.config import NodeConfig
from fanout.supervise.manager import Manager


def manager_for(cfg: NodeConfig) -> Manager:
    if cfg.manager == "systemd":
        from fanout.supervise.systemd import SystemdManager

        return SystemdManager()
    from fanout.supervise.supervisord import SupervisordManager

    return SupervisordManager()
