"""Helpers shared by the store tests."""

from __future__ import annotations

from pathlib import Path

from fanout.gts import parse_selector
from fanout.gts.model import Labels, MetaLine, Reading, Selector
from fanout.store import Delete, Entry, Meta, Store, Update, open_store

KINDS = ("sqlite", "memory")
TMIN = -(2**63)
TMAX = 2**63 - 1


def make_store(kind: str, directory: Path) -> Store:
    return open_store(kind, directory / "data" / "store.sqlite", directory / "state")


def labels(**kw: str) -> Labels:
    return tuple(sorted(kw.items()))


def rd(
    ts: int,
    cls: str,
    value: object,
    lbl: Labels = (),
    lat: float | None = None,
    lon: float | None = None,
    elev: int | None = None,
) -> Reading:
    return Reading(ts, lat, lon, elev, cls, lbl, value)  # type: ignore[arg-type]


def sel(text: str) -> Selector:
    return parse_selector(text)


def upd(origin: str, oseq: int, *readings: Reading) -> Entry:
    return Entry(origin, oseq, Update(readings))


def meta(origin: str, oseq: int, *lines: MetaLine, delta: bool = False) -> Entry:
    return Entry(origin, oseq, Meta(lines, delta))


def delete(origin: str, oseq: int, selector: str, start: int | None, end: int | None) -> Entry:
    return Entry(origin, oseq, Delete(sel(selector), start, end))


def fetch(
    store: Store,
    selector: str = "~.*{}",
    start: int = TMIN,
    end: int = TMAX,
    **kw: object,
) -> list[str]:
    return list(store.fetch(sel(selector), start, end, **kw))  # type: ignore[arg-type]


def snapshot(store: Store) -> tuple:
    """Everything observable about a store."""
    return (
        fetch(store, showattr=True),
        store.marks(),
        store.last_seq(),
    )
