"""Reading secret files: the node's tokens file and a target's token file.

The forwarder (its sink token) and the node (``secrets/tokens.yaml``) read secrets through
here, so the rule is one: a file group or others may read or write is refused before it
is read, with the ``chmod`` that fixes it. A secret's value never appears in an error.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fanout.errors import ConfigError


def check_private(path: Path, what: str = "file") -> None:
    """Refuse a secrets file that group or others may read or write."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ConfigError(path, None, f"{what} not found") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            path,
            None,
            f"{what} holds secrets but is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o})",
            hint=f"chmod 600 {path}",
        )


def read_token_file(path: Path) -> str:
    """A token file's secret (one line, surrounding blanks stripped); the file must be
    private and not empty."""
    check_private(path, "token file")
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read: {exc.strerror}") from None
    if not value:
        raise ConfigError(path, None, "token file is empty")
    return value
