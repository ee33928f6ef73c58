"""A replicated batch whose commit fails, grouped with good client writes (issue 12).

The store is made to refuse one series for real: a SQLite trigger, added to the node's
store file while it is stopped, aborts any insert of class ``poison``. A peer keeps sending
batches that create it while eight clients write: each such batch must fail alone, and
every client write grouped into the same commit must be acknowledged and kept.
"""

from __future__ import annotations

import sqlite3
import threading

from fanout.datalog.format import Record, encode_record
from fanout.testing import NodeProc, wait_until
from tests.node.test_durability import assert_store_and_datalog_agree
from tests.node.test_fail_loudly import TimedWriters

CTYPE = {"Content-Type": "application/x-fanout-records"}
POISON = """CREATE TRIGGER poison BEFORE INSERT ON series WHEN NEW.cls = 'poison'
            BEGIN SELECT RAISE(ABORT, 'the store refuses class poison'); END"""


def poison_batch(seq: int) -> bytes:
    rec = Record(seq, "peer", 1, 1_700_000_000_000, "update", "ingest", {}, (),
                 b"1// poison{} 1\n")
    return encode_record(rec)


def test_failing_batch_is_refused_alone_and_grouped_writes_are_kept(make_node) -> None:
    node: NodeProc = make_node("n1").start_and_wait()
    node.stop()
    with sqlite3.connect(node.dir / "data" / "store.sqlite") as db:
        db.execute(POISON)
    db.close()
    node.start_and_wait()

    statuses: list[int] = []
    stop = threading.Event()

    def peer() -> None:
        with node.client("replicator") as c:
            seq = 0
            while not stop.is_set():
                seq += 1
                status, _ = c.request("POST", "/api/v0/replicate", poison_batch(seq),
                                      headers=CTYPE, check=False)
                statuses.append(status)

    writers = TimedWriters(node, 8)
    sender = threading.Thread(target=peer, daemon=True)
    sender.start()
    try:
        wait_until(lambda: node.log_text().count("committing each alone") >= 5, 90,
                   interval=0.5, what="failing batches grouped with client writes")
    finally:
        stop.set()
        sender.join(30)
        writers.close()
    assert node.alive()
    # the store refusing the batch is a server-side failure to commit: 503, retried by a
    # forwarder, never acknowledged
    assert statuses and all(s == 503 for s in statuses), set(statuses)
    assert writers.errors == 0, f"{writers.errors} client writes failed with the bad batch"
    assert len(writers.acked) > 50

    served = node.client("reader").fetch("~.*{}")
    missing = [ln for body in writers.acked for ln in body.splitlines() if ln not in served]
    assert missing == [] and "poison" not in served
    recs = assert_store_and_datalog_agree(node)  # dense seqs and oseqs: no trace of it
    assert len(recs) == len(writers.acked)
    with node.client("replicator") as c:
        assert b'"peer"' not in c.request("GET", "/api/v0/replication/marks")[1]
