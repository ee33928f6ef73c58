"""What waits in a target's source directory, measured by the node at scrape time.

A forwarder reports its own backlog in its state file, but a forwarder that is frozen,
hung or dead stops updating that file: its figures freeze exactly when the lag matters.
The node measures the directory itself, so ``fanout_target_lag_seconds`` keeps growing
while nothing delivers, whatever state the forwarder is in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fanout.datalog.format import parse_file_name


@dataclass(frozen=True)
class Backlog:
    files: int
    bytes: int
    oldest_mtime: float | None  # None: no file waits

    def lag_seconds(self, now: float) -> float:
        """Age of the oldest waiting file (hard links share the datalog file's mtime, so
        this is the time since the node wrote it); 0 when nothing waits."""
        return 0.0 if self.oldest_mtime is None else max(0.0, now - self.oldest_mtime)


def scan_backlog(directory: Path) -> Backlog | None:
    """One scandir pass over datalog file names (quarantine and temp files are skipped);
    None when the directory cannot be listed (the caller falls back to the state file)."""
    files = size = 0
    oldest: float | None = None
    try:
        with os.scandir(directory) as it:
            for entry in it:
                if parse_file_name(entry.name) is None:
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # delivered and unlinked while we listed
                    continue
                files += 1
                size += st.st_size
                if oldest is None or st.st_mtime < oldest:
                    oldest = st.st_mtime
    except OSError:
        return None
    return Backlog(files, size, oldest)


@dataclass(frozen=True)
class FsUsage:
    avail_bytes: int
    size_bytes: int
    files_free: int
    files: int


def fs_usage(path: Path) -> FsUsage | None:
    """The filesystem holding ``path``, as an unprivileged writer sees it (``f_bavail``:
    the node does not run as root under the shipped units); None if it cannot be read."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return FsUsage(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize,
                   st.f_favail, st.f_files)
