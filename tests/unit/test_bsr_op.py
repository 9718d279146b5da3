"""lab-bsr as a torch op and a layer (engine.sparse.kernels.bsr_op), and the cached
per-call path of bsr_matmul: the kernel cases run in ONE subprocess under Triton's CPU
interpreter (TRITON_INTERPRET=1 set before triton is imported), like
tests/unit/test_bsr_kernel.py; the shape-only parts run in-process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from engine.sparse.kernels import bsr_op
from engine.sparse.kernels.bsr_matrix import BsrMatrix
from tests.unit.test_bsr_kernel import _triton_missing

ROOT = Path(__file__).resolve().parents[2]

_WORKER = r"""
import json, os
os.environ["TRITON_INTERPRET"] = "1"
import torch
from torch import nn
from engine.sparse.kernels import bsr_matmul as lab
from engine.sparse.kernels.bsr_op import BlockSparseLinear, matrix_for
out = {}

def rel(y, ref):
    return float((y.double() - ref.double()).norm() / ref.double().norm())

torch.manual_seed(0)
# 1. the cached per-call path: the second call reuses the launch, same answer; another
#    k builds its own; a B of another dtype falls back to the full checks
a = lab.BsrMatrix.random(4 * 64, 3 * 64, 64, 0.5, dtype=torch.float16, seed=4, empty_rows=(1,))
b = torch.randn(3 * 64, 64).half()
y1 = lab.bsr_matmul(a, b)
calls = [k for k in a._plans if k[0] == "call"]
b2 = torch.randn(3 * 64, 64).half()
y2 = lab.bsr_matmul(a, b2)
y3 = lab.bsr_matmul(a, torch.randn(3 * 64, 32).half())
try:
    lab.bsr_matmul(a, b2.float())
    bad = ""
except ValueError as exc:
    bad = str(exc)
out["cached"] = {"calls_after_first": len(calls), "calls_after_k32": len([k for k in a._plans if k[0] == "call"]),
                 "err1": rel(y1, lab.bsr_matmul_reference(a, b)), "err2": rel(y2, lab.bsr_matmul_reference(a, b2)),
                 "shape3": list(y3.shape), "bad_dtype": bad}

# 2. BlockSparseLinear from a dense layer == x @ W_pruned^T + bias
lin = nn.Linear(128, 192).half()
mod = BlockSparseLinear.from_linear(lin, 32, 0.5)
w = mod.dense_weight()
x = torch.randn(5, 128).half()
y = mod(x)
ref = x.float() @ w.float().t() + lin.bias.float()
kept = (w.reshape(6, 32, 4, 32).abs().sum((1, 3)) > 0)
scores = lin.weight.detach().float().abs().reshape(6, 32, 4, 32).mean((1, 3))
out["linear"] = {"err": rel(y, ref), "shape": list(y.shape), "sparsity": mod.sparsity,
                 "kept_blocks": int(kept.sum()),
                 "kept_are_largest": bool(scores[kept].min() >= scores[~kept].max()),
                 "w_matches_linear_where_kept": bool(torch.equal(
                     (w * kept.repeat_interleave(32, 0).repeat_interleave(32, 1)),
                     lin.weight.detach() * kept.repeat_interleave(32, 0).repeat_interleave(32, 1)))}

# 3. two layers in a row (the second takes the first's transposed view), batch dims
lin2 = nn.Linear(192, 64, bias=False).half()
mod2 = BlockSparseLinear.from_linear(lin2, 64, 0.3)
x3 = torch.randn(2, 3, 128).half()
y3 = mod2(torch.relu(mod(x3)))
h = torch.relu(x3.float() @ w.float().t() + lin.bias.float())
ref3 = h @ mod2.dense_weight().float().t()
out["chain"] = {"err": rel(y3, ref3), "shape": list(y3.shape)}

# 4. torch.compile traces the op as one node (fullgraph: no graph break), fake impl used
comp = torch.compile(mod, backend="aot_eager", fullgraph=True)
yc = comp(x)
out["compiled"] = {"err": rel(yc, ref), "same_as_eager": float((yc.float() - y.float()).abs().max())}

# 5. opcheck: schema and fake tensor agree with the real kernel
from torch.library import opcheck
mat = mod.matrix()
opcheck(torch.ops.sparsity_lab.bsr_mm, (mat.crow, mat.col, mat.values, x.t().contiguous(), 128),
        test_utils=("test_schema", "test_faketensor"))
out["opcheck"] = "ok"
print(json.dumps(out), flush=True)
"""


@pytest.fixture(scope="module")
def interpreted() -> dict:
    why = _triton_missing()
    if why:
        pytest.skip(why)
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", _WORKER], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        pytest.fail(f"worker printed nothing; rc {proc.returncode}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def test_later_calls_reuse_the_cached_launch(interpreted):
    row = interpreted["cached"]
    assert row["calls_after_first"] == 1 and row["calls_after_k32"] == 2
    assert row["err1"] < 2e-3 and row["err2"] < 2e-3
    assert row["shape3"] == [256, 32]
    assert "expected B in the dtype of A" in row["bad_dtype"]


def test_block_sparse_linear_equals_the_pruned_dense_layer(interpreted):
    row = interpreted["linear"]
    assert row["err"] < 2e-3 and row["shape"] == [5, 192]
    assert row["kept_blocks"] == 12 and abs(row["sparsity"] - 0.5) < 1e-9
    assert row["kept_are_largest"] and row["w_matches_linear_where_kept"]


def test_layers_chain_through_transposed_views(interpreted):
    assert interpreted["chain"]["err"] < 2e-3
    assert interpreted["chain"]["shape"] == [2, 3, 64]


def test_compiles_as_one_graph_and_passes_opcheck(interpreted):
    assert interpreted["compiled"]["err"] < 2e-3
    assert interpreted["compiled"]["same_as_eager"] == 0.0
    assert interpreted["opcheck"] == "ok"


def test_fake_impl_gives_the_output_shape_without_running():
    from torch._subclasses.fake_tensor import FakeTensorMode

    a = BsrMatrix.random(3 * 32, 5 * 32, 32, 0.4, dtype=torch.float16)
    bsr_op.register()
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        b = mode.from_tensor(torch.zeros(5 * 32, 7, dtype=torch.float16))
        y = torch.ops.sparsity_lab.bsr_mm(a.crow, a.col, a.values, b, 5 * 32)
    assert tuple(y.shape) == (96, 7) and y.dtype == torch.float16


def test_registry_builds_one_matrix_per_storage_and_is_bounded(monkeypatch):
    monkeypatch.setattr(bsr_op.OP_MATRICES, "maxsize", 2)
    bsr_op.clear_registry()
    mats = [BsrMatrix.random(64, 64, 32, 0.5, seed=s) for s in range(3)]
    first = bsr_op.matrix_for(mats[0].crow, mats[0].col, mats[0].values, 64)
    assert bsr_op.matrix_for(mats[0].crow, mats[0].col, mats[0].values, 64) is first
    for m in mats[1:]:
        bsr_op.matrix_for(m.crow, m.col, m.values, 64)
    assert len(bsr_op.OP_MATRICES) == 2  # the least recently used went
    bsr_op.clear_registry()


def test_from_linear_rejects_what_it_cannot_store():
    with pytest.raises(ValueError, match="expected a torch.nn.Linear, got Conv1d"):
        bsr_op.BlockSparseLinear.from_linear(nn.Conv1d(4, 4, 1), 16, 0.5)
    with pytest.raises(ValueError, match="expected in and out features divisible by the block 32"):
        bsr_op.BlockSparseLinear.from_linear(nn.Linear(48, 64), 32, 0.5)


# ----------------------------------------------------------------------------- launch policy
class _FakeKernel:
    """Stands for a compiled Triton kernel: records the launches it is asked for."""

    function = packed_metadata = None

    def __init__(self):
        self.launches = []

    def run(self, *args):
        self.launches.append(args[9:])

    def launch_metadata(self, grid, stream, *args):
        return None


class _FakeGraph:
    def __init__(self):
        self.replays = 0

    def replay(self):
        self.replays += 1


def _fake_launch(monkeypatch, capturing=lambda: False):
    from engine.sparse.kernels import bsr_launch

    monkeypatch.setattr(torch._C, "_cuda_getCurrentRawStream", lambda idx: 0, raising=False)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", capturing)
    captured = []

    def capture(self, b, out):
        captured.append((b.data_ptr(), out.data_ptr()))
        return _FakeGraph()

    monkeypatch.setattr(bsr_launch.Launch, "_capture", capture)
    kern = _FakeKernel()
    launch = bsr_launch.Launch("bsr_mm_kernel", (4, 1, 1), lambda b, out: [b, out, 7], 4, 3,
                               device_index=0, compiled=kern)
    return bsr_launch, launch, kern, captured


def test_graph_is_captured_the_second_time_the_same_buffers_come_back(monkeypatch):
    bsr_launch, launch, kern, captured = _fake_launch(monkeypatch)
    monkeypatch.setattr(bsr_launch, "GRAPH_REPLAY", True)
    b, y = torch.zeros(64, 8), torch.zeros(64, 8)
    launch(b, y)  # first sight: direct launch with exactly the built arguments
    assert len(kern.launches) == 1 and kern.launches[0][0] is b and launch.graph_calls == 0
    launch(b, y)  # second: captured, then replayed
    launch(b, y)
    assert captured == [(b.data_ptr(), y.data_ptr())] and launch.graph_calls == 2
    assert len(kern.launches) == 1
    other = torch.zeros(64, 8)
    launch(other, y)  # another B buffer: direct again
    assert len(kern.launches) == 2 and launch.graph_calls == 2


def test_no_graph_inside_a_callers_capture_or_when_switched_off(monkeypatch):
    bsr_launch, launch, kern, captured = _fake_launch(monkeypatch, capturing=lambda: True)
    monkeypatch.setattr(bsr_launch, "GRAPH_REPLAY", True)
    b, y = torch.zeros(64, 8), torch.zeros(64, 8)
    for _ in range(3):
        launch(b, y)
    assert captured == [] and len(kern.launches) == 3  # launched into the caller's graph
    bsr_launch, launch, kern, captured = _fake_launch(monkeypatch)
    monkeypatch.setattr(bsr_launch, "GRAPH_REPLAY", False)
    for _ in range(3):
        launch(b, y)
    assert captured == [] and len(kern.launches) == 3


def test_graphs_per_launch_are_bounded(monkeypatch):
    bsr_launch, launch, kern, captured = _fake_launch(monkeypatch)
    monkeypatch.setattr(bsr_launch, "GRAPH_REPLAY", True)
    monkeypatch.setattr(bsr_launch, "GRAPHS_PER_LAUNCH", 2)
    bufs = [torch.zeros(64, 8) for _ in range(3)]
    y = torch.zeros(64, 8)
    for _ in range(2):
        for b in bufs:
            launch(b, y)
    assert len(captured) == 2 and len(launch.graphs) == 2
    assert len(kern.launches) == 3 + 1  # three first sights, and the pair that found no room
