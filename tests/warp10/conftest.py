"""A node loaded with readings of every output-relevant shape, shared by a module's rows."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fanout.testing import NodeProc

T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z

DATA = (
    "1// a{k=1} 1\n2// a{k=1} 2\n3// a{k=1} 3\n"
    "1/48.5:-4.25/10 d{} 1e-5\n2// d{} 1e20\n3// d{} 42.0\n"
    "1// u{} 5\n2// u{} 5\n3// u{} 5\n4// u{} 6\n5// u{} 6\n"
    "1// s{} 'it%20s'\n1// b{} T\n"
    f"{T0}// iso{{}} 1\n{T0 + 1_500_000}// iso{{}} 2\n"
    "1// x:y{p=a/b*%20} 'c:d*'\n"
)
META = "a{k=1}{owner=x}\n"


def get(node: NodeProc, path: str, query: str, token: str | None = "reader",
        ) -> tuple[int, str, dict[str, str]]:
    """A GET as a plain HTTP client sends it; the token in the header unless None."""
    req = urllib.request.Request(f"{node.url}{path}?{query}")
    if token is not None:
        req.add_header("X-Warp10-Token", node.tokens[token])
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProc]:
    node = NodeProc.init(Path(tmp_path_factory.mktemp("w10")) / "n1", "n1")
    try:
        node.start_and_wait()
        with node.client("ingest") as c:
            c.update(DATA)
            c.meta(META)
        yield node
    finally:
        node.kill()


def quote(s: str) -> str:
    return urllib.parse.quote(s, safe="")
