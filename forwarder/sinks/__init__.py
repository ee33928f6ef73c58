"""Sinks: one module per target type behind ``forwarder.sinks.base.Sink``."""

from __future__ import annotations

from collections.abc import Callable

from fanout.target_config import TargetConfig
from forwarder.sinks.base import (
    Batch,
    SendResult,
    Sink,
    SinkError,
    SinkRejected,
    SinkUnavailable,
)
from forwarder.sinks.fanout import FanoutSink
from forwarder.sinks.warp10 import Warp10Sink

SINKS: dict[str, Callable[[TargetConfig, str], Sink]] = {
    "fanout": FanoutSink,
    "warp10": Warp10Sink,
}


def make_sink(cfg: TargetConfig, token: str) -> Sink:
    return SINKS[cfg.sink.type](cfg, token)


__all__ = ["SINKS", "Batch", "SendResult", "Sink", "SinkError", "SinkRejected",
           "SinkUnavailable", "make_sink"]
