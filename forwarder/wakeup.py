"""inotify wake-ups for a source directory, delivered to an asyncio.Event.

A hard link made by the distributor arrives as IN_CREATE; a rename as IN_MOVED_TO. Events
are never counted: any event (or an overflow) only means "look again". The watch also
keeps how far apart wake-ups come (``interval``): the forwarder lingers for company only
when files arrive back to back.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from inotify_simple import INotify
from inotify_simple import flags as F


class DirWatch:
    def __init__(self, directory: Path, event: asyncio.Event):
        self._event = event
        self._ino = INotify()
        self._ino.add_watch(str(directory), F.CREATE | F.MOVED_TO)
        self._fd = self._ino.fileno()
        os.set_blocking(self._fd, False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._readable)
        self.last = 0.0  # monotonic time of the last wake-up
        self.count = 0  # wake-ups so far: unchanged means nothing arrived since
        self._gaps = (float("inf"), float("inf"))  # the last two times between wake-ups

    @property
    def interval(self) -> float:
        """How soon the next file is expected: the longer of the last two gaps between
        wake-ups, so the first file after a pause, and a trickle, count as alone."""
        return max(self._gaps)

    def _note(self) -> None:
        now = time.monotonic()
        self._gaps = (self._gaps[1], now - self.last)
        self.last = now
        self.count += 1

    def _readable(self) -> None:
        # Drain the raw bytes without building an object per event: a 100,000-file
        # backlog linked at once must not cost memory here.
        try:
            while os.read(self._fd, 65536):
                pass
        except BlockingIOError:
            pass
        self._note()
        self._event.set()

    def close(self) -> None:
        self._loop.remove_reader(self._ino.fileno())
        self._ino.close()
