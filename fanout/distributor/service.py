"""The distributor process: watch, scan, link, commit, enforce retention, report.

Main loop (one thread; the committer thread, in ``linker.py``, runs fsyncs and removes the
originals they made removable)::

    watch datalog/ -> startup scan -> loop:
        wait for an inotify event, a signal or the next timer
        SIGTERM/SIGINT: finish the batch in hand, drain the committer, state, exit 0
        SIGHUP: re-read every target file
        events: link the names they carry (the steady, healthy case)
        IN_Q_OVERFLOW, lost watch, a file left behind, periodic tick: scan datalog/ in
            bounded batches
        periodic: re-read changed target files; enforce retention
        every second: write the state file
        nothing waiting: count target directories for the state file, 0.5 ms at a time

Names from events: listing datalog/ at every wake-up cost more than the links themselves
at a live node's rates (one wake-up per file, a directory that holds every file waiting
for its commit). The names are complete unless the inotify queue overflowed or the watch
was lost, and both force a scan. Any file an event named that could not be linked
everywhere (a name conflict, a failed link) makes every following wake-up scan the whole
directory, as every wake-up did before, until a scan finds nothing left behind; the
periodic scan remains the safety net for anything else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from fanout import fileio
from fanout.config import NodeConfig
from fanout.distributor import targets as targets_mod
from fanout.distributor.audit import AuditJob
from fanout.distributor.linker import (
    Batch,
    Committer,
    Slot,
    fsync_datalog,
    fsync_dirs,
    link_batch,
    oldest_batch,
    remove_originals,
)
from fanout.distributor.retention import RetentionGuard
from fanout.distributor.state import (
    Counters,
    ErrorTracker,
    Phase,
    TargetStats,
    build_state,
    write_state,
)
from fanout.distributor.targets import Target, TargetSet
from fanout.distributor.watcher import Watcher
from fanout.errors import ERROR_INVALID_CONFIGURATION, ERROR_SYS, ConfigError
from fanout.fileio import InstanceLock, is_datalog_name
from fanout.sdnotify import Notifier
from fanout.state import distributor_state_path

log = logging.getLogger("fanout.distributor")


def _env_number(name: str, default: float) -> float:
    """Test and tuning knob; the defaults are what production runs with."""
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


# Periodic safety-net rescan of datalog/ (and count of target directories), seconds.
RESCAN_INTERVAL = _env_number("FANOUT_DISTRIBUTOR_RESCAN", 5.0)
# Periodic re-read of targets_dir (SIGHUP forces one at once), seconds.
RELOAD_INTERVAL = _env_number("FANOUT_DISTRIBUTOR_RELOAD", 5.0)
STATE_INTERVAL = 1.0
# Names taken from one directory pass. Each pass reads the whole directory, so a larger
# batch means fewer passes over a large backlog; memory stays O(batch) either way.
SCAN_BATCH = 16384
# Batches at least this large are committed on the main thread (see _commit_inline);
# smaller ones, the steady trickle of a live node, go to the committer thread so that
# no fsync ever delays the next file's links.
INLINE_COMMIT = int(_env_number("FANOUT_DISTRIBUTOR_INLINE_COMMIT", 256))
MAX_INFLIGHT = 2 * SCAN_BATCH  # linked, not yet removed: bounds memory and redo after a crash
AUDIT_SLICE = 0.0005  # seconds of target-directory counting per idle loop turn
# Counting a huge dead target's directory is real work: the next count waits at least this
# many times as long as the last one took, so counting never takes over 1/AUDIT_PACE of
# the CPU.
AUDIT_PACE = 10
DROP_LOG_EVERY = 30.0


@dataclass
class TargetRuntime:
    """A target in use: its config, its counters, its retention guard, its link slot."""

    target: Target
    stats: TargetStats = field(default_factory=TargetStats)
    guard: RetentionGuard | None = None
    slot: Slot | None = None
    drops_unlogged: int = 0
    drop_logged_at: float = 0.0

    def __post_init__(self) -> None:
        t = self.target
        if t.limited:
            self.guard = RetentionGuard(str(t.source_dir), t.max_files, t.max_bytes)
        stats, guard = self.stats, self.guard

        def on_link(size: int) -> None:
            stats.linked += 1
            stats.linked_bytes += size
            if stats.first_link_wall is None:
                stats.first_link_wall = time.time()
            if guard is not None:
                guard.added(size)

        self.slot = Slot(t.name, str(t.source_dir), on_link)


class Distributor:
    def __init__(self, node: NodeConfig):
        self.node = node
        self.datalog_dir = node.datalog_dir
        self.state_path = distributor_state_path(node.state_dir)
        self.phase = Phase.STARTING
        self.counters = Counters()
        self.errors = ErrorTracker()
        self.snap = TargetSet()
        self.runtime: dict[str, TargetRuntime] = {}
        self.slots: list[Slot] = []
        self.committer = Committer(str(self.datalog_dir), self.errors.report,
                                   self.errors.resolved)
        # linked, not yet removed: scans skip them. Bounded by MAX_INFLIGHT.
        self.inflight: set[str] = set()
        # A scan may find what the event names miss: set at start, after an overflow and
        # whenever a file was left behind; cleared by a scan that leaves nothing behind.
        self._need_scan = True
        self.audit: AuditJob | None = None
        self._next_audit = 0.0
        self.watcher: Watcher | None = None
        self._stopping = False
        self._hup = False
        self._next_state = 0.0
        self._lock: InstanceLock | None = None
        self.notifier = Notifier()

    # ---------------------------------------------------------------- lifecycle

    def run(self) -> int:
        self._take_lock()
        try:
            return self._run()
        finally:
            if self._lock is not None:
                self._lock.release()

    def _run(self) -> int:
        self._write_state()
        try:
            try:
                self.datalog_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(self.node.source, "datalog_dir",
                                  f"cannot create {self.datalog_dir}: {exc.strerror}") from None
            self.snap = targets_mod.load_all(self.node.targets_dir, self.datalog_dir)
        except ConfigError as exc:  # the CLI prints it and exits 78
            self.errors.record(ERROR_INVALID_CONFIGURATION, str(exc))
            self._set_phase(Phase.STOPPED)
            raise
        wake_r, restore = self._install_signals()
        try:
            # Watch first, then scan: a file published between the two is seen by both,
            # never by neither.
            self.watcher = Watcher(self.datalog_dir)
            self._apply_targets(self.snap.targets)
            self.committer.start()
            self._set_phase(Phase.RUNNING)
            self.notifier.ready(self._status_line())
            log.info("distributing %s to %d target(s): %s", self.datalog_dir,
                     len(self.runtime), ", ".join(self.runtime) or "none yet")
            self.counters.rescans += 1
            self._scan(full=True)
            self._loop(wake_r)
        except Exception as exc:  # a bug or an unexpected OS error: say so in the state
            self.errors.record(ERROR_SYS, f"distributor stopped on {exc!r}")
            raise
        finally:
            self.notifier.stopping()
            restore()
            self._drain()
            self.committer.close()
            if self.audit is not None:
                self.audit.close()
            if self.watcher is not None:
                self.watcher.close()
            self._set_phase(Phase.STOPPED)
        log.info("stopped: %d files linked, %d removed from %s", self.counters.files_linked,
                 self.counters.files_removed, self.datalog_dir)
        return 0

    def _take_lock(self) -> None:
        """One distributor per node: two would double-count and race on removals."""
        self._lock = fileio.acquire(self.node.state_dir, "distributor")

    def _install_signals(self) -> tuple[int | None, Any]:
        """Handlers only set flags; a self-pipe wakes the select() in the main loop."""
        if threading.current_thread() is not threading.main_thread():
            return None, lambda: None
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

        def on_stop(signum: int, frame: FrameType | None) -> None:
            self._stopping = True

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self._hup = True

        old = {s: signal.signal(s, h) for s, h in
               ((signal.SIGTERM, on_stop), (signal.SIGINT, on_stop), (signal.SIGHUP, on_hup))}
        old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)

        def restore() -> None:
            signal.set_wakeup_fd(old_fd)
            for s, h in old.items():
                signal.signal(s, h)
            os.close(r)
            os.close(w)

        return r, restore

    # ---------------------------------------------------------------- main loop

    def _loop(self, wake_r: int | None) -> None:
        assert self.watcher is not None
        now = time.monotonic()
        next_rescan = now + RESCAN_INTERVAL
        next_reload = now + RELOAD_INTERVAL
        fds = [self.watcher.fileno()]  # the same inotify instance across re-watches
        if wake_r is not None:
            fds.append(wake_r)
        while not self._stopping:
            now = time.monotonic()
            timeout = max(0.0, min(next_rescan, next_reload, self._next_state) - now)
            if self.audit is not None:
                timeout = 0.0  # counting in slices between events
            ready, _, _ = select.select(fds, [], [], timeout)
            if wake_r is not None and wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
            self._reap()
            if self._stopping:
                break
            if self._hup:
                self._hup = False
                log.info("SIGHUP: re-reading %s", self.node.targets_dir)
                self._reload(force=True)
            if self.watcher.fileno() in ready:
                events = self.watcher.drain()
                if events.overflow:
                    self.counters.overflows += 1
                    self.counters.rescans += 1
                    log.warning("inotify queue overflowed (events lost): rescanning %s",
                                self.datalog_dir)
                if events.full or (events.seen and self._need_scan):
                    self._scan(full=events.full)
                elif events.names:
                    self._link_named(events.names)
            now = time.monotonic()
            if now >= next_reload:
                self._reload(force=False)
                next_reload = time.monotonic() + RELOAD_INTERVAL
            if now >= next_rescan:
                self._periodic()
                next_rescan = time.monotonic() + RESCAN_INTERVAL
            # only when nothing was waiting: an event is handled before any counting
            if self.audit is not None and not ready and self.audit.step(AUDIT_SLICE):
                self._next_audit = time.monotonic() + max(RESCAN_INTERVAL,
                                                          AUDIT_PACE * self.audit.work)
                self.audit = None
            self._maybe_write_state()

    def _periodic(self) -> None:
        assert self.watcher is not None
        if not self.watcher.watching:
            with contextlib.suppress(OSError):
                self.datalog_dir.mkdir(parents=True, exist_ok=True)
            if self.watcher.rewatch():
                log.warning("datalog_dir %s reappeared: watching it again", self.datalog_dir)
        self.counters.rescans += 1
        self._scan(full=True)
        self._enforce_retention()
        if self.audit is None and time.monotonic() >= self._next_audit:
            self._start_audit()

    def _scan(self, full: bool = False) -> None:
        """Link every datalog file not already on its way out, oldest first, in batches of
        SCAN_BATCH names (memory is bounded whatever the backlog)."""
        datalog = str(self.datalog_dir)
        if not self.slots:
            if full:  # nothing to link to: only count what waits (not at every event)
                self._count_backlog()
            return
        after: str | None = None
        waiting: int | None = None  # datalog files not yet linked everywhere
        while True:
            try:
                names, count, cursor = oldest_batch(datalog, SCAN_BATCH, after)
            except OSError as exc:
                self.errors.report(ERROR_SYS, f"cannot scan datalog_dir {datalog}: "
                                              f"{exc.strerror}", "scan")
                self._need_scan = True
                return
            if waiting is None:
                waiting = self.counters.datalog_backlog = count
                self.errors.resolved("scan")
            if cursor is None:
                self._need_scan = waiting > 0
                return
            after = cursor
            waiting -= self._link_fresh(names)
            self.counters.datalog_backlog = max(waiting, 0)
            if self._stopping:
                self._need_scan = True
                return
            self._maybe_write_state()
            if count == len(names):  # all that is left fitted in this batch: no new pass
                self._need_scan = waiting > 0
                return

    def _link_named(self, names: list[str]) -> None:
        """Link the files the inotify events named (oldest first), without listing the
        directory. Anything left behind makes the next wake-up scan."""
        if len(names) > 1:  # usually one: a wake-up per file at a live node's rates
            names = sorted(dict.fromkeys(names))
        names = [n for n in names if is_datalog_name(n)]
        if not self.slots:
            if names:
                self._need_scan = True  # counted and linked by the scan after a target
            return
        for i in range(0, len(names), SCAN_BATCH):
            chunk = names[i:i + SCAN_BATCH]
            if self._link_fresh(chunk) < len(chunk):
                self._need_scan = True
            if self._stopping:
                self._need_scan = True
                return
            self._maybe_write_state()

    def _link_fresh(self, names: list[str]) -> int:
        """Link the names not already on their way out; returns how many of ``names`` are
        linked everywhere or already on their way out (the rest wait for a later scan)."""
        self._reap()
        fresh = [n for n in names if n not in self.inflight]
        done = len(names) - len(fresh)
        if not fresh:
            return done
        while len(self.inflight) >= MAX_INFLIGHT:  # bounded memory and redo
            self.committer.wait_done()
            self._reap()
        batch = link_batch(str(self.datalog_dir), fresh, self.slots, self.errors.report)
        self.counters.files_linked += batch.files_linked
        self.counters.bytes_linked += batch.bytes_linked
        if len(batch.names) >= INLINE_COMMIT:
            self._commit_inline(batch)
        elif batch.names:
            self.inflight.update(batch.names)
            self.committer.submit(batch)
        self._enforce_retention()
        return done + len(batch.names)

    def _reap(self) -> None:
        """Forget the batches the committer is done with: their originals are removed
        (or, when a directory fsync failed, kept for a later scan to retry)."""
        if not self.committer.has_done:  # the usual case: no lock taken
            return
        for batch in self.committer.take_done():
            self.inflight.difference_update(batch.names)
            self.counters.files_removed += batch.removed
            if not batch.durable:
                self._need_scan = True

    def _commit_inline(self, batch: Batch) -> None:
        """A large batch (a backlog): fsync, unlink and fsync on this thread, linking
        nothing meanwhile. On ext4, linking while another thread's directory fsync
        commits the journal costs about a third of the throughput; one commit per
        thousands of files costs nothing, and there is no latency to save."""
        report = self.errors.report
        if fsync_dirs(batch.touched, report, self.errors.resolved):
            removed = remove_originals(str(self.datalog_dir), batch.names, report)
            self.counters.files_removed += removed
            if removed:
                fsync_datalog(str(self.datalog_dir), report)

    def _drain(self) -> None:
        """At stop: wait for every submitted batch and remove its originals."""
        while self.committer.outstanding and self.committer.alive:
            self.committer.wait_done()
            self._reap()
        self._reap()

    def _count_backlog(self) -> None:
        with contextlib.suppress(OSError):
            self.counters.datalog_backlog = oldest_batch(str(self.datalog_dir), 1)[1]

    def _enforce_retention(self) -> None:
        for rt in self.runtime.values():
            guard = rt.guard
            if guard is None or not guard.over():
                continue
            try:
                files, size = guard.enforce()
            except OSError as exc:
                self.errors.report(ERROR_SYS, f"target {rt.target.name}: retention failed: "
                                              f"{exc.strerror}", f"retention:{rt.target.name}")
                continue
            if files:
                rt.stats.dropped += files
                rt.stats.dropped_bytes += size
                self._log_drops(rt, files)

    def _log_drops(self, rt: TargetRuntime, files: int) -> None:
        rt.drops_unlogged += files
        now = time.monotonic()
        if now - rt.drop_logged_at >= DROP_LOG_EVERY:
            t = rt.target
            log.warning("target %s: retention (max_files %d, max_bytes %d) dropped its %d "
                        "oldest files (%d in all)", t.name, t.max_files, t.max_bytes,
                        rt.drops_unlogged, rt.stats.dropped)
            rt.drops_unlogged = 0
            rt.drop_logged_at = now

    # ---------------------------------------------------------------- targets

    def _reload(self, force: bool) -> None:
        try:
            snap, errors = targets_mod.reload(self.snap, self.node.targets_dir,
                                              self.datalog_dir, force=force)
        except OSError as exc:
            self.errors.report(ERROR_SYS, f"cannot read {self.node.targets_dir}: "
                                          f"{exc.strerror}", "targets_dir")
            return
        for err in errors:
            kept = "" if err.path not in {str(t.config_file) for t in snap.targets.values()} \
                else "; keeping its previous configuration"
            self.errors.report(ERROR_INVALID_CONFIGURATION, f"{err}{kept}",
                               f"config:{err.path}:{err}")
        self.snap = snap
        if snap.targets != {n: rt.target for n, rt in self.runtime.items()}:
            added = self._apply_targets(snap.targets)
            if added:
                self.counters.rescans += 1
                self._scan(full=True)  # files waiting (e.g. with no target) go to it now

    def _apply_targets(self, new: dict[str, Target]) -> bool:
        """Swap in a new target set, keeping the counters of targets that did not change.
        Returns whether a target was added (or changed) and so needs a scan."""
        old = self.runtime
        runtime: dict[str, TargetRuntime] = {}
        added = False
        for name, target in new.items():
            prev = old.get(name)
            if prev is not None and prev.target == target:
                runtime[name] = prev
                continue
            rt = TargetRuntime(target, stats=prev.stats if prev is not None else TargetStats())
            if rt.guard is not None:
                rt.guard.recount()
            runtime[name] = rt
            added = True
            if old or prev is not None:
                log.info("target %s: %s (source_dir %s)", name,
                         "changed" if prev is not None else "added", target.source_dir)
        for name in old.keys() - new.keys():
            log.info("target %s: removed; no longer linking into %s", name,
                     old[name].target.source_dir)
        self.runtime = runtime
        self.slots = [rt.slot for rt in runtime.values() if rt.slot is not None]
        self._start_audit()
        if runtime:
            self._enforce_retention()
        return added

    def _start_audit(self) -> None:
        """Count every target directory anew (from the main loop, in slices)."""
        if self.audit is not None:
            self.audit.close()
        self.audit = AuditJob([(str(rt.target.source_dir), rt.stats)
                               for rt in self.runtime.values()])

    # ---------------------------------------------------------------- state

    def _set_phase(self, phase: Phase) -> None:
        self.phase = phase
        self._write_state()

    def _maybe_write_state(self) -> None:
        """Called after every batch and loop turn, so also the watchdog's heartbeat."""
        if time.monotonic() >= self._next_state:
            self._write_state()
            self.notifier.watchdog()

    def _status_line(self) -> str:
        return (f"{len(self.runtime)} target(s), {self.counters.files_linked} files linked, "
                f"{self.counters.datalog_backlog} waiting")

    def _write_state(self) -> None:
        self._next_state = time.monotonic() + STATE_INTERVAL
        if self.phase is Phase.RUNNING:
            self.notifier.status(self._status_line())
        targets = {n: (rt.target, rt.stats) for n, rt in self.runtime.items()}
        write_state(self.state_path, build_state(
            self.phase, self.counters, self.errors, self.datalog_dir, targets,
            len(self.inflight)))


def run_distributor(config_path: Path) -> int:
    """Run until SIGTERM or SIGINT; 0 on a clean stop. A ConfigError (exit 78 at the CLI)
    means the node config or a target file is invalid or a source directory is refused."""
    from fanout.config import load_node_config

    return Distributor(load_node_config(config_path)).run()
