"""A receiver that reads each POST body and throws it away: the ceiling for forwarding.

It answers the fanout replication reply shape (all counts 0) and the logger-state and
marks calls a forwarder makes at start, so a real forwarder can be pointed at it.
"""

from __future__ import annotations

import sys

from aiohttp import web


async def replicate(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"applied": 0, "duplicate": 0, "gap": 0, "loop": 0})


async def logger_state(request: web.Request) -> web.Response:
    return web.json_response({"server": {"serverId": "discard"}, "state": {}})


async def marks(request: web.Request) -> web.Response:
    return web.json_response({"serverId": "discard", "lastLogTick": "0", "marks": {}})


def main() -> None:
    app = web.Application(client_max_size=1 << 30)
    app.router.add_post("/api/v0/replicate", replicate)
    app.router.add_get("/api/v0/replication/logger-state", logger_state)
    app.router.add_get("/api/v0/replication/marks", marks)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None,
                print=None)


if __name__ == "__main__":
    main()
