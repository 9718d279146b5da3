"""components.figures_bench: /runs' comparison figure draws noisy points hollow and grey."""
import pandas as pd
import pytest

from components.figures_bench import compare_figure
from components.figures_common import NOISY_COLOR
from engine.bench.measurement import NOISY_LABEL


def _run(noisy_at: float | None, dense_noisy_at: float | None = None) -> pd.DataFrame:
    rows = []
    for s in (0.5, 0.9):
        for backend, t in (("torch-dense", 1.0), ("torch-csr", 2.0 * (1 - s))):
            noisy = (backend == "torch-csr" and s == noisy_at) or (backend == "torch-dense" and s == dense_noisy_at)
            rows.append({"status": "ok", "op": "spmv", "rows": 512, "cols": 512, "k": 1, "dtype": "float32",
                         "pattern": "uniform", "block": 16, "device_name": "CPU: x", "backend": backend,
                         "sparsity": s, "median_s": t, "speedup": 1.0 / t, "noisy": str(noisy)})
    return pd.DataFrame(rows)


# (x, y, csr noisy at, dense noisy at, csr points drawn noisy)
CASES = [("sparsity", "speedup", 0.9, None, [False, True]),
         ("sparsity", "speedup", None, 0.5, [True, False]),     # a ratio over a noisy dense time
         ("sparsity", "median_s", None, 0.5, [False, False]),   # a time keeps its own flag
         ("rows", "median_s", 0.5, None, [True])]               # 0.5 and 0.9 share rows = 512


@pytest.mark.parametrize("x,y,noisy_at,dense_at,want", CASES)
def test_compare_figure_draws_noisy_points_hollow(x, y, noisy_at, dense_at, want):
    fig = compare_figure([("run A", _run(noisy_at, dense_at)), ("run B", _run(None))], x, y)
    csr = next(t for t in fig.data if t.legendgroup == "run A" and t.name == "torch-csr")
    assert [c == NOISY_COLOR for c in csr.marker.color] == want
    assert (NOISY_LABEL in {t.name for t in fig.data}) == any(
        any(c == NOISY_COLOR for c in t.marker.color) for t in fig.data
        if t.name != NOISY_LABEL and not isinstance(t.marker.color, str))
    steady = next(t for t in fig.data if t.legendgroup == "run B" and t.name == "torch-csr")
    assert NOISY_COLOR not in steady.marker.color
