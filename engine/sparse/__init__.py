"""Sparse formats and backends (``formats``), pruning to a pattern (``pruning``), 2:4 (``two_four``), own kernels (``kernels``)."""
