"""Catastrophic selector regexes cost linear time, in fetch and in delete (commit thread).

Under a backtracking engine ``(.|.)*!`` and ``(a+)+!`` double in cost per character of
an ordinary name: 24 characters are about a second per series, and a delete runs them on
the commit thread, so every concurrent write waited for the whole scan (measured before
RE2: 20 series of 22 characters, a delete held writes 4.8 s, a fetch 2.6 s).
"""

from __future__ import annotations

import statistics
import threading
import time
import urllib.parse

import pytest

from fanout.testing import Client, NodeProc

NAME = 24  # characters: ~1 s per series per regex under backtracking, microseconds under RE2
SERIES = 20
# Generous for a loaded 2-core CI box; backtracking needs 20+ s here.
DEADLINE = 5.0


def _load(node: NodeProc) -> None:
    with node.client("ingest") as c:
        c.update("".join(f"1// {'x' * (NAME - 4)}{i:04d}{{k={'a' * NAME}}} 1\n"
                         for i in range(SERIES)))


def _timed_with_writes(node: NodeProc, token: str, path: str) -> tuple[int, bytes, float,
                                                                       list[float]]:
    """Run one request while a writer writes every 10 ms; the request's reply, its time
    and the latency of every write made while it ran."""
    stop = threading.Event()
    lat: list[float] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with node.client("ingest") as c:
                i = 0
                while not stop.is_set():
                    t = time.perf_counter()
                    c.update(f"{i}// w{{}} {i}\n")
                    lat.append(time.perf_counter() - t)
                    i += 1
                    time.sleep(0.01)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    th = threading.Thread(target=writer)
    th.start()
    try:
        while not lat and th.is_alive():  # the writer is going before the request starts
            time.sleep(0.01)
        n0 = len(lat)
        t0 = time.perf_counter()
        with Client(node.url, node.tokens[token], timeout=120) as c:
            status, body = c.request("GET", path, check=False)
        took = time.perf_counter() - t0
        n_before = len(lat)
        while len(lat) < n_before + 2 and th.is_alive():  # a write after it, too
            time.sleep(0.01)
    finally:
        stop.set()
        th.join(60)
    assert not errors, errors
    return status, body, took, lat[n0:]


@pytest.mark.parametrize("selector", ["~(.|.)*!{}", "~.*{k~(a+)+!}"])
@pytest.mark.parametrize("kind", ["fetch", "delete"])
def test_catastrophic_selector_does_not_stall_writes(make_node, kind: str,
                                                     selector: str) -> None:
    node: NodeProc = make_node("n1").start_and_wait()
    _load(node)
    q = urllib.parse.quote(selector)
    if kind == "fetch":
        status, body, took, lat = _timed_with_writes(
            node, "reader", f"/api/v0/fetch?selector={q}&start=0&stop=9")
    else:
        status, body, took, lat = _timed_with_writes(
            node, "ingest", f"/api/v0/delete?selector={q}&deleteall=true")
    assert status == 200, body
    assert body == b""  # nothing matches: the names have no '!', the values no '!'
    assert took < DEADLINE, f"{kind} {selector} took {took:.1f}s"
    assert len(lat) >= 2 and max(lat) < DEADLINE, (
        f"writes during {kind} {selector}: max {max(lat):.2f}s, "
        f"median {statistics.median(lat):.3f}s")
    # the series are all still there (the delete matched none) and the node still answers
    with node.client("reader") as r:
        assert r.fetch("~x.*{}").count("\n") == SERIES


@pytest.mark.parametrize(
    ("selector", "construct"),
    [("a{k~(a)%5C1}", "invalid escape sequence"), ("~x(?=y){}", "invalid perl operator")],
)
def test_backtracking_only_regex_is_a_400_naming_the_selector(make_node, selector: str,
                                                              construct: str) -> None:
    node: NodeProc = make_node("n1").start_and_wait()
    _load(node)
    tick = node.client("reader").logger_state()["state"]["lastLogTick"]
    q = urllib.parse.quote(selector)
    for token, path in (("reader", f"/api/v0/fetch?selector={q}&start=0&stop=9"),
                        ("ingest", f"/api/v0/delete?selector={q}&deleteall=true")):
        with node.client(token) as c:
            status, body = c.request("GET", path, check=False)
        text = body.decode()
        assert status == 400, (path, status, text)
        assert construct in text and "RE2 syntax" in text, text
        assert repr(selector) in text, text  # names the selector as sent
    # the refused delete logged nothing and deleted nothing
    assert node.client("reader").logger_state()["state"]["lastLogTick"] == tick
    assert node.client("reader").fetch("~x.*{}").count("\n") == SERIES
    assert "Traceback" not in node.log_text()
