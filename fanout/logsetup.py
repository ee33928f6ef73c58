"""Logging set-up shared by every process entry point (``fanout ...`` and
``fanout-forwarder``): one format on stderr, where supervisord and journald collect it."""

from __future__ import annotations

import logging
import sys


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
