"""Benchmark engine: specs, timer, sweeps (generators of rows), CSV schema, CLI."""
from engine.bench.spec import BenchmarkSpec
from engine.bench.sweeps import ParadoxConfig, break_even, paradox_sweep
from engine.bench.timer import Timing, measure

__all__ = ["BenchmarkSpec", "ParadoxConfig", "Timing", "break_even", "measure", "paradox_sweep"]
