"""The fan-out step: link a batch into every target, make it durable, remove the originals.

Per batch, in this order (docs/architecture.md, "The path of one write"):

1. ``link_batch`` (main thread): link each file into every target directory;
2. ``Committer`` (its own thread): fsync every target directory the batch touched, once
   for the batch and for every batch that queued up meanwhile;
3. ``remove_originals`` (the committer, in the same round, once those fsyncs succeeded):
   unlink the originals; a later round fsyncs the datalog directory (at most every
   DATALOG_SYNC seconds, and always before the committer stops). The main thread takes
   the batches back when it next wakes, only to forget their names.

So a file leaves ``datalog/`` only after its links exist in every target directory and
those directories are durable, while directory fsyncs, the slow part, never delay the
next file's links. Every step is idempotent, so after a crash at any point the next run
completes the work: a link that already exists to the same file is success, an original
that is already gone is skipped.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fanout.errors import ERROR_FILE_EXISTS, ERROR_SYS
from fanout.fileio import fsync_dir, oldest_datalog_names

log = logging.getLogger("fanout.distributor")

Report = Callable[[int, str, str], None]  # (errorNum, message, key)
# Seconds between the starts of two committer rounds (see Committer._run); tuning knob.
# No link waits for a round (a forwarder sends a file as soon as it is linked): the window
# only delays the removal of originals, so it is sized for CPU. Each round costs a
# directory fsync per target, each a synchronous write and a cache flush without a journal.
# Measured with 4 targets and 10 KB files at 100 files/s (bench/distribute.py --paced): the
# distributor's CPU per file is ~310 us with 0.02, ~190 us with 0.1, ~160 us with 0.2,
# ~135 us with 1.0; link p99 stayed under 1 ms with each. The cost of a longer window:
# after a crash, up to a window's worth of files is linked and sent again (at-least-once).
COALESCE = float(os.environ.get("FANOUT_DISTRIBUTOR_COALESCE", "0.5"))
# Seconds between two fsyncs of datalog/ while originals are being removed. That fsync
# only makes removals durable: losing some to a power cut means linking those files again
# (at-least-once delivery, deduplicated by the receivers), never losing one. On ext4
# without a journal every directory fsync is a synchronous write and a cache flush.
DATALOG_SYNC = 1.0


def oldest_batch(directory: str, limit: int,
                 after: str | None = None) -> tuple[list[str], int, str | None]:
    """Up to ``limit`` datalog names after ``after`` in name (= age) order, how many such
    names the directory holds, and the cursor for the next call (None: nothing left):
    ``fanout.fileio.oldest_datalog_names``. Memory is O(limit) whatever the directory
    holds; ``.tmp/`` and anything not named like a datalog file is never returned."""
    return oldest_datalog_names(directory, limit, after)


@dataclass
class Slot:
    """One target as the link loop sees it: a path prefix and counters to update."""

    name: str
    dir: str
    on_link: Callable[[int], None]  # called with the file's size for each new link

    @property
    def prefix(self) -> str:
        return self.dir.rstrip("/") + "/"


@dataclass
class Batch:
    names: list[str] = field(default_factory=list)  # complete: linked into every target
    touched: list[str] = field(default_factory=list)  # target directories to fsync
    files_linked: int = 0  # files that got at least one new link
    bytes_linked: int = 0
    durable: bool = False  # set by the committer once every touched directory is fsynced
    removed: int = 0  # originals the committer removed (once durable)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def link_batch(datalog_dir: str, names: list[str], slots: list[Slot], report: Report) -> Batch:
    """Link every name into every slot. A name joins ``Batch.names`` (to be removed from the
    datalog) only if every slot now holds it as the same file. With no slots nothing is
    complete: files stay in the datalog until a target exists."""
    batch = Batch()
    if not slots:
        return batch
    prefix = datalog_dir.rstrip("/") + "/"
    touched: dict[str, None] = {}
    targets = [(s, s.prefix) for s in slots]
    for name in names:
        src = prefix + name
        try:
            size = os.stat(src).st_size
        except FileNotFoundError:
            continue  # removed since the scan (by a previous commit of ours)
        complete = True
        new_links = 0
        for slot, tprefix in targets:
            dst = tprefix + name
            try:
                os.link(src, dst)
            except FileExistsError:
                if not _same_file(src, dst):
                    complete = False
                    report(ERROR_FILE_EXISTS,
                           f"target {slot.name}: {dst} exists and is not the datalog file "
                           f"{src}; the original is kept until that file is moved away",
                           f"conflict:{slot.name}")
                    continue
            except FileNotFoundError:
                if not os.path.lexists(src):
                    complete = False
                    break
                if not _recreate_and_link(slot, src, dst, report):
                    complete = False
                    continue
                slot.on_link(size)
                new_links += 1
            except OSError as exc:
                complete = False
                report(ERROR_SYS, f"target {slot.name}: cannot link {src} to {dst}: "
                                  f"{exc.strerror}", f"link:{slot.name}:{exc.errno}")
                continue
            else:
                slot.on_link(size)
                new_links += 1
            touched[slot.dir] = None
        if complete:
            batch.names.append(name)
        if new_links:
            batch.files_linked += 1
            batch.bytes_linked += size
    batch.touched = list(touched)
    return batch


def _recreate_and_link(slot: Slot, src: str, dst: str, report: Report) -> bool:
    """The target directory vanished (an operator removed it): source directories are
    created if missing, at start and whenever they disappear."""
    try:
        os.makedirs(slot.dir, exist_ok=True)
        fsync_dir(os.path.dirname(slot.dir.rstrip("/")) or "/")
        log.warning("target %s: source_dir %s was missing; created it", slot.name, slot.dir)
        os.link(src, dst)
        return True
    except FileExistsError:
        return _same_file(src, dst)
    except OSError as exc:
        report(ERROR_SYS, f"target {slot.name}: cannot create {slot.dir} and link into it: "
                          f"{exc.strerror}", f"mkdir:{slot.name}")
        return False


def remove_originals(datalog_dir: str, names: list[str], report: Report) -> int:
    """Unlink originals whose links are durable; returns how many were removed."""
    prefix = datalog_dir.rstrip("/") + "/"
    removed = 0
    for name in names:
        try:
            os.unlink(prefix + name)
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            report(ERROR_SYS, f"cannot remove {prefix + name}: {exc.strerror}",
                   f"unlink:{exc.errno}")
    return removed


class Committer:
    """Background thread making batches durable and removing their originals.

    The main thread submits each linked batch; a round of the committer fsyncs every
    target directory the pending batches touched (one fsync per directory for all of
    them), then unlinks the originals of those batches and hands them back. The datalog
    directory is fsynced at most every DATALOG_SYNC seconds while removals go on, and
    once more when the committer stops. A live node's trickle (a few files per round)
    costs a handful of context switches per round and none per file: the main thread is
    never woken to take batches back, it takes them when it next wakes anyway. Backlogs
    are committed on the main thread (``Distributor._commit_inline``): thousands of
    unlinks here would fight the main thread's links for the GIL.
    """

    def __init__(self, datalog_dir: str, report: Report, resolved: Callable[[str], None]):
        self.datalog_dir = datalog_dir
        self.report = report
        self.report_resolved = resolved
        self.outstanding = 0  # batches submitted and not yet handed back
        self._todo: list[Batch] = []
        self._done: list[Batch] = []
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="committer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, batch: Batch) -> None:
        with self._cond:
            self._todo.append(batch)
            self.outstanding += 1
            self._cond.notify_all()

    @property
    def has_done(self) -> bool:
        """Whether ``take_done`` has batches to give (a lock-free hint)."""
        return bool(self._done)

    def take_done(self) -> list[Batch]:
        """Batches whose round is over: ``durable`` says whether the fsyncs succeeded,
        ``removed`` how many originals are gone."""
        with self._cond:
            done, self._done = self._done, []
        return done

    def wait_done(self, timeout: float = 1.0) -> None:
        """Block until some batch is handed back (or nothing is outstanding)."""
        with self._cond:
            if not self._done and self.outstanding and self._thread.is_alive():
                self._cond.wait(timeout)

    def close(self) -> None:
        """Finish what was submitted (fsyncs, removals, the datalog fsync), then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.ident is not None:
            self._thread.join()

    def _run(self) -> None:
        last_round = last_sync = -math.inf  # the first round runs at once, whatever the clock
        sync_datalog = False  # originals removed since the last fsync of datalog/
        while True:
            with self._cond:
                while not self._todo and not self._closing:
                    if not sync_datalog:
                        self._cond.wait()
                        continue
                    left = max(last_round + COALESCE, last_sync + DATALOG_SYNC) \
                        - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                closing = self._closing
            # At most one round per COALESCE seconds: under a steady stream each round
            # takes everything linked meanwhile, so the fsyncs (and their kernel time,
            # the largest part of the CPU at a live node's rates) are per round, not per
            # file, and fewer directory writes mean fewer stalls for the links being made
            # (measured with 16 targets at 1,000 files/s: p99 latency 4-10 ms without,
            # 2-4 ms with). A file after a quiet spell gets its round at once. A plain
            # sleep: waking at every submit would cost the main thread GIL handovers.
            wait = last_round + COALESCE - time.monotonic()
            if wait > 0 and not closing:
                time.sleep(wait)
            with self._cond:
                batches, self._todo = self._todo, []
            if not batches and not sync_datalog:
                return  # closing, and nothing left to do
            last_round = time.monotonic()
            try:
                durable = self._fsync_targets(batches) if batches else True
                if sync_datalog and (closing or last_round >= last_sync + DATALOG_SYNC):
                    self._fsync_datalog()
                    sync_datalog = False
                    last_sync = last_round
                if durable:
                    for b in batches:
                        b.removed = remove_originals(self.datalog_dir, b.names, self.report)
                        sync_datalog = sync_datalog or b.removed > 0
            except Exception as exc:  # never let the thread die silently
                self.report(ERROR_SYS, f"committer: {exc!r}", "commit")
                durable = False
            for b in batches:
                b.durable = durable
            with self._cond:
                self._done.extend(batches)
                self.outstanding -= len(batches)
                self._cond.notify_all()

    def _fsync_targets(self, batches: list[Batch]) -> bool:
        dirs = dict.fromkeys(d for b in batches for d in b.touched)
        return fsync_dirs(list(dirs), self.report, self.report_resolved)

    def _fsync_datalog(self) -> None:
        fsync_datalog(self.datalog_dir, self.report)


def fsync_dirs(dirs: list[str], report: Report, resolved: Callable[[str], None]) -> bool:
    """fsync each target directory; False at the first failure (nothing may be removed)."""
    for d in dirs:
        try:
            fsync_dir(d)
        except OSError as exc:
            # Not durable, so not removable: the originals stay, and the next scan finds
            # the links in place and fsyncs again.
            report(ERROR_SYS, f"cannot fsync target directory {d}: {exc.strerror}; "
                              f"originals kept", f"fsync:{d}")
            return False
        resolved(f"fsync:{d}")
    return True


def fsync_datalog(datalog_dir: str, report: Report) -> None:
    try:
        fsync_dir(datalog_dir)
    except OSError as exc:
        report(ERROR_SYS, f"cannot fsync {datalog_dir}: {exc.strerror}", "fsync:datalog")
