"""Compatibility name: the instance lock lives in ``fanout.fileio``.

Kept only until ``fanout/cli`` imports ``fanout.fileio`` directly; new code imports that.
"""

from fanout.fileio import (
    EXIT_LOCKED,
    LOCK_SUFFIX,
    Holder,
    InstanceLock,
    InstanceLocked,
    acquire,
    held_locks,
    holder,
    lock_path,
)

__all__ = ["EXIT_LOCKED", "LOCK_SUFFIX", "Holder", "InstanceLock", "InstanceLocked", "acquire",
           "held_locks", "holder", "lock_path"]
