"""``fanout datalog dump|verify``: look inside datalog files without trusting them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from fanout.datalog.format import parse_file_name
from fanout.datalog.reader import iter_dir, read_file
from fanout.errors import DatalogCorruptError


def dump(paths: list[Path], out: TextIO = sys.stdout) -> None:
    for path in paths:
        out.write(f"# {path}\n")
        for rec in read_file(path):
            head = {
                "seq": str(rec.seq), "origin": rec.origin, "oseq": str(rec.oseq),
                "time": rec.time, "op": rec.op, "token_id": rec.token_id,
                "params": rec.params, "via": list(rec.via), "bytes": len(rec.body),
                "history": rec.history,
                "base": None if rec.base is None else [rec.base[0], str(rec.base[1])],
            }
            out.write(json.dumps(head, sort_keys=True) + "\n")
            for line in rec.body.decode("utf-8", "replace").splitlines():
                out.write(f"  {line}\n")


def verify(directory: Path, out: TextIO = sys.stdout) -> tuple[int, int]:
    """Check every record of every file in replay order; raise at the first bad one.

    Beyond checksums: a file's name must carry its first record's seq, and seqs must rise
    within and across the files of one node.
    """
    files = records = 0
    last_seq: dict[str, int] = {}
    for path, recs in iter_dir(Path(directory)):
        files += 1
        parsed = parse_file_name(path.name)
        assert parsed is not None
        first, node = parsed
        if recs and recs[0].seq != first:
            raise DatalogCorruptError(path, 12, f"name says first seq {first}, "
                                                f"record says {recs[0].seq}")
        for rec in recs:
            if rec.seq <= last_seq.get(node, 0):
                raise DatalogCorruptError(path, 0, f"seq {rec.seq} does not rise "
                                                   f"(previous {last_seq[node]})")
            last_seq[node] = rec.seq
        records += len(recs)
    out.write(f"ok: {files} files, {records} records verified in {directory}\n")
    return files, records
