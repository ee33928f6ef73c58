"""The forwarder: one process per target, shipping its source directory in order."""
