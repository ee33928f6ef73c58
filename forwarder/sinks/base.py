"""The one small interface every sink implements, and the errors it may raise.

A sink delivers an ordered batch of datalog records to one target and reports what the
target did. Contract (the conformance suite in tests/forwarder/sinks checks it):

- ``send`` is safe to repeat: delivery is at least once, and resending a batch the target
  already applied must not change the target's data (fanout nodes dedup per origin;
  Warp 10 replays of absolute-timestamp updates, metas and deletes are idempotent).
- ``SinkUnavailable``: nothing is known to be applied; retry later (connection errors,
  timeouts, 5xx, 408, 429, unreadable replies).
- ``SinkRejected``: the target refused this data (other 4xx); retrying will not help.
- An id collision (409 with errorNum 1420: the batch holds a write of the target's own id
  from a history the target never had) is ``SinkUnavailable``: the data is fine, the
  topology is not; it goes through once the operator gives one of the two nodes another id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from fanout.datalog.format import Record
from fanout.errors import (
    ERROR_ID_COLLISION,
    ERROR_INVALID_RESPONSE,
    ERROR_NO_RESPONSE,
    ERROR_TARGET_ERROR,
)

RETRYABLE_STATUS = frozenset({408, 429})


class SinkError(Exception):
    error_num = ERROR_NO_RESPONSE


class SinkUnavailable(SinkError):
    """Retryable: the target did not answer, or answered 5xx/408/429."""

    def __init__(self, message: str, status: int | None = None,
                 error_num: int = ERROR_NO_RESPONSE):
        super().__init__(message)
        self.status = status
        self.error_num = error_num


class SinkRejected(SinkError):
    """Final for this data: the target answered a 4xx other than 408/429."""

    error_num = ERROR_TARGET_ERROR

    def __init__(self, status: int, message: str):
        super().__init__(f"target refused the batch: HTTP {status}: {message}")
        self.status = status
        self.target_message = message


def invalid_response(message: str, status: int | None = None) -> SinkUnavailable:
    return SinkUnavailable(message, status, ERROR_INVALID_RESPONSE)


def classify(status: int, text: str) -> SinkError | None:
    """None for 2xx, else the error a reply of this status means."""
    if 200 <= status < 300:
        return None
    message = text.strip()[:500]
    if status >= 500 or status in RETRYABLE_STATUS:
        return SinkUnavailable(f"target answered HTTP {status}: {message}", status)
    if 300 <= status < 400:
        # Never followed: the token (and the records) would be sent again to wherever the
        # redirect points, perhaps over plain http. Nothing is refused: retried until the
        # endpoint in the target file is the final URL.
        return SinkUnavailable(f"target answered HTTP {status}, a redirect, which is not "
                               "followed (the token would be sent on): set the endpoint "
                               "to the final URL", status, ERROR_TARGET_ERROR)
    if status == 409:
        try:
            reply = json.loads(text)
            collision = reply.get("errorNum") == ERROR_ID_COLLISION
        except (ValueError, AttributeError):
            collision = False
        if collision:
            return SinkUnavailable(f"target refused the batch: {reply.get('errorMessage')}",
                                   status, ERROR_ID_COLLISION)
    return SinkRejected(status, message)


@dataclass(frozen=True, slots=True)
class Batch:
    records: list[Record]
    payload: bytes  # the records framed as in a datalog file (fanout sink body)


@dataclass(frozen=True, slots=True)
class SendResult:
    applied: int
    duplicate: int = 0
    gap: int = 0
    loop: int = 0


class Sink(Protocol):
    async def describe(self) -> str | None:
        """The target's node id (used to skip records whose ``via`` holds it), or None
        when the target has no such notion (Warp 10)."""

    async def marks(self) -> dict[str, int] | None:
        """Per origin, the highest oseq the target has applied (the truth a forwarder
        resumes from and checks for gaps against), or None if it cannot tell."""

    async def send(self, batch: Batch) -> SendResult: ...

    async def close(self) -> None: ...
