"""Metric names in PromQL expressions and Grafana queries, and the names a node exports:
what the rule and dashboard tests compare, so neither can name a metric nobody serves."""

from __future__ import annotations

import re
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from fanout.datalog.format import file_name
from fanout.node.metrics import StateCollector
from fanout.state import (
    DistributorState,
    ErrorInfo,
    ForwarderState,
    NodeState,
    Pending,
    TargetBacklog,
    distributor_state_path,
    forwarder_state_path,
    node_state_path,
)

# series Prometheus makes itself
PROMETHEUS_BUILTINS = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})

_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "by", "without", "on",
                       "ignoring", "group_left", "group_right", "inf", "nan", "atan2"})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:$.])([A-Za-z_:][\w:]*)")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", re.S)


def metric_names(expr: str) -> set[str]:
    """Every metric name an expression selects: identifiers that are not functions
    (followed by ``(``), keywords, label names (inside ``{}`` or a grouping) or Grafana
    variables (``$x``). Grafana's ``label_values(selector, label)`` gives its selector's."""
    m = _LABEL_VALUES.match(expr)
    if m:
        expr = m.group(1)
    s = _STRING.sub('""', expr)
    s = _BRACES.sub("", s)
    s = _RANGE.sub("", s)
    s = _GROUPING.sub("", s)
    names = set()
    for ident in _IDENT.finditer(s):
        rest = s[ident.end():].lstrip()
        if rest.startswith("(") or ident.group(1).lower() in _KEYWORDS:
            continue
        names.add(ident.group(1))
    return names


def exported_metric_names(tmp: Path) -> set[str]:
    """Every sample name the node's collector serves, from state files with every section
    filled in (a node, a distributor with a target, a forwarder with a backlog and an
    error) and a datalog directory: all families have samples."""
    state, datalog, src = tmp / "state", tmp / "datalog", tmp / "targets" / "t"
    for d in (state, datalog, src):
        d.mkdir(parents=True)
    now = time.time()
    (src / file_name(1, "n")).write_bytes(b"x")
    NodeState(running=True, last_log_tick=3, started=now).write(node_state_path(state))
    DistributorState(running=True, start_time="2026-01-01T00:00:00Z",
                     targets={"t": TargetBacklog(source_dir=str(src))}).write(
        distributor_state_path(state))
    ForwarderState("t", running=True, started=now, pending=Pending(1, 1, 1.0),
                   last_error=ErrorInfo("refused", 1)).write(forwarder_state_path(state, "t"))
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StateCollector(state, None, datalog))
    return {s.name for fam in reg.collect() for s in fam.samples}
