"""Runs xaal.warp10's real logger code against a node (a subprocess of test_clients.py):
XAAL_CONF_DIR must name a directory holding warp10.ini before xaal is imported.

    python xaal_driver.py push      # parse_msg for a few xAAL notifications, then push()
    python -m xaal.warp10.delete SELECTOR   # (run directly by the test)

The xAAL engine is replaced by the few methods the plugin calls at setup (subscribe,
add_device, add_timer): no xAAL bus is needed to produce and send its update bodies.
"""

from __future__ import annotations

import sys
import uuid

from xaal.lib.messages import Message, MessageType
from xaal.warp10 import dev


class HostEngine:
    def subscribe(self, func: object) -> None:
        pass

    def disable_msg_filter(self) -> None:
        pass

    def add_device(self, device: object) -> None:
        pass

    def add_timer(self, func: object, period: int) -> None:
        pass


def notification(action: str, body: dict[str, object]) -> Message:
    msg = Message()
    msg.msg_type = MessageType.NOTIFY
    msg.action = action
    msg.dev_type = "thermometer.basic"
    msg.source = uuid.UUID("12345678-1234-1234-1234-123456789abc")
    msg.body = body
    return msg


def main() -> None:
    if sys.argv[1] != "push":
        raise SystemExit(f"unknown step {sys.argv[1]!r}")
    logger = dev.WARP10Logger(HostEngine())
    logger.parse_msg(notification("attributes_change",
                                  {"temperature": 21.5, "humidity": 40, "tiny": 1e-05,
                                   "on": True, "label": "skipped (a string)"}))
    logger.parse_msg(notification("click", {}))
    body = dev.DATA_BUF
    logger.push()
    if dev.DATA_BUF:
        raise SystemExit("xaal.warp10 kept its buffer: the node refused the push")
    sys.stdout.write(body)


if __name__ == "__main__":
    main()
