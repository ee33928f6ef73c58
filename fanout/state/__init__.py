"""One typed definition per state file under ``state_dir``: its path, its model, its
writer (``to_json``, the camelCase keys spelled once) and its reader (``from_json``/``read``:
missing or wrong-typed keys read as typed defaults, a missing or corrupt file as None).

==============================  ==========================  =============================
file                            model                       written by
==============================  ==========================  =============================
``node.json``                   ``NodeState``               the node, every second
``distributor.json``            ``DistributorState``        the distributor
``forwarder-<target>.json``     ``ForwarderState``          each forwarder
``forwarder-<target>.cursor``   ``Cursor``                  each forwarder
==============================  ==========================  =============================

The JSON on disk is what operators and older versions read: ticks and marks are decimal
strings (64-bit values), keys are ArangoDB's camelCase.
"""

from fanout.state.common import ErrorInfo
from fanout.state.distributor import (
    DistributorState,
    Retention,
    TargetBacklog,
    distributor_state_path,
)
from fanout.state.forwarder import (
    Cursor,
    ForwarderState,
    Pending,
    Progress,
    cursor_path,
    forwarder_state_files,
    forwarder_state_path,
)
from fanout.state.node import (
    Collision,
    Divergence,
    NodeState,
    ReplicationFigures,
    WriteFigures,
    node_state_path,
)

__all__ = [
    "Collision", "Cursor", "DistributorState", "Divergence", "ErrorInfo", "ForwarderState",
    "NodeState", "Pending", "Progress", "ReplicationFigures", "Retention", "TargetBacklog",
    "WriteFigures", "cursor_path", "distributor_state_path", "forwarder_state_files",
    "forwarder_state_path", "node_state_path",
]
