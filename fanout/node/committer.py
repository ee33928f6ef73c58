"""Group commit: every write that arrives while the last commit runs shares the next one.

One commit = one datalog file prepared (fsynced under .tmp/), one store transaction that
records the new ``last_seq``, then the file published. The store transaction is the commit
point (see ``fanout.datalog.writer``). Writes are acknowledged only after publication.

Commits run one at a time, in queue order, so seq and oseq stay dense and ordered without
locks. A lone request or batch (nothing else queued behind it: a replica fed by one
forwarder, a primary at a moderate rate) of at most INLINE_COMMIT_BYTES of updates and
meta writes commits right on the event loop: handing it to a thread and back cost about
15% of a replicated batch's CPU on the node. Everything else runs on the dedicated commit
thread, so that the loop keeps reading and parsing the next requests while the fsyncs
run: a group of several (concurrent writers: blocking the loop there cost the primary its
schedule at 25,000 points/s), a bigger one, any holding a delete (its selector is matched
against every series, and it may remove millions of points: its cost is the store's
size, not the request's), and every commit after one that took longer than
INLINE_SLOW_SECONDS (a stalling disk). The waits between publication retries are on the
commit thread too.

Client writes here are logged under this process's own history (begun in the store when
the committer is built, before anything is served); their oseq continues from the
history's base. Replicated writes keep their origin's history and base.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fanout.datalog.format import LEGACY_HISTORY, Record
from fanout.datalog.writer import DatalogWriter, Prepared
from fanout.errors import DiskFullError, FanoutError
from fanout.node.changes import Pending
from fanout.store.base import Base, Entry, History, HistoryMarks, Outcome, Store

log = logging.getLogger("fanout.node.commit")

MAX_GROUP_BYTES = 32 * 1024 * 1024
INLINE_COMMIT_BYTES = 64 * 1024
INLINE_SLOW_SECONDS = 0.05
# Publication errors that may heal (space freed, descriptors released) are retried this
# long; then the node exits and restart recovery publishes the file. Others exit at once.
PUBLISH_RETRY_SECONDS = 10.0
PUBLISH_RETRY_INTERVAL = 0.5
_TRANSIENT = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EAGAIN, errno.EBUSY, errno.EINTR,
                        errno.EMFILE, errno.ENFILE, errno.ENOMEM})


class CommitThread:
    """The one thread every commit-path call runs on, in submission order.

    Not a ThreadPoolExecutor with ``run_in_executor``: that path builds a work item, a
    concurrent future with its condition variable and a chained asyncio future per call,
    about a tenth of a replicated batch's whole cost on the node. Here a call is a tuple
    on a lock-free queue, and its result one ``call_soon_threadsafe``."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[tuple[asyncio.Future[Any], Callable[..., Any],
                                             tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def call(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if self._thread is None:
            self._loop = loop
            # A daemon: an exit that skipped Committer.stop (a failed bootstrap) must not
            # hang on it; a commit cut short that way is a crash, which recovery repairs.
            self._thread = threading.Thread(target=self._serve, name="fanout-commit",
                                            daemon=True)
            self._thread.start()
        fut: asyncio.Future[Any] = loop.create_future()
        self._calls.put((fut, fn, args))
        return fut

    def _serve(self) -> None:
        loop = self._loop
        assert loop is not None
        while (item := self._calls.get()) is not None:
            fut, fn, args = item
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the awaiting side, as an executor would
                loop.call_soon_threadsafe(_settle, fut, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, fut, result, None)
            del item, fut, fn, args

    def shutdown(self) -> None:
        """Let the calls queued so far finish, then stop the thread."""
        if self._thread is not None:
            self._calls.put(None)
            self._thread.join()
            self._thread = None


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.cancelled():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


@dataclass
class _Handoff:
    """The rest of a commit begun on the event loop, to run on the commit thread."""

    finish: Callable[[], list[list[Outcome]]]


class CommitFatal(FanoutError):
    """The commit path broke an invariant it cannot repair in place (a prepared file gone,
    the store ahead of what the committer knows). The node must stop serving and exit
    non-zero: its supervisor restarts it and start-up recovery reconciles store and
    datalog, which retrying in place never would."""


@dataclass
class Unit:
    """Writes that must commit together (one client request, or one replication batch),
    or an ``action`` that must run alone on the commit thread (a restore)."""

    items: list[Pending]
    future: asyncio.Future[Any]
    size: int = 0
    action: Callable[[], Any] | None = None


@dataclass
class CommitStats:
    commits: int = 0
    files: int = 0
    records_logged: int = 0
    points: int = 0
    duplicates: int = 0
    gaps: int = 0
    failed_commits: int = 0
    last_group_units: int = 0
    last_error: str | None = None
    gap_origins: dict[str, int] = field(default_factory=dict)
    # One entry per (origin, history) first seen that says the origin went back in time
    # (or was re-created): see Committer._check_divergence.
    divergence: list[dict[str, Any]] = field(default_factory=list)


class Committer:
    def __init__(
        self, store: Store, writer: DatalogWriter, node_id: str, group_commit: bool = True,
        history: History | None = None, inline_bytes: int = INLINE_COMMIT_BYTES,
    ):
        self.store = store
        self.writer = writer
        self.node_id = node_id
        self.group_commit = group_commit
        self.last_seq = store.last_seq()
        # This process's own history: begun here unless the caller began it already.
        self.history = history if history is not None else store.begin_history(node_id)
        self.own_limits = own_history_limits(store.own_histories(), self.history.id)
        self.hmarks: HistoryMarks = store.history_marks()
        self.bases = store.history_bases()  # (origin, history) -> base, as first seen
        self.marks = store.marks()  # per origin, its latest-known history's mark
        self.stats = CommitStats()
        self.started = time.time()
        self._queue: asyncio.Queue[Unit | None] = asyncio.Queue()
        self._thread = CommitThread()
        self.inline_bytes = inline_bytes  # 0: every commit on the commit thread
        self._last_commit_seconds = 0.0
        self._task: asyncio.Task[None] | None = None
        # Set once the commit path is broken; every later submit fails with it at once.
        self.fatal: CommitFatal | None = None
        self.on_fatal: Callable[[CommitFatal], None] | None = None  # the server's exit hook

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="committer")

    async def stop(self) -> None:
        """Finish queued work, then stop; nothing queued is dropped."""
        await self._queue.put(None)
        if self._task:
            await self._task
        self._thread.shutdown()

    async def exclusive(self, action: Callable[[], Any]) -> Any:
        """Run ``action`` on the commit thread between two commits, alone."""
        if self.fatal is not None:
            raise self.fatal
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._queue.put(Unit([], fut, 0, action))
        return await fut

    async def submit(self, items: list[Pending]) -> list[Outcome]:
        if self.fatal is not None:
            raise self.fatal
        fut: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        size = sum(len(p.body) for p in items) + 256 * len(items)
        await self._queue.put(Unit(items, fut, size))
        return await fut

    async def _run(self) -> None:
        stopping = False
        held: Unit | None = None
        while not stopping:
            first = held if held is not None else await self._queue.get()
            held = None
            if first is None:
                return
            if first.action is not None:
                await self._run_action(first)
                continue
            group = [first]
            if self.group_commit:
                size = first.size
                while not self._queue.empty() and size < MAX_GROUP_BYTES:
                    unit = self._queue.get_nowait()
                    if unit is None:
                        stopping = True
                        break
                    if unit.action is not None:
                        held = unit  # runs alone, right after this group
                        break
                    group.append(unit)
                    size += unit.size
            try:
                results = await self._commit_group(group)
            except Exception as exc:
                await self._after_failure(group, exc)
                if self.fatal is not None:
                    if held is not None and not held.future.done():
                        held.future.set_exception(self.fatal)
                    return
                continue
            for unit, res in zip(group, results, strict=True):
                if not unit.future.done():
                    unit.future.set_result(res)

    async def _commit_group(self, group: list[Unit]) -> list[list[Outcome]]:
        """Commit on the loop when the group is one small unit without a delete and the
        disk answers quickly, else on the commit thread (see the module docstring)."""
        started = time.monotonic()
        try:
            if (len(group) > 1 or self._last_commit_seconds > INLINE_SLOW_SECONDS
                    or group[0].size > self.inline_bytes
                    or any(p.op == "delete" for p in group[0].items)):
                return await self._thread.call(self._commit, group)
            done = self._commit(group, inline=True)
            if isinstance(done, _Handoff):
                return await self._thread.call(done.finish)
            return done
        finally:
            self._last_commit_seconds = time.monotonic() - started

    async def _after_failure(self, group: list[Unit], exc: Exception) -> None:
        """A commit failed. If it failed before the commit point (the store rolled back),
        each unit is committed again alone, so one bad request or batch is refused alone
        and the others are answered as if it had not been there. A full disk fails all
        (each would fail again); a broken invariant makes the node exit."""
        broken = await self._broken(exc)
        if broken is not None:
            self._die(broken, group)
            return
        self._note_failure(group, exc)
        if len(group) == 1 or isinstance(exc, DiskFullError):
            for unit in group:
                if not unit.future.done():
                    unit.future.set_exception(exc)
            return
        log.warning("a commit of %d requests failed (%s); committing each alone",
                    len(group), exc)
        for i, unit in enumerate(group):
            try:
                [result] = await self._thread.call(self._commit, [unit])
            except Exception as one:
                broken = await self._broken(one)
                if broken is not None:
                    self._die(broken, group[i:])
                    return
                self._note_failure([unit], one)
                if not unit.future.done():
                    unit.future.set_exception(one)
                continue
            if not unit.future.done():
                unit.future.set_result(result)

    async def _broken(self, exc: Exception) -> CommitFatal | None:
        """None if a failed commit left the store exactly where the committer thinks it
        is (it rolled back), so committing again is safe; else why the node must stop."""
        if isinstance(exc, CommitFatal):
            return exc
        try:
            store_seq, store_marks = await self._thread.call(
                lambda: (self.store.last_seq(), self.store.marks()))
        except Exception as read_exc:
            return CommitFatal(f"commit failed ({exc}) and the store cannot be read back "
                               f"({read_exc})")
        if store_seq != self.last_seq or store_marks != self.marks:
            return CommitFatal(f"commit failed after the store committed ({exc}): store at "
                               f"seq {store_seq}, committer at {self.last_seq}")
        return None

    def _note_failure(self, group: list[Unit], exc: Exception) -> None:
        """Count a failed commit and undo what the attempt wrote into its items."""
        self.stats.failed_commits += 1
        self.stats.last_error = str(exc)
        for unit in group:
            for p in unit.items:
                p.seq = 0
                if p.origin is None:
                    p.oseq = 0  # a client write gets its oseq when it commits

    def _die(self, fatal: CommitFatal, units: list[Unit]) -> None:
        """Stop committing for good: fail the given and every queued unit (their clients
        get an error reply, none hangs) and tell the server to exit."""
        self.fatal = fatal
        self.stats.last_error = str(fatal)
        log.critical("commit path broken: %s; the node stops so that its supervisor "
                     "restarts it and recovery runs", fatal)
        while not self._queue.empty():
            queued = self._queue.get_nowait()
            if queued is not None:
                units.append(queued)
        for unit in units:
            if not unit.future.done():
                unit.future.set_exception(fatal)
        if self.on_fatal is not None:
            self.on_fatal(fatal)

    async def _run_action(self, unit: Unit) -> None:
        assert unit.action is not None
        try:
            result = await self._thread.call(unit.action)
        except Exception as exc:
            if not unit.future.done():
                unit.future.set_exception(exc)
            return
        if not unit.future.done():
            unit.future.set_result(result)

    # -- on the commit thread ------------------------------------------------------------

    def own_oseq(self) -> int:
        """The last oseq given out in this process's history (its base oseq before any)."""
        mark = self.hmarks.get(self.node_id, {}).get(self.history.id)
        if mark is not None:
            return mark
        return self.history.base[1] if self.history.base is not None else 0

    def _commit(self, group: list[Unit],
                inline: bool = False) -> list[list[Outcome]] | _Handoff:
        """Prepare, apply (the commit point), publish, then update what the committer
        knows. ``inline`` (on the event loop): a publication that fails is not waited for
        here; the rest of the commit is handed back to run on the commit thread."""
        now_ms = int(time.time() * 1000)
        seq = self.last_seq
        moved: dict[tuple[str, str], int] = {}
        entries: list[Entry] = []
        records: list[Record] = []
        fresh: list[tuple[Pending, str, int]] = []
        via: tuple[str, ...]
        for unit in group:
            for p in unit.items:
                origin = p.origin or self.node_id
                if p.origin is None:
                    history, base = self.history.id, self.history.base
                    key = (origin, history)
                    oseq = moved.get(key, self.own_oseq()) + 1
                    when, via = now_ms, ()
                else:
                    history, base = p.history or LEGACY_HISTORY, p.base
                    key = (origin, history)
                    oseq, when, via = p.oseq, p.time, (*p.via, self.node_id)
                    mark = moved.get(key, self.hmarks.get(origin, {}).get(history))
                    if mark is None:
                        fresh.append((p, history, oseq))
                    elif oseq <= mark:
                        # duplicate: the store skips it, and it is not logged again
                        entries.append(Entry(origin, oseq, p.change, history, base))
                        continue
                entries.append(Entry(origin, oseq, p.change, history, base))
                moved[key] = oseq
                if p.origin is None:
                    p.oseq = oseq
                    p.history = history
                if p.log:
                    seq += 1
                    p.seq = seq
                    records.append(Record(seq, origin, oseq, when, p.op, p.token_id, p.params,
                                          via, p.body, history, base))
        prep = self.writer.prepare(records) if records else None
        try:
            outcomes = self.store.apply(entries, seq)
        except BaseException:
            if prep is not None:
                self.writer.discard(prep)
            raise
        if prep is not None and not self._publish(prep, inline=inline):
            return _Handoff(lambda: self._finish(group, seq, moved, fresh, outcomes,
                                                 len(records), prep, publish=True))
        return self._finish(group, seq, moved, fresh, outcomes, len(records), prep)

    def _finish(self, group: list[Unit], seq: int, moved: dict[tuple[str, str], int],
                fresh: list[tuple[Pending, str, int]], outcomes: list[Outcome], logged: int,
                prep: Prepared | None, publish: bool = False) -> list[list[Outcome]]:
        """The store has committed (and, unless ``publish``, the file is published)."""
        if publish:
            assert prep is not None
            self._publish(prep, failures=1)
        self.last_seq = seq
        for (origin, history), oseq in moved.items():
            hs = self.hmarks.setdefault(origin, {})
            hs[history] = oseq
            if next(reversed(hs)) == history:  # a history first seen is the latest-known
                self.marks[origin] = oseq
        for p, history, _ in fresh:
            self.bases[(p.origin or self.node_id, history)] = p.base
        for p, history, _ in fresh:  # against everything this commit applied too
            self._check_divergence(p, history)
        self._count(group, outcomes, logged, prep)
        it = iter(outcomes)
        return [[next(it) for _ in unit.items] for unit in group]

    def _check_divergence(self, p: Pending, history: str) -> None:
        """The first write of an origin's history this node had not seen. If this node
        holds writes of that origin outside the new history's ancestry (more of a base
        history than the origin had when it branched, or a sibling branch), the origin
        lost writes this node still has (it was restored from an older copy): say so. A
        new history without a base (a wiped or new store) while this node knows other
        histories of the origin is reported too, for information. Either way the writes
        are applied; nothing is hidden or dropped. Histories whose base this node does not
        know (marks from a snapshot) are left out: no false alarms."""
        assert p.origin is not None
        known = {h: m for h, m in self.hmarks.get(p.origin, {}).items() if h != history}
        if not known:
            return
        if p.base is None:
            ahead = max(known.values())
            what = (f"origin {p.origin} started history {history} from an empty store, "
                    f"while this node holds its histories {sorted(known)} up to oseq "
                    f"{ahead} (re-created with the same id, or wiped?)")
        else:
            ahead, lost = lost_writes(p.origin, p.base, known, self.bases)
            if not ahead:
                return
            what = (f"origin {p.origin} started history {history} from history "
                    f"{p.base[0]} at oseq {p.base[1]}, but this node holds {ahead} write(s)"
                    f" of it beyond that (histories {sorted(lost)}) that the origin no "
                    "longer has (restored from an older copy?)")
        log.error("DIVERGENCE: %s", what)
        self.stats.divergence.append({
            "origin": p.origin, "history": history,
            "base": None if p.base is None else [p.base[0], str(p.base[1])],
            "ahead": ahead, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "message": what})
        del self.stats.divergence[:-100]  # bounded: the newest ones matter

    def _publish(self, prep: Prepared, inline: bool = False, failures: int = 0) -> bool:
        """The store has committed: the file must be published before anyone is answered.

        An error that may heal (a full directory block, say) is retried for
        PUBLISH_RETRY_SECONDS; after that, or at once for any other error, CommitFatal:
        the node exits and restart recovery publishes the file (it is still under .tmp/).
        A prepared file that vanished (another process in this directory) is written again
        from memory first, since the store already holds its records.

        ``inline``: False instead of the first wait; the commit thread goes on from there
        (with ``failures`` 1). True once published.
        """
        deadline = time.monotonic() + PUBLISH_RETRY_SECONDS
        while True:
            try:
                self.writer.publish(prep)
                if failures:
                    log.warning("published %s after %d failed attempts", prep.name, failures)
                return True
            except FileNotFoundError as exc:
                if failures and (self.writer.dir / prep.name).exists():
                    return True  # an earlier attempt renamed it, then failed to sync the dir
                self._restore_vanished(prep)
                raise CommitFatal(
                    f"prepared datalog file {prep.tmp_path} vanished before publication "
                    f"({exc.strerror}): is another process using {self.writer.dir}?") from exc
            except OSError as exc:
                failures += 1
                if exc.errno not in _TRANSIENT:
                    raise CommitFatal(f"cannot publish {prep.tmp_path}: {exc}") from exc
                if time.monotonic() > deadline:
                    raise CommitFatal(f"cannot publish {prep.tmp_path} for "
                                      f"{PUBLISH_RETRY_SECONDS:.0f}s: {exc}") from exc
                if failures == 1:
                    log.error("cannot publish %s (%s); retrying for %.0fs", prep.name, exc,
                              PUBLISH_RETRY_SECONDS)
                if inline:
                    return False
                time.sleep(PUBLISH_RETRY_INTERVAL)

    def _restore_vanished(self, prep: Prepared) -> None:
        """Write a vanished prepared file again so the datalog keeps what the store
        committed; the node exits right after either way."""
        try:
            path = self.writer.restore(prep)
            log.error("prepared file %s vanished; %s holds it now", prep.tmp_path, path)
        except OSError as exc:
            log.critical("prepared file %s vanished and cannot be written again (%s): the "
                         "store holds seqs %d..%d that the datalog lacks", prep.tmp_path, exc,
                         prep.first_seq, prep.last_seq)

    def _count(self, group: list[Unit], outcomes: list[Outcome], logged: int,
               prep: Prepared | None) -> None:
        s = self.stats
        s.commits += 1
        s.last_group_units = len(group)
        s.records_logged += logged
        if prep is not None:
            s.files += 1
        items = [p for unit in group for p in unit.items]
        for p, out in zip(items, outcomes, strict=True):
            if out.status == "duplicate":
                s.duplicates += 1
                continue
            s.points += p.points
            if out.status == "gap":
                s.gaps += 1
                origin = p.origin or self.node_id
                s.gap_origins[origin] = s.gap_origins.get(origin, 0) + 1
                log.error("GAP from origin %s at oseq %d: records are missing upstream",
                          origin, p.oseq)


def own_history_limits(own: list[History], current: str) -> dict[str, int | None]:
    """Every history a record of this node's own may carry, with the highest oseq this
    node wrote in it (None: no limit, the current history).

    A history this node left (at a restart: the base of the next one) ends at the oseq it
    was left at; a write of it past that point comes from another live copy of this node
    (a cloned VM or store that went on writing it), which is an id collision, not a loop.
    A left history that is nobody's base wrote nothing. Bases that are not this node's own
    histories (the legacy history of an upgraded store, one of a restored copy) end at
    their base oseq too."""
    limits: dict[str, int | None] = {h.id: 0 for h in own}
    for h in own:
        if h.base is not None:
            limits[h.base[0]] = h.base[1]
    limits[current] = None
    return limits


def is_own_write(limits: dict[str, int | None], history: str, oseq: int) -> bool:
    """Whether a record of this node's id (history, oseq) is one it wrote itself."""
    if history not in limits:
        return False
    limit = limits[history]
    return limit is None or oseq <= limit


def lost_writes(origin: str, base: Base, known: dict[str, int],
                bases: dict[tuple[str, str], Base | None]) -> tuple[int, set[str]]:
    """How many of ``known`` (history -> mark) writes of ``origin`` lie outside the
    ancestry of a history that starts at ``base``, and in which histories.

    The ancestry is the base history left at the base oseq, its base left at its base
    oseq, and so on, as far as this node knows the bases. Outside it: whatever this node
    holds of an ancestor past the point the chain left it, and every known history whose
    own base chain reaches the ancestry but is not part of it (a sibling branch)."""
    anc: dict[str, int] = {base[0]: base[1]}
    cur = base[0]
    while (b := bases.get((origin, cur))) is not None and b[0] not in anc:
        anc[b[0]] = b[1]
        cur = b[0]
    ahead = 0
    lost: set[str] = set()
    for h, left in anc.items():
        if known.get(h, 0) > left:
            ahead += known[h] - left
            lost.add(h)
    for h, mark in known.items():
        if h in anc:
            continue
        seen = {h}
        cur = h
        while (b := bases.get((origin, cur))) is not None and b[0] not in seen:
            if b[0] in anc:
                own = bases[(origin, h)]
                assert own is not None
                ahead += max(0, mark - own[1])
                lost.add(h)
                break
            seen.add(b[0])
            cur = b[0]
    return ahead, lost
