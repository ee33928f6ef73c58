"""Which mount a path lives on, read from ``/proc/self/mountinfo``.

Only used to word refusals so an operator can act on them: a bind mount shares its
source's ``st_dev``, so the device number alone cannot explain why link(2) fails with
EXDEV; the mount point can ("/srv/targets is a separate mount of /dev/vda").
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = "/proc/self/mountinfo"
_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo (proc(5)): the fields an operator needs to tell mounts apart."""

    mount_id: int
    dev: str  # "major:minor", as st_dev of files on it
    root: str  # the directory of the filesystem mounted here ("/" unless a bind mount)
    mount_point: str
    fstype: str
    source: str

    def describe(self) -> str:
        what = f"{self.fstype} {self.source}"
        if self.root != "/":
            what += f" (bind of {self.root})"
        return f"mount {self.mount_point} [id {self.mount_id}, {what}]"


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \040, \011, \012, \134.
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def read_mountinfo(path: str = MOUNTINFO) -> list[Mount]:
    """Every mount visible to this process, in the kernel's order (later over-mounts last)."""
    mounts: list[Mount] = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return mounts
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        tail = right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        try:
            mount_id = int(fields[0])
        except ValueError:
            continue
        mounts.append(Mount(mount_id, fields[2], _unescape(fields[3]), _unescape(fields[4]),
                            tail[0], _unescape(tail[1])))
    return mounts


def mount_of(path: Path | str, mounts: list[Mount] | None = None) -> Mount | None:
    """The mount holding ``path``: the longest mount point that is a prefix of its real path
    (the last one listed wins when a mount point is mounted over)."""
    real = os.path.realpath(path)
    best: Mount | None = None
    for m in read_mountinfo() if mounts is None else mounts:
        mp = m.mount_point
        inside = real == mp or real.startswith(mp.rstrip("/") + "/")
        if inside and (best is None or len(mp) >= len(best.mount_point)):
            best = m
    return best


def device_of(path: Path | str) -> str:
    """``major:minor`` of the filesystem holding ``path``, as mountinfo prints it."""
    st = os.stat(path)
    return f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"


def where(path: Path | str) -> str:
    """``st_dev 254:0, mount / [id 27, ext4 /dev/vda]``: how a refusal names a location."""
    try:
        dev = device_of(path)
    except OSError as exc:
        return f"cannot stat: {exc.strerror}"
    m = mount_of(path)
    return f"st_dev {dev}, " + (m.describe() if m else "mount unknown")
