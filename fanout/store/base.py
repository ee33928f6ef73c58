"""The one small interface every store backend implements.

A store applies *entries* (a change plus the origin, the origin's history and the
per-origin sequence that produced it) in one transaction together with the node's
``last_seq`` and the per-(origin, history) high-water marks. Keeping the marks in the same
transaction as the data is what makes replicated apply idempotent after a crash at any
point.

Histories: an id names a node, not one continuous run of it. A store that was wiped,
restored from a backup or copied cannot prove that it continues the history it holds, so
every node *process start* begins a new history (see :class:`History`), and dedup keys on
(origin, history), never on the origin alone: a new history's writes are never taken for
duplicates of an old one's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from fanout.gts.model import Labels, MetaLine, Reading, Selector, Value


@dataclass(frozen=True, slots=True)
class Update:
    readings: Sequence[Reading]


@dataclass(frozen=True, slots=True)
class Meta:
    lines: Sequence[MetaLine]
    delta: bool  # True: merge attributes, an empty value removes the key; False: replace


@dataclass(frozen=True, slots=True)
class Delete:
    selector: Selector
    start: int | None  # both None: deleteall (readings and the series itself)
    end: int | None


Change = Update | Meta | Delete


# The history of every record and mark written before histories existed.
LEGACY_HISTORY = "0000000000000000"

# (base history, base oseq): the history a new one continues from, and the origin's mark
# in it when the new one began; the new history's first oseq is base oseq + 1.
Base = tuple[str, int]


@dataclass(frozen=True, slots=True)
class History:
    """One of this node's own histories (incarnations).

    Each node process start begins one, recorded durably before the node serves or logs
    anything. Only a running process that holds the instance lock can prove continuity; a
    wiped, restored-from-backup or copied store cannot, so each start is a new history
    (one row per restart; cheap). ``base`` is (the store's current own history, the
    store's own mark in it) at start, None for a store that held no own history (wiped or
    new): oseq keeps counting across an ordinary restart.
    """

    id: str
    base: Base | None
    started: float  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class Entry:
    origin: str
    oseq: int
    change: Change
    history: str = LEGACY_HISTORY
    base: Base | None = None  # the base of ``history`` (only needed for its first entry)


Status = Literal["applied", "duplicate", "gap"]

# origin -> history -> highest oseq applied; per origin, histories in the order first seen
# (the last one is the origin's latest-known history).
HistoryMarks = dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one entry.

    ``duplicate``: oseq <= the (origin, history) mark, skipped. ``gap``: oseq > mark + 1
    (for a history not seen before: > base oseq + 1), applied anyway (and the mark moves to
    oseq) but the caller must report it. A history not seen before is never duplicate.
    ``deleted`` holds the canonical ``class{labels}`` of every series a Delete touched,
    sorted.
    """

    status: Status
    deleted: tuple[str, ...] = ()


# (ts, lat, lon, elev, value): one reading of a series whose class and labels are known
Point = tuple[int, float | None, float | None, int | None, Value]
# One series of a snapshot: class, labels, attributes and its points in ts order.
SeriesDump = tuple[str, Labels, Labels, Iterable[Point]]
# Part of one series' fetched points: class, labels, attributes, points. Consecutive chunks
# with the same class and labels belong to the same series (a big series comes in several).
SeriesChunk = tuple[str, Labels, Labels, list[Point]]
# A series found by a selector: class, labels, attributes.
SeriesInfo = tuple[str, Labels, Labels]


class Snapshot(Protocol):
    """A consistent view of a whole store, for initial sync (ArangoDB's dump), as
    ``Store.snapshot()`` returns it: ``last_seq`` and the marks are those of exactly the
    data ``series()`` yields. Iterate once; close."""

    last_seq: int
    marks: dict[str, int]  # per origin, the highest oseq of its latest-known history
    history_marks: HistoryMarks  # per origin and history

    def series(self) -> Iterator[SeriesDump]:
        """Every series in (class, labels) order, its readings in timestamp order."""

    def close(self) -> None:
        """Release the view (a reader connection for sqlite); idempotent."""


class Store(Protocol):
    """Contract shared by ``sqlite`` and ``memory``; the conformance suite checks both."""

    def last_seq(self) -> int:
        """Highest datalog seq committed with data; 0 for a new store. Durable for both."""

    def marks(self) -> dict[str, int]:
        """Per origin, the highest oseq applied in its latest-known history."""

    def history_marks(self) -> HistoryMarks:
        """Per origin and history, the highest oseq applied (a copy)."""

    def history_bases(self) -> dict[tuple[str, str], Base | None]:
        """Per (origin, history), the base its first applied record named (None when it
        had none, or the mark came from a restore)."""

    def own_histories(self) -> list[History]:
        """This node's own histories, oldest first (durable)."""

    def begin_history(self, node_id: str) -> History:
        """Start a new own history, durably, and return it (see :class:`History`).

        The store remembers ``node_id``; if it holds data or histories of another id it
        raises NodeIdMismatchError and changes nothing."""

    def apply(self, entries: Sequence[Entry], last_seq: int) -> list[Outcome]:
        """Apply all entries and set last_seq, atomically and durably, or raise and change
        nothing. Entries are applied in order; later ones see earlier ones' effects."""

    def fetch(
        self,
        selector: Selector,
        start: int,
        end: int,
        *,
        last: int | None = None,
        showattr: bool = False,
    ) -> Iterator[str]:
        """Canonical update lines (no newline) of matching series, in (class, labels)
        order, readings in ascending timestamp order, start <= ts <= end. With ``last``,
        only the newest ``last`` readings of each series within the range. With
        ``showattr``, the series part is ``class{labels}{attrs}``."""

    def scan(self, selector: Selector, start: int, end: int, *,
             last: int | None = None) -> Iterator[SeriesChunk]:
        """What ``fetch`` returns, as data for the Warp 10 output formats: matching series
        with at least one reading in [start, end], in (class, labels) order, their points
        newest first (Warp 10's order), in one consistent view. With ``last``, only the
        newest ``last`` readings of each series. Close the iterator when done early."""

    def find(self, selector: Selector) -> list[SeriesInfo]:
        """Every series ``selector`` matches, with or without readings, in (class,
        labels) order: what a delete of ``selector`` would touch (its dry run)."""

    def snapshot(self) -> Snapshot:
        """A consistent view, taken without blocking writers for its whole duration."""

    def restore(self, marks: HistoryMarks | dict[str, int], series: Iterable[SeriesDump],
                replace: bool) -> None:
        """Load a snapshot in one transaction and set the marks to ``marks`` (flat marks,
        the shape before histories, are the legacy history's); last_seq
        and this node's own histories are left alone (they belong to this node). Without
        ``replace`` the store must hold no series and no marks (StoreNotEmptyError); with
        it, everything is dropped first. On any error nothing changes."""

    def is_empty(self) -> bool: ...

    def close(self) -> None: ...


def base_short(marks: HistoryMarks, origin: str, base: Base | None) -> int | None:
    """The mark of ``origin``'s base history here when it is known but below the base
    oseq (writes of it are missing), else None."""
    if base is None:
        return None
    have = marks.get(origin, {}).get(base[0])
    return have if have is not None and have < base[1] else None
