"""Subcommands for running fanout as a system (supervisord, systemd, status, alerts)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this module's subcommands to the ``fanout`` parser."""
