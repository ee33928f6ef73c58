"""Delete options, one row each, with what the standalone Warp 10 answers
(``StandaloneDeleteHandler``): the reply is ``class{labels}{attrs}`` per matched series,
CRLF-ended; ``dryrun`` deletes nothing; ``minage`` is refused."""

from __future__ import annotations

import pytest

from fanout.testing import NodeProc

from .conftest import DATA, META, T0, get, quote

ALL = "selector=~.*{}&start=0&stop=9999999999999999&format=canonical"


@pytest.fixture
def node(make_node) -> NodeProc:
    n = make_node("n1").start_and_wait()
    with n.client("ingest") as c:
        c.update(DATA)
        c.meta(META)
    return n


def snapshot(node: NodeProc) -> tuple[str, str]:
    """Everything the node serves, and its commit position."""
    with node.client("replicator") as c:
        tick = c.logger_state()["state"]["lastLogTick"]
    return get(node, "/api/v0/fetch", ALL)[1], tick


DRY_ROWS = [
    ("dryrun deleteall", "selector=a{}&deleteall&dryrun", "a{k=1}{owner=x}\r\n"),
    ("dryrun=true", "selector=a{}&deleteall&dryrun=true", "a{k=1}{owner=x}\r\n"),
    ("dryrun=false is a dry run too (presence)", "selector=a{}&deleteall&dryrun=false",
     "a{k=1}{owner=x}\r\n"),
    ("dryrun with a range lists every matched series",
     "selector=~[ab]{}&start=100&end=200&dryrun", "a{k=1}{owner=x}\r\nb{}{}\r\n"),
    ("dryrun, nothing matched", "selector=zz{}&deleteall&dryrun", ""),
]


@pytest.mark.parametrize(("name", "query", "body"), DRY_ROWS, ids=[r[0] for r in DRY_ROWS])
def test_dryrun_changes_nothing(node: NodeProc, name: str, query: str, body: str) -> None:
    before = snapshot(node)
    assert "a{k=1} 3" in before[0]
    assert get(node, "/api/v0/delete", query, token="ingest")[:2] == (200, body)
    assert snapshot(node) == before  # same data, nothing committed or logged


def test_dryrun_needs_write_permission(node: NodeProc) -> None:
    assert get(node, "/api/v0/delete", "selector=a{}&deleteall&dryrun")[0] == 403


REFUSED = [
    ("minage", "selector=a{}&deleteall&minage=1000", "minage"),
    ("start after end", "selector=a{}&start=5&end=1", "must be <="),
    ("start alone", "selector=a{}&start=1", "both"),
    ("no range, no deleteall", "selector=a{}", "either"),
    ("now is not a delete time", "selector=a{}&start=now&end=5", "invalid format"),
    ("metaonly", "selector=a{}&metaonly", "'metaonly'"),
    ("activeafter", "selector=a{}&deleteall&activeafter=5", "'activeafter'"),
]


@pytest.mark.parametrize(("name", "query", "text"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_deletes_change_nothing(node: NodeProc, name: str, query: str,
                                        text: str) -> None:
    before = snapshot(node)
    status, body, _ = get(node, "/api/v0/delete", query, token="ingest")
    assert status == 400 and text in body
    assert snapshot(node) == before


def test_delete_reply_and_effect(node: NodeProc) -> None:
    status, body, _ = get(node, "/api/v0/delete", "selector=a{}&start=2&end=3", token="ingest")
    assert (status, body) == (200, "a{k=1}{owner=x}\r\n")
    assert get(node, "/api/v0/fetch", "selector=a{}&start=0&stop=9&showattr")[1] == (
        "1// a{k=1}{owner=x} 1\n")  # a range delete keeps the series and its attributes
    # bare deleteall (xaal.warp10's form) removes the series
    status, body, _ = get(node, "/api/v0/delete", "deleteall&selector=~[ab]{}", token="ingest")
    assert (status, body) == (200, "a{k=1}{owner=x}\r\nb{}{}\r\n")
    assert get(node, "/api/v0/delete", "selector=~[ab]{}&deleteall&dryrun",
               token="ingest")[1] == ""


def test_delete_iso_range(node: NodeProc) -> None:
    q = (f"selector=iso{{}}&start={quote('2024-01-01T00:00:00Z')}"
         f"&end={quote('2024-01-01T01:00:01+01:00')}")
    assert get(node, "/api/v0/delete", q, token="ingest")[:2] == (200, "iso{}{}\r\n")
    assert get(node, "/api/v0/fetch", "selector=iso{}&start=0&stop=now")[1] == (
        f"{T0 + 1_500_000}// iso{{}} 2\n")
