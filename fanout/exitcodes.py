"""Every process exit code, once: the ``fanout`` command, the node, the distributor and the
forwarder all exit with these, and the supervisord and systemd configurations written by
``fanout supervise`` list them (a code that means "do not restart" must be the same number
in the process that exits with it and in the unit that reads it).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
# The forwarder stopped itself by policy (gave up after max_connect_retries, the target
# rejected data with on_reject: stop, a corrupt file); the reason is in its state file.
EXIT_POLICY_STOP = 3
# EX_TEMPFAIL: another instance holds this role's lock (fanout.fileio).
EXIT_LOCKED = 75
# EX_CONFIG: systemd units list it in RestartPreventExitStatus and supervisord configs in
# exitcodes, so a broken configuration ends as FATAL instead of a restart loop.
EXIT_CONFIG = 78
# 128 + SIGINT: interrupted from the terminal.
EXIT_INTERRUPTED = 130
