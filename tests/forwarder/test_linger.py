"""Lingering: files that arrive back to back share a request, a lone file does not wait.

A real ``Forwarder`` in process, real files arriving in its source directory at a
chosen pace, and a ``FakeSink`` that notes when each batch reaches it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from fanout.testing import FakeReply, FakeSink
from forwarder.applier import Forwarder
from tests.forwarder.test_policy import config, dlogs, drive, write_files


class TimedSink(FakeSink):
    """Notes, for every batch, the seqs it held and when it arrived."""

    def __init__(self) -> None:
        super().__init__(reply=lambda b: FakeReply(len(b.records)))
        self.arrivals: list[tuple[float, list[int]]] = []

    async def send(self, batch: Any) -> Any:
        self.arrivals.append((time.monotonic(), [r.seq for r in batch.records]))
        return await super().send(batch)


def feed(cfg_dir: Path, count: int, every: float, sink: TimedSink, linger: float,
         tmp: Path) -> dict[int, float]:
    """Run a forwarder while ``count`` one-record files arrive ``every`` s apart (written
    elsewhere, renamed in as a distributor's link would appear); each seq's arrival time."""
    cfg = config(tmp, linger=linger)
    staging = tmp / "staging"
    names = write_files(staging, [range(i, i + 1) for i in range(1, count + 1)])
    arrived: dict[int, float] = {}

    async def main() -> None:
        fwd = Forwarder(cfg, sink)

        async def arrive() -> None:
            await asyncio.sleep(0.3)  # let it connect and go idle
            for seq, name in enumerate(names, 1):
                (staging / name).rename(cfg.source_dir / name)
                arrived[seq] = time.monotonic()
                await asyncio.sleep(every)

        feeder = asyncio.ensure_future(arrive())
        await drive(fwd, lambda: len(arrived) == count and fwd.state.last_processed >= count
                    and not dlogs(cfg.source_dir))
        await feeder

    asyncio.run(main())
    return arrived


def test_files_arriving_back_to_back_share_requests(tmp_path: Path) -> None:
    sink = TimedSink()
    arrived = feed(tmp_path, 20, 0.05, sink, 1.0, tmp_path)
    assert sorted(s for _, seqs in sink.arrivals for s in seqs) == list(range(1, 21))
    # Without lingering each file, 50 ms after the last, would go alone (20 requests);
    # the first three go alone while the forwarder learns the pace.
    assert len(sink.arrivals) <= 8, [seqs for _, seqs in sink.arrivals]
    # and none waited longer than linger (1 s) plus scheduling slack
    for t, seqs in sink.arrivals:
        assert t - arrived[seqs[0]] < 1.0 + 0.5


def test_a_file_alone_is_sent_at_once(tmp_path: Path) -> None:
    sink = TimedSink()
    arrived = feed(tmp_path, 4, 1.2, sink, 1.0, tmp_path)
    assert [seqs for _, seqs in sink.arrivals] == [[1], [2], [3], [4]]
    # 1.2 s apart is not back to back for a 1 s linger: nobody waits for company
    for t, seqs in sink.arrivals:
        assert t - arrived[seqs[0]] < 0.5, "a lone file waited for company"


def test_linger_zero_never_waits(tmp_path: Path) -> None:
    sink = TimedSink()
    arrived = feed(tmp_path, 10, 0.05, sink, 0.0, tmp_path)
    for t, seqs in sink.arrivals:
        assert t - arrived[seqs[0]] < 0.5
    assert sorted(s for _, seqs in sink.arrivals for s in seqs) == list(range(1, 11))


def test_files_arriving_during_a_send_go_right_after_it(tmp_path: Path) -> None:
    """The build after an acknowledgement skips listing the directory only when nothing
    woke the forwarder since the last listing: files that landed during the send (they
    have waited already) are sent right after it, neither at the next poll (an hour away
    here) nor after lingering (5 s here, set past the loader's limit to be unmistakable)."""
    cfg = config(tmp_path, poll_interval=3600.0, adaptive_polling=False, linger=5.0)
    staging = tmp_path / "staging"
    names = write_files(staging, [range(i, i + 1) for i in range(1, 5)])
    release = asyncio.Event()

    class SlowSink(TimedSink):
        async def send(self, batch: Any) -> Any:
            if not self.arrivals:
                await release.wait()  # the first send stays in flight
            return await super().send(batch)

    sink = SlowSink()

    async def main() -> float:
        fwd = Forwarder(cfg, sink)
        task = asyncio.ensure_future(drive(fwd, lambda: fwd.state.last_processed >= 4
                                           and not dlogs(cfg.source_dir)))
        await asyncio.sleep(0.3)
        (staging / names[0]).rename(cfg.source_dir / names[0])
        while fwd.state.total_requests == 0 and fwd._inflight is None:
            await asyncio.sleep(0.01)
        for name in names[1:]:  # apart, so that they look back to back to the forwarder
            (staging / name).rename(cfg.source_dir / name)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # their wake-ups arrive while the send is in flight
        t0 = time.monotonic()
        release.set()
        await asyncio.wait_for(task, 30)
        return time.monotonic() - t0

    took = asyncio.run(main())
    assert sorted(s for _, seqs in sink.arrivals for s in seqs) == [1, 2, 3, 4]
    assert took < 3, f"files that arrived during a send waited {took:.1f} s"
