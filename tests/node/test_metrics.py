"""/metrics: every local process's figures, from their state files, behind a read token."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from fanout.testing import HTTPError, Topology, eventually


def scrape(node, token: str | None = None, bearer: bool = False) -> dict:
    c = node.client("reader")
    headers = {"Authorization": f"Bearer {node.tokens['reader']}"} if bearer else None
    _, body = c.request("GET", "/metrics", headers=headers, token="" if bearer else token)
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_cover_node_distributor_and_every_target(tmp_path) -> None:
    topo = Topology(tmp_path)
    try:
        a, b, c = topo.node("a"), topo.node("b"), topo.node("c")
        topo.link(a, b)
        topo.link(a, c)
        topo.start()
        with a.client("ingest") as w:
            for i in range(5):
                w.update(f"{i}// m{{}} {i}\n")
        topo.wait_converged(a, [b, c])

        def check() -> None:
            m = scrape(a, bearer=True)
            assert m[("fanout_node_last_log_tick", ())] == 5
            assert m[("fanout_node_events_total", ())] == 5
            assert m[("fanout_distributor_up", ())] == 1
            assert m[("fanout_distributor_files_linked_total", ())] == 5
            for t in ("b", "c"):
                lab = (("target", t),)
                assert m[("fanout_target_up", lab)] == 1
                assert m[("fanout_target_last_applied_tick", lab)] == 5
                assert m[("fanout_target_ticks_behind", lab)] == 0
                assert m[("fanout_target_pending_files", lab)] == 0
                assert m[("fanout_target_events_total", lab)] == 5
                assert m[("fanout_target_dropped_files_total", lab)] == 0
            assert m[("fanout_state_age_seconds", (("process", "forwarder-b"),))] < 5

        eventually(check, "metrics to show the converged topology")
        try:
            scrape(a, token=a.tokens["ingest"])
            raise AssertionError("a write-only token must not read metrics")
        except HTTPError as exc:
            assert exc.status == 403
    finally:
        topo.close()
