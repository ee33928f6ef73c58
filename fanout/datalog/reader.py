"""Ordered, bounded reading of datalog directories.

A directory may hold a million files (a dead target's backlog), so nothing here lists a
directory into memory: ``oldest_names`` streams ``scandir`` through a bounded heap.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator
from pathlib import Path

from fanout.datalog.format import SUFFIX, Record, decode_records, parse_file_name


def read_file(path: Path, verify: bool = True) -> list[Record]:
    """All records of one published file; DatalogCorruptError names file and offset."""
    with open(path, "rb") as f:
        data = f.read()
    return decode_records(data, path, verify)


def is_datalog_name(name: str) -> bool:
    return name.endswith(SUFFIX) and parse_file_name(name) is not None


def oldest_names(directory: Path, limit: int, after: str | None = None) -> list[str]:
    """Up to ``limit`` datalog file names in name order, skipping names <= ``after``.

    Memory is O(limit) whatever the directory holds; cost is one pass of scandir.
    """
    return scan_window(directory, limit, after)[0]


def scan_window(directory: Path, limit: int, after: str | None = None) -> tuple[list[str], int]:
    """``oldest_names`` plus how many names it passed over, so a caller can size its next
    window to the backlog: a fixed small window over a huge directory is quadratic."""
    seen = 0

    def names() -> Iterator[str]:
        nonlocal seen
        with os.scandir(directory) as it:
            for entry in it:
                n = entry.name
                if (after is None or n > after) and is_datalog_name(n):
                    seen += 1
                    yield n

    return heapq.nsmallest(limit, names()), seen


def iter_dir(directory: Path, batch: int = 1024) -> Iterator[tuple[Path, list[Record]]]:
    """(path, records) for every datalog file of ``directory``, in replay order."""
    last: str | None = None
    while True:
        names = oldest_names(directory, batch, after=last)
        if not names:
            return
        for n in names:
            yield directory / n, read_file(directory / n)
        last = names[-1]


def newest_name(directory: Path) -> str | None:
    """The last datalog file name in replay order, or None; one scandir pass."""
    best: str | None = None
    with os.scandir(directory) as it:
        for entry in it:
            if is_datalog_name(entry.name) and (best is None or entry.name > best):
                best = entry.name
    return best
