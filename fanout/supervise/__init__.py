"""A node's processes as one system: supervisord and systemd (docs/architecture.md, "Supervision").

Modules, one concept each:

- ``paths``: where supervision files live (everything under ``state_dir/supervisor/``).
- ``programs``: which processes a node runs and the exact command of each.
- ``supervisord_conf``: rendering ``supervisord.conf`` and one include file per target.
- ``rpc``: supervisord's XML-RPC API over its unix socket, with typed errors.
- ``manager``: the one interface ``fanout up|down|reload|status`` call (``manager:`` in
  ``fanout.yaml``); ``supervisord`` and ``systemd`` implement it, one module each.
- ``control``: ``fanout up``, ``down`` and ``reload`` under supervisord.
- ``restarts``: the short restart history that makes crash loops visible.
- ``status``: gathering, judging and printing ``fanout status``.
- ``alerts``: the supervisord event listener behind ``fanout alert-listener``.
- ``systemd_units``: ``fanout systemd-units`` (template units, one instance per node id).
"""
