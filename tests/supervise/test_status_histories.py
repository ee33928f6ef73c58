"""`fanout status` on histories: a divergence and an id collision are degraded, named."""

from __future__ import annotations

from fanout.supervise.status import Health, judge
from tests.supervise.test_status import healthy


def test_divergence_on_the_node_is_degraded_and_named() -> None:
    st = healthy()
    st.node_state["replication"] = {"divergence": [
        {"origin": "p", "history": "a" * 16, "base": ["b" * 16, "20"], "ahead": 10,
         "message": "origin p started history aaa... 10 write(s) gone"}]}
    judge(st)
    assert st.health is Health.DEGRADED
    assert any("divergence from origin p" in r and "10 write(s)" in r for r in st.reasons)


def test_a_forwarder_refused_for_an_id_collision_shows_its_last_error() -> None:
    st = healthy()
    st.targets[0].phase = "backoff"
    st.targets[0].last_error = {"errorNum": 1420, "errorMessage":
                                "target refused the batch: id collision: ... 'x' ..."}
    judge(st)
    assert st.health is Health.DEGRADED
    assert any("forwarder-a is retrying" in r and "id collision" in r for r in st.reasons)


def test_an_id_collision_refused_by_this_node_is_degraded() -> None:
    st = healthy()
    st.node_state["replication"] = {"lastCollision": {"message": "id collision: 'x'"}}
    judge(st)
    assert st.health is Health.DEGRADED
    assert any("refused replicated writes: id collision" in r for r in st.reasons)
