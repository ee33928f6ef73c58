"""Health rules for a node whose writes fail, on synthetic models (no supervisord)."""

from __future__ import annotations

from typing import Any

import pytest

from fanout.supervise.status import WRITES_DOWN_AFTER, Health, judge
from tests.supervise.test_status import healthy


def _writes(n: int, writable: bool = True) -> dict[str, Any]:
    err = {"errorMessage": "[Errno 30] Read-only file system: '/d/.tmp/x'", "time": "t"}
    return {"failingInRow": n, "totalFailed": n + 3, "lastError": err if n else None,
            "datalogWritable": writable,
            "datalogError": None if writable else "/d/.tmp is not writable (read-only mount...)"}


@pytest.mark.parametrize(("n", "writable", "health", "reason"), [
    (0, True, Health.HEALTHY, None),
    (1, True, Health.DEGRADED, "node: the last 1 write(s) failed: [Errno 30] Read-only"),
    (WRITES_DOWN_AFTER - 1, True, Health.DEGRADED, "node: the last 4 write(s) failed"),
    (WRITES_DOWN_AFTER, True, Health.DOWN, "node: the last 5 write(s) failed"),
    (0, False, Health.DOWN, "node: every write fails: /d/.tmp is not writable"),
    (2, False, Health.DOWN, "(the last 2 write(s) failed: [Errno 30]"),
])
def test_failing_writes(n: int, writable: bool, health: Health, reason: str | None) -> None:
    st = healthy()
    st.node_state["writes"] = _writes(n, writable)
    judge(st)
    assert st.health is health, st.reasons
    if reason is None:
        assert st.reasons == []
    else:
        assert len(st.reasons) == 1 and reason in st.reasons[0], st.reasons


def test_a_state_file_from_an_earlier_process_says_nothing() -> None:
    st = healthy()
    st.node_state["writes"] = _writes(9, False)
    st.node_state_age = 120.0  # older than the node's uptime (60 s)
    judge(st)
    assert not any(r.startswith("node: ") and "write" in r for r in st.reasons), st.reasons


def test_a_state_file_without_writes_is_healthy() -> None:  # a node from before the field
    st = healthy()
    st.node_state.pop("writes", None)
    judge(st)
    assert st.health is Health.HEALTHY
