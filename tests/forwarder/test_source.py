"""The forwarder's reader: records it skips or excludes are checked too."""

from __future__ import annotations

from pathlib import Path

import pytest

from fanout.datalog import DatalogWriter, Record
from fanout.errors import DatalogCorruptError
from forwarder.source import SourceReader


def one_file(directory: Path) -> Path:
    w = DatalogWriter(directory, "a")
    recs = [Record(s, "a", s, 0, "update", "ingest", {}, (), f"{s}// x{{}} {s}\n".encode())
            for s in (11, 12, 13)]
    prep = w.prepare(recs)
    w.publish(prep)
    return directory / prep.name


def test_a_corrupt_header_cannot_make_a_record_vanish(tmp_path: Path) -> None:
    """Record 12's header rewritten to say seq 10 (at or below the cursor) must not be
    silently skipped when checksums are left to the target."""
    path = one_file(tmp_path)
    raw = path.read_bytes()
    assert raw.count(b'"seq":12') == 1
    path.write_bytes(raw.replace(b'"seq":12', b'"seq":10'))
    reader = SourceReader(tmp_path, cursor_seq=10, verify=False)
    with pytest.raises(DatalogCorruptError) as err:
        reader.next_chunk(1 << 20, lambda r: True)
    assert path.name in str(err.value) and "checksum mismatch" in str(err.value)
    assert err.value.offset > 20  # the second record, not the file header


def test_a_corrupt_excluded_record_is_caught(tmp_path: Path) -> None:
    path = one_file(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x20  # the last record's body
    path.write_bytes(bytes(raw))
    reader = SourceReader(tmp_path, cursor_seq=0, verify=False)
    with pytest.raises(DatalogCorruptError):
        reader.next_chunk(1 << 20, lambda r: r.seq != 13)  # 13 excluded, so never sent


def test_sent_records_are_left_to_the_target(tmp_path: Path) -> None:
    path = one_file(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x20
    path.write_bytes(bytes(raw))
    chunk = SourceReader(tmp_path, cursor_seq=0, verify=False).next_chunk(1 << 20,
                                                                         lambda r: True)
    assert chunk is not None and [r.seq for r in chunk.records] == [11, 12, 13]
