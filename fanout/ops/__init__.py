"""Library operations on a node's directory, which the ``fanout`` command only parses
arguments for: ``init`` (a new node), ``targets`` (add, list, remove), ``pause`` (pause,
resume), ``bootstrap`` (the initial sync of a target from a snapshot). Tests and
benchmarks call these directly; they raise ``FanoutError``s and never print.
"""
