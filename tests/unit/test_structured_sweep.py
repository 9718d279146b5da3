"""engine.bench.pattern_sweep: block and 2:4 rows on the CPU, break-even and efficiency tables."""
import math

import pandas as pd
import pytest

from engine.bench.pattern_sweep import (NM_BACKEND, StructuredSweepConfig, break_even_by_block,
                                     default_block_backends, efficiency_table, structured_sweep)

BAD_CONFIGS = [
    ({"size": 100, "blocks": (16,)}, "block: expected a block size dividing the size 100, got 16"),
    ({"sparsities": ()}, "sparsities: expected at least one sparsity"),
    ({"dtype": "int8"}, "dtype: expected one of"),
    ({"sparsities": (1.0,)}, "sparsity: expected a number"),
]


@pytest.mark.parametrize("kwargs,message", BAD_CONFIGS)
def test_config_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StructuredSweepConfig(**kwargs)


def test_default_backends_exclude_24_and_start_dense():
    names = default_block_backends()
    assert names[0] == "torch-dense" and NM_BACKEND not in names and "torch-bsr" in names


def test_tiny_cpu_sweep_rows():
    config = StructuredSweepConfig(size=64, k=8, sparsities=(0.5, 0.9), blocks=(8, 16),
                                   nm_sizes=(32,), repeats=2,
                                   backends=("torch-dense", "torch-csr", "torch-bsr"))
    rows = list(structured_sweep(config))
    assert len(rows) == config.total == 2 * 2 * 3 + 2
    frame = pd.DataFrame(rows)
    assert set(frame["sweep"]) == {"structured"}
    block = frame[frame["part"] == "block"]
    assert set(block["block"]) == {8, 16}
    ok = block[block["status"] == "ok"]
    assert len(ok) == len(block)  # float32 on the CPU: all three run
    assert (ok[ok["backend"] == "torch-dense"]["speedup"] == 1.0).all()
    assert all(math.isfinite(v) and v > 0 for v in ok["median_s"])
    nm = frame[frame["part"] == "2:4"]
    assert list(nm["backend"]) == ["torch-dense", NM_BACKEND]
    assert nm.iloc[1]["status"] == "unsupported"
    assert nm.iloc[1]["message"] == "unavailable: needs an NVIDIA GPU (sm80+)"
    assert pd.isna(nm.iloc[1]["median_s"])
    assert nm.iloc[0]["density"] == pytest.approx(0.5)

    be = break_even_by_block(frame)
    assert set(be["block"]) == {8, 16} and set(be["backend"]) == {"torch-csr", "torch-bsr"}
    eff = efficiency_table(frame)
    assert "torch-dense" not in set(eff["backend"])
    assert (eff["efficiency"] - eff["speedup"] / eff["theoretical"]).abs().max() < 1e-9


def test_half_precision_on_cpu_is_unsupported_not_a_number():
    config = StructuredSweepConfig(size=32, k=4, sparsities=(0.5,), blocks=(8,), nm_sizes=(),
                                   dtype="float16", repeats=1,
                                   backends=("torch-dense", "torch-bsr"))
    rows = list(structured_sweep(config))
    bsr = [r for r in rows if r["backend"] == "torch-bsr"][0]
    assert bsr["status"] == "unsupported" and bsr["message"].startswith("unsupported: expected dtype")
    assert bsr["median_s"] is None


def test_break_even_interpolates_a_crossing():
    rows = [{"part": "block", "block": 32, "backend": "x", "op": "spmm", "dtype": "float16",
             "device_name": "gpu", "rows": 8, "k": 8, "status": "ok", "sparsity": s, "speedup": v}
            for s, v in ((0.5, 0.5), (0.9, 2.0))]
    be = break_even_by_block(pd.DataFrame(rows))
    assert len(be) == 1 and 0.5 < be.iloc[0]["break_even"] < 0.9


def test_sweep_csv_imports_into_the_run_store(tmp_path):
    from engine.bench.schema import OK_REQUIRED, SCHEMAS
    from engine.runtime.store import RunStore, import_csv, to_csv_text
    from engine.bench.pattern_sweep import SWEEP

    config = StructuredSweepConfig(size=32, k=4, sparsities=(0.5,), blocks=(8,), nm_sizes=(32,),
                                   repeats=1, backends=("torch-dense", "torch-csr"))
    frame = pd.DataFrame(list(structured_sweep(config)))
    assert SWEEP in SCHEMAS and SCHEMAS[SWEEP]["part"] == ("str", True)
    store = RunStore(tmp_path)
    run_id = import_csv(store, to_csv_text(frame), SWEEP, SCHEMAS[SWEEP], ok_required=OK_REQUIRED)
    back = store.frame(run_id)
    assert len(back) == len(frame) and list(back["part"]) == list(frame["part"])
