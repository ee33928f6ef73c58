"""The one small interface every store backend implements.

A store applies *entries* (a change plus the origin and per-origin sequence that produced
it) in one transaction together with the node's ``last_seq`` and the per-origin high-water
marks. Keeping the marks in the same transaction as the data is what makes replicated
apply idempotent after a crash at any point.
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


@dataclass(frozen=True, slots=True)
class Entry:
    origin: str
    oseq: int
    change: Change


Status = Literal["applied", "duplicate", "gap"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one entry.

    ``duplicate``: oseq <= the origin's mark, skipped. ``gap``: oseq > mark + 1, applied
    anyway (and the mark moves to oseq) but the caller must report it. ``deleted`` holds
    the canonical ``class{labels}`` of every series a Delete touched, sorted.
    """

    status: Status
    deleted: tuple[str, ...] = ()


# (ts, lat, lon, elev, value): one reading of a series whose class and labels are known
Point = tuple[int, float | None, float | None, int | None, Value]
# One series of a snapshot: class, labels, attributes and its points in ts order.
SeriesDump = tuple[str, Labels, Labels, Iterable[Point]]


class Snapshot(Protocol):
    """A consistent view of a whole store, for initial sync (ArangoDB's dump): marks and
    last_seq are those of exactly the data ``series()`` yields. Iterate once; close."""

    last_seq: int
    marks: dict[str, int]

    def series(self) -> Iterator[SeriesDump]: ...

    def snapshot(self) -> Snapshot:
        """A consistent view, taken without blocking writers for its whole duration."""

    def restore(self, marks: dict[str, int], series: Iterable[SeriesDump],
                replace: bool) -> None:
        """Load a snapshot in one transaction and set the marks to ``marks``; last_seq
        is left alone (it counts this node's own datalog). Without ``replace`` the store
        must hold no series and no marks (StoreNotEmptyError); with it, everything is
        dropped first. On any error nothing changes."""

    def is_empty(self) -> bool: ...

    def close(self) -> None: ...


class Store(Protocol):
    """Contract shared by ``sqlite`` and ``memory``; the conformance suite checks both."""

    def last_seq(self) -> int:
        """Highest datalog seq committed with data; 0 for a new store. Durable for both."""

    def marks(self) -> dict[str, int]:
        """Per origin, the highest oseq applied."""

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

    def snapshot(self) -> Snapshot:
        """A consistent view, taken without blocking writers for its whole duration."""

    def restore(self, marks: dict[str, int], series: Iterable[SeriesDump],
                replace: bool) -> None:
        """Load a snapshot in one transaction and set the marks to ``marks``; last_seq
        is left alone (it counts this node's own datalog). Without ``replace`` the store
        must hold no series and no marks (StoreNotEmptyError); with it, everything is
        dropped first. On any error nothing changes."""

    def is_empty(self) -> bool: ...

    def close(self) -> None: ...
