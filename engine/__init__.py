"""Sparsity Lab's engine: a pure library (numpy / scipy / torch, never dash).

Every page of the dashboard turns widget values into a call of this package and
draws what comes back; the same calls run in a notebook, a CLI or a test.
"""
