"""What every state file shares: the ``lastError`` object and the read/write plumbing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fanout.state.fields import as_dict, as_opt_int, as_opt_str, as_str
from fanout.statefile import read_json, write_json_atomic


@dataclass
class ErrorInfo:
    """``lastError``: ArangoDB's ``{errorNum, errorMessage, time}``. ``errorNum`` is absent
    where the writer has no number (the node's write-health error) and ``time`` where it
    has no clock reading (a forwarder that never started): absent keys stay absent."""

    message: str
    error_num: int | None = None
    time: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"errorMessage": self.message}
        if self.error_num is not None:
            doc["errorNum"] = self.error_num
        if self.time is not None:
            doc["time"] = self.time
        return doc

    @classmethod
    def from_json(cls, data: Any) -> ErrorInfo | None:
        """None for ``null`` or anything that is not an object."""
        if not isinstance(data, Mapping):
            return None
        d = as_dict(data)
        return cls(as_str(d.get("errorMessage")), as_opt_int(d.get("errorNum")),
                   as_opt_str(d.get("time")))


def error_json(err: ErrorInfo | None) -> dict[str, Any] | None:
    return None if err is None else err.to_json()


def read_doc(path: Path) -> Mapping[str, Any] | None:
    """The JSON object in ``path``; None if the file is missing, unreadable or not an
    object (never raises on bad content)."""
    try:
        return read_json(path)
    except (OSError, UnicodeDecodeError, RecursionError):
        return None


def write_doc(path: Path, doc: dict[str, Any]) -> None:
    """Atomically (temp file, rename): a reader never sees half a file."""
    write_json_atomic(path, doc)
