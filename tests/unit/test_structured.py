"""engine.structured.operators: fast == reference == to_dense() @ x for every family, exact
recovery where the family contains the target, Pareto rows, the timing sweep."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from engine.structured import operators, pareto, sweep, tables, targets

# (name, builder) of operators with random values, real and complex
OPERATORS = [
    ("lowrank r=3", lambda n: operators.LowRank.random(n, 3, seed=1)),
    ("monarch b=2", lambda n: operators.Monarch.random(n, 2, seed=2)),
    ("monarch b=4", lambda n: operators.Monarch.random(n, 4, seed=3)),
    ("butterfly", lambda n: operators.Butterfly.random(n, seed=4)),
    ("butterfly dft", lambda n: operators.Butterfly.dft(n)),
    ("butterfly hadamard", lambda n: operators.Butterfly.hadamard(n)),
    ("circulant", lambda n: operators.Circulant.random(n, seed=5)),
    ("circulant complex", lambda n: operators.Circulant(np.exp(1j * np.arange(n)))),
    ("toeplitz", lambda n: operators.Toeplitz.random(n, seed=6)),
    ("sparse", lambda n: operators.MagnitudeSparse.random(n, 3 * n, seed=7)),
    ("dense", lambda n: operators.Dense.random(n, seed=8)),
]
SIZES = (16, 64)

# (family, builder of a matrix inside the family, fit) -> exact recovery
EXACT = [
    ("lowrank", lambda n: operators.LowRank.random(n, 5, seed=11).to_dense(), lambda A: operators.LowRank.fit(A, 5)),
    ("monarch square", lambda n: operators.Monarch.random(n, math.isqrt(n), seed=12).to_dense(),
     lambda A: operators.Monarch.fit(A, math.isqrt(A.shape[0]))),
    ("monarch b=2", lambda n: operators.Monarch.random(n, 2, seed=13).to_dense(), lambda A: operators.Monarch.fit(A, 2)),
    ("butterfly dft", lambda n: targets.dft_matrix(n), lambda A: operators.Butterfly.fit(A, steps=0)),
    ("butterfly hadamard", lambda n: targets.hadamard_matrix(n), lambda A: operators.Butterfly.fit(A, steps=0)),
    ("butterfly random", lambda n: operators.Butterfly.random(n, seed=14).to_dense(), lambda A: operators.Butterfly.fit(A, steps=0)),
    ("circulant", lambda n: operators.Circulant.random(n, seed=15).to_dense(), operators.Circulant.fit),
    ("toeplitz", lambda n: operators.Toeplitz.random(n, seed=16).to_dense(), operators.Toeplitz.fit),
    ("kernel is toeplitz", lambda n: targets.kernel_matrix(n), operators.Toeplitz.fit),
]

# (n, family) -> parameter count formula
PARAMS = [
    (64, lambda: operators.LowRank.random(64, 4), 2 * 64 * 4),
    (64, lambda: operators.Monarch.random(64, 8), 2 * 64 * 8),
    (64, lambda: operators.Monarch.random(64, 4), 2 * 64 * 16),
    (64, lambda: operators.Butterfly.random(64), 2 * 64 * 6),
    (64, lambda: operators.Circulant.random(64), 64),
    (64, lambda: operators.Toeplitz.random(64), 127),
]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name,build", OPERATORS, ids=[o[0] for o in OPERATORS])
def test_fast_equals_reference_equals_dense(name, build, n):
    op = build(n)
    x = np.random.default_rng(0).standard_normal((3, n))
    dense = x @ op.to_dense().T
    np.testing.assert_allclose(op.apply(x), dense, atol=1e-10)
    np.testing.assert_allclose(op.apply_reference(x), dense, atol=1e-10)
    # a single vector gives a vector
    np.testing.assert_allclose(op.apply(x[0]), dense[0], atol=1e-10)


@pytest.mark.parametrize("name,build", [o for o in OPERATORS if "complex" not in o[0] and o[0] not in
                                        ("butterfly dft",)], ids=lambda v: v if isinstance(v, str) else "")
def test_torch_path_equals_dense(name, build):
    torch = pytest.importorskip("torch")
    op = build(64)
    x = np.random.default_rng(1).standard_normal((5, 64))
    y = op.torch_apply("cpu", "float64")(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(y, x @ op.to_dense().T, atol=1e-10)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name,build,fit", EXACT, ids=[e[0] for e in EXACT])
def test_exact_recovery_when_the_family_contains_the_target(name, build, fit, n):
    A = build(n)
    assert operators.relative_error(A, fit(A).to_dense()) < 1e-9


@pytest.mark.parametrize("n,build,expected", PARAMS)
def test_parameter_counts(n, build, expected):
    op = build()
    assert op.n_params == expected
    assert op.flops(3) > 0
    assert f"{n}x{n}" in repr(op) and "params=" in repr(op)


def test_dft_butterfly_is_cooley_tukey_with_bit_reversal():
    op = operators.Butterfly.dft(32)
    np.testing.assert_allclose(op.to_dense(), targets.dft_matrix(32), atol=1e-12)
    assert np.array_equal(op.perm, operators.bit_reversal(32))
    assert "bit-rev" in op.config
    # and the fit finds it without being told
    fitted = operators.Butterfly.fit(targets.dft_matrix(32))
    assert np.array_equal(fitted.perm, operators.bit_reversal(32))


def test_butterfly_gradient_descent_improves_on_the_projection():
    A = targets.gaussian_matrix(32, seed=3)
    start = operators.relative_error(A, operators.Butterfly.fit(A, steps=0).to_dense())
    refined = operators.relative_error(A, operators.Butterfly.fit(A, steps=60).to_dense())
    assert refined < start - 1e-3


@pytest.mark.parametrize("n", (2, 4, 16, 64))
@pytest.mark.parametrize("make", [operators.Butterfly.random, operators.Butterfly.dft], ids=["random", "dft"])
def test_butterfly_product_equals_the_factors_applied_to_the_identity(make, n):
    """The fast dense form (block by block) == the factors applied one by one (the base
    class's to_dense) == the explicit factors multiplied; numpy and torch alike."""
    torch = pytest.importorskip("torch")
    op = make(n)
    slow = operators.StructuredMatrix.to_dense(op)
    np.testing.assert_allclose(op.to_dense(), slow, atol=1e-12)
    np.testing.assert_allclose(np.linalg.multi_dot([np.eye(n), *op.factors()[::-1]]), slow, atol=1e-12)
    T = operators.butterfly_product(torch.as_tensor(op.twiddle)).numpy()
    np.testing.assert_allclose(T, slow[:, op.perm], atol=1e-12)


@pytest.mark.parametrize("target", ["kernel", "dft"])
def test_fits_at_budget_reusing_the_fitted_operators_equals_fitting_again(target):
    """What /structured-matrices shows at a budget from the analysis' operators == each
    family fitted for that budget from scratch (fit_family), at every budget of the slider."""
    A = targets.make_target(target, 64).matrix
    fitted = pareto.fitted_operators(A, butterfly_steps=5)
    bfly = next(op for op in fitted if op.family == "butterfly")
    for k in pareto.BUDGET_EXPONENTS:
        budget = pareto.budget_params(64, k)
        fast = pareto.fits_at_budget(A, budget, fitted=fitted)
        slow = pareto.fits_at_budget(A, budget, fitted=[bfly])  # the butterfly fit is the same one
        for f, s in zip(fast, slow):
            assert (f["family"], f["config"], f["params"], f["note"]) == (s["family"], s["config"], s["params"], s["note"])
            if f["op"] is not None:
                assert f["family"] == "sparse" or any(f["op"] is op for op in fitted)  # reused, not refitted
                np.testing.assert_allclose(f["op"].to_dense(), s["op"].to_dense(), atol=1e-10)
                assert f["rel_error"] == pytest.approx(s["rel_error"], abs=1e-12)


def test_lowrank_fit_is_eckart_young():
    A = targets.gaussian_matrix(32, seed=4)
    s = np.linalg.svd(A, compute_uv=False)
    err = np.linalg.norm(A - operators.LowRank.fit(A, 6).to_dense())
    assert err == pytest.approx(math.sqrt((s[6:] ** 2).sum()), rel=1e-9)


def test_circulant_fit_is_the_closest_circulant():
    A = targets.gaussian_matrix(16, seed=5)
    best = operators.Circulant.fit(A)
    base = np.linalg.norm(A - best.to_dense())
    rng = np.random.default_rng(0)
    for _ in range(20):  # any perturbation of the first column is worse
        other = operators.Circulant(best.c + 0.01 * rng.standard_normal(16))
        assert np.linalg.norm(A - other.to_dense()) > base


def test_monarch_projection_beats_random_perturbations():
    A = targets.gaussian_matrix(16, seed=6)
    best = operators.Monarch.fit(A, 4)
    base = np.linalg.norm(A - best.to_dense())
    rng = np.random.default_rng(1)
    for _ in range(10):
        other = operators.Monarch(best.L + 0.01 * rng.standard_normal(best.L.shape), best.R)
        assert np.linalg.norm(A - other.to_dense()) > base


@settings(max_examples=25, deadline=None)
@given(k=hst.integers(2, 5), seed=hst.integers(0, 10_000), fam=hst.sampled_from(["monarch", "butterfly", "toeplitz"]))
def test_hypothesis_fast_equals_dense(k, seed, fam):
    n = 2 ** k if fam != "monarch" else 4 ** (k // 2 + 1)
    op = {"monarch": lambda: operators.Monarch.random(n, int(math.isqrt(n)), seed),
          "butterfly": lambda: operators.Butterfly.random(n, seed),
          "toeplitz": lambda: operators.Toeplitz.random(n, seed)}[fam]()
    x = np.random.default_rng(seed).standard_normal((2, n))
    np.testing.assert_allclose(op.apply(x), x @ op.to_dense().T, atol=1e-9)


BAD_INPUTS = [
    (lambda: operators.LowRank.fit(np.zeros((4, 4)), 9), "rank"),
    (lambda: operators.Monarch.fit(np.eye(8), 4), "nblocks"),
    (lambda: operators.Butterfly.fit(np.eye(6)), "power of 2"),
    (lambda: operators.Circulant.fit(np.ones((3, 4))), "square"),
    (lambda: targets.make_target("nope", 64), "target"),
    (lambda: operators.LowRank.random(8, 2).apply(np.ones(7)), "last dimension"),
    (lambda: sweep.SweepSpec(n=100), "power of 2"),
    (lambda: sweep.SweepSpec(n=256, monarch_blocks=3), "nblocks"),
    (lambda: pareto.fits_at_budget(np.eye(8), 0), "budget"),
]


@pytest.mark.parametrize("call,word", BAD_INPUTS)
def test_bad_inputs_say_expected_got(call, word):
    with pytest.raises(ValueError, match="expected") as info:
        call()
    assert word in str(info.value)


@pytest.mark.parametrize("target", ["gaussian", "kernel", "dft", "conv"])
def test_targets_and_pareto_rows(target):
    tg = targets.make_target(target, 64)
    assert tg.matrix.shape == (64, 64)
    rows = pareto.pareto_rows(tg.matrix, butterfly_steps=10)
    fams = {r["family"] for r in rows}
    assert fams == set(operators.FAMILIES)
    assert all(0 <= r["rel_error"] <= 1.0 + 1e-9 for r in rows)
    # sparse appears at every parameter count a structured family uses
    counts = {r["params"] for r in rows if r["family"] != "sparse"}
    assert counts <= {r["params"] for r in rows if r["family"] == "sparse"}
    # low-rank error falls as the rank grows
    low = [r["rel_error"] for r in sorted((r for r in rows if r["family"] == "lowrank"), key=lambda r: r["params"])]
    assert all(a >= b - 1e-12 for a, b in zip(low, low[1:]))


def test_conv_target_comes_from_lowering_and_matches_torch():
    torch = pytest.importorskip("torch")
    A = targets.conv_matrix(64, seed=0)  # 8 x 8 image
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1, 1, 3, 3, generator=g)
    x = torch.randn(1, 1, 8, 8)
    y = torch.nn.functional.conv2d(x, w, padding=1).reshape(-1).numpy()
    np.testing.assert_allclose(A @ x.reshape(-1).numpy(), y, atol=1e-5)


def test_structure_wins_where_it_should():
    # the DFT: butterfly exact, low-rank and sparse at the same count far off
    A = targets.dft_matrix(64)
    fits = {f["family"]: f for f in pareto.fits_at_budget(A, 64 * 64 // 4)}
    assert fits["butterfly"]["rel_error"] < 1e-9
    assert fits["lowrank"]["rel_error"] > 0.5 and fits["sparse"]["rel_error"] > 0.5
    # a tight budget leaves Monarch out, with the reason
    tight = {f["family"]: f for f in pareto.fits_at_budget(A, 200)}
    assert tight["monarch"]["op"] is None and "over budget" in tight["monarch"]["note"]


def test_digits_weight_is_trained_once_and_cached(tmp_path):
    first = targets.digits_weight(16, folder=tmp_path, epochs=3)
    assert first.weight.shape == (16, 16) and not first.cached
    assert first.test_accuracy > 0.3  # well above chance (0.1) even after 3 epochs
    again = targets.digits_weight(16, folder=tmp_path, epochs=3)
    assert again.cached
    np.testing.assert_array_equal(again.weight, first.weight)


def test_timing_sweep_yields_rows_and_reports_unavailable():
    pytest.importorskip("torch")
    spec = sweep.SweepSpec(n=64, batches=(1, 8), dtypes=("float32", "float16"), rank=4, monarch_blocks=4,
                           repeats=2, max_total_s=0.05)
    rows = list(sweep.timing_sweep(spec, "cpu", "test cpu"))
    assert len(rows) == spec.total
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["median_s"] > 0 for r in ok)
    from engine.bench.measurement import EAGER, is_noisy  # every timing is a Measurement's row

    assert all(r["method"] == EAGER and r["op"] == "structured-apply" and r["backend"] == r["name"]
               and r["runs"] >= 1 and r["noisy"] == is_noisy(r["median_s"], r["iqr_s"], r["runs"]) for r in ok)
    dense32 = [r for r in ok if r["name"] == "dense" and r["dtype"] == "float32"]
    assert all(r["speedup_vs_dense"] == pytest.approx(1.0) for r in dense32)
    # every row is either measured or says why not; never a number for an unavailable one
    for r in rows:
        assert (r["status"] == "ok") == (r["median_s"] is not None)
        assert r["status"] == "ok" or r["status"].startswith("unavailable: ")
    low = next(r for r in rows if r["name"] == "lowrank")
    assert low["theoretical_speedup"] == pytest.approx(64 * 64 / (2 * 64 * 4))
    table = tables.comparison_table(rows, dtype="float32")
    assert all(t["matrix type"].startswith(c[0]) for t, c in zip(table, tables.CHAPTER_TABLE))
    assert len(table) == len(tables.CHAPTER_TABLE)
    pivot = {r["operator"]: r for r in tables.speedup_pivot(rows, "float16")}
    assert pivot["dense"]["batch 8"] == pytest.approx(1.0)
    assert all((r["batch 1"] is None) == r["status"].startswith("unavailable") for r in pivot.values())
    assert all(r["status"].startswith(("ok", "unavailable", "noisy at batch")) for r in pivot.values())
    ref = tables.reference_comparison(rows, n=64, batch=8)
    assert ref[0]["goal speedup (H200)"] == 15.3 and ref[0]["lab speedup"] is not None


def test_goal_point_prefers_the_goal_size_else_the_largest():
    rows = [{"n": 1024, "batch": 16}, {"n": 1024, "batch": 256}, {"n": 256, "batch": 4096}]
    assert tables.goal_point(rows) == (1024, 256)
    assert tables.goal_point(rows + [{"n": 8192, "batch": 1}]) == (8192, 1)
    assert tables.goal_point([]) == (8192, 4096)


def test_engine_structured_has_no_page_routes():
    import inspect

    for mod in (operators, targets, pareto, sweep, tables):
        assert "\"/structured" not in inspect.getsource(mod) and "\"/moe" not in inspect.getsource(mod)


def test_the_sweep_budget_counts_host_memory_only_so_a_gpu_can_run_the_goal_point():
    spec = sweep.SweepSpec(n=8192, batches=(1, 16, 256, 4096), dtypes=("float32", "float16"))
    assert spec.memory_bytes("cuda") < 4 * 2**30 < spec.memory_bytes("cpu")   # the default budget


def _rows(n=1024, batch=256, rank=16, blocks=16, device_name="CPU: Test Xeon", noisy=()):
    """Sweep rows of dense, low-rank and Monarch (float32 and float16) with chosen noisy names."""
    configs = {"dense": "", "lowrank": f"r={rank}", "monarch": f"{blocks} blocks of {n // blocks}", "circulant": ""}
    out = []
    for dtype in ("float32", "float16"):
        for name, speed in (("dense", 1.0), ("lowrank", 6.0), ("monarch", 2.0), ("circulant", 9.0)):
            out.append({"name": name, "family": name, "label": name, "config": configs[name], "n": n,
                        "batch": batch, "dtype": dtype, "device": "cpu", "device_name": device_name,
                        "median_s": 1e-3 / speed, "status": "ok", "speedup_vs_dense": speed,
                        "speedup_vs_dense_fp32": speed, "theoretical_speedup": 10.0, "params": 1,
                        "flops": 1.0, "efficiency": speed / 10, "method": "eager per call",
                        "noisy": (name, dtype) in noisy or name in noisy})
    return out


def test_chapter_table_labels_come_from_what_was_measured():
    table = {r["matrix type"].split(" (")[0]: r for r in tables.comparison_table(_rows(rank=16, blocks=16))}
    assert table["Low-rank"]["matrix type"] == "Low-rank (measured r=16; chapter r=32)"
    assert table["Monarch"]["matrix type"] == "Monarch (16 blocks of 64)"
    at32 = {r["matrix type"] for r in tables.comparison_table(_rows(rank=32))}
    assert "Low-rank (r=32)" in at32


def test_goal_rows_of_another_device_shape_or_config_are_not_comparable():
    goal = {r["comparison"]: r for r in tables.reference_comparison(_rows())}
    low = goal["Low-rank r=32 vs dense"]
    assert low["status"].startswith("not comparable: ")
    for part in ("device H200 vs CPU", "n 8192 vs 1024", "batch 4096 vs 256", "r=32 vs r=16"):
        assert part in low["status"]
    assert "64 blocks of 128 vs 16 blocks of 64" in goal["Monarch, 64 blocks (naive) vs dense"]["status"]
    assert not any(r["status"] in ("ok", "like for like") for r in goal.values())


def test_a_like_for_like_goal_row_says_so_and_a_noisy_one_is_not_a_finding():
    like = dict(n=8192, batch=4096, rank=32, blocks=64, device_name="NVIDIA H200")
    goal = {r["comparison"]: r for r in tables.reference_comparison(_rows(**like))}
    assert goal["Low-rank r=32 vs dense"]["status"] == "like for like"
    assert goal["Monarch, 64 blocks (naive) vs dense"]["status"] == "like for like"
    # dense fp16 noisy: every fp16 speedup over it is noisy; the fp32 circulant is not
    goal = {r["comparison"]: r for r in tables.reference_comparison(_rows(**like, noisy={("dense", "float16")}))}
    assert goal["Low-rank r=32 vs dense"]["status"] == tables.NOISY_STATUS
    assert goal["Low-rank r=32 vs dense"]["lab noisy"] is True
    assert goal["Circulant by FFT vs dense fp32"]["status"] == "like for like"


def test_noisy_speedups_are_marked_per_cell_and_no_status_rests_on_them():
    rows = _rows(noisy={"lowrank"})
    table = {r["matrix type"].split(" (")[0]: r for r in tables.comparison_table(rows, dtype="float32")}
    assert table["Low-rank"]["measured: noisy"] is True and table["Low-rank"]["measured: status"] == tables.NOISY_STATUS
    assert table["Low-rank"]["measured: time noisy"] is True
    assert table["Monarch"]["measured: noisy"] is False and table["Monarch"]["measured: status"] == "ok"
    pivot = {r["operator"]: r for r in tables.speedup_pivot(rows, "float32")}
    assert pivot["lowrank"]["batch 256 noisy"] is True and pivot["lowrank"]["status"].startswith("noisy at batch 256")
    assert pivot["monarch"]["batch 256 noisy"] is False and pivot["monarch"]["status"] == "ok"
    # a noisy dense time makes every speedup of its (dtype, batch) noisy
    pivot = {r["operator"]: r for r in tables.speedup_pivot(_rows(noisy={("dense", "float32")}), "float32")}
    assert all(r["batch 256 noisy"] for r in pivot.values())
