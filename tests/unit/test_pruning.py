"""engine.sparse.pruning: each pattern's constraint held exactly; fast == reference; accuracy rows."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.sparse.pruning import (BLOCK_SIZES, block_violations, density_grid, mask_sparsity,
                            nm_violations, prune_mask, prune_mask_reference)

# (shape, sparsity, block): block patterns, including edge tiles that do not divide
BLOCK_CASES = [((64, 64), 0.5, 4), ((64, 64), 0.75, 16), ((64, 64), 0.9, 16), ((128, 96), 0.9, 32),
               ((48, 80), 0.6, 16), ((30, 50), 0.5, 8), ((256, 256), 0.95, 128), ((16, 16), 0.0, 4),
               ((16, 16), 1.0, 4)]
# (shape, n, m)
NM_CASES = [((64, 64), 2, 4), ((32, 128), 1, 4), ((16, 64), 4, 8), ((7, 12), 2, 4), ((1, 8), 2, 4)]
UNSTRUCTURED_CASES = [((64, 64), 0.5), ((33, 17), 0.9), ((100,), 0.25), ((8, 3, 3, 3), 0.75),
                      ((10, 10), 0.0), ((10, 10), 1.0)]
BAD_ARGS = [
    (("block", 0.5), {}, "block: expected an integer"),
    (("cubes", 0.5), {}, "pattern: expected one of"),
    (("unstructured", 1.5), {}, r"sparsity: expected a number in \[0.0, 1.0\]"),
    (("2:4", 0.75), {}, "sparsity: expected 0.5 for 2:4"),
    (("nm", None), {"n": 5, "m": 4}, r"n: expected an integer in \[1, 4\]"),
]


def _w(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


@pytest.mark.parametrize("shape,sparsity,block", BLOCK_CASES)
def test_block_zeros_come_in_whole_blocks_at_the_asked_sparsity(shape, sparsity, block):
    mask = prune_mask(_w(shape), "block", sparsity, block=block)
    assert mask.shape == shape and mask.dtype == bool
    assert block_violations(mask, block) == 0
    assert abs(mask_sparsity(mask) - sparsity) <= block * block / mask.size + 1e-12


@pytest.mark.parametrize("shape,n,m", NM_CASES)
def test_every_group_of_m_has_exactly_n(shape, n, m):
    mask = prune_mask(_w(shape), "nm", None, n=n, m=m)
    assert nm_violations(mask, n, m) == 0
    assert mask_sparsity(mask) == pytest.approx(1 - n / m)


@pytest.mark.parametrize("shape,sparsity", UNSTRUCTURED_CASES)
def test_unstructured_keeps_the_largest_exactly(shape, sparsity):
    w = _w(shape)
    mask = prune_mask(w, "unstructured", sparsity)
    kept = int(round((1 - sparsity) * w.size))
    assert mask.sum() == kept
    if 0 < kept < w.size:
        assert np.abs(w[mask]).min() >= np.abs(w[~mask]).max()


def test_nm_keeps_the_largest_of_each_group():
    w = np.array([[0.1, -3.0, 2.0, 0.5, 9.0, 8.0, -7.0, 1.0]])
    assert prune_mask(w, "2:4", None).tolist() == [[False, True, True, False, True, True, False, False]]
    assert prune_mask(w, "1:4", None).tolist() == [[False, True, False, False, True, False, False, False]]


@pytest.mark.parametrize("args,kwargs", [(("unstructured", 0.7), {}), (("block", 0.6), {"block": 8}),
                                         (("block", 0.5), {"block": 5}), (("2:4", None), {}),
                                         (("nm", None), {"n": 4, "m": 8})])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "many ties"])
def test_fast_equals_reference(args, kwargs, ties):
    w = _w((24, 40), seed=3)
    w = np.round(w) if ties else w  # ties go to the lower index on both paths
    assert np.array_equal(prune_mask(w, *args, **kwargs), prune_mask_reference(w, *args, **kwargs))


def test_torch_in_torch_out_and_conv_weights_pruned_as_matrices():
    w = torch.randn(8, 4, 3, 3)  # (out, in, kh, kw) -> (8, 36)
    mask = prune_mask(w, "2:4", None)
    assert isinstance(mask, torch.Tensor) and mask.dtype == torch.bool and mask.shape == w.shape
    assert nm_violations(mask.reshape(8, 36), 2, 4) == 0


@pytest.mark.parametrize("args,kwargs,message", BAD_ARGS)
def test_bad_arguments_say_expected_got(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prune_mask(_w((8, 8)), *args, **kwargs)


def test_nm_needs_a_divisible_last_dimension():
    with pytest.raises(ValueError, match="divisible by m=4 for 2:4"):
        prune_mask(_w((8, 10)), "2:4", None)


def test_non_finite_weights_are_refused():
    w = _w((8, 8))
    w[0, 0] = np.nan
    with pytest.raises(ValueError, match="expected finite values"):
        prune_mask(w, "unstructured", 0.5)


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), sparsity=st.floats(0, 1),
       block=st.sampled_from(BLOCK_SIZES[:5]), seed=st.integers(0, 1000))
def test_block_constraint_holds_for_any_shape(rows, cols, sparsity, block, seed):
    mask = prune_mask(_w((rows, cols), seed), "block", sparsity, block=block)
    assert block_violations(mask, block) == 0
    assert abs(mask_sparsity(mask) - sparsity) <= block * block / (rows * cols) + 1e-9


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 20), groups=st.integers(1, 10),
       nm=st.sampled_from([(2, 4), (1, 4), (4, 8)]), seed=st.integers(0, 1000))
def test_nm_constraint_holds_for_any_shape(rows, groups, nm, seed):
    n, m = nm
    mask = prune_mask(_w((rows, groups * m), seed), "nm", None, n=n, m=m)
    assert nm_violations(mask, n, m) == 0


def test_density_grid_aggregates_large_masks():
    mask = prune_mask(_w((512, 256)), "block", 0.75, block=32)
    grid, f = density_grid(mask, max_cells=128)
    assert f == 4 and grid.shape == (128, 64)
    assert grid.mean() == pytest.approx(1 - mask_sparsity(mask))
    small, f1 = density_grid(mask[:64, :64], max_cells=128)
    assert f1 == 1 and set(np.unique(small)) <= {0.0, 1.0}


def test_violation_counters_find_broken_patterns():
    bad = np.ones((4, 8), dtype=bool)
    assert nm_violations(bad, 2, 4) == 8
    half = np.zeros((8, 8), dtype=bool)
    half[:2, :2] = True
    assert block_violations(half, 4) == 1


def test_accuracy_rows_tiny_run():
    from engine.sparse.pruning import accuracy_plan_size, accuracy_rows

    grid = [("unstructured", 0.5, None, None, None), ("block", 0.75, 4, None, None),
            ("nm", None, None, 2, 4)]
    import torch

    before = torch.get_num_threads()
    rows = list(accuracy_rows(models=("mlp",), grid=grid, epochs=2, finetune_epochs=1, threads=1))
    assert torch.get_num_threads() == before  # the run's one thread is given back
    assert len(rows) == accuracy_plan_size(("mlp",), grid) == 4
    assert [r["pattern"] for r in rows] == ["dense", "unstructured", "block 4x4", "2:4"]
    assert rows[0]["acc_dense"] > 0.5  # trained well above chance (0.1)
    for r, target in zip(rows[1:], (0.5, 0.75, 0.5)):
        assert abs(r["sparsity"] - target) < 0.02
        assert r["drop_pts"] == pytest.approx(100 * (r["acc_dense"] - r["acc_finetuned"]), abs=0.01)


@pytest.mark.parametrize("args,kwargs", [(("unstructured", 0.7), {}), (("block", 0.6), {"block": 8}),
                                         (("block", 0.5), {"block": 5}), (("2:4", None), {}),
                                         (("nm", None), {"n": 1, "m": 4})])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_torch_path_equals_numpy_path(args, kwargs, dtype):
    w = torch.randn(24, 40, generator=torch.Generator().manual_seed(5)).to(dtype)
    got = prune_mask(w, *args, **kwargs)
    assert isinstance(got, torch.Tensor) and got.device == w.device
    assert np.array_equal(got.numpy(), prune_mask(w.double().numpy(), *args, **kwargs))


def test_accuracy_rows_name_their_device_and_use_the_labs_one_split():
    from engine.data import digits_split
    from engine.sparse.pruning import accuracy_rows

    rows = list(accuracy_rows(models=("mlp",), grid=[("nm", None, None, 2, 4)], epochs=3,
                              finetune_epochs=1, device="cpu"))
    assert all(r["device"] == "cpu" and r["device_name"].startswith("CPU: ") for r in rows)
    assert rows[0]["acc_dense"] > 0.7  # torch.optim.Adam, 3 epochs: far above chance (0.1)
    # the accuracy is a multiple of 1 / (the lab's test set): the one split, 450 images
    assert len(digits_split()[1]) == 450
    assert abs(rows[0]["acc_dense"] * 450 - round(rows[0]["acc_dense"] * 450)) < 1e-3
    named = list(accuracy_rows(models=("mlp",), grid=[], epochs=1, finetune_epochs=0,
                               device_name="GPU under test"))
    assert named[0]["device_name"] == "GPU under test"


def test_importing_pruning_does_not_import_torch_dynamo():
    """torch.optim's Adam pulls in torch._dynamo on first use (seconds): only a training job
    may pay that, never a page import."""
    import subprocess
    import sys

    code = ("import sys, engine.sparse.pruning, engine.sparse.tables, engine.bench.bsr_runs; "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert out.stdout.split() == ["False"]


@pytest.mark.parametrize("args,message", [
    (((), ["2:4"], [0.5], 2, 1, 1), "models: expected"),
    ((["mlp"], [], [0.5], 2, 1, 1), "patterns: expected"),
    ((["mlp"], ["block 4x4"], [], 2, 1, 1), "sparsities: expected"),
    ((["mlp"], ["2:4"], [], 0, 1, 1), r"epochs: expected an integer in \[1, 100\]"),
    ((["mlp"], ["2:4"], [], 2, 51, 1), r"fine-tune epochs: expected an integer in \[0, 50\]"),
    ((["mlp"], ["2:4"], [], 2, 1, 11), r"seeds: expected an integer in \[1, 10\]"),
])
def test_accuracy_spec_checks_once_with_expected_got(args, message):
    from engine.sparse.pruning import accuracy_spec

    with pytest.raises(ValueError, match=message):
        accuracy_spec(*args)


def test_accuracy_spec_counts_its_rows():
    from engine.sparse.pruning import accuracy_spec

    spec = accuracy_spec(["mlp", "cnn"], ["unstructured", "2:4"], [0.5, 0.9], 2.0, 1, 2)
    assert spec.epochs == 2 and isinstance(spec.epochs, int)
    assert spec.grid == (("unstructured", 0.5, None, None, None), ("unstructured", 0.9, None, None, None),
                         ("nm", None, None, 2, 4))
    assert spec.total == 2 * 2 * (1 + 3)
