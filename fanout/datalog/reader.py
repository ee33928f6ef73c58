"""Ordered, bounded reading of datalog directories.

A directory may hold a million files (a dead target's backlog), so nothing here lists a
directory into memory: names come from ``fanout.fileio``'s bounded scanner.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from fanout.datalog.format import Record, decode_records
from fanout.fileio import is_datalog_name, newest_datalog_name, oldest_datalog_names


def read_file(path: str | Path, verify: bool = True) -> list[Record]:
    """All records of one published file; DatalogCorruptError names file and offset."""
    with open(path, "rb") as f:
        data = f.read()
    return decode_records(data, path, verify)


def oldest_names(directory: Path, limit: int, after: str | None = None) -> list[str]:
    """Up to ``limit`` datalog file names in name order, skipping names <= ``after``.

    Memory is O(limit) whatever the directory holds; cost is one pass of scandir. A stray
    name costs a slot (see ``fanout.fileio.oldest_datalog_names``)."""
    return oldest_datalog_names(directory, limit, after)[0]


def iter_dir(directory: Path, batch: int = 1024) -> Iterator[tuple[Path, list[Record]]]:
    """(path, records) for every datalog file of ``directory``, in replay order."""
    last: str | None = None
    while True:
        names, _, last = oldest_datalog_names(directory, batch, after=last)
        if last is None:
            return
        for n in names:
            yield directory / n, read_file(directory / n)


newest_name = newest_datalog_name

__all__ = ["is_datalog_name", "iter_dir", "newest_name", "oldest_names", "read_file"]
