"""The default store: one SQLite file in WAL mode, every apply one durable transaction.

Layout::

    series(id, cls, labels, attrs)          labels/attrs: JSON [[name, value], ...], sorted
    points(series_id, ts, lat, lon, elev, type, value)   PRIMARY KEY(series_id, ts)
    history_marks(origin, history, oseq, rank, base_history, base_oseq)
                                            per (origin, history), the highest oseq
                                            applied; rank orders histories by first sight;
                                            the base the history's first record named
    histories(rank, id, base_history, base_oseq, started)   this node's own histories
    meta(key, value)                        last_seq, schema_version, node_id

Schema version 1 (before histories) had ``marks(origin, oseq)``; opening such a store
migrates it in one transaction: every mark becomes the mark of (origin, legacy history
``0000000000000000``), which is what records without a history are read as. The node's
next start then begins a history whose base is (legacy, its own mark), so its oseq keeps
counting and receivers see one continuous chain.

``lat``, ``lon`` and ``value`` have no declared type on purpose: a REAL column would store
``-0.0`` as the integer 0, and a typed column would coerce strings. ``type`` says how to
read ``value`` back (NaN and longs beyond 64 bits are kept as text).

One writer thread calls :meth:`SqliteStore.apply` on the write connection; :meth:`fetch`
may run in any thread, each fetch borrowing a read connection from a small pool, reading a
WAL snapshot that the writer never blocks.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from fanout.errors import NodeIdMismatchError, StoreNotEmptyError
from fanout.gts import selector_matches
from fanout.gts.canonical import CanonicalReadings
from fanout.gts.model import Labels, MetaLine, Reading, Selector
from fanout.gts.values import format_value

from ._common import (
    INT64_MAX,
    INT64_MIN,
    T_BOOL,
    T_DOUBLE,
    T_LONG,
    T_MULTI,
    T_STRING,
    TYPE_CODES,
    MarksView,
    check_delete_range,
    classify,
    copy_marks,
    decode_value,
    deleted_keys,
    disk_full,
    format_series,
    latest_marks,
    merge_attrs,
    new_history_id,
    next_base,
    ordered,
    range64,
    set_mark,
)
from .base import (
    LEGACY_HISTORY,
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

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series(
    id INTEGER PRIMARY KEY,
    cls TEXT NOT NULL,
    labels TEXT NOT NULL,
    attrs TEXT NOT NULL DEFAULT '[]',
    UNIQUE(cls, labels)
);
CREATE TABLE IF NOT EXISTS points(
    series_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    lat,
    lon,
    elev INTEGER,
    type INTEGER NOT NULL,
    value,
    PRIMARY KEY(series_id, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_marks(
    origin TEXT NOT NULL,
    history TEXT NOT NULL,
    oseq INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    base_history TEXT,
    base_oseq INTEGER,
    PRIMARY KEY(origin, history)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS histories(
    rank INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    base_history TEXT,
    base_oseq INTEGER,
    started REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
"""

_SELECT_MARKS = "SELECT origin, history, oseq FROM history_marks ORDER BY rank"
_INSERT_MARK = (
    "INSERT OR REPLACE INTO history_marks (origin, history, oseq, rank, base_history,"
    " base_oseq) VALUES (?, ?, ?, ?, ?, ?)"
)
_UPSERT_MARK = (
    "INSERT INTO history_marks (origin, history, oseq, rank, base_history, base_oseq)"
    " VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT(origin, history) DO UPDATE SET oseq = excluded.oseq"
)


def _load_marks(conn: sqlite3.Connection) -> HistoryMarks:
    marks: HistoryMarks = {}
    for origin, history, oseq in conn.execute(_SELECT_MARKS):
        set_mark(marks, origin, history, int(oseq))
    return marks

_INSERT_POINT = "INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?, ?)"
_INSERT_POINT_BARE = (
    "INSERT OR REPLACE INTO points (series_id, ts, type, value) VALUES (?, ?, ?, ?)"
)
_SELECT_POINTS = (
    "SELECT ts, lat, lon, elev, type, value FROM points"
    " WHERE series_id = ? AND ts BETWEEN ? AND ? ORDER BY ts"
)
_SELECT_POINTS_DESC = _SELECT_POINTS + " DESC"
_SELECT_LAST = (
    "SELECT ts, lat, lon, elev, type, value FROM points"
    " WHERE series_id = ? AND ts BETWEEN ? AND ? ORDER BY ts DESC LIMIT ?"
)


def _dump_labels(labels: Labels) -> str:
    return json.dumps(labels, ensure_ascii=False, separators=(",", ":"))


def _load_labels(text: str) -> Labels:
    return tuple((str(k), str(v)) for k, v in json.loads(text))


def _nan_safe(x: float | None) -> float | str | None:
    # SQLite binds NaN as NULL: keep it as text, float() reads it back.
    return "NaN" if x is not None and x != x else x


def _point(row: tuple) -> tuple:
    ts, lat, lon, elev, code, raw = row
    if lat is not None and type(lat) is not float:
        lat = float(lat)
    if lon is not None and type(lon) is not float:
        lon = float(lon)
    return ts, lat, lon, elev, decode_value(code, raw)


class SqliteStore(MarksView):
    """See the module docstring. ``path``'s parent directories are created if missing."""

    def __init__(self, path: Path, *, cache_mb: int = 32):
        self._path = Path(path)
        self._cache_kib = cache_mb * 1024
        self._lock = threading.Lock()  # guards the reader pool and _closed
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = self._connect(writer=True)
        except BaseException as exc:
            full = disk_full(exc)
            if full is not None:
                raise full from exc
            raise
        try:
            self._init_schema()
            self._load()
        except BaseException as exc:
            self._conn.close()
            full = disk_full(exc)
            if full is not None:
                raise full from exc
            raise

    # -- connections ---------------------------------------------------------------------

    def _connect(self, *, writer: bool) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions, we BEGIN/COMMIT ourselves.
        # check_same_thread=False: connections are handed between threads, never shared
        # by two at once (one writer thread; readers are borrowed from the pool).
        conn = sqlite3.connect(
            str(self._path), isolation_level=None, check_same_thread=False, timeout=60
        )
        try:
            if writer:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise sqlite3.OperationalError(f"{self._path}: cannot enable WAL ({mode})")
                # FULL, not NORMAL: in WAL mode NORMAL syncs the WAL only at checkpoints,
                # so a commit acknowledged to a client or a forwarder (which then deletes
                # its copy) could be lost with the power. FULL syncs the WAL at each
                # commit (~50 us of system CPU per commit here), nothing more.
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(f"PRAGMA cache_size=-{self._cache_kib}")
            else:
                conn.execute("PRAGMA query_only=ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _reader(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._path}: store is closed")
            if self._idle:
                return self._idle.pop()
        return self._connect(writer=False)

    def _release(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < 8:
                self._idle.append(conn)
                return
        conn.close()

    def _init_schema(self) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            old = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
            if old is not None:
                row = conn.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is not None and row[0] == 1:
                    self._migrate_v1()
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
            )
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('last_seq', 0)")
            conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version[0] != SCHEMA_VERSION:
            raise RuntimeError(
                f"{self._path}: store schema version {version[0]}, expected {SCHEMA_VERSION}"
            )

    def _migrate_v1(self) -> None:
        """Inside _init_schema's transaction: per-origin marks become the legacy history's
        (see the module docstring)."""
        conn = self._conn
        for stmt in _SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        rows = conn.execute("SELECT origin, oseq FROM marks ORDER BY origin").fetchall()
        conn.executemany(_INSERT_MARK, [(o, LEGACY_HISTORY, q, i, None, None)
                                        for i, (o, q) in enumerate(rows, 1)])
        conn.execute("DROP TABLE marks")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))

    def _load(self) -> None:
        """(Re)build the writer's caches from committed state."""
        conn = self._conn
        self._ids: dict[tuple[str, Labels], int] = {}
        self._attrs: dict[int, Labels] = {}
        for sid, cls, labels, attrs in conn.execute("SELECT id, cls, labels, attrs FROM series"):
            self._ids[(cls, _load_labels(labels))] = sid
            self._attrs[sid] = _load_labels(attrs)
        self._marks: HistoryMarks = _load_marks(conn)
        self._bases: dict[tuple[str, str], Base | None] = {
            (o, h): None if bh is None else (bh, int(bo)) for o, h, bh, bo in conn.execute(
                "SELECT origin, history, base_history, base_oseq FROM history_marks")}
        row = conn.execute("SELECT COALESCE(MAX(rank), 0) FROM history_marks").fetchone()
        self._rank: int = int(row[0])
        row = conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
        self._last_seq: int = int(row[0])
        self._cache_valid = True

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            # The transaction is gone either way; the caller's error is what matters.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    # -- Store ---------------------------------------------------------------------------

    def own_histories(self) -> list[History]:
        rows = self._conn.execute(
            "SELECT id, base_history, base_oseq, started FROM histories ORDER BY rank")
        return [History(h, None if bh is None else (bh, int(bo)), float(t))
                for h, bh, bo, t in rows]

    def node_id(self) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'node_id'").fetchone()
        return None if row is None else str(row[0])

    def begin_history(self, node_id: str) -> History:
        if self._closed:
            raise RuntimeError(f"{self._path}: store is closed")
        stored = self.node_id()
        if stored is not None and stored != node_id and not self.is_empty():
            raise NodeIdMismatchError(
                self._path, "id",
                f"this store holds data written as node {stored!r}, but the configuration "
                f"says id {node_id!r}; set id back to {stored!r}, or give node {node_id!r} "
                "its own (empty) store and datalog directory",
                hint="a node id names one store; re-using a store under another id would "
                     "make its writes look like another node's")
        own = [] if stored not in (None, node_id) else self.own_histories()
        base = next_base(own, self._marks.get(node_id, {}))
        hist = History(new_history_id(), base, time.time())
        conn = self._conn
        with self._transaction():
            if stored != node_id:
                conn.execute("DELETE FROM histories")  # another id's, on an empty store
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('node_id', ?)", (node_id,))
            conn.execute(
                "INSERT INTO histories (id, base_history, base_oseq, started) VALUES (?,?,?,?)",
                (hist.id, None if base is None else base[0],
                 None if base is None else base[1], hist.started))
        return hist

    def apply(self, entries: Sequence[Entry], last_seq: int) -> list[Outcome]:
        if self._closed:
            raise RuntimeError(f"{self._path}: store is closed")
        if not self._cache_valid:
            self._load()
        conn = self._conn
        marks = copy_marks(self._marks)
        changed: dict[tuple[str, str], int] = {}
        outcomes: list[Outcome] = []
        rank = self._rank
        bases = dict(self._bases)
        with self._transaction():
            for entry in entries:
                status = classify(marks, entry)
                if status == "duplicate":
                    outcomes.append(Outcome("duplicate"))
                    continue
                deleted = self._apply_change(entry.change)
                hs = marks.setdefault(entry.origin, {})
                key = (entry.origin, entry.history)
                if entry.history not in hs and key not in changed:
                    rank += 1
                    changed[key] = rank
                    bases[key] = entry.base
                elif key not in changed:
                    changed[key] = 0  # an existing row: its rank stays
                hs[entry.history] = entry.oseq
                outcomes.append(Outcome(status, deleted))
            if changed:
                conn.executemany(_UPSERT_MARK, [
                    (o, h, marks[o][h], r, *(bases.get((o, h)) or (None, None)))
                    for (o, h), r in changed.items()])
            conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (last_seq,))
        self._marks = marks
        self._bases = bases
        self._rank = rank
        self._last_seq = last_seq
        return outcomes

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction: committed when the block ends, rolled back (and the
        caches rebuilt from what is committed) on any error; a full disk becomes
        DiskFullError."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                # Series created, dropped or re-attributed by this call are in the caches:
                # rebuild them from what is committed.
                self._cache_valid = False
                self._load()
                raise
        except BaseException as exc:
            full = disk_full(exc)
            if full is not None:
                raise full from exc
            raise

    def _apply_change(self, change: object) -> tuple[str, ...]:
        if isinstance(change, Update):
            self._apply_update(change.readings)
            return ()
        if isinstance(change, Meta):
            self._apply_meta(change.lines, change.delta)
            return ()
        if isinstance(change, Delete):
            return self._apply_delete(change)
        raise TypeError(f"unsupported change {change!r}")

    def _create_series(self, cls: str, labels: Labels) -> int:
        cur = self._conn.execute(
            "INSERT INTO series (cls, labels, attrs) VALUES (?, ?, '[]')",
            (cls, _dump_labels(labels)),
        )
        sid = cur.lastrowid
        assert sid is not None
        self._ids[(cls, labels)] = sid
        self._attrs[sid] = ()
        return sid

    def _apply_update(self, readings: Iterable[Reading]) -> None:
        if type(readings) is CanonicalReadings:
            self._apply_columns(readings)
            return
        # The hot path. Python's sqlite3 binds exact int/float/str fast but goes through
        # its adapter protocol (several failed attribute lookups) for None and bool, which
        # doubles the cost of a row; so a reading without position is inserted by a
        # statement that leaves lat/lon/elev to their NULL default, and bools are bound as
        # 0/1. Runs of one kind keep the input order (the last reading at a ts wins).
        ids = self._ids
        codes = TYPE_CODES
        runs: list[tuple[str, list[tuple]]] = []
        rows: list[tuple] = []
        positioned: bool | None = None
        for r in readings:
            key = (r.cls, r.labels)
            sid = ids.get(key)
            if sid is None:
                sid = self._create_series(r.cls, r.labels)
            ts = r.ts
            if type(ts) is not int:
                raise TypeError(f"reading timestamp must be an int, not {ts!r}")
            v = r.value
            code = codes.get(type(v))
            if code is None:
                raise TypeError(f"unsupported reading value {v!r} of type {type(v).__name__}")
            if code == T_DOUBLE:
                if v != v:
                    v = "NaN"
            elif code == T_LONG:
                if not INT64_MIN <= v <= INT64_MAX:  # type: ignore[operator]
                    v = str(v)
            elif code == T_BOOL:
                v = 1 if v else 0
            elif code == T_MULTI:
                v = format_value(v)
            lat = r.lat
            lon = r.lon
            elev = r.elev
            if lat is None and lon is None and elev is None:
                if positioned is not False:
                    positioned = False
                    rows = []
                    runs.append((_INSERT_POINT_BARE, rows))
                rows.append((sid, ts, code, v))
            else:
                if positioned is not True:
                    positioned = True
                    rows = []
                    runs.append((_INSERT_POINT, rows))
                rows.append((sid, ts, _nan_safe(lat), _nan_safe(lon), elev, code, v))
        for sql, run in runs:
            self._conn.executemany(sql, run)

    def _apply_columns(self, cols: CanonicalReadings) -> None:
        """A canonical body's readings (replicated records, replays) from its columns, with
        no Reading objects: no position, values only longs of <= 18 digits (in range),
        finite doubles, strings and booleans. Series are created in order of first
        appearance, all rows go in one statement in input order, as _apply_update does."""
        ids = self._ids
        sids: dict[str, int] = {}
        for text, key in cols.keys.items():  # in order of first appearance
            sid = ids.get(key)
            sids[text] = sid if sid is not None else self._create_series(*key)
        rows: list[tuple[int, int, int, object]] = []
        append = rows.append
        for series, ts, v in zip(cols.series, cols.ts, cols.values, strict=True):
            t = type(v)
            if t is float:
                append((sids[series], ts, T_DOUBLE, v))
            elif t is int:
                append((sids[series], ts, T_LONG, v))
            elif t is bool:
                append((sids[series], ts, T_BOOL, 1 if v else 0))
            else:
                append((sids[series], ts, T_STRING, v))
        self._conn.executemany(_INSERT_POINT_BARE, rows)

    def _apply_meta(self, lines: Sequence[MetaLine], delta: bool) -> None:
        updates = []
        for ml in lines:
            sid = self._ids.get((ml.cls, ml.labels))
            if sid is None:
                continue  # Warp 10 only sets attributes of existing series
            old = self._attrs[sid]
            new = merge_attrs(old, ml.attrs, delta)
            if new != old:
                self._attrs[sid] = new
                updates.append((_dump_labels(new), sid))
        if updates:
            self._conn.executemany("UPDATE series SET attrs = ? WHERE id = ?", updates)

    def _apply_delete(self, change: Delete) -> tuple[str, ...]:
        deleteall = check_delete_range(change.start, change.end)
        sel = change.selector
        matched = [(key, sid) for key, sid in self._ids.items() if selector_matches(sel, *key)]
        conn = self._conn
        sids = [(sid,) for _, sid in matched]
        if deleteall:
            conn.executemany("DELETE FROM points WHERE series_id = ?", sids)
            conn.executemany("DELETE FROM series WHERE id = ?", sids)
            for key, sid in matched:
                del self._ids[key]
                del self._attrs[sid]
        else:
            assert change.start is not None and change.end is not None
            rng = range64(change.start, change.end)
            if rng is not None:
                conn.executemany(
                    "DELETE FROM points WHERE series_id = ? AND ts BETWEEN ? AND ?",
                    [(sid, *rng) for _, sid in matched],
                )
        return deleted_keys(key for key, _ in matched)

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
            raise RuntimeError(f"{self._path}: store is closed")
        return self._fetch(selector, start, end, last, showattr)

    def _fetch(
        self, selector: Selector, start: int, end: int, last: int | None, showattr: bool
    ) -> Iterator[str]:
        for cls, labels, attrs, points in self._scan(selector, start, end, last, False):
            yield from format_series(cls, labels, attrs if showattr else None, points)

    def scan(self, selector: Selector, start: int, end: int, *,
             last: int | None = None) -> Iterator[SeriesChunk]:
        if self._closed:
            raise RuntimeError(f"{self._path}: store is closed")
        return self._scan(selector, start, end, last, True)

    def find(self, selector: Selector) -> list[SeriesInfo]:
        if self._closed:
            raise RuntimeError(f"{self._path}: store is closed")
        conn = self._reader()
        try:
            rows = conn.execute("SELECT cls, labels, attrs FROM series").fetchall()
        finally:
            self._release(conn)
        found = []
        for cls, labels_json, attrs_json in rows:
            labels = _load_labels(labels_json)
            if selector_matches(selector, cls, labels):
                found.append((cls, labels, _load_labels(attrs_json)))
        return ordered(found, lambda f: (f[0], f[1]))

    def _scan(
        self, selector: Selector, start: int, end: int, last: int | None, newest_first: bool
    ) -> Iterator[SeriesChunk]:
        """Matching series in (class, labels) order, each as one or more consecutive
        chunks of points (bounded memory for a big series), in one read transaction."""
        rng = range64(start, end)
        if rng is None or (last is not None and last <= 0):
            return
        lo, hi = rng
        conn = self._reader()
        cur: sqlite3.Cursor | None = None
        try:
            conn.execute("BEGIN")  # one snapshot for the whole reply
            matched = []
            for sid, cls, labels_json, attrs_json in conn.execute(
                "SELECT id, cls, labels, attrs FROM series"
            ):
                labels = _load_labels(labels_json)
                if selector_matches(selector, cls, labels):
                    matched.append((sid, cls, labels, attrs_json))
            for sid, cls, labels, attrs_json in ordered(matched, lambda m: (m[1], m[2])):
                attrs = _load_labels(attrs_json)
                if last is None:
                    sql = _SELECT_POINTS_DESC if newest_first else _SELECT_POINTS
                    cur = conn.execute(sql, (sid, lo, hi))
                    while rows := cur.fetchmany(1000):
                        yield cls, labels, attrs, list(map(_point, rows))
                    cur.close()
                    cur = None
                else:
                    rows = conn.execute(_SELECT_LAST, (sid, lo, hi, last)).fetchall()
                    if not newest_first:
                        rows.reverse()
                    if rows:
                        yield cls, labels, attrs, list(map(_point, rows))
        finally:
            if cur is not None:
                cur.close()
            try:
                if conn.in_transaction:
                    conn.execute("COMMIT")
            except sqlite3.Error:
                conn.close()
            else:
                self._release(conn)

    # -- snapshot and restore ------------------------------------------------------------

    def snapshot(self) -> _SqliteSnapshot:
        if self._closed:
            raise RuntimeError(f"{self._path}: store is closed")
        return _SqliteSnapshot(self, self._reader())

    def is_empty(self) -> bool:
        return not self._ids and not self._marks

    def restore(self, marks: HistoryMarks | dict[str, int], series: Iterable[SeriesDump],
                replace: bool) -> None:
        marks = copy_marks(marks)
        if not self._cache_valid:
            self._load()
        if not replace and not self.is_empty():
            raise StoreNotEmptyError(
                f"{self._path}: holds {len(self._ids)} series and marks for "
                f"{len(self._marks)} origin(s); restore needs an empty store (or replace)")
        conn = self._conn
        with self._transaction():
            if replace:
                for table in ("points", "series", "history_marks"):
                    conn.execute(f"DELETE FROM {table}")
                self._ids, self._attrs = {}, {}
            for cls, labels, attrs, points in series:
                sid = self._create_series(cls, labels)
                if attrs:
                    conn.execute("UPDATE series SET attrs = ? WHERE id = ?",
                                 (_dump_labels(attrs), sid))
                    self._attrs[sid] = attrs
                self._apply_update(Reading(ts, lat, lon, elev, cls, labels, v)
                                   for ts, lat, lon, elev, v in points)
            rows = [(o, h, q) for o, hs in marks.items() for h, q in hs.items()]
            conn.executemany(_INSERT_MARK, [(o, h, q, i, None, None)
                                            for i, (o, h, q) in enumerate(rows, 1)])
        self._marks = copy_marks(marks)
        self._bases = {(o, h): None for o, h, _ in rows}
        self._rank = len(rows)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        self._conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SqliteSnapshot:
    """One read transaction on a pooled reader connection: WAL gives it a fixed view for
    as long as it lasts, while the writer goes on committing."""

    def __init__(self, store: SqliteStore, conn: sqlite3.Connection):
        self._store = store
        self._conn = conn
        conn.execute("BEGIN")
        self.history_marks: HistoryMarks = _load_marks(conn)
        self.marks: dict[str, int] = latest_marks(self.history_marks)
        row = conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
        self.last_seq = int(row[0])

    def series(self) -> Iterator[SeriesDump]:
        rows = self._conn.execute("SELECT id, cls, labels, attrs FROM series").fetchall()
        items = [(sid, cls, _load_labels(lab), _load_labels(att)) for sid, cls, lab, att in rows]
        for sid, cls, labels, attrs in ordered(items, lambda m: (m[1], m[2])):
            yield cls, labels, attrs, self._points(sid)

    def _points(self, sid: int) -> Iterator[tuple]:
        cur = self._conn.execute(_SELECT_POINTS, (sid, INT64_MIN, INT64_MAX))
        try:
            while rows := cur.fetchmany(2000):
                yield from map(_point, rows)
        finally:
            cur.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None  # type: ignore[assignment]
        if conn is None:
            return
        try:
            if conn.in_transaction:
                conn.execute("COMMIT")
        except sqlite3.Error:
            conn.close()
        else:
            self._store._release(conn)
