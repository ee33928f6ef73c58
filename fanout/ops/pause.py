"""``fanout pause`` / ``fanout resume``: a target's pause file, and a nudge to its running
forwarder so it looks at the file now instead of at its next poll."""

from __future__ import annotations

import contextlib
import os
import signal
import time

from fanout.fileio import write_atomic
from fanout.state import ForwarderState
from fanout.target_config import TargetConfig


def _wake_forwarder(t: TargetConfig) -> None:
    """Nudge a running forwarder to look at its pause file now (SIGUSR1)."""
    st = ForwarderState.read(t.state_file)
    if st is not None and st.running and st.pid > 0:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(st.pid, signal.SIGUSR1)


def pause(t: TargetConfig) -> None:
    t.state_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(t.pause_file, f"paused at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    _wake_forwarder(t)


def resume(t: TargetConfig) -> None:
    t.pause_file.unlink(missing_ok=True)
    _wake_forwarder(t)
