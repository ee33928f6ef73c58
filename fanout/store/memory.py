"""The memory store: data and marks in RAM (gone on restart, by design), last_seq on disk.

``last_seq`` lives in one small file, replaced atomically (temp file, fsync, rename, fsync
of the directory) *before* memory changes, so an apply that fails, including on a full
disk, changes nothing. After a restart ``last_seq`` continues where it was; data and marks
start empty. The same file keeps this node's own mark in its current history (``last_seq
history oseq``; a file of one number, written before histories existed, has none), so a
restarted memory node's next history continues its oseq; the node's own histories and id
live in ``<seq file>.histories.json``, rewritten once per start.

An apply runs in two phases. Staging validates every entry and works out its effects
against an overlay of the series (existence and attributes only: no entry ever needs to
read points), producing a list of plain dict operations. Then the seq file is written, and
only then are the operations replayed on memory under the lock, which cannot fail. Readers
take the same lock only to copy out what they print, so they never wait for an fsync.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from fanout.errors import StoreNotEmptyError
from fanout.fileio import fsync_dir, write_atomic
from fanout.gts import selector_matches
from fanout.gts.model import Labels, MetaLine, Reading, Selector, Value

from ._common import (
    MarksView,
    check_delete_range,
    check_reading,
    classify,
    copy_marks,
    deleted_keys,
    disk_full,
    format_series,
    latest_marks,
    merge_attrs,
    new_history_id,
    next_base,
    ordered,
    range64,
)
from .base import (
    Base,
    Delete,
    Entry,
    History,
    HistoryMarks,
    Meta,
    Outcome,
    SeriesChunk,
    SeriesDump,
    SeriesInfo,
    Update,
)

Key = tuple[str, Labels]
Point = tuple[float | None, float | None, int | None, Value]  # lat, lon, elev, value


class _Series:
    __slots__ = ("attrs", "cls", "labels", "points")

    def __init__(self, cls: str, labels: Labels):
        self.cls = cls
        self.labels = labels
        self.attrs: Labels = ()
        self.points: dict[int, Point] = {}


class _Staging:
    """What one apply will do: the series as later entries must see them, and the ops."""

    def __init__(self, base: dict[Key, _Series]):
        self.base = base
        self.overlay: dict[Key, Labels | None] = {}  # key -> attrs, None: dropped
        self.ops: list[tuple] = []

    def exists(self, key: Key) -> bool:
        if key in self.overlay:
            return self.overlay[key] is not None
        return key in self.base

    def attrs(self, key: Key) -> Labels:
        if key in self.overlay:
            attrs = self.overlay[key]
            assert attrs is not None
            return attrs
        return self.base[key].attrs

    def keys(self) -> list[Key]:
        live = [k for k in self.base if k not in self.overlay]
        live.extend(k for k, a in self.overlay.items() if a is not None)
        return live

    def update(self, readings: Sequence[Reading]) -> None:
        puts: dict[Key, list[tuple[int, Point]]] = {}
        for r in readings:
            check_reading(r)
            key = (r.cls, r.labels)
            items = puts.get(key)
            if items is None:
                if not self.exists(key):
                    self.overlay[key] = ()
                    self.ops.append(("create", key))
                items = puts[key] = []
            items.append((r.ts, (r.lat, r.lon, r.elev, r.value)))
        for key, items in puts.items():
            self.ops.append(("put", key, items))

    def meta(self, lines: Sequence[MetaLine], delta: bool) -> None:
        for ml in lines:
            key = (ml.cls, ml.labels)
            if not self.exists(key):
                continue  # Warp 10 only sets attributes of existing series
            attrs = merge_attrs(self.attrs(key), ml.attrs, delta)
            self.overlay[key] = attrs
            self.ops.append(("attrs", key, attrs))

    def delete(self, change: Delete) -> tuple[str, ...]:
        deleteall = check_delete_range(change.start, change.end)
        matched = [k for k in self.keys() if selector_matches(change.selector, *k)]
        if deleteall:
            for key in matched:
                self.overlay[key] = None
                self.ops.append(("drop", key))
        else:
            assert change.start is not None and change.end is not None
            rng = range64(change.start, change.end)
            if rng is not None:
                self.ops.extend(("delrange", key, *rng) for key in matched)
        return deleted_keys(matched)


class MemoryStore(MarksView):
    """See the module docstring. ``seq_path``'s parent directories are created if missing."""

    def __init__(self, seq_path: Path):
        self._seq_path = Path(seq_path)
        try:
            self._seq_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            full = disk_full(exc)
            if full is not None:
                raise full from exc
            raise
        self._own: tuple[str, int] | None = None  # (current own history, own mark in it)
        self._last_seq = self._read_seq()
        self._hist_path = self._seq_path.with_name(self._seq_path.name + ".histories.json")
        self._node_id: str | None = None
        self._histories: list[History] = []
        self._read_histories()
        self._series: dict[Key, _Series] = {}
        self._marks: HistoryMarks = {}
        self._bases: dict[tuple[str, str], Base | None] = {}
        self._lock = threading.Lock()
        self._closed = False

    # -- the seq file --------------------------------------------------------------------

    def _read_seq(self) -> int:
        try:
            text = self._seq_path.read_text(encoding="ascii")
        except FileNotFoundError:
            return 0
        fields = text.split()
        try:
            value = int(fields[0])
            if len(fields) == 3:
                self._own = (fields[1], int(fields[2]))
            elif len(fields) != 1:
                raise ValueError
        except (ValueError, IndexError):
            raise ValueError(f"{self._seq_path}: not a sequence number: {text!r}") from None
        if value < 0:
            raise ValueError(f"{self._seq_path}: negative sequence number {value}")
        return value

    def _read_histories(self) -> None:
        try:
            data = json.loads(self._hist_path.read_text(encoding="utf-8"))
            self._node_id = data["node_id"]
            self._histories = [
                History(h["id"], None if h["base"] is None else (h["base"][0], h["base"][1]),
                        h["started"]) for h in data["histories"]]
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"{self._hist_path}: unreadable: {exc}") from None

    def _seq_text(self, value: int, own: tuple[str, int] | None) -> str:
        return f"{value}\n" if own is None else f"{value} {own[0]} {own[1]}\n"

    def _write_seq(self, value: int, own: tuple[str, int] | None = None) -> None:
        self._write_file(self._seq_path, self._seq_text(value, own))

    def _write_file(self, path: Path, text: str) -> None:
        replaced = False
        try:
            # the directory fsync apart, to know whether the rename happened if it fails
            write_atomic(path, text, sync_dir=False)
            replaced = True
            fsync_dir(path.parent)
        except BaseException as exc:
            if replaced and path == self._seq_path:
                # The new value may or may not reach the disk: put the old one back, best
                # effort, so that a failed apply leaves the file as it was.
                with contextlib.suppress(OSError):
                    path.write_text(self._seq_text(self._last_seq, self._own),
                                    encoding="ascii")
            full = disk_full(exc)
            if full is not None:
                raise full from exc
            raise

    # -- Store ---------------------------------------------------------------------------

    def own_histories(self) -> list[History]:
        return list(self._histories)

    def begin_history(self, node_id: str) -> History:
        """A memory store holds no data across a restart, so a changed id is not refused
        here: the histories of the old id are forgotten instead."""
        if self._closed:
            raise RuntimeError(f"{self._seq_path}: store is closed")
        same = self._node_id in (None, node_id)
        own = self._histories if same else []
        own_marks = dict(self._marks.get(node_id, {}))
        if same and self._own is not None:
            own_marks.setdefault(self._own[0], self._own[1])
        hist = History(new_history_id(), next_base(own, own_marks), time.time())
        rows = [*own, hist]
        self._write_file(self._hist_path, json.dumps({"node_id": node_id, "histories": [
            {"id": h.id, "base": None if h.base is None else list(h.base),
             "started": h.started} for h in rows]}) + "\n")
        self._node_id, self._histories = node_id, rows
        return hist

    def _own_mark(self, marks: HistoryMarks) -> tuple[str, int] | None:
        if self._node_id is None or not self._histories:
            return self._own
        current = self._histories[-1].id
        mark = marks.get(self._node_id, {}).get(current)
        return self._own if mark is None else (current, mark)

    def apply(self, entries: Sequence[Entry], last_seq: int) -> list[Outcome]:
        if self._closed:
            raise RuntimeError(f"{self._seq_path}: store is closed")
        staging = _Staging(self._series)
        marks = copy_marks(self._marks)
        bases = dict(self._bases)
        outcomes: list[Outcome] = []
        for entry in entries:
            status = classify(marks, entry)
            if status == "duplicate":
                outcomes.append(Outcome("duplicate"))
                continue
            change = entry.change
            deleted: tuple[str, ...] = ()
            if isinstance(change, Update):
                staging.update(change.readings)
            elif isinstance(change, Meta):
                staging.meta(change.lines, change.delta)
            elif isinstance(change, Delete):
                deleted = staging.delete(change)
            else:
                raise TypeError(f"unsupported change {change!r}")
            hs = marks.setdefault(entry.origin, {})
            if entry.history not in hs:
                bases[(entry.origin, entry.history)] = entry.base
            hs[entry.history] = entry.oseq
            outcomes.append(Outcome(status, deleted))
        own = self._own_mark(marks)
        if last_seq != self._last_seq or own != self._own:
            self._write_seq(last_seq, own)  # durable first: if it fails, nothing changed
        with self._lock:
            self._commit(staging.ops)
            self._marks = marks
            self._bases = bases
            self._own = own
            self._last_seq = last_seq
        return outcomes

    def _commit(self, ops: list[tuple]) -> None:
        series = self._series
        for op in ops:
            kind, key = op[0], op[1]
            if kind == "put":
                series[key].points.update(op[2])
            elif kind == "create":
                series[key] = _Series(*key)
            elif kind == "attrs":
                series[key].attrs = op[2]
            elif kind == "delrange":
                lo, hi = op[2], op[3]
                s = series[key]
                s.points = {ts: p for ts, p in s.points.items() if not lo <= ts <= hi}
            elif kind == "drop":
                del series[key]

    def fetch(
        self,
        selector: Selector,
        start: int,
        end: int,
        *,
        last: int | None = None,
        showattr: bool = False,
    ) -> Iterator[str]:
        if self._closed:
            raise RuntimeError(f"{self._seq_path}: store is closed")
        rng = range64(start, end)
        if rng is None or (last is not None and last <= 0):
            return iter(())
        lo, hi = rng
        # Copy out what the reply holds under the lock (one consistent snapshot); format
        # outside it.
        out = []
        with self._lock:
            matched = [
                s for s in self._series.values() if selector_matches(selector, s.cls, s.labels)
            ]
            for s in ordered(matched, lambda s: (s.cls, s.labels)):
                points = s.points
                stamps = sorted(ts for ts in points if lo <= ts <= hi)
                if last is not None:
                    stamps = stamps[-last:]
                if stamps:
                    out.append((s.cls, s.labels, s.attrs, [(ts, *points[ts]) for ts in stamps]))
        return self._format(out, showattr)

    def scan(self, selector: Selector, start: int, end: int, *,
             last: int | None = None) -> Iterator[SeriesChunk]:
        if self._closed:
            raise RuntimeError(f"{self._seq_path}: store is closed")
        rng = range64(start, end)
        if rng is None or (last is not None and last <= 0):
            return iter(())
        lo, hi = rng
        out: list[SeriesChunk] = []
        with self._lock:  # copied under the lock: one consistent view
            matched = [
                s for s in self._series.values() if selector_matches(selector, s.cls, s.labels)
            ]
            for s in ordered(matched, lambda s: (s.cls, s.labels)):
                points = s.points
                stamps = sorted((ts for ts in points if lo <= ts <= hi), reverse=True)
                if last is not None:
                    stamps = stamps[:last]
                if stamps:
                    out.append((s.cls, s.labels, s.attrs,
                                [(ts, *points[ts]) for ts in stamps]))
        return iter(out)

    def find(self, selector: Selector) -> list[SeriesInfo]:
        if self._closed:
            raise RuntimeError(f"{self._seq_path}: store is closed")
        with self._lock:
            found = [(s.cls, s.labels, s.attrs) for s in self._series.values()
                     if selector_matches(selector, s.cls, s.labels)]
        return ordered(found, lambda f: (f[0], f[1]))

    @staticmethod
    def _format(out: list[tuple], showattr: bool) -> Iterator[str]:
        for cls, labels, attrs, points in out:
            yield from format_series(cls, labels, attrs if showattr else None, points)

    # -- snapshot and restore ------------------------------------------------------------

    def snapshot(self) -> _MemorySnapshot:
        """Copied under the lock (a memory store is small by nature): writers wait only
        for the copy, never for the stream."""
        with self._lock:
            copy = [(s.cls, s.labels, s.attrs, dict(s.points)) for s in self._series.values()]
            return _MemorySnapshot(copy_marks(self._marks), self._last_seq, copy)

    def is_empty(self) -> bool:
        return not self._series and not self._marks

    def restore(self, marks: HistoryMarks | dict[str, int], series: Iterable[SeriesDump],
                replace: bool) -> None:
        marks = copy_marks(marks)
        if not replace and not self.is_empty():
            raise StoreNotEmptyError(
                f"memory store holds {len(self._series)} series and marks for "
                f"{len(self._marks)} origin(s); restore needs an empty store (or replace)")
        loaded: dict[Key, _Series] = {}
        for cls, labels, attrs, points in series:
            s = _Series(cls, labels)
            s.attrs = attrs
            for ts, lat, lon, elev, v in points:
                check_reading(Reading(ts, lat, lon, elev, cls, labels, v))
                s.points[ts] = (lat, lon, elev, v)
            loaded[(cls, labels)] = s
        with self._lock:
            if not replace and not self.is_empty():
                raise StoreNotEmptyError("memory store was written to during the restore")
            self._series = loaded
            self._marks = copy_marks(marks)
            self._bases = {(o, h): None for o, hs in self._marks.items() for h in hs}

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _MemorySnapshot:
    def __init__(self, marks: HistoryMarks, last_seq: int, copy: list[tuple]):
        self.history_marks = marks
        self.marks = latest_marks(marks)
        self.last_seq = last_seq
        self._copy = copy

    def series(self) -> Iterator[SeriesDump]:
        for cls, labels, attrs, points in ordered(self._copy, lambda c: (c[0], c[1])):
            yield cls, labels, attrs, ((ts, *points[ts]) for ts in sorted(points))

    def close(self) -> None:
        self._copy = []
