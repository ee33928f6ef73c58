"""The node: Warp 10 HTTP API over a store and a group-commit datalog."""
