"""Sink ``fanout``: a fanout node's ``/api/v0/replicate``, batches of raw records."""

from __future__ import annotations

import gzip
import json
from typing import Any

from yarl import URL

from fanout.datalog.format import LEGACY_HISTORY
from fanout.target_config import TargetConfig
from forwarder.sinks.base import Batch, SendResult, classify, invalid_response
from forwarder.sinks.http import NETWORK_ERRORS, Transport, make_session, read_reply

CONTENT_TYPE = "application/x-fanout-records"


class FanoutSink:
    def __init__(self, cfg: TargetConfig, token: str):
        self.endpoint = cfg.sink.endpoint
        self.transport = Transport(cfg.sink.endpoint, cfg.sink.tls)
        self.compress = cfg.sink.compress
        self._session = make_session(cfg.connect_timeout, cfg.request_timeout, token,
                                     self.transport.context)
        self._urls: dict[str, URL] = {}

    async def _call(self, method: str, path: str, **kw: Any) -> tuple[str, Any]:
        """One request; its JSON reply, or the SinkError its status or failure means."""
        url = f"{self.endpoint}{path}"
        target = self._urls.get(url)
        if target is None:  # parsed once per path: aiohttp would parse the text every time
            target = self._urls[url] = URL(url)
        try:
            async with self._session.request(method, target, ssl=self.transport.ssl,
                                             allow_redirects=False, **kw) as resp:
                text = await read_reply(resp, url.split("?")[0])
        except NETWORK_ERRORS as exc:
            raise await self.transport.failure(exc, url) from None
        err = classify(resp.status, text)
        if err is not None:
            raise err
        try:
            return url, json.loads(text)
        except ValueError:
            raise invalid_response(f"{url}: unreadable reply {text[:200]!r}",
                                   resp.status) from None

    async def describe(self) -> str | None:
        url, data = await self._call("GET", "/api/v0/replication/logger-state")
        try:
            return str(data["server"]["serverId"])
        except (KeyError, TypeError):
            raise invalid_response(f"{url}: not a fanout logger-state reply") from None

    async def marks(self) -> dict[str, int] | None:
        url, data = await self._call("GET", "/api/v0/replication/marks")
        try:
            return {str(k): int(v) for k, v in data["marks"].items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise invalid_response(f"{url}: not a fanout marks reply") from None

    async def history_marks(self) -> dict[str, dict[str, int]]:
        """Per origin and history, the target's marks; a target from before histories
        (no ``histories`` in its reply) has every mark in the legacy history."""
        url, data = await self._call("GET", "/api/v0/replication/marks")
        try:
            if "histories" in data:
                return {str(o): {str(h): int(v) for h, v in hs.items()}
                        for o, hs in data["histories"].items()}
            return {str(k): {LEGACY_HISTORY: int(v)} for k, v in data["marks"].items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise invalid_response(f"{url}: not a fanout marks reply") from None

    async def send(self, batch: Batch) -> SendResult:
        body, ctype = batch.payload, CONTENT_TYPE
        if self.compress:
            body, ctype = gzip.compress(body, compresslevel=1), "application/gzip"
        url, r = await self._call("POST", "/api/v0/replicate", data=body,
                                  headers={"Content-Type": ctype})
        try:
            return SendResult(int(r["applied"]), int(r["duplicate"]), int(r["gap"]),
                              int(r["loop"]))
        except (KeyError, TypeError, ValueError):
            raise invalid_response(f"{url}: not a replication reply: {r!r:.200}") from None

    async def close(self) -> None:
        await self._session.close()
