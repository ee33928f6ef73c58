"""Reading a target's source directory in order, in batches, with bounded memory.

Names are listed a bounded window at a time (``oldest_datalog_names``) and files are read one at a
time, so a backlog of a million files costs one window of names and one file of records.
Records at or below the cursor (already acknowledged before a restart) are skipped.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fanout.datalog.format import (
    FILE_HEADER,
    Record,
    encode_record,
    frame_ok,
    parse_file_name,
)
from fanout.datalog.reader import read_file
from fanout.errors import DatalogCorruptError
from fanout.fileio import iter_datalog, oldest_datalog_names

# Names listed per pass: an eighth of what is waiting, within these bounds. 65,536 names
# are about 6 MB; a million-file backlog then costs 16 directory passes, not 4,000.
MIN_WINDOW = 256
MAX_WINDOW = 65536
# Python objects cost ~10x their bytes: cap records per chunk so tiny records cannot
# turn a 1 MiB chunk into tens of MB of memory.
MAX_CHUNK_RECORDS = 2048


@dataclass
class Chunk:
    """One batch to send, and what acknowledging it settles."""

    records: list[Record]
    payload: bytes
    last_seq: int  # last record processed (sent or excluded)
    files_done: list[str]  # files fully covered: unlink after the ack
    files: list[str] = field(default_factory=list)  # every file this chunk touched
    excluded: int = 0
    resume: tuple[str, int] | None = None  # (file, next record index) if one is cut

    def extend(self, more: Chunk) -> Chunk:
        """This chunk followed by ``more``, read right after it by the same reader."""
        return Chunk(self.records + more.records, self.payload + more.payload,
                     max(self.last_seq, more.last_seq), self.files_done + more.files_done,
                     self.files + [f for f in more.files if f not in self.files],
                     self.excluded + more.excluded, more.resume)


class SourceReader:
    def __init__(self, directory: Path, cursor_seq: int, verify: bool = True):
        self.dir = Path(directory)
        self._dir = str(self.dir)  # joined as text: pathlib cost ~10% of the live path
        self.verify = verify  # record checksums; see Forwarder for when they are skipped
        self.cursor_seq = cursor_seq
        self._names: deque[str] = deque()
        self._last_listed: str | None = None
        self._file: str | None = None
        self._records: list[Record] = []
        self._index = 0
        self._deferred: Exception | None = None
        self._window = MIN_WINDOW
        self._more = False  # the last listing left names out (a window's worth was taken)
        self._listings = 0

    def _next_name(self, rescan: bool, taken: list[str], may_list: bool) -> str | None:
        """Next name in order. ``rescan`` lists from the start of the directory (to find
        files that arrived out of order) but never returns a name this chunk ``taken``.
        Without ``may_list``, only names already listed are returned."""
        if not self._names and may_list:
            self._listings += 1
            after = None if rescan else self._last_listed
            while True:
                names, waiting, cursor = oldest_datalog_names(
                    self._dir, self._window + len(taken), after=after)
                if names or cursor is None:
                    break
                after = cursor  # the window held only stray names: look past them
            self._window = max(MIN_WINDOW, min(MAX_WINDOW, waiting // 8))
            self._more = waiting > len(names)
            skip = set(taken)
            if self._file is not None:
                skip.add(self._file)
            names = [n for n in names if n not in skip]
            self._names.extend(names)
            if names:
                self._last_listed = max(names[-1], self._last_listed or "")
        return self._names.popleft() if self._names else None

    def _open_next(self, rescan: bool, taken: list[str], may_list: bool = True) -> bool:
        """Load the next file (DatalogCorruptError propagates: the caller decides)."""
        while True:
            name = self._next_name(rescan, taken, may_list)
            rescan = False
            if name is None:
                return False
            try:
                records = read_file(os.path.join(self._dir, name), self.verify)
            except FileNotFoundError:
                continue  # removed by retention between listing and reading
            self._file, self._records, self._index = name, records, 0
            return True

    def defer(self, exc: Exception) -> None:
        """Raise ``exc`` from the next ``next_chunk`` (a corrupt file met while extending
        a chunk that must be sent first)."""
        self._deferred = exc

    def rewind(self) -> None:
        """Forget read-ahead: the next chunk starts again after the cursor, which only an
        acknowledgement moves, so an unacknowledged chunk is rebuilt from its start."""
        self._names.clear()
        self._file, self._records, self._index = None, [], 0
        self._last_listed = None
        self._more = False

    @property
    def caught_up(self) -> bool:
        """Whether the last chunk took everything listed: the reader is at the live edge
        (more files may be arriving, but no backlog was seen)."""
        return (self._file is None and not self._names and not self._more
                and self._deferred is None)

    def next_chunk(self, max_bytes: int, keep: Callable[[Record], bool],
                   single_file: bool = False, rescan: bool = False,
                   strict: bool = False, max_records: int = MAX_CHUNK_RECORDS) -> Chunk | None:
        """Up to ``max_bytes`` of framed records in order; ``keep(record)`` says whether a
        record is sent (False: excluded, counted, still settled by the ack). The first
        record is taken whatever its size unless ``strict`` (a chunk being extended, which
        must stay within the request size)."""
        records: list[Record] = []
        parts: list[bytes] = []
        size = 0
        excluded = 0
        files: list[str] = []
        done: list[str] = []
        last_seq = self.cursor_seq
        if self._deferred is not None:
            err, self._deferred = self._deferred, None
            raise err
        listings = self._listings
        while True:
            if self._file is None:
                if single_file and files:
                    break
                try:
                    # One listing per chunk unless it left names out: listing again only
                    # to find the directory empty cost a directory pass per chunk at the
                    # live edge; a file that arrived meanwhile goes in the next chunk.
                    opened = self._open_next(rescan, files,
                                             self._listings == listings or self._more)
                    rescan = False
                    if not opened:
                        break
                except Exception as exc:  # a corrupt file: send what precedes it first
                    if not files:
                        raise
                    self._deferred = exc
                    break
            assert self._file is not None
            if not files or files[-1] != self._file:
                files.append(self._file)
            while self._index < len(self._records):
                rec = self._records[self._index]
                if rec.seq <= self.cursor_seq:
                    self._check_unsent(rec)
                    self._index += 1
                    continue
                if keep(rec):
                    frame = encode_record(rec)
                    if (records or strict) and (size + len(frame) > max_bytes
                                                or len(records) >= max_records):
                        return self._chunk(records, parts, last_seq, done, files, excluded)
                    records.append(rec)
                    parts.append(frame)
                    size += len(frame)
                else:
                    self._check_unsent(rec)
                    excluded += 1
                last_seq = rec.seq
                self._index += 1
            done.append(self._file)
            self._file, self._records, self._index = None, [], 0
            if single_file:
                break
        if not files:
            return None
        return self._chunk(records, parts, last_seq, done, files, excluded)

    def _check_unsent(self, rec: Record) -> None:
        """A record read without checksums (the target checks what it receives) that is
        skipped or excluded is never sent, so nobody would check it: a flipped byte in
        its header could make it vanish. Check exactly those here."""
        if self.verify or not rec.frame or frame_ok(rec.frame):
            return
        offset = FILE_HEADER.size + sum(len(r.frame) for r in self._records[: self._index])
        raise DatalogCorruptError(self.dir / str(self._file), offset, "checksum mismatch")

    def _chunk(self, records: list[Record], parts: list[bytes], last_seq: int,
               done: list[str], files: list[str], excluded: int) -> Chunk:
        resume = (self._file, self._index) if self._file is not None else None
        return Chunk(records, b"".join(parts), last_seq, done, files, excluded, resume)

    def settle(self, chunk: Chunk) -> None:
        """The target acknowledged ``chunk``: move the cursor (unlinking is separate, see
        ``unlink``, so it can run off the event loop)."""
        self.cursor_seq = max(self.cursor_seq, chunk.last_seq)

    def unlink(self, names: list[str]) -> None:
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self._dir, name))


@dataclass(frozen=True)
class Pending:
    files: int
    bytes: int
    oldest_age: float
    newest_seq: int


def scan_pending(directory: Path, now: float) -> Pending:
    """Backlog figures for the state file: one scandir pass, O(1) memory."""
    files = size = 0
    oldest_name: str | None = None
    oldest_mtime = now
    newest: str | None = None
    for entry in iter_datalog(directory):
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        files += 1
        size += st.st_size
        if oldest_name is None or entry.name < oldest_name:
            oldest_name, oldest_mtime = entry.name, st.st_mtime
        if newest is None or entry.name > newest:
            newest = entry.name
    parsed = parse_file_name(newest) if newest else None
    return Pending(files, size, max(0.0, now - oldest_mtime) if files else 0.0,
                   parsed[0] if parsed else 0)
