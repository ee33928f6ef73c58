"""File primitives every process shares: durable atomic writes, directory fsync, the
single-instance lock, and the one bounded scanner of datalog file names.

Durable write (``write_atomic``): temp file in the same directory, fsync, rename over the
target, fsync of the directory, so after a crash the file holds the old bytes or the new
ones, never a mix, and a completed write survives power loss.

Datalog names (``is_datalog_name``, ``iter_datalog``, ``oldest_datalog_names``): one
grammar, ``<first seq, 20 digits>-<node id>.dlog``, checked in one place. A directory may
hold a million files (a dead target's backlog), so nothing here lists a directory into
memory: names are streamed from ``scandir`` and selected through a bounded heap.

Instance lock (``acquire``, ``holder``, ``held_locks``): one process per role per node,
an exclusive ``flock`` on ``state_dir/<role>.lock``.

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
import heapq
import itertools
import os
import re
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import psutil

from fanout.errors import FanoutError
from fanout.ids import ID_PATTERN

# -- durable atomic write ------------------------------------------------------------------

TEMP_SUFFIX = ".tmp"
_TEMP_RE = re.compile(r"\..+\.\d+\.tmp")


def is_temp_name(name: str) -> bool:
    """A temp file ``write_atomic`` left behind when its process died mid-write."""
    return _TEMP_RE.fullmatch(name) is not None


def fsync_dir(path: Path | str) -> None:
    """Make the entries of directory ``path`` (a create, rename or unlink) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path | str, data: bytes | str, *, mode: int | None = None,
                 durable: bool = True, sync_dir: bool = True) -> None:
    """Replace ``path`` with ``data`` (str is written as UTF-8) so that readers and a
    crash see the old content or the new one, never a part.

    The temp file ``.<name>.<pid>.tmp`` sits next to ``path`` (a rename never crosses a
    filesystem) and is removed on any failure. ``mode`` is set on the temp file before the
    first byte is written (a private file is never briefly readable by others); None
    creates it as ``open()`` does (0666 minus the umask). ``durable=False`` skips both
    fsyncs, for files that are only a view rebuilt on every start. ``sync_dir=False``
    leaves the directory fsync to the caller (``fsync_dir``), for a caller that must know
    whether the rename happened when that fsync fails."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                     0o666 if mode is None else mode)
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable and sync_dir:
        fsync_dir(path.parent)


@contextlib.contextmanager
def exclusive(lock_file: Path | str, mode: int = 0o600) -> Generator[None, None, None]:
    """Hold an exclusive ``flock`` on ``lock_file`` (created if missing) for the block,
    waiting for the current holder: serializes read-modify-write cycles between processes.
    The lock file itself stays (deleting it would race with the next taker)."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- datalog names -----------------------------------------------------------------------

DATALOG_SUFFIX = ".dlog"
# The one grammar of a datalog file name: <first seq, 20 digits>-<node id>.dlog
DATALOG_NAME_RE = re.compile(rf"(\d{{20}})-({ID_PATTERN})\.dlog")
_CHUNK = 8192  # directory entries filtered at a time by oldest_datalog_names


def parse_datalog_name(name: str) -> tuple[int, str] | None:
    """(first seq, node id) of a datalog file name, or None for anything else."""
    m = DATALOG_NAME_RE.fullmatch(name)
    return (int(m.group(1)), m.group(2)) if m else None


def is_datalog_name(name: str) -> bool:
    """The one check of a datalog file name (temp files, ``.tmp/`` and strays fail it)."""
    return DATALOG_NAME_RE.fullmatch(name) is not None


def iter_datalog(directory: Path | str) -> Generator[os.DirEntry[str], None, None]:
    """Every entry of ``directory`` named like a datalog file, in directory order, streamed
    (O(1) memory). The directory is opened at the call, so a missing one raises here;
    ``close()`` the generator to release it early."""
    it = os.scandir(directory)

    def entries() -> Generator[os.DirEntry[str], None, None]:
        with it:
            for entry in it:
                if is_datalog_name(entry.name):
                    yield entry

    return entries()


def oldest_datalog_names(directory: Path | str, limit: int, after: str | None = None
                         ) -> tuple[list[str], int, str | None]:
    """Up to ``limit`` datalog names after ``after`` in name (= replay) order, how many such
    names the directory holds, and the cursor for the next call (None: nothing left).

    Memory is O(limit) whatever the directory holds. A large backlog takes one directory
    pass per call, so the pass filters by suffix and selects in chunks with list
    comprehensions and C-level heap work rather than per name, and the full name check
    runs only on the winners: a stray ``*.dlog`` is rare and only costs a slot in this
    window (the cursor moves past it, so continue from the cursor, not the last name)."""
    best: list[str] = []
    count = 0
    with os.scandir(directory) as it:
        while True:
            chunk = [e.name for e in itertools.islice(it, _CHUNK)]
            if not chunk:
                break
            if after is None:
                chunk = [n for n in chunk if n.endswith(DATALOG_SUFFIX)]
            else:
                chunk = [n for n in chunk if n > after and n.endswith(DATALOG_SUFFIX)]
            count += len(chunk)
            best += chunk
            if len(best) > limit:
                best = heapq.nsmallest(limit, best)
    best.sort()
    valid = [n for n in best if is_datalog_name(n)]
    count -= len(best) - len(valid)
    return valid, count, best[-1] if best else None


def newest_datalog_name(directory: Path | str) -> str | None:
    """The last datalog file name in replay order, or None; one scandir pass."""
    return max((e.name for e in iter_datalog(directory)), default=None)


# -- instance lock -------------------------------------------------------------------------

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
