"""The forwarder's policy, in process: a real ``Forwarder`` reading real datalog files,
sending to a ``FakeSink`` whose replies each test scripts.

What the end-to-end tests show through processes (tests/forwarder/test_failures.py,
test_online.py), shown here one rule at a time: bisection of a refused batch down to one
file, quarantine, re-reading with checksums until past a corrupt span, pause, the gap check
(1414), which failures are retried and when the forwarder gives up (1400), and the id
collision (1420) that is retried whatever ``max_connect_retries`` says.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fanout.datalog import DatalogWriter, Record
from fanout.datalog.format import LEGACY_HISTORY
from fanout.errors import (
    ERROR_ID_COLLISION,
    ERROR_INVALID_RESPONSE,
    ERROR_NO_RESPONSE,
    ERROR_START_TICK_NOT_PRESENT,
    ERROR_TARGET_ERROR,
)
from fanout.target_config import SinkConfig, TargetConfig
from fanout.testing import FakeReply, FakeSink
from forwarder.applier import Forwarder
from forwarder.sinks.base import SinkRejected, SinkUnavailable, classify
from forwarder.state import Phase

DEADLINE = 60.0  # generous: the suite runs on 2 busy cores


def config(tmp: Path, **kw: Any) -> TargetConfig:
    source, state = tmp / "source", tmp / "state"
    source.mkdir(exist_ok=True)
    state.mkdir(exist_ok=True)
    base: dict[str, Any] = {"retry_min": 0.01, "retry_max": 0.05, "poll_interval": 0.05}
    return TargetConfig(source=tmp / "t.yaml", target="t", source_dir=source, state_dir=state,
                        sink=SinkConfig("fanout", "http://127.0.0.1:9", None, token="x"),
                        **{**base, **kw})


def write_files(directory: Path, spans: list[range], origin: str = "a") -> list[str]:
    """One datalog file per span of seqs (oseq = seq), in order; their names."""
    w = DatalogWriter(directory, origin)
    names = []
    for span in spans:
        recs = [Record(s, origin, s, 0, "update", "ingest", {}, (),
                       f"{s}// x{{}} {s}\n".encode()) for s in span]
        prep = w.prepare(recs)
        w.publish(prep)
        names.append(prep.name)
    return names


def dlogs(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.dlog"))


async def drive(fwd: Forwarder, until: Callable[[], bool]) -> int:
    """Run the forwarder until ``until()`` holds (then stop it) or it stops itself."""
    task = asyncio.ensure_future(fwd.run())
    deadline = asyncio.get_running_loop().time() + DEADLINE
    try:
        while not until():
            if task.done():
                return task.result()
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out; forwarder phase {fwd.state.phase}")
            await asyncio.sleep(0.01)
    finally:
        fwd.request_stop()
        code = await asyncio.wait_for(task, DEADLINE)
    return code


def run(cfg: TargetConfig, sink: FakeSink, until: Callable[[Forwarder], bool]) -> tuple[
        int, Forwarder]:
    async def main() -> tuple[int, Forwarder]:
        fwd = Forwarder(cfg, sink)
        return await drive(fwd, lambda: until(fwd)), fwd

    return asyncio.run(main())


def done_through(seq: int) -> Callable[[Forwarder], bool]:
    """Everything up to ``seq`` acknowledged and the covered files unlinked."""
    return lambda f: f.state.last_processed >= seq and not dlogs(f.cfg.source_dir)


def refuse_seq(bad: int, error: Exception) -> Callable[[Any], FakeReply]:
    def reply(batch: Any) -> FakeReply:
        if any(r.seq == bad for r in batch.records):
            raise error
        return FakeReply(len(batch.records))

    return reply


def test_sends_in_order_settles_and_unlinks(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    write_files(cfg.source_dir, [range(1, 4), range(4, 7)])
    sink = FakeSink()
    code, fwd = run(cfg, sink, done_through(6))
    assert code == 0
    assert sink.applied_seqs() == list(range(1, 7))
    assert fwd.state.last_applied == 6 and fwd.state.total_events == 6
    cursor = json.loads((cfg.state_dir / "forwarder-t.cursor").read_text())
    assert cursor["lastProcessedTick"] == "6" and cursor["lastAppliedTick"] == "6"
    assert sink.closed


def test_a_refused_batch_is_bisected_to_the_file_and_quarantined(tmp_path: Path) -> None:
    cfg = config(tmp_path, on_reject="quarantine")
    names = write_files(cfg.source_dir, [range(1, 4), range(4, 7), range(7, 10),
                                         range(10, 13)])
    sink = FakeSink(reply=refuse_seq(8, SinkRejected(400, "bad record")))
    code, fwd = run(cfg, sink, done_through(12))
    assert code == 0
    # the whole span first, then one file at a time until past the culprit
    assert [r.seq for r in sink.sent[0]] == list(range(1, 13))
    assert [[r.seq for r in b] for b in sink.sent[1:4]] == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert sink.applied_seqs() == [1, 2, 3, 4, 5, 6, 10, 11, 12]
    # the culprit file, and only it, is kept aside with a note saying why
    assert sorted(p.name for p in cfg.quarantine_dir.iterdir()) == [names[2],
                                                                    f"{names[2]}.json"]
    note = json.loads((cfg.quarantine_dir / f"{names[2]}.json").read_text())
    assert note["errorNum"] == ERROR_TARGET_ERROR and note["status"] == 400
    assert "bad record" in note["reason"]
    assert fwd.state.quarantined == 1
    assert fwd.state.last_error is not None and names[2] in fwd.state.last_error.message


def test_a_refused_batch_stops_with_on_reject_stop(tmp_path: Path) -> None:
    cfg = config(tmp_path)  # on_reject: stop is the default
    names = write_files(cfg.source_dir, [range(1, 4), range(4, 7)])
    sink = FakeSink(reply=refuse_seq(5, SinkRejected(403, "token may not replicate")))
    code, fwd = run(cfg, sink, lambda f: False)
    assert code == 3
    assert fwd.state.phase is Phase.FAILED
    assert fwd.state.last_error is not None
    assert fwd.state.last_error.error_num == ERROR_TARGET_ERROR
    assert "HTTP 403" in fwd.state.last_error.message
    assert len(sink.sent) == 1 and sink.applied == []  # refused at once, nothing settled
    assert dlogs(cfg.source_dir) == names and not cfg.quarantine_dir.exists()


def test_a_corrupt_batch_is_reread_with_checksums_until_past_it(tmp_path: Path) -> None:
    """The target finds a bad checksum: the span is re-read verifying, which names the
    corrupt file and offset; the records before it still go through."""
    cfg = config(tmp_path)
    names = write_files(cfg.source_dir, [range(1, 4), range(4, 7), range(7, 10)])
    path = cfg.source_dir / names[1]
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x20  # a byte of seq 6's body: only a checksum can tell
    path.write_bytes(bytes(raw))

    def target(batch: Any) -> FakeReply:
        if any(r.seq == 6 for r in batch.records):
            raise SinkRejected(400, "corrupt batch: record 6 checksum mismatch")
        return FakeReply(len(batch.records))

    sink = FakeSink(reply=target)
    code, fwd = run(cfg, sink, lambda f: False)
    assert code == 3
    assert fwd.state.last_error is not None
    assert fwd.state.last_error.error_num == ERROR_INVALID_RESPONSE
    assert "corrupt datalog file" in fwd.state.last_error.message
    assert names[1] in fwd.state.last_error.message
    assert sink.applied_seqs() == [1, 2, 3]  # sent once verified, before the corrupt file
    assert dlogs(cfg.source_dir) == names[1:]


def test_verification_ends_after_the_span_the_target_called_corrupt(tmp_path: Path) -> None:
    """Checksums are re-checked only over the span the target called corrupt; after it
    the target's own check is relied on again (the reader does not verify), so a record
    the target accepts is not stopped by the forwarder."""
    cfg = config(tmp_path, chunk_size=1)  # one record per batch: the span is file 1
    names = write_files(cfg.source_dir, [range(1, 3), range(3, 5), range(5, 7)])
    path = cfg.source_dir / names[2]
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x20  # seq 6's body: a verifying reader would stop on it
    path.write_bytes(bytes(raw))
    sink = FakeSink(script=[SinkRejected(400, "corrupt batch: a flaky NIC")])
    code, fwd = run(cfg, sink, done_through(6))
    assert code == 0, fwd.state.last_error
    assert [r.seq for r in sink.sent[0]] == [1] and [r.seq for r in sink.sent[1]] == [1]
    assert sink.applied_seqs() == list(range(1, 7))
    assert fwd.reader.verify is False


def test_pause_holds_everything_until_the_pause_file_goes(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    write_files(cfg.source_dir, [range(1, 4)])
    cfg.pause_file.write_text("")
    sink = FakeSink()

    async def main() -> tuple[int, Forwarder, int]:
        fwd = Forwarder(cfg, sink)
        task = asyncio.ensure_future(drive(fwd, lambda: done_through(3)(fwd)))
        # paused is a positive signal: the forwarder had a batch ready and held it
        for _ in range(int(DEADLINE / 0.01)):
            if fwd.state.phase is Phase.PAUSED:
                break
            await asyncio.sleep(0.01)
        assert fwd.state.phase is Phase.PAUSED
        assert sink.sent == [] and dlogs(cfg.source_dir)
        on_disk = json.loads(cfg.state_file.read_text())
        assert on_disk["phase"] == "paused"
        held = len(sink.sent)
        cfg.pause_file.unlink()
        fwd.wake.set()  # what SIGUSR1 does
        return await task, fwd, held

    code, _, held = asyncio.run(main())
    assert code == 0 and held == 0
    assert sink.applied_seqs() == [1, 2, 3]


def test_a_gap_before_the_first_record_stops_with_1414(tmp_path: Path) -> None:
    cfg = config(tmp_path)  # auto_resync: false is the default
    write_files(cfg.source_dir, [range(5, 8)])  # 1..4 are gone (retention dropped them)
    sink = FakeSink(marks={"a": {LEGACY_HISTORY: 3}})  # the target has 1..3
    code, fwd = run(cfg, sink, lambda f: False)
    assert code == 3
    assert sink.sent == []
    err = fwd.state.last_error
    assert err is not None and err.error_num == ERROR_START_TICK_NOT_PRESENT
    assert "origin a up to oseq 3" in err.message and "oseq 5" in err.message
    assert "bootstrap --replace" in err.message


def test_no_gap_when_the_target_has_the_record_before(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    write_files(cfg.source_dir, [range(5, 8)])
    sink = FakeSink(marks={"a": {LEGACY_HISTORY: 4}})
    code, _ = run(cfg, sink, done_through(7))
    assert code == 0 and sink.applied_seqs() == [5, 6, 7]


H1, H2 = "1" * 16, "2" * 16


def write_history_files(directory: Path, spans: list[tuple[range, str, tuple[str, int] | None]]
                        ) -> None:
    """One file per span of origin a's records in history ``h`` with ``base`` (oseq = seq)."""
    w = DatalogWriter(directory, "a")
    for span, h, base in spans:
        w.publish(w.prepare([Record(s, "a", s, 0, "update", "ingest", {}, (),
                                    f"{s}// x{{}} {s}\n".encode(), history=h, base=base)
                             for s in span]))


def test_a_gap_at_the_start_of_a_new_history_stops_with_1414(tmp_path: Path) -> None:
    """The origin restarted at oseq 10 (history H2, base (H1, 10)), but the target holds H1
    only up to 7 and 8..10 are gone: the first H2 record must not hide that hole."""
    cfg = config(tmp_path)
    write_history_files(cfg.source_dir, [(range(11, 13), H2, (H1, 10))])
    sink = FakeSink(marks={"a": {H1: 7}})
    code, fwd = run(cfg, sink, lambda f: False)
    assert code == 3 and sink.sent == []
    err = fwd.state.last_error
    assert err is not None and err.error_num == ERROR_START_TICK_NOT_PRESENT
    assert f"up to oseq 7 (history {H1})" in err.message and "oseq 11" in err.message


def test_no_gap_when_the_base_history_ends_in_the_same_backlog(tmp_path: Path) -> None:
    """H1's last records (8..10) wait in the backlog before H2's first: nothing is missing."""
    cfg = config(tmp_path)
    write_history_files(cfg.source_dir, [(range(8, 11), H1, None),
                                         (range(11, 13), H2, (H1, 10))])
    sink = FakeSink(marks={"a": {H1: 7}})
    code, _ = run(cfg, sink, done_through(12))
    assert code == 0 and sink.applied_seqs() == [8, 9, 10, 11, 12]


def test_the_gap_check_is_armed_again_after_an_outage(tmp_path: Path) -> None:
    """A target that comes back from an outage may have restarted empty: its marks are
    fetched again and checked before the next batch."""
    cfg = config(tmp_path, chunk_size=1)
    write_files(cfg.source_dir, [range(1, 3), range(3, 5)])
    sink = FakeSink(marks={})

    def first(batch: Any) -> FakeReply:
        sink.marks_value = {"a": {LEGACY_HISTORY: 0}}  # lost while down: restarted empty
        sink.script.extendleft([SinkUnavailable("connection refused")])
        return FakeReply(len(batch.records))

    sink.script.append(first)
    code, fwd = run(cfg, sink, lambda f: False)
    assert code == 3
    assert fwd.state.last_error is not None
    assert fwd.state.last_error.error_num == ERROR_START_TICK_NOT_PRESENT
    # the batch in flight during the outage is retried as is; the next one is checked
    assert sink.applied_seqs() == [1, 2]


def test_unavailable_is_retried_with_backoff_then_recovers(tmp_path: Path) -> None:
    cfg = config(tmp_path, max_connect_retries=5)
    write_files(cfg.source_dir, [range(1, 4)])
    sink = FakeSink(script=[SinkUnavailable("connection refused"),
                            SinkUnavailable("target answered HTTP 503", 503),
                            SinkUnavailable("timed out")])
    code, fwd = run(cfg, sink, done_through(3))
    assert code == 0
    assert len(sink.sent) == 4 and sink.applied_seqs() == [1, 2, 3]
    s = fwd.state
    assert s.total_failed_connects == 3 and s.failed_connects == 0
    assert s.last_error is None  # an outage that is over is not a current error


def test_gives_up_with_1400_after_max_connect_retries(tmp_path: Path) -> None:
    cfg = config(tmp_path, max_connect_retries=3)
    write_files(cfg.source_dir, [range(1, 4)])
    sink = FakeSink(reply=refuse_seq(1, SinkUnavailable("connection refused")))
    code, fwd = run(cfg, sink, lambda f: False)
    assert code == 3
    assert len(sink.sent) == 3
    err = fwd.state.last_error
    assert err is not None and err.error_num == ERROR_NO_RESPONSE
    assert "after 3 tries" in err.message
    assert dlogs(cfg.source_dir), "nothing acknowledged may be unlinked"


def test_an_id_collision_is_retried_whatever_max_connect_retries_says(tmp_path: Path) -> None:
    cfg = config(tmp_path, max_connect_retries=2)
    write_files(cfg.source_dir, [range(1, 4)])
    collision = SinkUnavailable("target refused the batch: id collision", 409,
                                ERROR_ID_COLLISION)
    sink = FakeSink(script=[collision] * 5)
    seen: list[int] = []

    def reply(batch: Any) -> FakeReply:
        seen.append(fwd_box[0].state.last_error.error_num)  # type: ignore[union-attr]
        return FakeReply(len(batch.records))

    sink.reply = reply
    fwd_box: list[Forwarder] = []

    async def main() -> int:
        fwd = Forwarder(cfg, sink)
        fwd_box.append(fwd)
        return await drive(fwd, lambda: done_through(3)(fwd))

    assert asyncio.run(main()) == 0
    assert len(sink.sent) == 6 and sink.applied_seqs() == [1, 2, 3]
    assert seen == [ERROR_ID_COLLISION]  # the error was current until it went through
    assert fwd_box[0].state.last_error is None
    assert fwd_box[0].state.total_failed_connects == 5


@pytest.mark.parametrize(("status", "body", "kind", "error_num"), [
    (200, "{}", None, None),
    (503, "busy", SinkUnavailable, ERROR_NO_RESPONSE),
    (500, "boom", SinkUnavailable, ERROR_NO_RESPONSE),
    (429, "slow down", SinkUnavailable, ERROR_NO_RESPONSE),
    (408, "timeout", SinkUnavailable, ERROR_NO_RESPONSE),
    (409, json.dumps({"errorNum": ERROR_ID_COLLISION, "errorMessage": "ids"}),
     SinkUnavailable, ERROR_ID_COLLISION),
    (409, json.dumps({"errorNum": 1405}), SinkRejected, ERROR_TARGET_ERROR),
    (409, "not json", SinkRejected, ERROR_TARGET_ERROR),
    (307, "", SinkUnavailable, ERROR_TARGET_ERROR),  # a redirect: not followed, retried
    (308, "", SinkUnavailable, ERROR_TARGET_ERROR),
    (400, "bad", SinkRejected, ERROR_TARGET_ERROR),
    (403, "forbidden", SinkRejected, ERROR_TARGET_ERROR),
])
def test_reply_classification(status: int, body: str, kind: type | None,
                              error_num: int | None) -> None:
    err = classify(status, body)
    if kind is None:
        assert err is None
    else:
        assert err is not None and type(err) is kind and err.error_num == error_num
