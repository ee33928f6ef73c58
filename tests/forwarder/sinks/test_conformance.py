"""One suite every sink passes (the Sink contract in forwarder/sinks/base.py).

Targets are real: a fanout node process for delivery, and a small aiohttp server on
127.0.0.1 for the status codes a healthy node never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from fanout.datalog.format import Record, encode_record
from fanout.target_config import Retention, SinkConfig, TargetConfig
from fanout.testing import NodeProc, free_port
from forwarder.sinks import SINKS, Batch, SinkRejected, SinkUnavailable, make_sink

TOKEN_FOR = {"fanout": "replicator", "warp10": "ingest"}


def records() -> list[Record]:
    bodies: list[tuple[str, dict[str, Any], bytes]] = [
        ("update", {}, b"1000/48.5:2.5/10 t{k=v} 1.5\n1001// t{k=v} 2.5\n"),
        ("meta", {"delta": False}, b"t{k=v}{team=a}\n"),
        ("update", {}, b"5// s{} 'x%20y'\n6// s{} T\n7// gone{} 1\n"),
        ("delete", {"selector": "=gone{}", "deleteall": True}, b""),
        ("delete", {"selector": "=t{}", "start": 1001, "end": 1001}, b""),
        ("meta", {"delta": True}, b"t{k=v}{site=p}\n"),
    ]
    return [Record(i + 1, "origin1", i + 1, 1700000000000, op, "ingest", params, (), body)
            for i, (op, params, body) in enumerate(bodies)]


EXPECTED = "5// s{}{} 'x%20y'\n6// s{}{} T\n1000/48.5:2.5/10 t{k=v}{site=p,team=a} 1.5\n"


def batch(recs: list[Record]) -> Batch:
    return Batch(recs, b"".join(encode_record(r) for r in recs))


def target_config(tmp: Path, kind: str, endpoint: str) -> TargetConfig:
    return TargetConfig(source=tmp / "t.yaml", target="t", source_dir=tmp / "src",
                        state_dir=tmp / "state",
                        sink=SinkConfig(kind, endpoint, None, "unused"),
                        connect_timeout=2, request_timeout=5, retention=Retention())


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProc]:
    n = NodeProc.init(tmp_path_factory.mktemp("sinks") / "n", "n").start_and_wait()
    try:
        yield n
    finally:
        n.kill()


@pytest.fixture(params=sorted(SINKS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run(coro):
    return asyncio.run(coro)


async def _send(cfg: TargetConfig, token: str, b: Batch):
    sink = make_sink(cfg, token)
    try:
        return await sink.describe(), await sink.send(b)
    finally:
        await sink.close()


def test_delivers_in_order_and_resending_changes_nothing(node: NodeProc, kind: str,
                                                          tmp_path: Path) -> None:
    with node.client("ingest") as c:
        c.delete("~.*{}")
    cfg = target_config(tmp_path, kind, node.url)
    token = node.tokens[TOKEN_FOR[kind]]
    ident, result = run(_send(cfg, token, batch(records())))
    assert ident == ("n" if kind == "fanout" else None)
    assert result.applied == 6
    fetch = node.client("reader").fetch("~.*{}", showattr=True)
    assert fetch == EXPECTED
    _, again = run(_send(cfg, token, batch(records())))
    assert node.client("reader").fetch("~.*{}", showattr=True) == EXPECTED
    if kind == "fanout":
        assert (again.applied, again.duplicate) == (0, 6)


def test_wrong_token_is_a_rejection(node: NodeProc, kind: str, tmp_path: Path) -> None:
    cfg = target_config(tmp_path, kind, node.url)
    with pytest.raises(SinkRejected) as err:
        run(_send(cfg, "x" * 32, batch(records()[:1])))
    assert err.value.status == 403 and "unknown token" in str(err.value)


def test_closed_port_is_unavailable(kind: str, tmp_path: Path) -> None:
    cfg = target_config(tmp_path, kind, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SinkUnavailable) as err:
        run(_send(cfg, "x" * 32, batch(records()[:1])))
    assert err.value.error_num == 1400 and "cannot reach" in str(err.value)


@contextlib.asynccontextmanager
async def stub(reply: web.Response) -> AsyncIterator[str]:
    """A real HTTP server on 127.0.0.1 that knows logger-state and answers ``reply`` to
    everything else: for the statuses a healthy node never gives."""
    async def answer(request: web.Request) -> web.Response:
        if request.path.endswith("logger-state"):
            return web.json_response({"server": {"serverId": "stub"}})
        return reply

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (408, True),
                                                   (429, True), (400, False), (404, False)])
def test_status_codes(kind: str, tmp_path: Path, status: int, retryable: bool) -> None:
    async def scenario() -> None:
        async with stub(web.Response(status=status, text="stub says no")) as url:
            expected = SinkUnavailable if retryable else SinkRejected
            with pytest.raises(expected) as err:
                await _send(target_config(tmp_path, kind, url), "x" * 32, batch(records()[:1]))
            assert str(status) in str(err.value) and "stub says no" in str(err.value)

    run(scenario())


def test_unreadable_reply_is_invalid_response(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with stub(web.Response(text="<html>proxy page</html>")) as url:
            with pytest.raises(SinkUnavailable) as err:
                await _send(target_config(tmp_path, "fanout", url), "x" * 32,
                            batch(records()[:1]))
            assert err.value.error_num == 1401

    run(scenario())


def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else(kind: str,
                                                                   tmp_path: Path) -> None:
    """A target (or a proxy before it) answering 307/308 to plain http:// elsewhere: the
    sink does not follow, so the token and the records reach only the configured URL, and
    the redirect is a retryable error naming itself."""
    async def scenario() -> None:
        seen: list[web.Request] = []

        async def elsewhere(request: web.Request) -> web.Response:
            seen.append(request)
            return web.json_response({})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", elsewhere)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            moved = web.Response(status=307, headers={"Location": f"http://127.0.0.1:{port}/x"})
            async with stub(moved) as url:
                with pytest.raises(SinkUnavailable) as err:
                    await _send(target_config(tmp_path, kind, url), "s" * 32,
                                batch(records()[:1]))
            assert "307" in str(err.value) and "redirect" in str(err.value)
            assert seen == []
        finally:
            await runner.cleanup()

    run(scenario())
