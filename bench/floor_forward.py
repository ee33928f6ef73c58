"""The floor a forwarder is measured against: the least a Python process can do per file.

Per datalog file, in name order: open, read, POST the bytes over one aiohttp keep-alive
connection, read the reply, unlink. It learns of new files the way the forwarder does
(inotify on the directory, read by the asyncio loop) and lists the directory on each
wake-up. No cursor, state file, checksums, retries, batching or bounds: what is left is
the cost of asyncio, aiohttp and the system calls, which no forwarder written in Python on
this stack can go below.

    python bench/floor_forward.py SOURCE_DIR URL
"""

from __future__ import annotations

import asyncio
import os
import sys

import aiohttp
from inotify_simple import INotify
from inotify_simple import flags as F


async def run(src: str, url: str) -> None:
    wake = asyncio.Event()
    ino = INotify()
    ino.add_watch(src, F.CREATE | F.MOVED_TO)
    os.set_blocking(ino.fileno(), False)

    def readable() -> None:
        try:
            while os.read(ino.fileno(), 65536):
                pass
        except BlockingIOError:
            pass
        wake.set()

    loop = asyncio.get_running_loop()
    loop.add_reader(ino.fileno(), readable)
    headers = {"Content-Type": "application/x-fanout-records"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
        print("ready", flush=True)
        while True:  # until SIGTERM (its default action ends the process)
            wake.clear()
            for name in sorted(os.listdir(src)):
                path = os.path.join(src, name)
                with open(path, "rb") as f:
                    body = f.read()
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                os.unlink(path)
            await wake.wait()


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], sys.argv[2]))
