"""Fetch parameter and output forms, one row each, with the reply Warp 10 gives (its
documentation, and ``EgressFetchHandler``/``GTSHelper`` where the documentation is silent)."""

from __future__ import annotations

import json

import pytest

from fanout.gts import parse_update
from fanout.testing import NodeProc

from .conftest import T0, get, quote

A_TEXT = "3// a{k=1} 3\n=2// 2\n=1// 1\n"  # text: newest first, '=' continuation lines

ROWS = [
    # (name, query, expected status, expected body)
    ("default format is text", "selector=a{}&start=1&stop=3", 200, A_TEXT),
    ("format=text", "selector=a{}&start=1&stop=3&format=text", 200, A_TEXT),
    ("format=fulltext", "selector=a{}&start=1&stop=3&format=fulltext", 200,
     "3// a{k=1} 3\n2// a{k=1} 2\n1// a{k=1} 1\n"),
    ("unknown format: text", "selector=a{}&start=1&stop=3&format=tsv", 200, A_TEXT),
    ("format=json", "selector=a{}&start=1&stop=3&format=json", 200,
     '[{"c":"a","l":{"k":"1"},"a":{"owner":"x"},"i":"0","la":0,"v":[[3,3],[2,2],[1,1]]}]'),
    ("json, position, doubles", "selector=d{}&start=1&stop=3&format=json", 200,
     '[{"c":"d","l":{},"a":{},"i":"0","la":0,"v":[[3,42.0],[2,1.0E20],'
     '[1,48.5,-4.25,10,1.0E-5]]}]'),
    ("json booleans and strings", "selector=~[bs]{}&start=1&stop=1&format=json", 200,
     '[{"c":"b","l":{},"a":{},"i":"0","la":0,"v":[[1,true]]},'
     '{"c":"s","l":{},"a":{},"i":"1","la":0,"v":[[1,"it s"]]}]'),
    ("json, nothing matched", "selector=none{}&start=1&stop=3&format=json", 200, "[]"),
    ("Java doubles in text", "selector=d{}&start=1&stop=3", 200,
     "3// d{} 42.0\n=2// 1.0E20\n=1/48.5:-4.25/10 1.0E-5\n"),
    ("bare showattr", "selector=a{}&start=1&stop=3&showattr", 200,
     "3// a{k=1}{owner=x} 3\n=2// 2\n=1// 1\n"),
    ("showattr=true", "selector=a{}&start=3&stop=3&showattr=true", 200,
     "3// a{k=1}{owner=x} 3\n"),
    ("showattr, fulltext", "selector=a{}&start=2&stop=3&showattr&format=fulltext", 200,
     "3// a{k=1}{owner=x} 3\n2// a{k=1}{owner=x} 2\n"),
    ("dedup (text)", "selector=u{}&start=1&stop=5&dedup", 200, "5// u{} 6\n=3// 5\n=1// 5\n"),
    ("dedup (fulltext)", "selector=u{}&start=1&stop=5&dedup&format=fulltext", 200,
     "5// u{} 6\n3// u{} 5\n1// u{} 5\n"),
    ("no dedup", "selector=u{}&start=1&stop=5", 200,
     "5// u{} 6\n=4// 6\n=3// 5\n=2// 5\n=1// 5\n"),
    ("start > stop is swapped", "selector=a{}&start=3&stop=1", 200, A_TEXT),
    ("end + timespan (warp10-pywarp)", "selector=a{}&end=3&timespan=2", 200,
     "3// a{k=1} 3\n=2// 2\n"),
    ("now + timespan", "selector=a{}&now=3&timespan=1", 200, "3// a{k=1} 3\n"),
    ("start + timespan", "selector=a{}&start=1&timespan=2", 200, "2// a{k=1} 2\n=1// 1\n"),
    ("negative timespan is a count", "selector=a{}&now=3&timespan=-1", 200, "3// a{k=1} 3\n"),
    ("end + count", "selector=a{}&end=2&count=1", 200, "2// a{k=1} 2\n"),
    ("stop=now", "selector=a{}&start=2&stop=now", 200, "3// a{k=1} 3\n=2// 2\n"),
    ("now=now", "selector=a{}&now=now&timespan=-5", 200, A_TEXT),
    ("ISO 8601 start and stop",
     f"selector=iso{{}}&start={quote('2024-01-01T00:00:00Z')}"
     f"&stop={quote('2024-01-01T01:00:01.5+01:00')}", 200,
     f"{T0 + 1_500_000}// iso{{}} 2\n={T0}// 1\n"),
    ("ISO 8601 duration timespan",
     f"selector=iso{{}}&end={T0 + 1_500_000}&timespan=PT0.5S", 200,
     f"{T0 + 1_500_000}// iso{{}} 2\n"),
    ("ISO 8601 duration (ms)", f"selector=iso{{}}&end={T0 + 1_500_000}&timespan=PT1.501S",
     200, f"{T0 + 1_500_000}// iso{{}} 2\n={T0}// 1\n"),
    ("names and strings escaped as WarpURLEncoder does", "selector=x:y{}&start=1&stop=1", 200,
     "1// x%3Ay{p=a%2Fb*%20} 'c%3Ad*'\n"),
    ("json names and strings decoded", "selector=x:y{}&start=1&stop=1&format=json", 200,
     '[{"c":"x:y","l":{"p":"a/b* "},"a":{},"i":"0","la":0,"v":[[1,"c:d*"]]}]'),
    ("canonical (the node's own form)", "selector=a{}&start=1&stop=3&format=canonical", 200,
     "1// a{k=1} 1\n2// a{k=1} 2\n3// a{k=1} 3\n"),
    ("no time range", "selector=a{}", 400, "missing either 'start' or 'end'"),
    ("start alone", "selector=a{}&start=1", 400, "'timespan'"),
    ("months in timespan", "selector=a{}&end=1&timespan=P1M", 400, "years or months"),
    ("ISO without zone", "selector=a{}&start=2024-01-01T00:00:00&stop=1", 400, "time zone"),
    ("end and stop", "selector=a{}&start=1&end=2&stop=3", 400, "both 'end' and 'stop'"),
    ("sampling is not served", "selector=a{}&start=1&stop=3&timestep=2", 400, "'timestep'"),
    ("gskip is not served", "selector=a{}&start=1&stop=3&gskip=1", 400, "'gskip'"),
    ("cache hints are harmless", "selector=a{}&start=1&stop=3&nocache&sortmeta", 200, A_TEXT),
]


@pytest.mark.parametrize(("name", "query", "status", "body"), ROWS, ids=[r[0] for r in ROWS])
def test_fetch_form(loaded: NodeProc, name: str, query: str, status: int, body: str) -> None:
    got_status, got_body, headers = get(loaded, "/api/v0/fetch", query)
    assert got_status == status, got_body
    if status == 200:
        assert got_body == body
        if "format=json" in query:
            assert headers["Content-Type"].startswith("application/json")
            json.loads(got_body)  # what @senx/warp10 does with it
    else:
        assert body in got_body


def test_token_query_parameter(loaded: NodeProc) -> None:
    """Warp 10 takes the read token from ``token=`` when no header carries it."""
    q = f"selector=a{{}}&start=1&stop=3&token={quote(loaded.tokens['reader'])}"
    assert get(loaded, "/api/v0/fetch", q, token=None)[:2] == (200, A_TEXT)
    bad = "selector=a{}&start=1&stop=3&token=wrong"
    assert get(loaded, "/api/v0/fetch", bad, token=None)[0] == 403
    # a write-only token is still refused for reading
    ingest = f"selector=a{{}}&start=1&stop=3&token={quote(loaded.tokens['ingest'])}"
    assert get(loaded, "/api/v0/fetch", ingest, token=None)[0] == 403


def test_text_and_fulltext_hold_what_canonical_holds(loaded: NodeProc) -> None:
    """The Warp 10 forms carry every reading the node's own form does: each parses back
    (update format) to the same readings."""
    q = "selector=~.*{}&start=0&stop=9999999999999999"
    forms = {fmt: get(loaded, "/api/v0/fetch", f"{q}&format={fmt}")[1]
             for fmt in ("canonical", "fulltext", "text")}
    assert forms["canonical"].count("\n") == 16
    readings = {fmt: sorted(map(repr, parse_update(body, 0))) for fmt, body in forms.items()}
    assert readings["text"] == readings["fulltext"] == readings["canonical"]
