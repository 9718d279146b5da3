"""benchmarks/bsr_explore_kernels.py: every explored lab-bsr variant == dense, under Triton's
CPU interpreter (TRITON_INTERPRET=1 set before triton is imported, in ONE subprocess, as
tests/unit/test_bsr_kernel.py runs the library kernels). Skips with the reason where
triton cannot be imported."""
from __future__ import annotations

import importlib.util

import pytest

from tests.unit.test_bsr_kernel import ROOT, interpreter_results

# (id, variant, block, block rows, block cols, k, density, dtype, empty block rows, split)
EXPLORE_CASES = [
    ("tma-g2-odd-rows", "tma g2", 16, 4, 5, 64, 0.5, "float16", (1,), None),
    ("tma-g2-bf16-k40", "tma g2", 32, 3, 4, 40, 0.7, "bfloat16", (), None),
    ("tma-g2-split", "tma g2", 16, 6, 8, 64, 0.45, "float16", (2,), 3),
    ("uptr-r2-oddk", "uptr r2", 16, 5, 4, 40, 0.5, "float16", (0,), None),
    ("uptr-r4-bf16", "uptr r4", 16, 6, 5, 64, 0.4, "bfloat16", (3,), None),
    ("uptr-r2-skip", "uptr r2 S", 32, 5, 4, 64, 0.5, "float16", (1,), None),
    ("utma-r2-skip-bf16", "utma r2 S", 16, 4, 6, 64, 0.6, "bfloat16", (), None),
    ("uatma-r2-odd-rows", "uatma r2", 16, 5, 5, 64, 0.5, "float16", (2,), None),
    ("uatma-r2-dense", "uatma r2", 32, 2, 3, 64, 1.0, "float16", (), None),
]

_WORKER = r"""
import json, os, sys
os.environ["TRITON_INTERPRET"] = "1"
sys.path.insert(0, "benchmarks")
import torch
import bsr_explore_kernels as ex
from engine.sparse.kernels import bsr_matmul as lab
for (cid, variant, blk, rb, cb, k, dens, dt, empty, split) in json.loads(sys.argv[1]):
    try:
        dtype = getattr(torch, dt)
        a = lab.BsrMatrix.random(rb * blk, cb * blk, blk, dens, dtype=dtype, seed=blk + rb + k,
                                 empty_rows=tuple(empty))
        errs = []
        for rep in range(2 if split else 1):  # split: twice, the workspace must be left clean
            b = torch.randn(cb * blk, k, generator=torch.Generator().manual_seed(rep)).to(dtype)
            exact = a.to_dense().double() @ b.double()
            y = torch.full((rb * blk, k), float("nan"), dtype=dtype)  # unwritten stays NaN
            ex.explored_matmul(a, b, variant, block_n=32, split_len=split, out=y)
            den = max(float(exact.norm()), 1e-30)
            errs.append(float((y.double() - exact).norm()) / den)
        print(json.dumps({"id": cid, "err": max(errs), "finite": bool(torch.isfinite(y).all())}), flush=True)
    except Exception as exc:
        print(json.dumps({"id": cid, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
"""


@pytest.fixture(scope="module")
def explored() -> dict:
    return interpreter_results(_WORKER, EXPLORE_CASES)


@pytest.mark.parametrize("case", EXPLORE_CASES, ids=[c[0] for c in EXPLORE_CASES])
def test_explored_variant_matches_dense_under_the_interpreter(explored, case):
    row = explored.get(case[0])
    assert row is not None, f"no result for {case[0]}"
    assert "error" not in row, row.get("error")
    assert row["finite"], "some outputs were never written (NaN or inf left in Y)"
    assert row["err"] < (1.5e-2 if case[7] == "bfloat16" else 2e-3)


def test_every_variant_is_tested_and_an_unknown_one_is_refused():
    spec = importlib.util.spec_from_file_location("bsr_explore_kernels", ROOT / "benchmarks" / "bsr_explore_kernels.py")
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)

    assert {c[1] for c in EXPLORE_CASES} == set(ex.VARIANTS)
    with pytest.raises(ValueError, match="variant: expected one of tma g2, "):
        ex.explored_matmul(None, None, "fastest")
