"""fanout.fileio: the file primitives every process shares."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fanout import fileio
from fanout.datalog.format import file_name


def test_write_atomic_replaces_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    fileio.write_atomic(path, "old\n")
    fileio.write_atomic(path, b"new\n")
    assert path.read_bytes() == b"new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_write_atomic_private_mode_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    old = os.umask(0)
    try:
        fileio.write_atomic(path, "s3cret\n", mode=0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_failed_write_keeps_the_old_file_and_removes_the_temp(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "seq"
    fileio.write_atomic(path, "5\n")

    def no_space(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError) as err:
        fileio.write_atomic(path, "6\n")
    assert err.value.errno == errno.ENOSPC
    assert path.read_text() == "5\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seq"]
    # durable=False never fsyncs: a view file is still written
    fileio.write_atomic(path, "7\n", durable=False)
    assert path.read_text() == "7\n"


def test_temp_names_are_recognized(tmp_path: Path) -> None:
    assert fileio.is_temp_name(f".{file_name(1, 'n')}.{os.getpid()}.tmp")
    assert not fileio.is_temp_name(".tmp")  # the node's prepare directory
    assert not fileio.is_temp_name(file_name(1, "n"))


def test_one_name_check() -> None:
    good = file_name(42, "paris-1")
    assert fileio.is_datalog_name(good) and fileio.parse_datalog_name(good) == (42, "paris-1")
    for bad in (good + "\n", good + ".tmp", "." + good, "42-x.dlog", "0-stray.dlog",
                f"{1:020d}-{'x' * 65}.dlog", f"{1:020d}-a/b.dlog"):
        assert not fileio.is_datalog_name(bad), bad
        assert fileio.parse_datalog_name(bad) is None, bad


def _publish(directory: Path, seqs: range) -> list[str]:
    names = [file_name(s, "n1") for s in seqs]
    for n in names:
        (directory / n).write_bytes(b"x")
    return names


def test_oldest_names_are_ordered_bounded_and_skip_strays(tmp_path: Path) -> None:
    names = _publish(tmp_path, range(1, 11))
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / file_name(99, "n1")).write_bytes(b"in progress")
    (tmp_path / "notes.txt").write_text("not a datalog file")
    (tmp_path / "0-stray.dlog").write_text("named like one, but not one")
    got, count, cursor = fileio.oldest_datalog_names(tmp_path, 4)
    assert got == names[:3] and count == 10 and cursor == names[2]  # the stray costs a slot
    got, count, cursor = fileio.oldest_datalog_names(tmp_path, 4, after=names[7])
    assert got == names[8:] and count == 2 and cursor == names[9]
    assert fileio.oldest_datalog_names(tmp_path, 4, after=names[9]) == ([], 0, None)
    assert fileio.newest_datalog_name(tmp_path) == names[-1]
    assert sorted(e.name for e in fileio.iter_datalog(tmp_path)) == names


def test_iter_datalog_raises_at_the_call_for_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        fileio.iter_datalog(tmp_path / "missing")
    assert fileio.newest_datalog_name(tmp_path) is None


def _waiters(path: Path) -> int:
    """Processes blocked in flock() on ``path`` (``->`` lines of /proc/locks)."""
    ino = path.stat().st_ino
    n = 0
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if "->" in parts and "FLOCK" in parts and int(parts[-3].rsplit(":", 1)[1]) == ino:
            n += 1
    return n


def test_exclusive_serializes_processes(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    marker = tmp_path / "child-has-it"
    with fileio.exclusive(lock):
        child = subprocess.Popen([sys.executable, "-c", (
            "import sys; from pathlib import Path; from fanout.fileio import exclusive\n"
            "with exclusive(sys.argv[1]):\n    Path(sys.argv[2]).write_text('1')\n"),
            str(lock), str(marker)])
        try:
            deadline = time.monotonic() + 60
            while _waiters(lock) == 0:  # the child blocks on our lock
                assert child.poll() is None and time.monotonic() < deadline
                time.sleep(0.02)
            assert not marker.exists()
        except BaseException:
            child.kill()
            child.wait()
            raise
    assert child.wait(timeout=60) == 0 and marker.read_text() == "1"
