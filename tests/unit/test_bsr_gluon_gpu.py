"""The warp-specialised Gluon kernel of lab-bsr (kind "ws") == the plain-torch reference.

Gluon kernels run only on a Hopper-class GPU (no CPU interpreter), so these tests
skip on the CPU machine with that reason; they run on the GPU machine (the device
tool), whose run is the evidence (benchmarks/results/bsr_explore/)."""
from __future__ import annotations

import pytest
import torch

from engine.kernels import _bsr_gluon
from engine.kernels import bsr_matmul as lab


def _why_not() -> str:
    if not torch.cuda.is_available():
        return "needs a CUDA GPU (Gluon kernels do not run under the CPU interpreter)"
    if torch.cuda.get_device_capability()[0] < 9:
        return "needs sm_90 or newer (TMA and warpgroup MMA)"
    if not _bsr_gluon.AVAILABLE:
        return f"triton's Gluon is not importable: {_bsr_gluon.IMPORT_ERROR}"
    return ""


pytestmark = pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "runs")

# (id, block, block rows, block cols, k, density, dtype, empty rows, config, sm bins)
CASES = [
    ("b64-n256-empty-rows", 64, 9, 7, 512, 0.4, torch.float16, (2, 5), "ws n256 o1 N w4 s4"),
    ("b64-two-warpgroups-bf16", 64, 6, 6, 512, 0.6, torch.bfloat16, (), "ws n256 o1 N w8 s4"),
    ("b64-dense-k-not-tile", 64, 4, 5, 200, 1.0, torch.float16, (), "ws n128 o1 N w4 s6"),
    ("b64-o2-narrow", 64, 12, 9, 96, 0.3, torch.float16, (0,), "ws n64 o2 N w4 s8"),
    ("b128-n128", 128, 3, 4, 256, 0.5, torch.float16, (1,), "ws n128 o1 N w8 s3"),
    ("b64-one-stored-block", 64, 5, 5, 64, 0.04, torch.float16, (), "ws n64 o1 N w4 s2"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_ws_kernel_matches_reference(case):
    _, blk, rb, cb, k, dens, dtype, empty, label = case
    a = lab.BsrMatrix.random(rb * blk, cb * blk, blk, dens, dtype=dtype, device="cuda",
                             seed=rb * 31 + cb, empty_rows=empty)
    b = torch.randn(cb * blk, k, device="cuda").to(dtype)
    cfg = lab.Config.from_label(label)
    assert lab._config_ok(a, b, cfg)
    out = torch.full((rb * blk, k), float("nan"), dtype=dtype, device="cuda")
    got = lab.bsr_matmul(a, b, config=cfg, out=out).double()
    ref = lab.bsr_matmul_reference(a, b).double()
    assert not torch.isnan(got).any(), "some outputs were never written"
    tol = 1.5e-2 if dtype == torch.bfloat16 else 2e-3
    assert float((got - ref).norm() / ref.norm().clamp_min(1e-30)) < tol
    again = lab.bsr_matmul(a, b, config=cfg).double()  # the plan is cached: same answer
    assert torch.equal(again, got)


def test_ws_matches_the_persistent_kernel_at_benchmark_size():
    a = lab.BsrMatrix.random(4096, 4096, 64, 0.1, device="cuda", seed=964)
    b = torch.randn(4096, 512, device="cuda").half()
    ws = lab.bsr_matmul(a, b, config=lab.Config.from_label("ws n256 o1 N w4 s4"))
    pers = lab.bsr_matmul(a, b, config=lab.Config.from_label("pers n256 o1 N w4 s7"))
    ref = lab.bsr_matmul_reference(a, b).double()
    for y in (ws, pers):
        assert float((y.double() - ref).norm() / ref.norm()) < 2e-3
