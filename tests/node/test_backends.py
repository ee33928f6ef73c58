"""A sqlite node and a memory node fed the same writes answer byte-identical fetches."""

from __future__ import annotations

from fanout.testing import NodeProc

WRITES = [
    ("update", "1000/48.1:-4.5/12 t{room=a} 21.5\n=1001// 22\n=1002/1.5:2.5/ 23\n"),
    ("update", "5// s{k=v%2Cw} 'h%C3%A9llo'\n6// s{k=v%2Cw} T\n7// b{} -9223372036854775808\n"),
    ("meta", "t{room=a}{owner=ops}\n"),
    ("update", "".join(f"{t}// many{{i={t % 7}}} {t * 1.25}\n" for t in range(500))),
    ("delete", ("many{i~[0-2]}", 100, 300)),
    ("update", "1001// t{room=a} 99\n"),  # replaces the reading at 1001
    ("delete", ("=b{}", None, None)),
]


def feed(node: NodeProc) -> None:
    c = node.client("ingest")
    for kind, arg in WRITES:
        if kind == "update":
            c.update(arg)  # type: ignore[arg-type]
        elif kind == "meta":
            c.meta(arg)  # type: ignore[arg-type]
        else:
            sel, start, end = arg
            c.delete(sel, start, end)  # type: ignore[arg-type]


def test_sqlite_and_memory_fetch_byte_identical(make_node) -> None:
    a = make_node("disk", "sqlite").start_and_wait()
    b = make_node("ram", "memory").start_and_wait()
    feed(a)
    feed(b)
    fa = a.client("reader").fetch("~.*{}", showattr=True)
    fb = b.client("reader").fetch("~.*{}", showattr=True)
    assert fa == fb
    assert "1001// t{room=a}{owner=ops} 99\n" in fa
    assert "b{}" not in fa
    assert fa.count("\n") == 3 + 2 + 500 - sum(1 for t in range(100, 301) if t % 7 <= 2)


def test_memory_node_forgets_data_but_not_its_log_position(make_node) -> None:
    node = make_node("ram", "memory").start_and_wait()
    node.client("ingest").update("1// a{} 1\n")
    node.client("ingest").update("2// a{} 2\n")
    node.stop()
    node.start_and_wait()
    r = node.client("reader")
    assert r.fetch("a{}") == ""
    node.client("ingest").update("3// a{} 3\n")
    assert r.logger_state()["state"]["lastLogTick"] == "3"  # seq never reused
