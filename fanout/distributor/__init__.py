"""The distributor: hard-links every published datalog file into one source directory per
target, then removes the original (docs/architecture.md, "The path of one write").

Modules: ``targets`` (target files, source directory checks), ``mounts`` (naming mounts in
refusals), ``watcher`` (inotify wake-ups), ``linker`` (link, fsync, unlink), ``retention``
(per-target limits), ``audit`` (backlog figures), ``state`` (counters and the state file),
``service`` (the process and its main loop).
"""

from fanout.distributor.service import Distributor, run_distributor

__all__ = ["Distributor", "run_distributor"]
