"""``fanout datalog verify|dump`` on files a real node wrote."""

from __future__ import annotations

import subprocess

from fanout.testing import NodeProc, fanout_cmd


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(fanout_cmd(*args), text=True, capture_output=True, timeout=60)


def test_verify_and_dump_then_a_flipped_byte_is_named(make_node) -> None:
    node: NodeProc = make_node("n1").start_and_wait()
    c = node.client("ingest")
    for i in range(5):
        c.update(f"{i}// a{{}} {i}\n{i}// b{{k=v}} 'x'\n")
    node.stop()
    ok = run("datalog", "verify", str(node.datalog_dir))
    assert ok.returncode == 0, ok.stderr
    assert "5 records" in ok.stdout
    files = sorted(node.datalog_dir.glob("*.dlog"))
    dump = run("datalog", "dump", str(files[0]))
    assert dump.returncode == 0 and '"origin": "n1"' in dump.stdout and "0// a{} 0" in dump.stdout
    assert node.tokens["ingest"] not in dump.stdout  # only the token id is logged

    victim = files[len(files) // 2]
    raw = bytearray(victim.read_bytes())
    pos = len(raw) - 3  # inside the last record's body
    raw[pos] ^= 0x40
    victim.write_bytes(bytes(raw))
    bad = run("datalog", "verify", str(node.datalog_dir))
    assert bad.returncode == 1
    assert str(victim) in bad.stderr and "offset 20:" in bad.stderr  # the record's start
    assert "checksum mismatch" in bad.stderr
