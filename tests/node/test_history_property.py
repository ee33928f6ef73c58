"""Property: over any interleaving of restarts, re-creations, restores from an older copy,
deliveries, duplicates and resends, a receiver's marks never skip a new history's write and
never apply one twice.

In-process, but every part is the real one: the origin is a Committer on a sqlite store
and a datalog writer, whose published records are read back from its datalog files; the
receiver is a Committer on its own store, fed the way ``/api/v0/replicate`` feeds it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fanout.datalog.format import Record, decode_records, file_name
from fanout.datalog.writer import DatalogWriter
from fanout.node.changes import Pending, change_of, update_pending
from fanout.node.committer import Committer
from fanout.store import open_store
from fanout.store.base import Update

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(1, 4)),
        st.tuples(st.just("restart"), st.just(0)),
        st.tuples(st.just("recreate"), st.just(0)),
        st.tuples(st.just("backup"), st.just(0)),
        st.tuples(st.just("restore"), st.just(0)),
        st.tuples(st.just("deliver"), st.integers(1, 6)),
        st.tuples(st.just("resend"), st.integers(1, 6)),
    ),
    min_size=1, max_size=30)


class Origin:
    """Node ``o``: its data directory can be stopped, wiped, copied and put back."""

    def __init__(self, root: Path):
        self.root = root
        self.data = root / "o"
        self.committer: Committer | None = None

    def open(self) -> None:
        store = open_store("sqlite", self.data / "store.sqlite", self.data / "state")
        writer = DatalogWriter(self.data / "datalog", "o")
        writer.recover(store.last_seq())
        self.committer = Committer(store, writer, "o")
        self.committer.start()

    async def close(self) -> None:
        assert self.committer is not None
        await self.committer.stop()
        self.committer.store.close()
        self.committer = None

    async def write(self, value: int) -> Record:
        assert self.committer is not None
        p = update_pending(f"{value}// w{{}} {value}\n", 0, "ingest")
        await self.committer.submit([p])
        path = self.data / "datalog" / file_name(p.seq, "o")
        [rec] = decode_records(path.read_bytes(), path)
        return rec


async def scenario(root: Path, ops: list[tuple[str, int]]) -> None:
    origin = Origin(root)
    origin.open()
    rstore = open_store("sqlite", root / "r" / "store.sqlite", root / "r" / "state")
    receiver = Committer(rstore, DatalogWriter(root / "r" / "datalog", "r"), "r")
    receiver.start()
    sent: list[Record] = []  # every record the origin published, in order
    delivered = 0  # how many of them reached the receiver (in order, at least once)
    value = 0
    backup = root / "backup"
    try:
        for op, n in ops:
            if op == "write":
                for _ in range(n):
                    value += 1
                    sent.append(await origin.write(value))
            elif op in ("restart", "recreate", "restore"):
                await origin.close()
                if op == "recreate":
                    shutil.rmtree(origin.data)
                elif op == "restore" and backup.exists():
                    shutil.rmtree(origin.data)
                    shutil.copytree(backup, origin.data)
                origin.open()
            elif op == "backup":
                await origin.close()
                shutil.rmtree(backup, ignore_errors=True)
                shutil.copytree(origin.data, backup)
                origin.open()
            elif op == "deliver":
                batch = sent[delivered:delivered + n]
                outcomes = await receiver.submit([pending_of(r) for r in batch])
                for rec, out in zip(batch, outcomes, strict=True):
                    # a write the receiver never had is applied, never taken for an old one
                    assert out.status != "duplicate", (rec, out)
                delivered += len(batch)
            elif op == "resend" and delivered:
                batch = sent[max(0, delivered - n):delivered]
                outcomes = await receiver.submit([pending_of(r) for r in batch])
                for rec, out in zip(batch, outcomes, strict=True):
                    assert out.status == "duplicate", (rec, out)  # never applied twice
        batch = sent[delivered:]
        if batch:
            outcomes = await receiver.submit([pending_of(r) for r in batch])
            assert all(o.status != "duplicate" for o in outcomes)
        # every write ever acknowledged at the origin is at the receiver, exactly as sent
        text = "".join(s + "\n" for s in rstore.fetch(_all(), -(2**63), 2**63 - 1))
        got = sorted(int(line.split("//")[0]) for line in text.splitlines())
        assert got == list(range(1, value + 1))
        # per (origin, history), the receiver's mark is the highest oseq sent in it
        want: dict[str, int] = {}
        for r in sent:
            want[r.history] = max(want.get(r.history, 0), r.oseq)
        assert receiver.hmarks.get("o", {}) == want
        assert rstore.history_marks().get("o", {}) == want
    finally:
        await receiver.stop()
        rstore.close()
        if origin.committer is not None:
            await origin.close()


def _all():
    from fanout.gts import parse_selector

    return parse_selector("~.*{}")


def pending_of(rec: Record) -> Pending:
    """What the replication handler builds from a received record."""
    change = change_of(rec)
    return Pending(rec.op, rec.token_id, rec.params, rec.body, change,
                   points=len(change.readings) if isinstance(change, Update) else 0,
                   origin=rec.origin, oseq=rec.oseq, time=rec.time, via=rec.via,
                   history=rec.history, base=rec.base, log=False)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_marks_never_skip_a_new_history_nor_apply_twice(ops: list[tuple[str, int]]) -> None:
    root = Path(tempfile.mkdtemp(prefix="fo-hist-"))
    try:
        asyncio.run(scenario(root, ops))
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("ops", [
    # the case: re-created with the same id, oseqs restart at 1
    [("write", 3), ("deliver", 3), ("recreate", 0), ("write", 3), ("deliver", 3)],
    # restored from an older copy: oseqs 3.. are reused by the new history
    [("write", 2), ("backup", 0), ("write", 3), ("deliver", 5), ("restore", 0),
     ("write", 3), ("deliver", 3), ("resend", 3)],
])
def test_known_cases(ops: list[tuple[str, int]], tmp_path: Path) -> None:
    asyncio.run(scenario(tmp_path, ops))


def test_lost_writes_follows_the_ancestry() -> None:
    from fanout.node.committer import lost_writes

    h1, h2, h3, h4 = "1" * 16, "2" * 16, "3" * 16, "4" * 16
    bases = {("o", h1): None, ("o", h2): (h1, 20), ("o", h3): (h2, 30)}
    known = {h1: 20, h2: 30, h3: 35}
    # an ordinary restart: the new history continues the latest one, nothing lost
    assert lost_writes("o", (h3, 35), known, bases) == (0, set())
    # restored from a copy taken at h1's oseq 20: h2 and h3 (15 writes) are gone
    assert lost_writes("o", (h1, 20), known, bases) == (15, {h2, h3})
    # restored from a copy taken inside h2 at oseq 25: h2 26..30 and h3 31..35
    assert lost_writes("o", (h2, 25), known, bases) == (10, {h2, h3})
    # a history whose base this node never learned (marks from a snapshot) is left out
    assert lost_writes("o", (h1, 20), {h1: 20, h4: 9}, bases) == (0, set())


def test_own_writes_end_where_a_history_was_left() -> None:
    """A history this node left at a restart ends at the oseq it left it at: a write of it
    past that point was made by another live copy of this node (a clone), a collision."""
    from fanout.node.committer import is_own_write, own_history_limits
    from fanout.store.base import History

    h1, h2, h3 = "a" * 16, "b" * 16, "c" * 16
    own = [History(h1, None, 0.0), History(h2, (h1, 40), 1.0), History(h3, (h1, 40), 2.0)]
    limits = own_history_limits(own, h3)
    assert is_own_write(limits, h1, 40) and not is_own_write(limits, h1, 41)
    assert not is_own_write(limits, h2, 1)  # h2 wrote nothing (h3 forked from h1)
    assert is_own_write(limits, h3, 10**9)  # the current history has no end yet
    assert not is_own_write(limits, "d" * 16, 1)  # never ours

