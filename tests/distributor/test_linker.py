"""The link/commit step and the bounded scan, in process."""

from __future__ import annotations

import os
from pathlib import Path

from fanout.distributor.linker import (
    Committer,
    Slot,
    link_batch,
    oldest_batch,
)

from .util import NodeDir


class Reports(list):
    def __call__(self, num: int, message: str, key: str) -> None:
        self.append((num, message))


def slots(node: NodeDir, *names: str) -> list[Slot]:
    out = []
    for n in names:
        node.target_dir(n).mkdir(parents=True, exist_ok=True)
        out.append(Slot(n, str(node.target_dir(n)), lambda size: None))
    return out


def commit(node: NodeDir, batch, report, durable: bool = True) -> int:
    """What the main loop does: submit, take the batch back once the committer made it
    durable and removed its originals."""
    c = Committer(str(node.datalog), report, lambda key: None)
    c.start()
    try:
        c.submit(batch)
        done = []
        while c.outstanding:
            c.wait_done()
            done += c.take_done()
        done += c.take_done()
        assert done == [batch] and batch.durable is durable
    finally:
        c.close()
    return batch.removed


def test_oldest_batch_is_ordered_bounded_and_skips_tmp(node: NodeDir) -> None:
    names = node.publish(10)
    (node.datalog / ".tmp" / "00000000000000000099-n1.dlog").write_bytes(b"in progress")
    (node.datalog / "notes.txt").write_text("not a datalog file")
    (node.datalog / "0-stray.dlog").write_text("named like one, but not one")
    batch, count, cursor = oldest_batch(str(node.datalog), 4)  # the stray costs a slot
    assert batch == names[:3] and count == 10 and cursor == names[2]
    batch, count, cursor = oldest_batch(str(node.datalog), 4, after=names[7])
    assert batch == names[8:] and count == 2 and cursor == names[9]
    assert oldest_batch(str(node.datalog), 4, after=names[9]) == ([], 0, None)


def test_batch_links_then_commit_removes(node: NodeDir) -> None:
    names = node.publish(5)
    s = slots(node, "a", "b")
    report = Reports()
    batch = link_batch(str(node.datalog), names, s, report)
    assert batch.names == names and batch.files_linked == 5 and report == []
    assert sorted(batch.touched) == sorted(x.dir for x in s)
    assert os.stat(node.datalog / names[0]).st_nlink == 3
    assert commit(node, batch, report) == 5
    assert list(node.datalog.glob("*.dlog")) == []
    assert (node.datalog / ".tmp").is_dir()
    for x in s:
        assert sorted(os.listdir(x.dir)) == names


def test_failed_target_fsync_keeps_every_original(node: NodeDir) -> None:
    names = node.publish(3)
    s = slots(node, "a", "b")
    report = Reports()
    batch = link_batch(str(node.datalog), names, s, report)
    assert batch.names == names
    gone = node.target_dir("b")
    for n in names:
        os.unlink(gone / n)
    gone.rmdir()  # its fsync fails: nothing in the batch is durable everywhere
    assert commit(node, batch, report, durable=False) == 0
    assert sorted(p.name for p in node.datalog.glob("*.dlog")) == names
    assert any("cannot fsync" in m for _, m in report)


def test_existing_link_to_the_same_file_is_success(node: NodeDir) -> None:
    """After a crash between link and unlink, the next run finds its own links."""
    names = node.publish(3)
    s = slots(node, "a", "b")
    os.link(node.datalog / names[0], Path(s[0].dir) / names[0])  # half done before a crash
    os.link(node.datalog / names[1], Path(s[0].dir) / names[1])
    os.link(node.datalog / names[1], Path(s[1].dir) / names[1])  # fully linked, not removed
    report = Reports()
    batch = link_batch(str(node.datalog), names, s, report)
    assert batch.names == names and report == []
    assert batch.files_linked == 2  # names[1] needed no new link
    commit(node, batch, report)
    for x in s:
        assert sorted(os.listdir(x.dir)) == names


def test_a_different_file_in_the_way_keeps_the_original(node: NodeDir) -> None:
    names = node.publish(2)
    s = slots(node, "a", "b")
    (Path(s[1].dir) / names[0]).write_bytes(b"someone else's file")
    report = Reports()
    batch = link_batch(str(node.datalog), names, s, report)
    assert batch.names == [names[1]]
    assert report[0][0] == 27 and names[0] in report[0][1] and "target b" in report[0][1]
    commit(node, batch, report)
    assert (node.datalog / names[0]).exists()  # not removed: b does not have it
    assert os.path.samefile(node.datalog / names[0], Path(s[0].dir) / names[0])


def test_no_targets_links_and_completes_nothing(node: NodeDir) -> None:
    names = node.publish(2)
    batch = link_batch(str(node.datalog), names, [], Reports())
    assert batch.names == [] and batch.touched == []
    assert len(list(node.datalog.glob("*.dlog"))) == 2


def test_vanished_target_dir_is_recreated(node: NodeDir) -> None:
    names = node.publish(1)
    s = slots(node, "a")
    os.rmdir(s[0].dir)
    batch = link_batch(str(node.datalog), names, s, Reports())
    assert batch.names == names and (Path(s[0].dir) / names[0]).exists()


def test_already_removed_original_is_skipped(node: NodeDir) -> None:
    names = node.publish(2)
    os.unlink(node.datalog / names[0])
    batch = link_batch(str(node.datalog), names, slots(node, "a"), Reports())
    assert batch.names == [names[1]]
