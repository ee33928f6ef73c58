"""fanout: fan-out replication of a time-series store's write log."""

__version__ = "0.1.0"
