"""The example files in deploy/ load with the real loaders (they must not rot)."""

from __future__ import annotations

from pathlib import Path

from fanout.config import load_node_config
from fanout.target_config import load_target_config, target_files

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_examples_load() -> None:
    cfg = load_node_config(DEPLOY / "fanout.yaml")
    assert cfg.id == "paris-1" and cfg.state_dir == DEPLOY / "data" / "state"
    (london,) = target_files(cfg.targets_dir)
    t = load_target_config(london)
    assert t.target == "london" and t.source_dir == DEPLOY / "data" / "targets" / "london"
    assert t.state_dir == cfg.state_dir
