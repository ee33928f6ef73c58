"""Atomic, durable publication of datalog files.

Publishing is two-phase so that the node's store can be the commit point:

1. ``prepare``: write the file under ``.tmp/``, fsync it and fsync ``.tmp/``.
2. the caller commits its store transaction (which records ``last_seq``);
3. ``publish``: rename into the datalog directory and fsync that directory.

After a crash, ``recover(last_seq)`` finishes step 3 for every prepared file the store
committed and deletes the others. The store alone decides, so the datalog and the store
always agree, even though the distributor moves published files away at any moment.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from fanout.datalog.format import Record, encode_frames, file_header, file_name, parse_file_name
from fanout.datalog.reader import newest_name
from fanout.errors import DiskFullError
from fanout.fileio import fsync_dir, is_temp_name, write_atomic

TMP_DIR = ".tmp"
RESTORING = ".restoring"  # suffix of a restore cut short by a version before fanout.fileio
_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True, slots=True)
class Prepared:
    name: str
    tmp: str  # its path under .tmp/, as text: pathlib costs show on the commit path
    first_seq: int
    last_seq: int
    size: int
    # The file's bytes, kept until publication so a file that vanishes from .tmp/ after
    # the store committed can be written again (see ``restore``).
    data: bytes = field(default=b"", repr=False, compare=False)

    @property
    def tmp_path(self) -> Path:
        return Path(self.tmp)


class DatalogWriter:
    """Owns ``datalog_dir`` and its ``.tmp/``; one writer per directory."""

    def __init__(self, datalog_dir: Path, node_id: str):
        self.dir = Path(datalog_dir)
        self.tmp = self.dir / TMP_DIR
        self.node_id = node_id
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._dir_text, self._tmp_text = str(self.dir), str(self.tmp)

    def prepare(self, records: list[Record]) -> Prepared:
        """Write ``records`` durably under .tmp/; raises DiskFullError on ENOSPC, leaving
        no partial file behind."""
        first, last = records[0].seq, records[-1].seq
        name = file_name(first, self.node_id)
        path = f"{self._tmp_text}/{name}"
        data = file_header(len(records)) + encode_frames(records)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.fsync(fd)
            finally:
                os.close(fd)
            fsync_dir(self._tmp_text)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            if exc.errno in _FULL:
                raise DiskFullError(f"no space left to write datalog file {path}") from exc
            raise
        return Prepared(name, path, first, last, len(data), data)

    def publish(self, prep: Prepared) -> None:
        """Rename into the datalog directory (as ``prep.name``) and make the rename
        durable. Text paths: this runs at every commit, where pathlib showed."""
        os.rename(prep.tmp, f"{self._dir_text}/{prep.name}")
        fsync_dir(self._dir_text)

    def restore(self, prep: Prepared) -> Path:
        """Publish a prepared file whose ``.tmp/`` copy vanished, from its bytes in memory.

        Written by ``write_atomic`` under a hidden temp name in the datalog directory
        itself (readers and the distributor skip names that are not datalog names),
        fsynced, then renamed: the file appears whole or not at all, without passing
        through ``.tmp/`` again.
        """
        final = self.dir / prep.name
        if final.exists():
            return final
        if not prep.data:
            raise FileNotFoundError(errno.ENOENT, "no bytes kept to restore", str(final))
        write_atomic(final, prep.data)
        return final

    def discard(self, prep: Prepared) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(prep.tmp)

    def recover(self, committed_seq: int) -> tuple[int, int]:
        """Finish or undo what a crash interrupted; returns (published, discarded).

        A prepared file is complete (it was fsynced before the store committed) exactly
        when the store's committed seq covers its first record; anything else under .tmp/
        never reached the store and is removed.
        """
        published = discarded = 0
        for entry in sorted(os.scandir(self.tmp), key=lambda e: e.name):
            parsed = parse_file_name(entry.name)
            if parsed is not None and parsed[0] <= committed_seq:
                os.rename(entry.path, self.dir / entry.name)
                published += 1
            else:
                os.unlink(entry.path)
                discarded += 1
        for entry in os.scandir(self.dir):
            name = entry.name
            if is_temp_name(name) or (name.startswith(".") and name.endswith(RESTORING)):
                os.unlink(entry.path)  # a restore cut short: its file never appeared
        if published or discarded:
            fsync_dir(self.dir)
            fsync_dir(self.tmp)
        return published, discarded

    def newest_published_seq(self) -> int | None:
        """First seq of the newest file still in the datalog directory, if any."""
        name = newest_name(self.dir)
        if name is None:
            return None
        parsed = parse_file_name(name)
        return parsed[0] if parsed else None
