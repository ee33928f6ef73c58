"""inotify on the datalog directory: a wake-up, never a list of files.

The node publishes by renaming from ``.tmp/`` (``IN_MOVED_TO``); ``IN_CREATE`` covers a
file linked or written straight in. inotify merges identical unread events and drops any
past ``max_queued_events`` (see inotify(7)), so events are never counted or
trusted for names: any event means "scan now", and ``IN_Q_OVERFLOW`` is reported so the
caller can count it.
"""

from __future__ import annotations

from pathlib import Path

from inotify_simple import INotify
from inotify_simple import flags as F

MASK = F.MOVED_TO | F.CREATE | F.DELETE_SELF | F.MOVE_SELF | F.ONLYDIR


class Watcher:
    """One inotify instance watching one directory."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._inotify = INotify()
        self._wd: int | None = None
        self.rewatch()

    def rewatch(self) -> bool:
        """(Re)add the watch; False while the directory does not exist."""
        try:
            self._wd = self._inotify.add_watch(self.directory, MASK)
        except FileNotFoundError:
            self._wd = None
        return self._wd is not None

    @property
    def watching(self) -> bool:
        return self._wd is not None

    def fileno(self) -> int:
        return self._inotify.fileno()

    def drain(self) -> tuple[bool, bool]:
        """Read every queued event without blocking: (any event, overflow seen)."""
        seen = overflow = False
        while True:
            events = self._inotify.read(timeout=0)
            if not events:
                return seen, overflow
            seen = True
            for ev in events:
                if ev.mask & F.Q_OVERFLOW:
                    overflow = True
                if ev.mask & (F.DELETE_SELF | F.MOVE_SELF | F.IGNORED) and ev.wd == self._wd:
                    self._wd = None  # the directory went away; the caller re-adds the watch

    def close(self) -> None:
        self._inotify.close()
