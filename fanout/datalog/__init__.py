"""The datalog: record framing, atomic publication, ordered reading (docs/datalog-format.md)."""

from fanout.datalog.format import Record, decode_records, encode_record, file_name, parse_file_name
from fanout.datalog.reader import iter_dir, newest_name, oldest_names, read_file
from fanout.datalog.writer import DatalogWriter, Prepared, fsync_dir

__all__ = [
    "DatalogWriter",
    "Prepared",
    "Record",
    "decode_records",
    "encode_record",
    "file_name",
    "fsync_dir",
    "iter_dir",
    "newest_name",
    "oldest_names",
    "parse_file_name",
    "read_file",
]
