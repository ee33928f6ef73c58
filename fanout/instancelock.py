"""One process per role per node: an exclusive ``flock`` on ``state_dir/<role>.lock``.

The node (``node.lock``), the distributor (``distributor.lock``) and every forwarder
(``forwarder-<target>.lock``) take their lock before any recovery or any other file is
touched, and hold it for their whole life (the kernel drops it when the process dies, so
a crash never leaves a stale lock). The holder then writes its pid and command line into
the file, for the message a second start prints and for ``fanout status``/``down`` to find
orphans.

A second start never disturbs the holder: it opens the file without truncating it, fails
``flock(LOCK_NB)``, reads who holds it and exits ``EXIT_LOCKED`` (75, EX_TEMPFAIL: "try
again later"). Not 78 (EX_CONFIG): the configuration is fine and the condition is
temporary (an old instance still stopping, an orphan being cleaned up), so supervisord's
``startretries`` and systemd's ``Restart=on-failure`` may retry it, and a supervisor that
keeps failing ends FATAL / failed with this message in its log.

``holder()`` answers "who holds this lock?" without taking it (``/proc/locks``), so a probe
can never make a starting process fail.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from fanout.errors import FanoutError

LOCK_SUFFIX = ".lock"
_HOLDER_WAIT = 1.0  # seconds to wait for a new holder to write its pid


@dataclass(frozen=True)
class Holder:
    pid: int
    cmdline: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.cmdline or 'command line unknown'})"


class InstanceLocked(FanoutError):
    """Another live process holds this role's lock: a second instance must not start."""

    def __init__(self, role: str, path: Path, holder: Holder | None):
        self.role = role
        self.path = path
        self.holder = holder
        who = str(holder) if holder else "a process that cannot be identified"
        super().__init__(f"another {role} is already running for this node: {who} "
                         f"holds {path}")
        self.hint = ("stop that one first (fanout down, or kill "
                     f"{holder.pid if holder else 'it'}); a second {role} on the same "
                     "state would corrupt it")


def lock_path(state_dir: Path, role: str) -> Path:
    return Path(state_dir) / f"{role}{LOCK_SUFFIX}"


class InstanceLock:
    """The held lock; ``release()`` (or process exit) lets the next instance start."""

    def __init__(self, role: str, path: Path, fd: int):
        self.role = role
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # drops the flock; the file stays (deleting it would race)
            self._fd = None

    def __enter__(self) -> InstanceLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(state_dir: Path, role: str) -> InstanceLock:
    """Take ``state_dir/<role>.lock`` or raise InstanceLocked naming the holder.

    Creates ``state_dir`` if missing (nothing else). The file is opened without O_TRUNC and
    only rewritten once the lock is ours, so a failed attempt leaves the holder's pid."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    path = lock_path(state_dir, role)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        raise InstanceLocked(role, path, _wait_holder(path)) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{_cmdline(os.getpid())}\n".encode(), 0)
    except OSError:
        os.close(fd)
        raise
    return InstanceLock(role, path, fd)


def _cmdline(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""


def _read(path: Path) -> tuple[int | None, str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None, ""
    first, _, rest = text.partition("\n")
    try:
        return int(first.strip()), rest.strip()
    except ValueError:
        return None, ""


def _lockers(path: Path) -> list[int]:
    """Pids holding a flock on ``path``'s inode, per ``/proc/locks`` (matched by inode
    number: overlay filesystems report another device there than stat() does)."""
    try:
        ino = os.stat(path).st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    pids = []
    for line in lines:
        parts = line.split()
        if "->" in parts:  # a waiter, not a holder
            continue
        if len(parts) >= 6 and parts[1] == "FLOCK":
            with contextlib.suppress(ValueError, IndexError):
                if int(parts[5].rsplit(":", 1)[1]) == ino:
                    pids.append(int(parts[4]))
    return pids


def holder(path: Path) -> Holder | None:
    """The live process holding ``path`` locked, or None if nobody holds it. Never takes
    the lock itself."""
    lockers = _lockers(path)
    if not lockers:
        return None
    pid, cmd = _read(path)
    if pid is None or pid not in lockers:
        # a new holder has not written its pid yet, or the pid was inherited: trust the kernel
        pid, cmd = lockers[0], ""
    return Holder(pid, cmd or _cmdline(pid))


def _wait_holder(path: Path) -> Holder | None:
    """Whoever holds ``path``; gives a holder that just took it a moment to write its pid."""
    deadline = time.monotonic() + _HOLDER_WAIT
    while True:
        pid, cmd = _read(path)
        lockers = _lockers(path)
        if pid is not None and (pid in lockers or not lockers):
            return Holder(pid, cmd or _cmdline(pid))
        if time.monotonic() > deadline:
            return holder(path)
        time.sleep(0.02)


def held_locks(state_dir: Path) -> dict[str, Holder]:
    """Every role lock in ``state_dir`` held by a live process: role -> holder."""
    found: dict[str, Holder] = {}
    with contextlib.suppress(OSError):
        for path in sorted(Path(state_dir).glob(f"*{LOCK_SUFFIX}")):
            h = holder(path)
            if h is not None:
                found[path.name[: -len(LOCK_SUFFIX)]] = h
    return found
