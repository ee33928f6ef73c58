"""The forwarder's main loop: scan, batch, send, settle; one batch in flight.

Order of effects after an acknowledgement: cursor file, then unlink of the files the batch
fully covered. A crash between any two steps only makes records be sent again, and the
target's per-origin dedup makes that harmless (and counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from fanout.datalog.format import LEGACY_HISTORY, Record
from fanout.errors import (
    ERROR_ID_COLLISION,
    ERROR_INVALID_RESPONSE,
    ERROR_NO_RESPONSE,
    ERROR_START_TICK_NOT_PRESENT,
    ERROR_TARGET_ERROR,
    DatalogCorruptError,
    FanoutError,
)
from fanout.exitcodes import EXIT_POLICY_STOP
from fanout.sdnotify import Notifier
from fanout.state import Cursor, NodeState, cursor_path, node_state_path
from fanout.statefile import iso_now
from fanout.store.base import HistoryMarks, base_short
from fanout.target_config import TargetConfig
from fanout.tlsconfig import TLS_ERRORS
from forwarder.retry import Backoff, FailureLog
from forwarder.sinks.base import Batch, Sink, SinkError, SinkRejected, SinkUnavailable
from forwarder.source import MAX_CHUNK_RECORDS, Chunk, SourceReader, scan_pending
from forwarder.state import ApplierState, LastError, Phase
from forwarder.wakeup import DirWatch

log = logging.getLogger("fanout.forwarder")
T = TypeVar("T")

MAX_IDLE_POLL_FACTOR = 10
INLINE_UNLINKS = 4


class ForwarderStopped(Exception):
    """The forwarder gives up by policy (max retries, a rejection, corruption)."""

    def __init__(self, error_num: int, message: str):
        super().__init__(message)
        self.error_num = error_num


class _Interrupted(Exception):
    """SIGTERM arrived while waiting: leave the loop, nothing is lost."""


class Forwarder:
    def __init__(self, cfg: TargetConfig, sink: Sink):
        self.cfg = cfg
        self.sink = sink
        self.state = ApplierState(cfg.target, cfg.state_file)
        self.cursor_path = cursor_path(cfg.state_dir, cfg.target)
        self.stop_event = asyncio.Event()
        self.wake = asyncio.Event()
        self.backoff = Backoff(cfg.retry_min, cfg.retry_max)
        self.failures = FailureLog(log, f"forwarding to {cfg.target}")
        saved = self._load_cursor()
        cursor = saved.last_processed_tick if saved else 0
        # A fanout target checks every record's CRC before applying anything (end to end,
        # network included), so checking here too would only halve throughput; when it
        # answers "corrupt batch" the span is re-read with checksums to name the file.
        self.verify_locally = cfg.sink.type != "fanout"
        self.reader = SourceReader(cfg.source_dir, cursor, verify=self.verify_locally)
        self._verify_until: str | None = None
        # the target's marks per origin and history, when it can tell (a fanout node)
        self._target_marks: dict[str, dict[str, int]] | None = None
        self._check_gap = False  # armed at connect and after every outage
        self._resyncs = 0
        self.state.last_processed = cursor
        self.state.last_applied = cursor if saved is None or saved.last_applied_tick is None \
            else saved.last_applied_tick
        self._pending_due = 0.0
        self._cursor_written = 0.0
        self.notify = Notifier()
        self._reader_thread = ThreadPoolExecutor(1, thread_name_prefix="fanout-read")
        self._unlinker = ThreadPoolExecutor(1, thread_name_prefix="fanout-unlink")
        self._watch: DirWatch | None = None
        self._wakes_seen = -1  # DirWatch.count when the last inline build began
        self._pause_file = str(cfg.pause_file)  # looked at before every request
        self._inflight: asyncio.Future[Any] | None = None  # the request being made

    # -- cursor ---------------------------------------------------------------------------

    def _load_cursor(self) -> Cursor | None:
        saved = Cursor.read(self.cursor_path)
        if saved is None and self.cursor_path.exists():
            log.warning("ignoring unreadable cursor file %s", self.cursor_path)
        return saved

    def _save_cursor(self) -> None:
        Cursor(self.state.last_processed, self.state.last_applied, iso_now()).write(
            self.cursor_path)

    # -- main loop ------------------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop_event.set()
        self.wake.set()
        if self._inflight is not None:
            self._inflight.cancel()  # _with_retry turns this into _Interrupted

    async def run(self) -> int:
        """0 after SIGTERM, 3 when it stopped itself (state says why)."""
        self.cfg.source_dir.mkdir(parents=True, exist_ok=True)
        self.state.write()
        watch = self._watch = DirWatch(self.cfg.source_dir, self.wake)
        heartbeat = asyncio.get_running_loop().create_task(self._heartbeat())
        # READY once it serves: state file, watchdog pings and retries all run. A target
        # that does not answer yet is its state's business (phase connecting/backoff,
        # degraded in fanout status), not a failed start: systemd would time the start
        # out and restart it in a loop for as long as the target is down.
        self.notify.ready(f"forwarding to {self.cfg.sink.endpoint}")
        try:
            await self._connect()
            await self._loop()
            self.state.set_phase(Phase.STOPPED, "stopped on request")
            return 0
        except _Interrupted:
            self.state.set_phase(Phase.STOPPED, "stopped on request")
            return 0
        except ForwarderStopped as exc:
            log.error("forwarder %s stops: %s", self.cfg.target, exc)
            self.state.last_error = LastError(exc.error_num, str(exc))
            self.state.set_phase(Phase.FAILED, str(exc))
            return EXIT_POLICY_STOP
        finally:
            self._save_cursor()
            self.notify.stopping()
            heartbeat.cancel()
            self._reader_thread.shutdown(wait=True, cancel_futures=True)
            self._unlinker.shutdown(wait=True)
            watch.close()
            await self.sink.close()
            self._refresh_pending(force=True)
            self.state.write()

    async def _heartbeat(self) -> None:
        """Watchdog pings and state every second, also while a send or backoff waits:
        being alive is not the same as making progress, and the state file says which."""
        while True:
            await asyncio.sleep(1.0)
            self.notify.watchdog()
            s = self.state
            self.notify.status(f"{s.phase.value}: applied {s.last_applied}, "
                               f"{s.pending_files} files pending")
            self._refresh_pending()
            s.write_if_due()

    async def _connect(self) -> None:
        """Learn the target's id (for ``via`` filtering); a refusal here is about the
        token or the endpoint, not the data, so it stops whatever ``on_reject`` says."""
        self.state.set_phase(Phase.CONNECTING, f"asking {self.cfg.sink.endpoint} who it is")
        try:
            self.state.target_id = await self._with_retry(self.sink.describe)
            self._target_marks = await self._with_retry(self._fetch_marks)
        except SinkRejected as exc:
            raise ForwarderStopped(ERROR_TARGET_ERROR, str(exc)) from None
        self._check_gap = True
        self.state.set_phase(Phase.RUNNING, f"connected to {self.state.target_id or 'target'}")

    async def _loop(self) -> None:
        """With a backlog, send chunk N while a reader thread prepares chunk N+1: reading
        and checksumming overlap the network round trip, and still only one batch is ever
        in flight. At the live edge (the last chunk took every file there was) the next
        chunk is read on the event loop instead: it is a file or two, and handing it to a
        thread and back cost more than reading it."""
        idle_factor = 1.0
        single_until: str | None = None
        chunk = await self._build(False, single_until)
        while not self.stop_event.is_set():
            if chunk is None:
                single_until = None
                self.state.set_phase(Phase.IDLE, "waiting for files")
                self._refresh_pending()
                self.state.write_if_due()
                # Wait only if nothing arrived since the last look, and clear the event
                # *before* looking again: cleared after, an event landing in between
                # was lost until the next poll (up to 10 s with adaptive polling).
                if not self.wake.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.cfg.poll_interval * idle_factor):
                            await self.wake.wait()
                woken = self.wake.is_set()
                self.wake.clear()
                idle_factor = (min(MAX_IDLE_POLL_FACTOR, idle_factor * 2)
                               if self.cfg.adaptive_polling and not woken else 1.0)
                # idle: also look for stragglers from the start of the directory
                chunk = await self._build(True, single_until, inline=True)
                if chunk is not None and woken and single_until is None:
                    chunk = await self._linger(chunk)
                continue
            idle_factor = 1.0
            if single_until is not None and chunk.files[-1:] >= [single_until]:
                single_until = None
            if self._verify_until is not None and chunk.files[-1:] >= [self._verify_until]:
                self._verify_until = None
                self.reader.verify = self.verify_locally
            prefetch = None
            if os.path.exists(self._pause_file):
                await self._paused()
                continue
            if chunk.records and self._check_gap:
                chunk = await self._gap_check(chunk, single_until)
                if chunk is None:
                    continue
            if chunk.records:
                self.state.set_phase(Phase.RUNNING, f"sending {len(chunk.records)} records")
                if not self.reader.caught_up:
                    prefetch = self._start_build(single_until)
                try:
                    await self._deliver(chunk)
                except SinkRejected as exc:
                    await self._discard(prefetch)
                    single_until = self._on_reject(chunk, exc, single_until)
                    chunk = await self._build(False, single_until)
                    continue
                except BaseException:
                    await self._discard(prefetch)
                    raise
            self._settle(chunk)
            if prefetch is not None:
                chunk = await self._finish_build(prefetch, single_until)
            else:
                chunk = await self._build(False, single_until, inline=self.reader.caught_up)

    async def _linger(self, chunk: Chunk) -> Chunk:
        """Files arriving back to back (wake-ups closer together than ``linger``): wait up
        to ``linger`` after the first for the next ones to share its request, and stop
        waiting as soon as the next one is not expected in time. A lone file, or files
        further apart, are sent at once, so a trickle pays no lag for this."""
        watch, linger = self._watch, self.cfg.linger
        if watch is None or not linger or not chunk.records:
            return chunk
        deadline = time.monotonic() + linger
        while (self.reader.caught_up and len(chunk.payload) < self.cfg.chunk_size
               and len(chunk.records) < MAX_CHUNK_RECORDS and not self.stop_event.is_set()):
            now = time.monotonic()
            if now + watch.interval > deadline:
                break  # the next file is not expected before the deadline
            if not self.wake.is_set():
                try:
                    async with asyncio.timeout(deadline - now):
                        await self.wake.wait()
                except TimeoutError:
                    break
            self.wake.clear()
            self._wakes_seen = watch.count
            try:
                more = self.reader.next_chunk(
                    self.cfg.chunk_size - len(chunk.payload), self._keep, strict=True,
                    max_records=MAX_CHUNK_RECORDS - len(chunk.records))
            except DatalogCorruptError as exc:
                self.reader.defer(exc)  # the next build meets it; this chunk goes first
                break
            if more is not None:
                chunk = chunk.extend(more)
        return chunk

    async def _paused(self) -> None:
        """Keep the place, send nothing, until the pause file goes (SIGUSR1 wakes us)."""
        self.state.set_phase(Phase.PAUSED, f"paused by {self.cfg.pause_file}")
        while self.cfg.pause_file.exists() and not self.stop_event.is_set():
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), 0.5)
        self.state.set_phase(Phase.RUNNING, "resumed")

    async def _fetch_marks(self) -> dict[str, dict[str, int]] | None:
        fetch = getattr(self.sink, "history_marks", None)
        if fetch is not None:
            return dict(await fetch())
        flat = await self.sink.marks()
        return None if flat is None else {o: {LEGACY_HISTORY: q} for o, q in flat.items()}

    async def _gap_check(self, chunk: Chunk, single_until: str | None) -> Chunk | None:
        """ArangoDB 1414: the first record of an (origin, history) must be at most one
        past what the target has applied of that history (past the history's base oseq
        when the target has not seen it yet); otherwise records in between are gone
        (retention dropped them, or the target lost its data) and continuing would hide
        the hole."""
        marks = self._target_marks
        self._check_gap = False
        if marks is None:
            return chunk
        # The target's marks as they will be when each record arrives: earlier records
        # of the chunk (the end of a base history, say) count as applied.
        seen: HistoryMarks = {o: dict(hs) for o, hs in marks.items()}
        checked: set[tuple[str, str]] = set()
        gaps = []
        for r in chunk.records:
            known = seen.setdefault(r.origin, {})
            have = known.get(r.history)
            if (r.origin, r.history) in checked:
                pass  # only each history's first record: the rest follow it in order
            elif have is None:
                short = base_short(seen, r.origin, r.base)
                if short is not None:  # the base history stops short of where r forked
                    gaps.append((r.origin, r.base[0] if r.base else r.history, short, r))
                elif r.oseq > (r.base[1] if r.base is not None else 0) + 1:
                    gaps.append((r.origin, r.history, r.base[1] if r.base else 0, r))
            elif r.oseq > have + 1:
                gaps.append((r.origin, r.history, have, r))
            checked.add((r.origin, r.history))
            known[r.history] = max(r.oseq, have or 0)
        if not gaps:
            return chunk
        origin, history, have, rec = gaps[0]
        what = (f"start tick not present: {self.cfg.target} has origin {origin} up to oseq "
                f"{have} (history {history}), the next record is oseq {rec.oseq} (seq "
                f"{rec.seq}); the records in between are gone (dropped by retention?)")
        if not self.cfg.auto_resync:
            raise ForwarderStopped(ERROR_START_TICK_NOT_PRESENT,
                                   f"{what}: run fanout bootstrap --replace, or set "
                                   "auto_resync: true")
        if self._resyncs >= self.cfg.auto_resync_retries:
            raise ForwarderStopped(ERROR_START_TICK_NOT_PRESENT,
                                   f"{what}; gave up after {self._resyncs} resyncs in a row")
        self._resyncs += 1
        await self._resync(what)
        self.reader.rewind()
        self._check_gap = True
        return await self._build(False, single_until)

    async def _resync(self, why: str) -> None:
        from fanout.config import load_node_config
        from fanout.ops.bootstrap import Endpoint, copy_snapshot, local_endpoint

        log.warning("%s; auto_resync %d/%d", why, self._resyncs, self.cfg.auto_resync_retries)
        self.state.last_error = LastError(ERROR_START_TICK_NOT_PRESENT, why)
        self.state.set_phase(Phase.CONNECTING, "auto_resync: copying a snapshot")
        try:
            assert self.cfg.node_config is not None
            source = local_endpoint(load_node_config(self.cfg.node_config))
            target = Endpoint(self.cfg.sink.endpoint, self.cfg.sink.secret(), self.cfg.sink.tls)
            result = await copy_snapshot(source, target, replace=True)
        except FanoutError as exc:
            raise ForwarderStopped(ERROR_START_TICK_NOT_PRESENT,
                                   f"auto_resync failed: {exc}") from None
        log.warning("auto_resync restored %s series, %s points at tick %s", result["series"],
                    result["points"], result["lastLogTick"])
        if "histories" in result:
            self._target_marks = {o: {h: int(v) for h, v in hs.items()}
                                  for o, hs in result["histories"].items()}
        else:
            self._target_marks = {k: {LEGACY_HISTORY: int(v)}
                                  for k, v in result["marks"].items()}

    def _start_build(self, single_until: str | None,
                     rescan: bool = False) -> asyncio.Future[Chunk | None]:
        return asyncio.get_running_loop().run_in_executor(
            self._reader_thread, lambda: self.reader.next_chunk(
                self.cfg.chunk_size, self._keep, single_file=single_until is not None,
                rescan=rescan))

    async def _build(self, rescan: bool, single_until: str | None,
                     inline: bool = False) -> Chunk | None:
        if not inline:
            return await self._finish_build(self._start_build(single_until, rescan),
                                            single_until)
        watch = self._watch
        if watch is not None:
            # At the live edge with no wake-up since the last build began, the directory
            # holds nothing that build did not list: skip listing it again. A file landing
            # after that listing has an event the idle wait will see.
            if not rescan and watch.count == self._wakes_seen and self.reader.caught_up:
                return None
            self._wakes_seen = watch.count
        try:
            return self.reader.next_chunk(self.cfg.chunk_size, self._keep,
                                          single_file=single_until is not None, rescan=rescan)
        except DatalogCorruptError as exc:
            return await self._on_corrupt(exc, single_until)

    async def _finish_build(self, fut: asyncio.Future[Chunk | None],
                            single_until: str | None) -> Chunk | None:
        """The chunk, or the handling of a corrupt file met while reading it."""
        try:
            return await fut
        except DatalogCorruptError as exc:
            return await self._on_corrupt(exc, single_until)

    async def _on_corrupt(self, exc: DatalogCorruptError,
                          single_until: str | None) -> Chunk | None:
        name = Path(exc.path).name
        if self.cfg.on_reject != "quarantine":
            raise ForwarderStopped(ERROR_INVALID_RESPONSE,
                                   f"corrupt datalog file: {exc}") from None
        self._quarantine(name, ERROR_INVALID_RESPONSE, str(exc), {"offset": exc.offset})
        self.reader.rewind()
        return await self._build(False, single_until)

    async def _discard(self, fut: asyncio.Future[Chunk | None] | None) -> None:
        """Wait out a prefetch whose result is no longer wanted (the reader is rewound
        after, so nothing it read is lost)."""
        if fut is not None:
            with contextlib.suppress(Exception):
                await fut

    def _keep(self, rec: Record) -> bool:
        if rec.origin in self.cfg.ignore_origins:
            return False
        tid = self.state.target_id
        return not (tid is not None and tid in rec.via)

    async def _deliver(self, chunk: Chunk) -> None:
        batch = Batch(chunk.records, chunk.payload)
        result = await self._with_retry(lambda: self.sink.send(batch))
        s = self.state
        s.total_requests += 1
        s.total_duplicates += result.duplicate
        s.total_loops += result.loop
        s.total_gaps += result.gap
        s.total_bytes += len(chunk.payload)
        s.last_applied = chunk.records[-1].seq

    def _settle(self, chunk: Chunk) -> None:
        """Record progress, then unlink. Unlinking a fully covered file is itself durable
        progress, so the cursor file is written only when a chunk ends inside a file
        (the cursor then says which of its records are done), or once a second."""
        if chunk.records:
            self._resyncs = 0
        s = self.state
        s.last_processed = max(s.last_processed, chunk.last_seq)
        s.total_events += len(chunk.records)
        s.total_excluded += chunk.excluded
        now = time.monotonic()
        if chunk.resume is not None or now - self._cursor_written >= 1.0:
            self._save_cursor()
            self._cursor_written = now
        self.reader.settle(chunk)
        # Unlinking freshly written files costs ~100 us each on ext4: do it on its own
        # thread, overlapping the next send. The ack is already recorded; a crash before
        # the unlink only means a resend that the target's dedup absorbs.
        # Only the names are queued: a queued chunk would pin its records and payload.
        # A file or two (the live path) are unlinked here: the hand-off to the thread and
        # back cost more than the unlinks.
        if len(chunk.files_done) <= INLINE_UNLINKS:
            self.reader.unlink(chunk.files_done)
        else:
            self._unlinker.submit(self.reader.unlink, list(chunk.files_done))
        self._refresh_pending()
        s.write_if_due()

    async def _with_retry(self, call: Callable[[], Awaitable[T]]) -> T:
        """Retry connection errors, timeouts, 5xx, 408, 429 with backoff; give up (1400)
        after max_connect_retries failures in a row (0: never)."""
        while True:
            if self.stop_event.is_set():
                raise _Interrupted
            task = asyncio.ensure_future(call())
            self._inflight = task  # request_stop cancels it
            try:
                result = await task
            except asyncio.CancelledError:
                if task.cancelled() and self.stop_event.is_set():
                    raise _Interrupted from None
                raise
            except SinkUnavailable as exc:
                await self._failed(exc)
                continue
            finally:
                self._inflight = None
            if self.failures.count:
                # back from an outage: the target may have restarted empty (a memory
                # store), so its marks are fetched and checked again before sending
                self._check_gap = True
                with contextlib.suppress(SinkError):
                    self._target_marks = await self._fetch_marks()
            if self.failures.count and self.state.last_error is not None and \
                    (self.state.last_error.error_num in (ERROR_NO_RESPONSE,
                                                         ERROR_INVALID_RESPONSE,
                                                         ERROR_ID_COLLISION)
                     or self.state.last_error.error_num in TLS_ERRORS):
                self.state.last_error = None  # an outage that is over is not a current error
            self.failures.recovered()
            self.backoff.reset()
            self.state.failed_connects = 0
            return result

    async def _failed(self, exc: SinkUnavailable) -> None:
        s = self.state
        s.failed_connects += 1
        s.total_failed_connects += 1
        s.last_error = LastError(exc.error_num, str(exc))
        limit = self.cfg.max_connect_retries
        # An id collision is not an unreachable target: it is retried until the operator
        # fixes the ids, whatever max_connect_retries says (the files stay pending).
        if limit and s.failed_connects >= limit and exc.error_num != ERROR_ID_COLLISION:
            raise ForwarderStopped(ERROR_NO_RESPONSE,
                                   f"no response from {self.cfg.sink.endpoint} after "
                                   f"{s.failed_connects} tries: {exc}")
        delay = self.backoff.next_delay()
        self.failures.failed(str(exc), delay)
        s.set_phase(Phase.BACKOFF, f"retrying in {delay:.1f}s: {exc}")
        s.write()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), delay)

    def _on_reject(self, chunk: Chunk, exc: SinkRejected, single_until: str | None) -> str | None:
        if exc.status == 400 and "corrupt batch" in exc.target_message and \
                not self.reader.verify:
            # the target found a bad checksum: re-read this span verifying, so the corrupt
            # file is named (with its offset) and the records before it still go through
            log.warning("target reports a corrupt batch; re-reading it with checksums")
            self.reader.verify = True
            self._verify_until = chunk.files[-1]
            self.reader.rewind()
            return single_until
        if self.cfg.on_reject == "stop":
            raise ForwarderStopped(ERROR_TARGET_ERROR, str(exc))
        self.reader.rewind()
        if len(chunk.files) > 1:
            # find the culprit: resend this span one file at a time
            return chunk.files[-1]
        self._quarantine(chunk.files[0], ERROR_TARGET_ERROR, str(exc),
                         {"status": exc.status})
        return single_until

    def _quarantine(self, name: str, error_num: int, why: str, extra: dict[str, object]) -> None:
        qdir = self.cfg.quarantine_dir
        qdir.mkdir(exist_ok=True)
        src = self.cfg.source_dir / name
        note = {"file": name, "target": self.cfg.target, "errorNum": error_num,
                "reason": why, "time": iso_now(), **extra}
        (qdir / f"{name}.json").write_text(json.dumps(note, indent=1) + "\n")
        with contextlib.suppress(FileNotFoundError):
            os.rename(src, qdir / name)
        self.state.quarantined += 1
        self.state.last_error = LastError(error_num, f"quarantined {name}: {why}")
        log.error("quarantined %s: %s", name, why)
        self.state.write()

    def _refresh_pending(self, force: bool = False) -> None:
        """Backlog figures; a big backlog is scanned less often (cost-proportional)."""
        now = time.monotonic()
        if not force and now < self._pending_due:
            return
        t0 = time.monotonic()
        try:
            p = scan_pending(self.cfg.source_dir, time.time())
        except FileNotFoundError:
            return
        cost = time.monotonic() - t0
        self._pending_due = now + max(1.0, cost * 20)
        s = self.state
        s.pending_files, s.pending_bytes, s.pending_oldest_age = p.files, p.bytes, p.oldest_age
        node = NodeState.read(node_state_path(self.cfg.state_dir))
        available = node.last_log_tick if node else 0
        s.last_available = max(s.last_available, available, p.newest_seq, s.last_processed)
