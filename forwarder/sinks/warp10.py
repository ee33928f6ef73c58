"""Sink ``warp10``: replay records as the update/meta/delete calls a client would make.

Runs of consecutive update records are merged into one ``/api/v0/update`` call (their
bodies are canonical lines with absolute timestamps, so concatenation keeps order and
meaning); a meta or delete record ends the run. The target's own token is used.
"""

from __future__ import annotations

import urllib.parse

from fanout.datalog.format import Record
from fanout.target_config import TargetConfig
from forwarder.sinks.base import Batch, SendResult, classify
from forwarder.sinks.http import NETWORK_ERRORS, Transport, make_session, read_reply


class Warp10Sink:
    def __init__(self, cfg: TargetConfig, token: str):
        self.endpoint = cfg.sink.endpoint
        self.transport = Transport(cfg.sink.endpoint, cfg.sink.tls)
        self._session = make_session(cfg.connect_timeout, cfg.request_timeout, token,
                                     self.transport.context)

    async def describe(self) -> str | None:
        return None

    async def marks(self) -> dict[str, int] | None:
        return None  # Warp 10 keeps no per-origin marks: no gap check is possible

    async def _call(self, method: str, path: str, body: bytes | None = None,
                    headers: dict[str, str] | None = None) -> None:
        url = f"{self.endpoint}{path}"
        try:
            async with self._session.request(method, url, data=body, headers=headers,
                                            ssl=self.transport.ssl,
                                            allow_redirects=False) as resp:
                text = await read_reply(resp, url.split("?")[0])
        except NETWORK_ERRORS as exc:
            raise await self.transport.failure(exc, url.split("?")[0]) from None
        err = classify(resp.status, text)
        if err is not None:
            raise err

    async def send(self, batch: Batch) -> SendResult:
        run: list[bytes] = []
        for rec in batch.records:
            if rec.op == "update":
                run.append(rec.body)
                continue
            await self._flush(run)
            await self._replay(rec)
        await self._flush(run)
        return SendResult(applied=len(batch.records))

    async def _flush(self, run: list[bytes]) -> None:
        if run:
            await self._call("POST", "/api/v0/update", b"".join(run),
                             {"Content-Type": "text/plain"})
            run.clear()

    async def _replay(self, rec: Record) -> None:
        if rec.op == "meta":
            headers = {"Content-Type": "text/plain"}
            if rec.params.get("delta"):
                headers["X-Warp10-Attributes"] = "delta"
            await self._call("POST", "/api/v0/meta", rec.body, headers)
        elif rec.op == "delete":
            p = rec.params
            q: dict[str, str] = {"selector": p["selector"]}
            if p.get("deleteall"):
                q["deleteall"] = "true"
            else:
                q["start"], q["end"] = str(p["start"]), str(p["end"])
            await self._call("GET", "/api/v0/delete?" + urllib.parse.urlencode(q))
        else:
            raise ValueError(f"record seq {rec.seq}: unknown op {rec.op!r}")

    async def close(self) -> None:
        await self._session.close()
