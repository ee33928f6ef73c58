"""inotify on the datalog directory: a wake-up and the names it saw.

The node publishes by renaming from ``.tmp/`` (``IN_MOVED_TO``); ``IN_CREATE`` covers a
file linked or written straight in. inotify merges only identical consecutive unread
events (the same name twice is still that name) and drops every event past
``max_queued_events`` (see inotify(7)), then queues ``IN_Q_OVERFLOW``. So the names are
complete unless the queue overflowed or the watch was lost: ``Drained.full`` says the
caller must scan the whole directory instead of trusting the names.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from inotify_simple import INotify, parse_events
from inotify_simple import flags as F

MASK = F.MOVED_TO | F.CREATE | F.DELETE_SELF | F.MOVE_SELF | F.ONLYDIR
_NAMED = F.MOVED_TO | F.CREATE
# One read takes whatever fits; a read that left less room than one more event could need
# (header + NAME_MAX + NUL) emptied the queue, so no second read to learn EAGAIN.
_READ_SIZE = 65536
_EVENT_MAX = 16 + 256


@dataclass
class Drained:
    """What one ``drain`` saw."""

    seen: bool = False  # any event at all
    overflow: bool = False  # IN_Q_OVERFLOW: events were lost
    lost_watch: bool = False  # the directory went away (or was moved)
    names: list[str] = field(default_factory=list)  # created/moved-in entries, in order

    @property
    def full(self) -> bool:
        """The names may be incomplete: only a scan of the directory finds everything."""
        return self.overflow or self.lost_watch


class Watcher:
    """One inotify instance watching one directory."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._inotify = INotify(nonblocking=True)
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

    def drain(self) -> Drained:
        """Read every queued event without blocking. Names of subdirectories and of events
        from a previous watch of the directory are left out."""
        out = Drained()
        fd = self._inotify.fileno()
        while True:
            try:
                data = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                return out
            if not data:
                return out
            out.seen = True
            for ev in parse_events(data):
                mask = ev.mask
                if mask & _NAMED and ev.wd == self._wd and not mask & F.ISDIR:
                    out.names.append(ev.name)
                elif mask & F.Q_OVERFLOW:
                    out.overflow = True
                elif mask & (F.DELETE_SELF | F.MOVE_SELF | F.IGNORED) and ev.wd == self._wd:
                    self._wd = None  # the directory went away; the caller re-adds the watch
                    out.lost_watch = True
            if len(data) <= _READ_SIZE - _EVENT_MAX:
                return out

    def close(self) -> None:
        self._inotify.close()
