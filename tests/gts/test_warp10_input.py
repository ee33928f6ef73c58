"""Every documented update input form, one row each, with Warp 10's answer.

Sources: Warp 10's "GTS input format" documentation page and, where it is silent, its
parser (``GTSHelper.parse`` / ``parseValue`` and ``StandaloneIngressHandler`` in
senx/warp10-platform). A row is (input line, canonical line the node logs and stores) for
a form Warp 10 accepts, or (input line, None, reason) for one it refuses with 400.

The same table drives the parser alone and a real node over HTTP (the datalog record
must hold the canonical line; a refused body must leave nothing logged or stored).
"""

from __future__ import annotations

import pytest

from fanout.datalog import iter_dir
from fanout.errors import GTSParseError
from fanout.gts import format_update, parse_update
from fanout.testing import HTTPError, NodeProc

NOW = 1_700_000_000_000_000

# (id, input, canonical line or None when refused, refusal reason fragment)
ROWS: list[tuple[str, str, str | None, str]] = [
    # --- timestamps --------------------------------------------------------------------
    ("ts-absolute", "1000// a{} 1", "1000// a{} 1", ""),
    ("ts-empty-is-now", "// a{} 1", f"{NOW}// a{{}} 1", ""),
    ("ts-plus-sign", "+1000// a{} 1", "1000// a{} 1", ""),  # Long.parseLong takes "+"
    ("ts-negative", "-5// a{} 1", "-5// a{} 1", ""),
    ("ts-relative-minus", "T-1000// a{} 1", f"{NOW - 1000}// a{{}} 1", ""),
    ("ts-relative-plus", "T+7// a{} 1", f"{NOW + 7}// a{{}} 1", ""),
    ("ts-relative-bare", "T7// a{} 1", f"{NOW + 7}// a{{}} 1", ""),
    ("ts-relative-empty", "T// a{} 1", None, "invalid relative timestamp"),
    ("ts-not-a-number", "x// a{} 1", None, "invalid timestamp"),
    ("ts-over-64-bits", "9223372036854775808// a{} 1", None, "out of signed 64-bit"),
    ("ts-decimal", "1.5// a{} 1", None, "invalid timestamp"),
    # --- positions ---------------------------------------------------------------------
    ("latlon", "1/48.0:-4.5/ a{} 1", "1/48.0:-4.5/ a{} 1", ""),
    ("latlon-elev", "1/48.0:-4.5/12 a{} 1", "1/48.0:-4.5/12 a{} 1", ""),
    ("latlon-java-forms", "1/+48.5d:.5/ a{} 1", "1/48.5:0.5/ a{} 1", ""),  # parseDouble
    ("elev-only", "1//-3 a{} 1", "1//-3 a{} 1", ""),
    ("elev-plus", "1//+3 a{} 1", "1//3 a{} 1", ""),
    ("hhcode", "1/-5372670727227936656/ a{} 1",
     "1/47.99999998882413:-4.500000067055225/ a{} 1", ""),
    ("hhcode-zero", "1/0/7 a{} 1", "1/-90.0:-180.0/7 a{} 1", ""),
    ("hhcode-not-integer", "1/48.1/ a{} 1", None, "location must be LAT:LON or an HHCode"),
    ("latlon-half", "1/48.1:/ a{} 1", None, "latitude and longitude must be given together"),
    ("latlon-nan", "1/NaN:0/ a{} 1", None, "out of range"),  # documented difference
    ("latlon-out-of-range", "1/91:0/ a{} 1", None, "out of range"),  # documented difference
    ("elev-decimal", "1//1.5 a{} 1", None, "invalid elevation"),
    # --- LONG ----------------------------------------------------------------------------
    ("long", "1// a{} 42", "1// a{} 42", ""),
    ("long-plus", "1// a{} +42", "1// a{} 42", ""),
    ("long-min", "1// a{} -9223372036854775808", "1// a{} -9223372036854775808", ""),
    ("long-over", "1// a{} 9223372036854775808", None, "out of signed 64-bit"),
    ("hh-value", "1// a{} HH:48.0:-4.5", "1// a{} -5372670727227936656", ""),
    ("hh-value-bad", "1// a{} HH:48.0", None, "HH: value must be HH:LAT:LON"),
    # --- DOUBLE --------------------------------------------------------------------------
    ("double", "1// a{} 21.5", "1// a{} 21.5", ""),
    ("double-exp", "1// a{} 1e-5", "1// a{} 1e-05", ""),
    ("double-plus", "1// a{} +.5", "1// a{} 0.5", ""),
    ("double-trailing-dot", "1// a{} 3.", "1// a{} 3.0", ""),
    ("double-suffix", "1// a{} 2d", "1// a{} 2.0", ""),
    ("double-hex", "1// a{} 0x1.8p1", "1// a{} 3.0", ""),
    ("double-nan", "1// a{} NaN", "1// a{} NaN", ""),
    ("double-inf", "1// a{} Infinity", "1// a{} Infinity", ""),
    ("double-minus-inf", "1// a{} -Infinity", "1// a{} -Infinity", ""),
    ("double-overflow", "1// a{} 1e400", "1// a{} Infinity", ""),  # parseDouble: Infinity
    ("double-lowercase-nan", "1// a{} nan", None, "is not a LONG"),  # case matters in Java
    ("double-inf-short", "1// a{} inf", None, "is not a LONG"),
    ("double-two-dots", "1// a{} 1.2.3", None, "is not a LONG"),
    # --- BOOLEAN -------------------------------------------------------------------------
    ("bool-T", "1// a{} T", "1// a{} T", ""),
    ("bool-t", "1// a{} t", "1// a{} T", ""),
    ("bool-F", "1// a{} F", "1// a{} F", ""),
    ("bool-f", "1// a{} f", "1// a{} F", ""),
    ("bool-true", "1// a{} true", "1// a{} T", ""),
    ("bool-TRUE", "1// a{} TRUE", "1// a{} T", ""),
    ("bool-False", "1// a{} False", "1// a{} F", ""),
    ("bool-yes", "1// a{} yes", None, "is not a LONG"),
    # --- STRING --------------------------------------------------------------------------
    ("string", "1// a{} 'hello%20world'", "1// a{} 'hello%20world'", ""),
    ("string-raw-space", "1// a{} 'hello world'", "1// a{} 'hello%20world'", ""),
    ("string-raw-quote", "1// a{} 'it's'", "1// a{} 'it%27s'", ""),
    ("string-double-quotes", '1// a{} "it\'s"', "1// a{} 'it%27s'", ""),
    ("string-double-quotes-empty", '1// a{} ""', "1// a{} ''", ""),
    ("string-plus-is-literal", "1// a{} 'a+b%2B'", "1// a{} 'a%2Bb%2B'", ""),
    ("string-unterminated", "1// a{} 'abc", None, "unterminated string value"),
    ("string-mixed-quotes", "1// a{} 'abc\"", None, "unterminated string value"),
    ("string-lone-quote", "1// a{} '", None, "unterminated string value"),
    ("string-bad-escape", "1// a{} '%zz'", None, "invalid string value"),
    # --- BINARY --------------------------------------------------------------------------
    ("b64", "1// a{} b64:AAH-_w", "1// a{} b64:AAH-_w", ""),
    ("b64-standard-padded", "1// a{} b64:AAH+/w==", "1// a{} b64:AAH-_w", ""),
    ("b64-empty", "1// a{} b64:", "1// a{} b64:", ""),
    ("b64-bad", "1// a{} b64:A", None, "invalid b64: value"),
    ("hex", "1// a{} hex:0001FEff", "1// a{} b64:AAH-_w", ""),
    ("hex-odd", "1// a{} hex:abc", None, "odd number of hexadecimal digits"),
    ("hex-bad", "1// a{} hex:zz", None, "not a hexadecimal digit"),
    # --- multi-value ---------------------------------------------------------------------
    ("multi", "1// a{} [ 1 2.5 T 'x' ]", "1// a{} [ 1 2.5 T 'x' ]", ""),
    ("multi-tight", "1// a{} [1 2]", "1// a{} [ 1 2 ]", ""),
    ("multi-nocompress", "1// a{} [!1 2]", "1// a{} [! 1 2 ]", ""),
    ("multi-empty", "1// a{} []", "1// a{} [ ]", ""),
    ("multi-positions", "1// a{} [ 10/1 20/48.0:-4.5/2 30//5/3 40/48.0:-4.5/6/4 0/5 ]",
     "1// a{} [ 10/1 20/48.0:-4.5/2 30//5/3 40/48.0:-4.5/6/4 5 ]", ""),
    ("multi-hhcode", "1// a{} [ 10/0/1 ]", "1// a{} [ 10/-90.0:-180.0/1 ]", ""),
    ("multi-nested", "1// a{} [ 1 [ 2 [ 3 ] ] 4/[ 5 ] ]", "1// a{} [ 1 [ 2 [ 3 ] ] 4/[ 5 ] ]", ""),
    ("multi-binary-nan", "1// a{} [ b64:AQ hex:02 NaN ]", "1// a{} [ b64:AQ b64:Ag NaN ]", ""),
    ("multi-string-slash", "1// a{} [ 'a%2Fb' ]", "1// a{} [ 'a%2Fb' ]", ""),
    # the example in @senx/warp10's README
    ("multi-senx-readme",
     "1566893344654882/48.81:-4.147/124 io.warp10.test{key=value} "
     "[8.2 151 152 1568189745655509/40.6:-74/14 ]",
     "1566893344654882/48.81:-4.147/124 io.warp10.test{key=value} "
     "[ 8.2 151 152 1568189745655509/40.6:-74.0/14 ]", ""),
    ("multi-unclosed", "1// a{} [ 1 2", None, "missing closing ']'"),
    ("multi-bad-element", "1// a{} [ 1 x ]", None, "multi-value element 'x'"),
    ("multi-raw-slash", "1// a{} [ 'a/b' ]", None, "invalid timestamp"),
    # --- values Warp 10 reads with plugins or encoders the node does not have -----------
    ("quaternion", "1// a{} Q:1:0:0:0", "1// a{} -140739635871745", ""),  # 0xFFFF7FFF7FFF7FFF
    ("quaternion-normalized", "1// a{} Q:2:0:0:0", "1// a{} -140739635871745", ""),
    ("quaternion-three", "1// a{} Q:1:0:0", None, "Q:w:x:y:z"),
    ("quaternion-nan", "1// a{} Q:NaN:0:0:0", None, "finite"),
    ("custom-encoder", "1// a{} :enc:x", None, "custom value encoders"),
    # --- series part ---------------------------------------------------------------------
    ("attributes", "1// a{k=v}{unit=C} 1", "1// a{k=v} 1", ""),
    ("attributes-empty", "1// a{}{} 1", "1// a{} 1", ""),
    ("attributes-hide-label", "1// a{k=v}{k=w} 1", None, "has the name of a label"),
    ("attributes-reserved", "1// a{}{.owner=x} 1", None, "reserved label"),
    ("attributes-unclosed", "1// a{}{k=v 1", None, "unclosed attribute block"),
    ("continuation", "1// a{} 1\n=2// 2", "1// a{} 1\n2// a{} 2", ""),
    ("continuation-relative", "1// a{} 1\n=T-1// 2", f"1// a{{}} 1\n{NOW - 1}// a{{}} 2", ""),
]


def _canonical(body: str, now: int = NOW) -> str:
    return format_update(parse_update(body, now, []))


@pytest.mark.parametrize(("body", "canonical", "reason"),
                         [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_parser_answers_as_warp10(body: str, canonical: str | None, reason: str) -> None:
    if canonical is None:
        with pytest.raises(GTSParseError) as info:
            _canonical(body)
        assert reason in info.value.reason
    else:
        assert _canonical(body) == canonical + "\n"
        # the canonical form is itself accepted and a fixed point (replay is deterministic)
        assert _canonical(canonical) == canonical + "\n"


def test_table_covers_both_answers() -> None:
    accepted = [r for r in ROWS if r[2] is not None]
    refused = [r for r in ROWS if r[2] is None]
    assert len(accepted) > 50 and len(refused) > 25
    assert len({r[0] for r in ROWS}) == len(ROWS)


def _logged(node: NodeProc) -> list:
    return [r for _, recs in iter_dir(node.datalog_dir) for r in recs]


def test_node_answers_every_row_as_warp10(make_node) -> None:
    """Each row as its own request to a real node: accepted rows are logged in canonical
    form (relative times made absolute at the origin); refused ones get 400 naming line
    and reason, and leave nothing logged or stored."""
    node = make_node("n1").start_and_wait()
    w = node.client("ingest")
    expected_bodies = []
    for name, body, canonical, reason in ROWS:
        headers = {"X-Warp10-Now": str(NOW)}
        if canonical is None:
            with pytest.raises(HTTPError) as err:
                w.update(body, headers=headers)
            assert err.value.status == 400, name
            assert reason in err.value.body, (name, err.value.body)
        else:
            assert w.update(body, headers=headers) == 200, name
            expected_bodies.append((name, canonical + "\n"))
    updates = [r for r in _logged(node) if r.op == "update"]
    assert [r.body.decode() for r in updates] == [b for _, b in expected_bodies]
    metas = [r for r in _logged(node) if r.op == "meta"]
    assert [(m.body.decode(), m.params) for m in metas] == [
        ("a{k=v}{unit=C}\n", {"delta": False}),
        ("a{}{}\n", {"delta": False}),
    ]


def test_now_header_forms_on_a_node(make_node) -> None:
    """X-Warp10-Now: an absolute time; +N / -N from the server's clock (before this fix,
    +N was taken as the absolute time N); * reads the clock per reading. All are logged
    as absolute timestamps."""
    import time

    node = make_node("n1").start_and_wait()
    w = node.client("ingest")
    w.update("// abs{} 1", headers={"X-Warp10-Now": "123456"})
    before = time.time_ns() // 1000
    w.update("// plus{} 1\nT-10// plus{} 2", headers={"X-Warp10-Now": "+1000000000"})
    w.update("// minus{} 1", headers={"X-Warp10-Now": "-1000000000"})
    w.update("// star{} 1", headers={"X-Warp10-Now": "*"})
    after = time.time_ns() // 1000
    for bad in ("abc", "+", "1.5", "+x"):
        with pytest.raises(HTTPError) as err:
            w.update("// bad{} 1", headers={"X-Warp10-Now": bad})
        assert err.value.status == 400 and "X-Warp10-Now" in err.value.body
    bodies = [r.body.decode() for r in _logged(node)]
    assert bodies[0] == "123456// abs{} 1\n"
    plus = [int(line.split("/")[0]) for line in bodies[1].splitlines()]
    assert before + 10**9 <= plus[0] <= after + 10**9 and plus[1] == plus[0] - 10
    minus = int(bodies[2].split("/")[0])
    assert before - 10**9 <= minus <= after - 10**9
    star = int(bodies[3].split("/")[0])
    assert before <= star <= after
    assert len(bodies) == 4


def test_update_attributes_replace_delta_skip(make_node) -> None:
    """An {ATTRIBUTES} block on an update line sets the series' attributes (replace by
    default, merged with X-Warp10-Attributes: delta, ignored with skip), in the same
    all-or-nothing request as the readings."""
    node = make_node("n1").start_and_wait()
    w, r = node.client("ingest"), node.client("reader")
    w.update("1// a{k=v}{unit=C,x=1} 1\n2// b{} 2")
    assert r.fetch("~.*{}", showattr=True) == (
        "1// a{k=v}{unit=C,x=1} 1\n2// b{}{} 2\n")
    w.update("3// a{k=v}{x=,y=2} 3", headers={"X-Warp10-Attributes": "delta"})
    assert r.fetch("a{}", showattr=True).splitlines()[0] == "1// a{k=v}{unit=C,y=2} 1"
    w.update("4// a{k=v}{z=9} 4", headers={"X-Warp10-Attributes": "skip"})
    assert r.fetch("a{}", showattr=True).splitlines()[-1] == "4// a{k=v}{unit=C,y=2} 4"
    w.update("5// a{k=v}{only=1} 5")
    assert r.fetch("a{}", showattr=True).splitlines()[-1] == "5// a{k=v}{only=1} 5"
    before = r.fetch("~.*{}", showattr=True)
    with pytest.raises(HTTPError) as err:
        w.update("6// a{k=v}{fine=1} 6\n7// a{k=v}{k=clash} 7")
    assert err.value.status == 400 and "line 2" in err.value.body
    assert r.fetch("~.*{}", showattr=True) == before


@pytest.mark.parametrize(("body", "reason"), [
    ("a{k=v}{k=w}", "attribute 'k' has the name of a label"),
    ("a{.owner=x}{.owner=y}", "has the name of a label"),
    ("a{}{.producer=x}", "reserved label"),
    ("a{}{.app=x}", "reserved label"),
])
def test_meta_refuses_attributes_named_like_labels(body: str, reason: str) -> None:
    """Warp 10's MetadataUtils.validateMetadata: no attribute may hide a label (the
    .producer/.owner/.app labels every series carries included): 400 on /meta."""
    from fanout.gts import parse_meta

    with pytest.raises(GTSParseError) as info:
        parse_meta("a{}{x=1}\n" + body + "\n")
    assert info.value.line == 2 and reason in info.value.reason


def test_meta_endpoint_refuses_attribute_hiding_label(make_node) -> None:
    node = make_node("n1").start_and_wait()
    w = node.client("ingest")
    w.update("1// a{k=v} 1")
    with pytest.raises(HTTPError) as err:
        w.meta("a{k=v}{k=other}\n")
    assert err.value.status == 400 and "line 1" in err.value.body
    assert node.client("reader").fetch("a{}", showattr=True) == "1// a{k=v}{} 1\n"
