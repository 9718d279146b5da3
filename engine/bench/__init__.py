"""Benchmark engine: specs, Measurement, timer, sweeps (generators of rows), CSV schema, CLI."""
from engine.bench.measurement import NOISE_THRESHOLD, Measurement, Task
from engine.bench.spec import BenchmarkSpec
from engine.bench.sweeps import ParadoxConfig, break_even, paradox_sweep
from engine.bench.timer import measure, repeat_until_settled

__all__ = ["BenchmarkSpec", "Measurement", "NOISE_THRESHOLD", "ParadoxConfig", "Task", "break_even", "measure",
           "paradox_sweep", "repeat_until_settled"]
