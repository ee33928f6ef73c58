"""Real Warp 10 clients against a real node: SenX's ``@senx/warp10`` (Node.js, npm),
``warp10-pywarp`` and ``xaal.warp10`` (PyPI, the ``test`` extra). Every call's effect or
answer is checked against the node's own (canonical) fetch."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fanout.testing import NodeProc

from .conftest import get

HERE = Path(__file__).parent
REPO = HERE.parent.parent
NPM_DIR = REPO / ".cache" / "warp10-js"  # gitignored; `make test` fills it too


def canonical(node: NodeProc, selector: str = "~.*{}") -> str:
    with node.client("reader") as c:
        return c.fetch(selector, showattr=True)


@pytest.fixture
def node(make_node) -> NodeProc:
    return make_node("n1").start_and_wait()


# -- @senx/warp10 -----------------------------------------------------------------------

@pytest.fixture(scope="session")
def senx_js() -> Path:
    """@senx/warp10 installed from npm into the repo's gitignored cache (once)."""
    node_bin, npm = shutil.which("node"), shutil.which("npm")
    if node_bin is None or npm is None:
        pytest.skip("node and npm are not installed: the @senx/warp10 suite needs them")
    modules = NPM_DIR / "node_modules" / "@senx" / "warp10"
    if not modules.is_dir():
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copy(HERE / "js" / "package.json", NPM_DIR / "package.json")
        subprocess.run([npm, "install", "--prefix", str(NPM_DIR), "--no-audit", "--no-fund"],
                       check=True, timeout=600, capture_output=True)
    return NPM_DIR / "node_modules"


def js(node: NodeProc, modules: Path, step: str) -> Any:
    cfg = {"endpoint": f"{node.url}/api/v0", "write": node.tokens["ingest"],
           "read": node.tokens["reader"]}
    out = subprocess.run(["node", str(HERE / "js" / "client.js"), json.dumps(cfg), step],
                         env={**os.environ, "NODE_PATH": str(modules)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"@senx/warp10 {step} failed: {out.stderr[-2000:]}"
    return json.loads(out.stdout)


def test_senx_warp10(node: NodeProc, senx_js: Path) -> None:
    up = js(node, senx_js, "update")
    assert up["count"] == 6
    assert canonical(node) == (
        "3000// js.flag{}{} T\n"
        "1000// js.name{}{} 'hello%20world%20%C3%A9'\n"
        "1500/48.5:-4.25/10 js.pos{}{} 1e-05\n1600// js.pos{}{} 1e+21\n"
        "1000// js.temp{room=a%20b}{} 21.5\n2000// js.temp{room=a%20b}{} 22.5\n")
    js(node, senx_js, "meta")
    assert "js.temp{room=a%20b}{unit=C} 21.5" in canonical(node)

    formatted = js(node, senx_js, "fetch-formatted")["result"]
    assert formatted == [
        {"name": "js.flag", "labels": {}, "attributes": {}, "data": [{"ts": 3000, "value": True}]},
        {"name": "js.name", "labels": {}, "attributes": {},
         "data": [{"ts": 1000, "value": "hello world é"}]},
        {"name": "js.pos", "labels": {}, "attributes": {},
         "data": [{"ts": 1600, "value": 1e21},
                  {"ts": 1500, "value": 1e-05, "loc": {"lat": 48.5, "long": -4.25},
                   "elev": 10}]},
        {"name": "js.temp", "labels": {"room": "a b"}, "attributes": {"unit": "C"},
         "data": [{"ts": 2000, "value": 22.5}, {"ts": 1000, "value": 21.5}]},
    ]
    raw = js(node, senx_js, "fetch-json")["result"]
    assert [(g["c"], g["l"], g["a"], g["v"]) for g in raw] == [
        ("js.temp", {"room": "a b"}, {"unit": "C"}, [[2000, 22.5], [1000, 21.5]])]
    text = js(node, senx_js, "fetch-text")["result"]
    assert text == ["3000// js.flag{} T", "1000// js.name{} 'hello%20world%20%C3%A9'",
                    "1600// js.pos{} 1.0E21", "=1500/48.5:-4.25/10 1.0E-5",
                    "2000// js.temp{room=a%20b} 22.5", "=1000// 21.5", ""]
    full = js(node, senx_js, "fetch-fulltext")["result"]
    assert full[2:4] == ["1600// js.pos{} 1.0E21", "1500/48.5:-4.25/10 js.pos{} 1.0E-5"]
    # now=1970-01-01T00:00:00.001Z (1000 us) and timespan=1000: (0, 1000]
    span = js(node, senx_js, "fetch-timespan")["result"]
    assert [g["name"] for g in span] == ["js.name", "js.temp"]

    deleted = js(node, senx_js, "delete-range")["result"]
    assert deleted == "js.temp{room=a%20b}{unit=C}\r\n"
    assert "1000// js.temp" not in canonical(node) and "2000// js.temp" in canonical(node)
    assert js(node, senx_js, "delete-all")["result"] == "js.flag{}{}\r\n"
    assert "js.flag" not in canonical(node)


# -- warp10-pywarp ----------------------------------------------------------------------

def test_pywarp_fetch(node: NodeProc) -> None:
    pywarp = pytest.importorskip("pywarp", reason="warp10-pywarp is in the 'test' extra")
    with node.client("ingest") as c:
        c.update("1// py.d{k=v} 1e-5\n2// py.d{k=v} 1e20\n3// py.d{k=v} 2.5\n"
                 "1/48.5:-4.25/7 py.l{} 42\n1// py.s{} 'a%20b'\n1// py.b{} F\n")
        c.meta("py.d{k=v}{unit=m}\n")
    # pywarp sends end + timespan, showattr and format=text: one of each Warp 10 form
    df = pywarp.fetch(f"{node.url}/api/v0/fetch", node.tokens["reader"], "~py.*{}", 3, 3)
    rows = sorted(zip(df["class"], df["ts"], df["d_value"], df["l_value"], df["s_value"],
                      df["lat"], df["elev"], strict=True), key=lambda r: (r[0], r[1]))
    assert [(r[0], r[1]) for r in rows] == [
        ("py.b", 1), ("py.d", 1), ("py.d", 2), ("py.d", 3), ("py.l", 1), ("py.s", 1)]
    doubles = {r[1]: r[2] for r in rows if r[0] == "py.d"}
    assert doubles == {1: 1e-5, 2: 1e20, 3: 2.5}  # read as DOUBLEs: Java spelling
    assert [r[3] for r in rows if r[0] == "py.l"] == [42]
    assert [r[5] for r in rows if r[0] == "py.l"] == [48.5]
    assert [r[6] for r in rows if r[0] == "py.l"] == [7]
    assert [r[4] for r in rows if r[0] == "py.s"] == ["a b"]
    labels = {c: lb for c, lb in zip(df["class"], df["labels"], strict=True)}
    assert labels["py.d"] == {"k": "v"}
    # the same readings the node serves in its own form
    assert len(df) == canonical(node, "~py.*{}").count("\n")
    assert not any(isinstance(x, float) and math.isnan(x) for x in doubles.values())


# -- xaal.warp10 ------------------------------------------------------------------------

def test_xaal_warp10_push_and_delete(node: NodeProc, tmp_path: Path) -> None:
    # not imported here: importing xaal reads (or exits for want of) ~/.xaal/xaal.ini
    if importlib.util.find_spec("xaal.warp10") is None:
        pytest.skip("xaal.warp10 is in the 'test' extra: pip install -e '.[test]'")
    conf = tmp_path / "xaal"
    conf.mkdir()
    (conf / "xaal.ini").write_text("key = " + "00" * 32 + "\n")
    (conf / "warp10.ini").write_text(
        "[config]\n"
        f"url = {node.url}/api/v0/update\n"
        f"token = {node.tokens['ingest']}\n"
        "topic = home\n"
        "addr = 12345678-1234-1234-1234-1234567890ab\n")
    env = {**os.environ, "XAAL_CONF_DIR": str(conf)}
    out = subprocess.run([sys.executable, str(HERE / "xaal_driver.py"), "push"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    sent = out.stdout.splitlines()
    assert len(sent) == 6  # 4 attributes (the string is skipped) + click True/False
    served = canonical(node, "~home.*{}")
    assert served.count("\n") == 6
    assert "home.thermometer.basic.temperature{devid=12345678-1234-1234-1234-123456789abc}{}"\
           " 21.5" in served
    assert "home.thermometer.basic.tiny{devid=" in served and " 1e-05\n" in served
    assert "home.thermometer.basic.on{devid=" in served and "{} T\n" in served
    text = get(node, "/api/v0/fetch", "selector=home.thermometer.basic.tiny{}&start=0&stop=now")
    assert text[1].endswith(" 1.0E-5\n")

    out = subprocess.run([sys.executable, "-m", "xaal.warp10.delete",
                          "home.thermometer.basic.click{}"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "deleteall&selector=" in out.stdout
    assert "home.thermometer.basic.click{devid=12345678-1234-1234-1234-123456789abc}{}" \
           in out.stdout
    assert "click" not in canonical(node, "~home.*{}")
    assert canonical(node, "~home.*{}").count("\n") == 4
