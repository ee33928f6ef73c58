"""Store backends behind one small interface (see :mod:`fanout.store.base`).

``sqlite`` (the default) keeps everything on disk; ``memory`` keeps data and marks in RAM
and only ``last_seq`` on disk.
"""

from __future__ import annotations

from pathlib import Path

from .base import Delete, Entry, Meta, Outcome, Store, Update
from .memory import MemoryStore
from .sqlite import SqliteStore

MEMORY_SEQ_FILE = "memory-store.seq"


def open_store(kind: str, path: Path | None, state_dir: Path) -> Store:
    """Open the store of ``kind``: ``sqlite`` at ``path``, or ``memory`` whose last_seq
    lives in ``state_dir/memory-store.seq``."""
    if kind == "sqlite":
        if path is None:
            raise ValueError("store type sqlite needs a path")
        return SqliteStore(Path(path))
    if kind == "memory":
        return MemoryStore(Path(state_dir) / MEMORY_SEQ_FILE)
    raise ValueError(f"unknown store type {kind!r} (expected 'sqlite' or 'memory')")


__all__ = [
    "Delete",
    "Entry",
    "MemoryStore",
    "Meta",
    "Outcome",
    "SqliteStore",
    "Store",
    "Update",
    "open_store",
]
