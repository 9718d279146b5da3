"""lab-bsr (engine.sparse.kernels.bsr_matmul): the Triton kernel == the plain-torch reference.

The kernel cases run in ONE subprocess with TRITON_INTERPRET=1 set before triton is
imported (Triton's CPU interpreter), so the rest of the suite never sees that
variable and the result does not depend on what else imported triton first. They
skip, with the reason, when triton cannot be imported here. Everything else runs
in-process in plain torch.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.sparse.kernels import bsr_matmul as lab

ROOT = Path(__file__).resolve().parents[2]

# (id, block, block rows, block cols, k, density, dtype, empty block rows, config label, split)
# config label "": bsr_matmul's own choice (the presets, as the interpreter sees them)
KERNEL_CASES = [
    ("b16-trans-g4-fp16", 16, 4, 5, 64, 0.5, "float16", (1,), "ptr n64 g4 T w4 s3", None),
    ("b16-dense-oddk-bf16", 16, 3, 4, 40, 1.0, "bfloat16", (), "ptr n64 g1 N w4 s3", None),
    ("b32-g2-empty-rows", 32, 4, 4, 64, 0.3, "float16", (0, 3), "ptr n64 g2 N w4 s3", None),
    ("b32-trans-g4-k33-bf16", 32, 3, 3, 33, 0.6, "bfloat16", (), "ptr n64 g4 T w4 s3", None),
    ("b64-tma-fp16", 64, 3, 4, 72, 0.5, "float16", (1,), "tma n64 g1 N w4 s3", None),
    ("b64-tma-dense-bf16", 64, 2, 3, 64, 1.0, "bfloat16", (), "tma n64 g1 N w4 s3", None),
    ("b64-ptr-trans", 64, 2, 3, 96, 0.7, "float16", (), "ptr n64 g1 T w4 s3", None),
    ("b64-all-empty", 64, 3, 3, 64, 0.0, "float16", (), "ptr n64 g1 N w4 s3", None),
    ("b128-fp16", 128, 2, 2, 48, 0.5, "float16", (), "ptr n32 g1 N w4 s3", None),
    ("b128-preset-persistent", 128, 3, 2, 64, 0.5, "float16", (1,), "", None),
    ("b16-split-ptr", 16, 6, 8, 80, 0.45, "float16", (2,), "ptr n64 g2 N w4 s3", 2),
    ("b16-split-tma", 16, 6, 8, 80, 0.45, "bfloat16", (2,), "tma n64 g1 N w4 s3", 3),
    ("b32-preset-from-torch", 32, 3, 4, 64, 0.5, "float16", (), "", None),
    # the union schedule (several block rows per program); split is ignored by it
    ("b64-union-tma-r2-odd-rows", 64, 3, 4, 72, 0.5, "float16", (1,), "utma n64 r2 N w4 s3", None),
    ("b64-union-k40-bf16", 64, 4, 3, 40, 0.6, "bfloat16", (2,), "utma n32 r2 N w4 s3", None),
    ("b32-union-r2-empty-rows-bf16", 32, 5, 4, 64, 0.4, "bfloat16", (0, 3), "utma n64 r2 N w4 s3", None),
    ("b16-union-r4-split-ignored", 16, 6, 8, 40, 0.45, "float16", (2,), "utma n64 r4 N w4 s3", 2),
    ("b16-union-tma-r8-dense", 16, 5, 5, 64, 1.0, "float16", (), "utma n32 r8 N w4 s3", None),
    ("b32-union-preset", 32, 4, 8, 64, 0.4, "float16", (), "", None),
    # the persistent kernel (host-balanced runs of steps; 4 "SMs" under the interpreter)
    ("b64-pers-empty-rows", 64, 5, 4, 72, 0.5, "float16", (1, 3), "pers n64 o1 N w4 s3", None),
    ("b64-pers-o2-dense-bf16", 64, 3, 3, 64, 1.0, "bfloat16", (), "pers n32 o2 N w4 s3", None),
    ("b32-pers-split", 32, 6, 8, 80, 0.45, "float16", (2,), "pers n64 o1 N w4 s3", 2),
    ("b16-pers-split-more-bins-than-items", 16, 2, 8, 40, 0.6, "bfloat16", (), "pers n64 o2 N w4 s3", 3),
    ("b64-pers-half-store", 64, 4, 4, 128, 0.6, "float16", (2,), "pers n64 o1 H w4 s3", None),
    ("b32-pers-half-store-but-split", 32, 6, 8, 80, 0.45, "float16", (2,), "pers n64 o1 H w4 s3", 2),
]

_WORKER = r"""
import json, os, sys
os.environ["TRITON_INTERPRET"] = "1"
import torch
from engine.sparse.kernels import bsr_matmul as lab
cases = json.loads(sys.argv[1])
for (cid, blk, rb, cb, k, dens, dt, empty, label, split) in cases:
    try:
        dtype = getattr(torch, dt)
        a = lab.BsrMatrix.random(rb * blk, cb * blk, blk, dens, dtype=dtype, seed=blk + rb + k,
                                 empty_rows=tuple(empty))
        errs, unwritten = [], 0
        for rep in range(2 if split else 1):  # split: twice, the workspace must be left clean
            b = (torch.randn(cb * blk, k, generator=torch.Generator().manual_seed(rep))).to(dtype)
            ref = lab.bsr_matmul_reference(a, b).double()
            exact = a.to_dense().double() @ b.double()
            y = torch.full((rb * blk, k), float("nan"), dtype=dtype)
            if label:
                lab.bsr_matmul(a, b, config=lab.Config.from_label(label), out=y, split=split)
            else:
                y = lab.bsr_matmul(a.to_torch(), b)
            unwritten += int(torch.isnan(y).sum())
            den = max(float(exact.norm()), 1e-30)
            errs.append(max(float((y.double() - ref).norm()) / den,
                            float((y.double() - exact).norm()) / den))
        print(json.dumps({"id": cid, "err": max(errs), "unwritten": unwritten,
                          "zero": float(exact.norm()) == 0.0}), flush=True)
    except Exception as exc:
        print(json.dumps({"id": cid, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
"""


def _triton_missing() -> str:
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed here (pip install -r requirements-dev.txt)"
    probe = subprocess.run([sys.executable, "-c", "import triton"], capture_output=True,
                           text=True, timeout=120)
    if probe.returncode:
        return "triton cannot be imported here: " + probe.stderr.strip().splitlines()[-1]
    return ""


def interpreter_results(worker: str, cases: list) -> dict:
    """Run ``worker`` (Python source) on ``cases`` in ONE subprocess under Triton's CPU
    interpreter; its JSON lines by "id" (skips when triton is missing)."""
    why = _triton_missing()
    if why:
        pytest.skip(why)
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", worker, json.dumps(cases)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    results = {row["id"]: row for row in (json.loads(line) for line in proc.stdout.splitlines()
                                          if line.startswith("{"))}
    if not results:
        pytest.fail(f"interpreter worker printed nothing; rc {proc.returncode}\n{proc.stderr[-3000:]}")
    return results


@pytest.fixture(scope="module")
def interpreted() -> dict:
    return interpreter_results(_WORKER, KERNEL_CASES)


@pytest.mark.parametrize("case", KERNEL_CASES, ids=[c[0] for c in KERNEL_CASES])
def test_kernel_matches_reference_under_the_interpreter(interpreted, case):
    cid, dtype = case[0], case[6]
    row = interpreted.get(cid)
    assert row is not None, f"no result for {cid}"
    assert "error" not in row, row.get("error")
    assert row["unwritten"] == 0, "some outputs were never written"
    tol = 1.5e-2 if dtype == "bfloat16" else 2e-3  # one rounding of the fp32 sum to 16 bits
    if row["zero"]:
        assert row["err"] == 0.0
    else:
        assert row["err"] < tol


# ----------------------------------------------------------------------------- plain torch
# (id, block, block rows, block cols, k, density, empty rows)
REFERENCE_CASES = [
    ("b16-half", 16, 4, 6, 8, 0.5, ()),
    ("b32-empty-rows", 32, 5, 3, 5, 0.4, (0, 4)),
    ("b64-dense", 64, 2, 2, 3, 1.0, ()),
    ("b128-sparse", 128, 2, 3, 2, 0.34, ()),
    ("b16-empty", 16, 3, 3, 4, 0.0, ()),
]


@pytest.mark.parametrize("cid,blk,rb,cb,k,dens,empty", REFERENCE_CASES,
                         ids=[c[0] for c in REFERENCE_CASES])
def test_reference_equals_dense_product(cid, blk, rb, cb, k, dens, empty):
    a = lab.BsrMatrix.random(rb * blk, cb * blk, blk, dens, dtype=torch.float32, seed=3,
                             empty_rows=empty)
    b = torch.randn(cb * blk, k)
    got = lab.bsr_matmul_reference(a, b)
    want = a.to_dense() @ b
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for i in empty:
        assert a.row_lengths()[i] == 0
        assert torch.count_nonzero(got[i * blk:(i + 1) * blk]) == 0


def test_random_stores_the_exact_block_count_outside_empty_rows():
    a = lab.BsrMatrix.random(8 * 16, 10 * 16, 16, 0.25, empty_rows=(2, 5))
    assert a.nnz_blocks == 20
    assert a.row_lengths()[2] == 0 and a.row_lengths()[5] == 0
    assert abs(a.density - 0.25) < 1e-9
    assert tuple(a.values.shape) == (20, 16, 16)


def test_dense_round_trip_and_torch_bsr_round_trip():
    dense = torch.zeros(64, 96)
    dense[0:32, 32:64] = torch.randn(32, 32)
    dense[32:64, 0:32] = torch.randn(32, 32)
    a = lab.BsrMatrix.from_dense(dense, 32)
    assert a.nnz_blocks == 2 and a.crow.tolist() == [0, 1, 2] and a.col.tolist() == [1, 0]
    assert torch.equal(a.to_dense(), dense)
    t = a.to_torch()
    assert t.layout == torch.sparse_bsr
    assert torch.equal(t.to_dense(), dense)
    back = lab.BsrMatrix.from_torch(dense.to_sparse_bsr((32, 32)))
    assert torch.equal(back.to_dense(), dense)


def test_keep_mask_stores_zero_blocks_too():
    keep = torch.tensor([[True, False], [True, True]])
    a = lab.BsrMatrix.from_dense(torch.zeros(32, 32), 16, keep=keep)
    assert a.nnz_blocks == 3
    assert torch.count_nonzero(a.to_dense()) == 0


def test_launch_order_puts_long_rows_first():
    keep = torch.zeros(4, 8, dtype=torch.bool)
    keep[0, :1] = True
    keep[1, :6] = True
    keep[3, :3] = True
    a = lab.BsrMatrix.from_dense(torch.randn(64, 128), 16, keep=keep)
    assert a.order.tolist() == [1, 3, 0, 2]
    assert a.sched[:, 0].tolist() == [1, 3, 0, 2]
    assert a.sched[:, 3].tolist() == [-1, -1, -1, -1]


def test_split_plan_covers_each_long_row_exactly_once():
    keep = torch.zeros(4, 16, dtype=torch.bool)
    keep[0, :13] = True
    keep[2, :2] = True
    a = lab.BsrMatrix.from_dense(torch.randn(64, 256), 16, keep=keep)
    plan = a.plan(4)
    assert plan.n_split == 1 and plan.split_rows.tolist() == [0]
    segs = [r for r in plan.sched.tolist() if r[0] == 0]
    assert plan.pieces.tolist() == [len(segs)] == [4]
    covered = sorted(i for _, s, e, _ in segs for i in range(s, e))
    assert covered == list(range(0, 13))
    lengths = [e - s for _, s, e, _ in plan.sched.tolist()]
    assert lengths == sorted(lengths, reverse=True)
    assert a.plan(None).n_split == 0


def test_auto_split_only_for_rows_far_above_the_mean():
    even = lab.BsrMatrix.random(16 * 16, 16 * 16, 16, 0.5, seed=1)
    assert lab.auto_split_len(even) is None
    keep = torch.zeros(16, 64, dtype=torch.bool)
    keep[:, 0] = True
    keep[3] = True
    skewed = lab.BsrMatrix.from_dense(torch.randn(256, 1024), 16, keep=keep)
    assert lab.auto_split_len(skewed) == 10  # max(8, 2 * ceil(79 / 16))


@settings(max_examples=15, deadline=None)
@given(blk=st.sampled_from([16, 32]), rb=st.integers(1, 4), cb=st.integers(1, 4),
       dens=st.floats(0.0, 1.0), k=st.integers(1, 9), seed=st.integers(0, 1000))
def test_reference_matches_dense_for_random_patterns(blk, rb, cb, dens, k, seed):
    a = lab.BsrMatrix.random(rb * blk, cb * blk, blk, dens, dtype=torch.float64, seed=seed)
    b = torch.randn(cb * blk, k, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    # the reference accumulates in fp32, whatever the input dtype
    torch.testing.assert_close(lab.bsr_matmul_reference(a, b), a.to_dense() @ b,
                               rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- boundaries
def test_rejects_unsupported_blocks_and_shapes():
    with pytest.raises(ValueError, match="expected square blocks of 16, 32, 64 or 128, got 8"):
        lab.BsrMatrix.from_dense(torch.zeros(16, 16), 8)
    with pytest.raises(ValueError, match="expected a shape divisible by the block 16"):
        lab.BsrMatrix.from_dense(torch.zeros(20, 16), 16)
    a = lab.BsrMatrix.random(32, 32, 16, 0.5)
    with pytest.raises(ValueError, match="expected 32 rows"):
        lab.bsr_matmul_reference(a, torch.zeros(16, 4, dtype=torch.float16))
    with pytest.raises(ValueError, match="expected a BsrMatrix or a torch.sparse_bsr tensor"):
        lab.as_bsr(torch.zeros(4, 4))


def test_cpu_without_interpreter_is_unsupported_with_a_reason(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    a = lab.BsrMatrix.random(32, 32, 16, 0.5)
    b = torch.zeros(32, 8, dtype=torch.float16)
    assert lab.support_reason(a, b).startswith("unsupported: expected CUDA tensors")
    with pytest.raises(ValueError, match="unsupported: expected CUDA tensors"):
        lab.bsr_matmul(a, b)
    a32 = lab.BsrMatrix.random(32, 32, 16, 0.5, dtype=torch.float32)
    assert lab.support_reason(a32, b.float()) == (
        "unsupported: expected fp16 or bf16 values, got torch.float32")


def test_config_labels_round_trip_and_every_block_has_candidates():
    for blk in lab.BLOCK_SIZES:
        configs = lab.candidate_configs(blk, 512)
        assert configs, blk
        for cfg in configs:
            assert lab.Config.from_label(cfg.label()) == cfg
    with pytest.raises(ValueError, match="expected a label like"):
        lab.Config.from_label("fast please")
    from engine.sparse.kernels import bsr_configs as C
    tables = (C.UNION_CANDIDATES, C.DEEP_CANDIDATES, C.POINTER_CANDIDATES, C.TMA_CANDIDATES)
    for table in tables:  # every label written in the tables is one the tuner can run
        assert set(table) == set(lab.BLOCK_SIZES)
        assert all(lab.Config.from_label(label).label() == label for labels in table.values() for label in labels)
    # with k large enough nothing is cut: the tuner tries every label, once, in the tables' order
    assert [c.label() for c in lab.candidate_configs(64, 4096)] == [l for t in tables for l in t[64]]
    assert all(c.kind == "ptr" for c in lab.candidate_configs(64, 4096, tma=False))


def test_old_union_labels_parse_as_the_config_docstring_says(monkeypatch):
    """Config's docstring: an MMA-skipping union label ("S") parses and config_ok refuses
    it; labels of the explored kinds uptr / uatma (old tuning CSVs) raise."""
    skipping = lab.Config.from_label("utma n256 r2 S w4 s3")
    assert skipping.skip and skipping.union and skipping.label() == "utma n256 r2 S w4 s3"
    from engine.sparse.kernels import bsr_configs

    monkeypatch.setattr(bsr_configs, "interpreting", lambda: True)  # a CPU tensor may run utma
    a = lab.BsrMatrix.random(128, 128, 64, 0.5, dtype=torch.float16)
    b = torch.randn(128, 64, dtype=torch.float16)
    assert lab.config_ok(a, b, lab.Config.from_label("utma n256 r2 N w4 s3"))
    assert not lab.config_ok(a, b, skipping)
    for old in ("uptr n256 r2 N w4 s3", "uatma n256 r2 N w4 s3"):
        with pytest.raises(ValueError, match="expected a label like"):
            lab.Config.from_label(old)


def test_presets_follow_density_and_fall_back_without_tma(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    b = torch.zeros(64 * 8, 12, dtype=torch.float16)  # k = 12: no TMA (needs k % 8 == 0)
    sparse = lab.BsrMatrix.random(64 * 8, 64 * 8, 64, 0.1)
    assert lab.preset_config(sparse, b).label() == "ptr n128 g1 N w4 s5"  # the pointer twin
    b16 = torch.zeros(64 * 8, 16, dtype=torch.float16)
    assert lab.preset_config(sparse, b16).label() == "pers n256 o1 N w4 s7"
    very = lab.BsrMatrix.random(64 * 8, 64 * 8, 64, 0.05)
    assert lab.preset_config(very, b16).label() == "pers n128 o2 N w4 s8"
    half = lab.BsrMatrix.random(64 * 8, 64 * 8, 64, 0.5)
    assert lab.preset_config(half, b16).label() == "pers n256 o1 N w4 s7"
    full = lab.BsrMatrix.random(64 * 8, 64 * 8, 64, 0.9)
    assert lab.preset_config(full, b16).label() == "pers n256 o1 H w4 s9"
    assert lab.preset_config(full, b).label() == "ptr n256 g1 N w8 s3"
    # a row far longer than the mean is cut: the one-row TMA kernel, not the persistent one
    keep = torch.zeros(8, 8, dtype=torch.bool)
    keep[:, 0] = True
    keep[3, :] = True
    dense = torch.randn(64 * 8, 64 * 8) * keep.repeat_interleave(64, 0).repeat_interleave(64, 1)
    skewed = lab.BsrMatrix.from_dense(dense.half(), 64)
    assert lab.preset_config(skewed, b16, split_len=2).label() == "tma n128 g1 N w4 s7"
    assert lab.preset_config(skewed, b16, split_len=None).kind == "pers"
    assert lab.preset_config(skewed, b, split_len=2).label() == "ptr n128 g1 N w4 s5"
    # b128: the persistent kernel at every density (H200 sweep), its twin without TMA
    big = lab.BsrMatrix.random(128 * 4, 128 * 4, 128, 0.5)
    b128, b128_odd = torch.zeros(512, 16, dtype=torch.float16), torch.zeros(512, 12, dtype=torch.float16)
    assert lab.preset_config(big, b128).label() == "pers n128 o1 N w8 s5"
    assert lab.preset_config(big, b128_odd).label() == "ptr n64 g1 N w8 s3"


def test_persist_plan_runs_every_step_once_in_balanced_bins():
    a = lab.BsrMatrix.random(64 * 12, 64 * 10, 64, 0.35, seed=3, empty_rows=(4,))
    k, bn, bins = 200, 64, 5
    pp = lab.persist_plan(a, k, bn, bins)
    steps, edges = pp.steps.long(), pp.bins.long()
    n_tiles = -(-k // bn)
    # every (stored block, tile) pair exactly once, with its own block column's B rows
    pairs = sorted((int(j), int(n0)) for j, _, n0, _ in steps.tolist())
    assert pairs == sorted((j, t * bn) for j in range(a.nnz_blocks) for t in range(n_tiles))
    assert torch.equal(steps[:, 1], a.col.long()[steps[:, 0]] * 64)
    # one tag per (row, tile) item, on its last step, naming the row; bins cover all steps
    rows = torch.repeat_interleave(torch.arange(a.block_rows), a.row_lengths().long())
    tagged = steps[steps[:, 3] != 0]
    assert len(tagged) == int((a.row_lengths() > 0).sum()) * n_tiles
    assert torch.equal(tagged[:, 3] - 1, rows[tagged[:, 0]])
    assert edges[0] == 0 and edges[-1] == len(steps) and bool((edges[1:] >= edges[:-1]).all())
    # longest-first greedy: no bin exceeds the lightest by more than one item
    loads = edges[1:] - edges[:-1]
    assert int(loads.max() - loads.min()) <= int(a.row_lengths().max())
    assert pp.empty_rows.tolist() == [4]
    # split rows: the last step of each segment points back at its work item (negative tag)
    split = lab.persist_plan(a, k, bn, bins, split_len=2)
    neg = split.steps.long()[:, 3]
    assert bool((neg < 0).any()) and bool((neg > 0).any())


def test_registered_as_a_backend_with_reasons():
    from engine.sparse import formats

    assert "lab-bsr" in formats.backend_names()
    backend = formats.get_backend("lab-bsr")
    cpu = formats.SimpleSpec(device="cpu", dtype="float16", block=64, shape=(256, 256))
    assert backend.supports(cpu).startswith("unsupported: expected device in (cuda)")
    fp32 = formats.SimpleSpec(device="cuda", dtype="float32", block=64, shape=(256, 256))
    assert "expected dtype in (float16, bfloat16)" in backend.supports(fp32)
    b8 = formats.SimpleSpec(device="cuda", dtype="float16", block=8, shape=(256, 256))
    assert backend.supports(b8) == (
        "unsupported: expected square blocks of 16, 32, 64 or 128 for lab-bsr, got 8")
    ok = formats.SimpleSpec(device="cuda", dtype="bfloat16", block=32, shape=(256, 256))
    assert backend.supports(ok) is None
    dense = torch.zeros(64, 64)
    dense[:32, 32:] = 1.0
    prepared = backend.prepare(dense, formats.SimpleSpec(block=32, shape=(64, 64)))
    assert torch.equal(backend.to_dense(prepared), dense)
    assert backend.nbytes(prepared) == 32 * 32 * 4 + 4 + 3 * 4


# ----------------------------------------------------------------------------- union schedule
# (id, block, block rows, block cols, density, rows per program, reorder, empty rows)
UNION_PLAN_CASES = [
    ("b16-r4-reorder", 16, 9, 12, 0.4, 4, True, (3,)),
    ("b16-r8-natural", 16, 10, 6, 0.7, 8, False, ()),
    ("b64-r2-reorder-all-empty", 64, 3, 3, 0.0, 2, True, ()),
    ("b32-r2-natural-dense", 32, 5, 4, 1.0, 2, False, ()),
]


@pytest.mark.parametrize("cid,blk,rb,cb,dens,rows,reorder,empty", UNION_PLAN_CASES,
                         ids=[c[0] for c in UNION_PLAN_CASES])
def test_union_plan_covers_every_row_and_stored_block_once(cid, blk, rb, cb, dens, rows,
                                                           reorder, empty):
    a = lab.BsrMatrix.random(rb * blk, cb * blk, blk, dens, seed=5, empty_rows=empty)
    plan = lab.union_plan(a, rows, reorder)
    members = plan.members.tolist()
    real = sorted(m for g in members for m in g if m >= 0)
    assert real == list(range(a.block_rows))  # each block row in exactly one group
    seen = []
    crow, col = a.crow.tolist(), a.col.tolist()
    spans = plan.gsched.tolist()
    assert [e - s for _, s, e, _ in spans] == sorted((e - s for _, s, e, _ in spans), reverse=True)
    for g, s, e, _ in spans:
        ents = plan.entries[s:e].tolist()
        assert [t[0] for t in ents] == sorted({t[0] for t in ents})  # union, ascending
        for t in ents:
            assert any(i >= 0 for i in t[1:])  # no column that no member stores
            for j, i in enumerate(t[1:]):
                if i >= 0:
                    r = members[g][j]
                    assert crow[r] <= i < crow[r + 1] and col[i] == t[0]
                    seen.append(i)
    assert sorted(seen) == list(range(a.nnz_blocks))
    assert plan.stored == a.nnz_blocks and plan.slots >= a.nnz_blocks


def test_grouping_pairs_rows_that_share_columns():
    # rows 0/2 and 1/3 have identical patterns: grouped, the union is 2 columns per pair
    keep = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.bool)
    a = lab.BsrMatrix.from_dense(torch.randn(64, 64), 16, keep=keep)
    grouped, natural = lab.union_plan(a, 2, True), lab.union_plan(a, 2, False)
    assert sorted(sorted(g) for g in grouped.members.tolist()) == [[0, 2], [1, 3]]
    assert grouped.slots == 8 and natural.slots == 16


def test_union_labels_and_validity():
    cfg = lab.Config.from_label("utma n128 r2 N w4 s3")
    assert cfg.union and cfg.rows == 2 and not cfg.skip and cfg.label() == "utma n128 r2 N w4 s3"
    assert not lab.Config.from_label("tma n128 g1 N w4 s3").union
    a = lab.BsrMatrix.random(64, 64, 16, 0.5)
    b = torch.zeros(64, 16, dtype=torch.float16)
    # the explored variants live in benchmarks/bsr_explore_kernels.py: an old "S" label
    # still parses (tuning CSVs hold them) but no kernel here runs it; the kinds are gone
    assert lab.Config.from_label("utma n64 r2 S w4 s3").skip
    assert not lab.config_ok(a, b, lab.Config.from_label("utma n64 r2 S w4 s3"))
    assert not lab.config_ok(a, b, lab.Config(kind="tma", group=2))
    for gone in ("uptr n64 r2 N w4 s3", "uatma n64 r2 N w4 s3"):
        with pytest.raises(ValueError, match="expected a label like"):
            lab.Config.from_label(gone)
    assert all(c.kind != "tma" or c.group == 1 for blk in lab.BLOCK_SIZES
               for c in lab.candidate_configs(blk, 512))


def test_union_preset_only_where_measured_faster_and_without_split(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    b = torch.zeros(32 * 16, 64, dtype=torch.float16)
    half = lab.BsrMatrix.random(32 * 16, 32 * 16, 32, 0.5)
    assert lab.preset_config(half, b).label() == "utma n256 r2 N w4 s3"
    sparse = lab.BsrMatrix.random(32 * 16, 32 * 16, 32, 0.1)
    assert not lab.preset_config(sparse, b).union
    b64 = lab.BsrMatrix.random(64 * 8, 64 * 8, 64, 0.5)
    assert not lab.preset_config(b64, torch.zeros(64 * 8, 64, dtype=torch.float16)).union
    assert not lab.preset_config(half, torch.zeros(32 * 16, 12, dtype=torch.float16)).union  # no TMA
    keep = torch.zeros(16, 16, dtype=torch.bool)
    keep[:, :6] = True
    keep[3] = True  # one row far longer than the mean: must be split, so no union
    skewed = lab.BsrMatrix.from_dense(torch.randn(512, 512).half(), 32, keep=keep)
    assert lab.auto_split_len(skewed) is not None
    assert not lab.preset_config(skewed, b).union


def test_fewer_stages_when_the_kernel_does_not_fit_in_shared_memory():
    errors = pytest.importorskip("triton.runtime.errors")
    tried = []

    def launch(stages):
        tried.append(stages)
        if stages > 4:
            raise errors.OutOfResources(300_000, 232_448, "shared memory")

    lab._with_fewer_stages_if_needed(("test-key",), 7, launch)
    assert tried == [7, 6, 5, 4]
    tried.clear()
    lab._with_fewer_stages_if_needed(("test-key",), 7, launch)  # remembered: one try
    assert tried == [4]

    def never_fits(stages):
        tried.append(stages)
        raise errors.OutOfResources(300_000, 232_448, "shared memory")

    tried.clear()
    with pytest.raises(errors.OutOfResources):
        lab._with_fewer_stages_if_needed(("other-key",), 4, never_fits)
    assert tried == [4, 3, 2]
    assert lab.KERNEL_CACHE.get(("stages", ("test-key",))) == 4
    lab.KERNEL_CACHE.pop(("stages", ("test-key",)))


def test_graph_time_names_its_l2_states():
    assert lab.FLUSHES == ("write", "read", "none")
    with pytest.raises(ValueError, match="flush: expected one of"):
        lab.graph_time(lambda: None, flush="cold")  # checked before any CUDA call


# ----------------------------------------------------------------------------- registration, caches
_IMPORT_ONLY = r"""
import json, sys, torch
from engine.sparse.kernels import bsr_matmul, bsr_op
registered = "engine.sparse.formats" in sys.modules and "lab-bsr" in sys.modules["engine.sparse.formats"].BACKENDS
try:
    torch.ops.sparsity_lab.bsr_mm
    op_before = True
except (AttributeError, RuntimeError):
    op_before = False
from engine.sparse import formats  # first use: the registry calls bsr_matmul.register()
first = formats.get_backend("lab-bsr")
again = bsr_matmul.register()
layer = bsr_op.BlockSparseLinear.from_linear(torch.nn.Linear(64, 64), 32, 0.5)
print(json.dumps({"registered_at_import": registered, "op_at_import": op_before,
                  "same_backend": first is again, "names": formats.backend_names().count("lab-bsr"),
                  "op_after": hasattr(torch.ops.sparsity_lab, "bsr_mm"),
                  "op_once": bsr_op.register() is bsr_op.register()}))
"""


def test_importing_the_kernel_modules_registers_nothing_and_first_use_works():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TRITON_INTERPRET", None)
    done = subprocess.run([sys.executable, "-c", _IMPORT_ONLY], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {"registered_at_import": False, "op_at_import": False, "same_backend": True,
                   "names": 1, "op_after": True, "op_once": True}


def test_one_bounded_named_cache_outlives_matrices_and_clears(monkeypatch):
    from engine.sparse.kernels import bsr_cache, bsr_configs, bsr_plans

    cache = bsr_cache.BoundedCache("test cache", 2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recently used
    cache.put("c", 3)
    assert cache.keys() == ["a", "c"] and len(cache) == 2
    assert cache.get_or_make("d", lambda: 4) == 4 and cache.keys() == ["c", "d"]
    with pytest.raises(ValueError, match="maxsize: expected a positive integer, got 0"):
        bsr_cache.BoundedCache("bad", 0)
    assert "test cache" in repr(cache)

    calls = []

    class Props:
        multi_processor_count = 132

    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda dev: calls.append(dev) or Props())
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda dev: calls.append(dev) or (9, 0))
    lab.clear_caches()
    dev = torch.device("cuda", 0)
    assert bsr_plans.sm_count(dev) == 132 and bsr_plans.sm_count(dev) == 132
    assert bsr_configs._has_tma(dev) and bsr_configs._has_tma(dev)
    assert len(calls) == 2  # each fact asked once, then read from the cache
    assert set(lab.KERNEL_CACHE.keys()) == {("sm_count", "cuda:0"), ("tma", "cuda:0")}
    lab.TUNE_LOG.append({"key": "x"})
    lab.clear_caches()
    assert len(lab.KERNEL_CACHE) == 0 and len(lab.TUNE_LOG) == 0
    assert lab.KERNEL_CACHE.maxsize == bsr_cache.KERNEL_CACHE_SIZE
    assert lab.TUNE_LOG.maxlen == bsr_cache.TUNE_LOG_SIZE
    # nothing else at module level: the kernel modules hold no dict or list of their own
    from engine.sparse.kernels import bsr_launch, bsr_matrix, bsr_op, bsr_tune
    for mod in (bsr_configs, bsr_launch, bsr_matrix, bsr_op, bsr_plans, bsr_tune, lab):
        mutable = [n for n, v in vars(mod).items() if n.isidentifier() and not n.startswith("__")
                   and type(v) in (dict, list, set) and n not in ("PRESETS", "SPLIT_PRESETS",
                   "UNION_PRESETS", "DEFAULT_CONFIG", "DEEP_CANDIDATES", "UNION_CANDIDATES",
                       "POINTER_CANDIDATES", "TMA_CANDIDATES", "_PTR_TWIN", "_OP")]
        assert mutable == [], f"{mod.__name__}: module-level caches {mutable}"


def test_tuner_logs_a_measurement_row_per_candidate_and_keeps_the_fastest_median(monkeypatch):
    """The tuner's log is Measurement rows (CUDA-graph replay) with each configuration; a
    candidate that fails is logged with its error and never chosen; a replay difference
    below zero counts as 0 s (the median still ranks)."""
    from engine.bench.measurement import CUDA_GRAPH, NOISE_THRESHOLD
    from engine.sparse.kernels import bsr_tune

    a = lab.BsrMatrix.random(4 * 16, 4 * 16, 16, 0.5, dtype=torch.float32)
    b = torch.ones(64, 32)
    configs = [lab.Config(block_n=32, num_warps=w) for w in (1, 2, 4, 8)]
    samples = {1: [0.30, 0.31, 0.29, 0.30, 0.30], 2: [0.20, 0.5, 0.1, 0.2, 0.9],   # noisy
               4: [0.1, -0.01, 0.1, 0.1, 0.1]}          # fastest median, one sample below 0; 8 fails
    current = {}

    def fake_launch(_a, _b, _out, cfg, _split):
        current["w"] = cfg.num_warps

    def fake_samples(fn, n_inner, reps):
        fn()
        if current["w"] == 8:
            raise RuntimeError("out of resources")
        return samples[current["w"]]

    monkeypatch.setattr(bsr_tune, "launch", fake_launch)
    monkeypatch.setattr(bsr_tune, "graph_samples", fake_samples)
    monkeypatch.setattr(bsr_tune, "config_ok", lambda *_: True)
    lab.clear_caches()
    chosen = bsr_tune.tune(a, b, configs)
    assert chosen.num_warps == 4 and bsr_tune.tuned_config(a, b) == chosen
    log = {r["num_warps"]: r for r in lab.TUNE_LOG}
    assert log[2]["method"] == CUDA_GRAPH and log[2]["runs"] == 5 and log[2]["median_s"] == pytest.approx(2e-4)
    assert log[4]["runs"] == 5 and log[4]["iqr_s"] == 0.0                        # the -0.01 ms counted as 0
    assert log[2]["noisy"] and not log[1]["noisy"] and log[1]["iqr_s"] / log[1]["median_s"] <= NOISE_THRESHOLD
    assert (log[1]["m"], log[1]["n"], log[1]["k"], log[1]["block"], log[1]["dtype"]) == (64, 64, 32, 16, "float32")
    assert "out of resources" in log[8]["error"] and log[8]["median_s"] != log[8]["median_s"]
    assert log[4]["error"] == "" and log[4]["median_s"] == pytest.approx(1e-4) and min(
        log[4]["median_s"], log[1]["median_s"]) == log[4]["median_s"]
    lab.clear_caches()
