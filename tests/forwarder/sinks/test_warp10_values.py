"""The ``warp10`` sink emits only value spellings a real Warp 10 reads back as the same value.

Warp 10 is not available here, so what it accepts is written down from its parser
(``GTSHelper.parseValue`` in senx/warp10-platform) as a small independent checker below,
deliberately not the node's own parser: a recording HTTP server captures every
``/api/v0/update`` body the sink sends for records holding every value type, and each
value token must pass the checker. The same records sent to a fanout node through the
same sink must give the origin's data back, byte for byte.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from aiohttp import web

from fanout.datalog.format import Record, encode_record
from fanout.node.changes import update_pendings
from fanout.testing import NodeProc, free_port
from forwarder.sinks import Batch, make_sink

from .test_conformance import target_config

CLIENT_BODY = (
    "1// v{} b64:AAH+/w==\n=2// hex:00ff\n=3// b64:\n"
    "1// d{} NaN\n=2// Infinity\n=3// -Infinity\n=4// 1e-5\n=5// 1e20\n=6// -0.0\n"
    "1// s{} 'it's'\n=2// \"a b+c/d\"\n"
    "1// b{} t\n=2// false\n"
    "1/-5372670727227936656/3 p{} HH:48.0:-4.5\n=2/1e-7:-179.5/ +42\n"
    "1// m{} [ 1 2.5 T 'x' b64:AQ NaN 10/48.0:-4.5/3/[ 'a%2Fb' ] 20//-1/[! ] 30/0/F ]\n"
    "=2// [!1 2]\n=3// []\n"
)

# --- what Warp 10's GTSHelper.parseValue takes, per type ------------------------------------
_LONG = re.compile(r"[+-]?[0-9]+")
_DOUBLE = re.compile(r"[+-]?(?:NaN|Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_STRING = re.compile(r"'(?:[^%]|%[0-9A-Fa-f]{2})*'")
_BINARY = re.compile(r"b64:[A-Za-z0-9_-]*")  # URL-safe, as Warp 10 itself writes them


def warp10_reads(value: str) -> bool:
    """Whether Warp 10 parses ``value`` (an update line's VALUE) without error."""
    if value in ("T", "F") or _STRING.fullmatch(value) or _BINARY.fullmatch(value):
        return True
    if _LONG.fullmatch(value):
        return -(2**63) <= int(value) < 2**63
    if _DOUBLE.fullmatch(value):
        return True
    if value.startswith("["):
        return _multi_ok(value)
    return False


def _multi_ok(value: str) -> bool:
    """Warp 10's multi-value tokenizer: tokens split at spaces, a value starting with "["
    runs to its matching "]"; each token TS/LAT:LON/ELEV/VALUE with a value it reads."""
    if not value.endswith("]"):
        return False
    inner = value[2:-1] if value.startswith("[!") else value[1:-1]
    i = 0
    while i < len(inner):
        if inner[i] == " ":
            i += 1
            continue
        end = inner.find(" ", i)
        end = len(inner) if end < 0 else end
        parts = inner[i:end].split("/", 3)
        start = end - len(parts[-1])
        if inner.startswith("[", start):
            depth, j = 0, start
            while j < len(inner):
                depth += {"[": 1, "]": -1}.get(inner[j], 0)
                j += 1
                if depth == 0:
                    break
            end = j
        head, val = parts[:-1], inner[start:end]
        if head and not _LONG.fullmatch(head[0]):
            return False
        if len(head) >= 2 and head[1] and not (
                _LONG.fullmatch(head[1]) or re.fullmatch(
                    f"{_DOUBLE.pattern}:{_DOUBLE.pattern}", head[1])):
            return False
        if len(head) == 3 and head[2] and not _LONG.fullmatch(head[2]):
            return False
        if not warp10_reads(val):
            return False
        i = end
    return True


def _records() -> list[Record]:
    pend = update_pendings(CLIENT_BODY, 1_700_000_000_000_000, "ingest")
    return [Record(i + 1, "origin1", i + 1, 1700000000000, p.op, "ingest", p.params, (), p.body)
            for i, p in enumerate(pend)]


async def _send(cfg, token: str, recs: list[Record]) -> None:
    sink = make_sink(cfg, token)
    try:
        await sink.send(Batch(recs, b"".join(encode_record(r) for r in recs)))
    finally:
        await sink.close()


def test_every_emitted_value_is_one_warp10_reads(tmp_path: Path) -> None:
    seen: list[bytes] = []

    async def scenario() -> None:
        async def update(request: web.Request) -> web.Response:
            seen.append(await request.read())
            return web.Response(status=200)

        app = web.Application()
        app.router.add_post("/api/v0/update", update)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await _send(target_config(tmp_path, "warp10", f"http://127.0.0.1:{port}"),
                        "x" * 32, _records())
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
    lines = b"".join(seen).decode().splitlines()
    assert len(lines) == CLIENT_BODY.count("\n")
    for line in lines:
        value = line.split(" ", 2)[2]
        assert warp10_reads(value), line
    # every type is there (not a vacuous pass)
    values = [line.split(" ", 2)[2] for line in lines]
    assert {"NaN", "Infinity", "-Infinity", "b64:AAH-_w", "'it%27s'", "T", "F",
            "-5372670727227936656", "[! 1 2 ]", "[ ]"} <= set(values)


def test_warp10_sink_into_a_node_keeps_every_value(make_node, tmp_path: Path) -> None:
    origin: NodeProc = make_node("o").start_and_wait()
    target: NodeProc = make_node("t").start_and_wait()
    origin.client("ingest").update(CLIENT_BODY, headers={"X-Warp10-Now": "1700000000000000"})
    asyncio.run(_send(target_config(tmp_path, "warp10", target.url), target.tokens["ingest"],
                      _records()))
    ref = origin.client("reader").fetch("~.*{}", showattr=True)
    assert ref.count("\n") == CLIENT_BODY.count("\n")
    assert target.client("reader").fetch("~.*{}", showattr=True) == ref


def test_checker_refuses_what_warp10_refuses() -> None:
    # Python spellings Java does not read, and broken multi-values
    for bad in ("nan", "inf", "-inf", "True", "'a'b", "[ 1 2", "[ x ]", "[ 'a/b' ]",
                "9223372036854775808", "b64:+/"):
        assert not warp10_reads(bad), bad
