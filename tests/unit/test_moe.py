"""engine.moe.layer: router, capacity, losses, the batched layer vs its reference, parameter counts."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.moe import example, layer, params, router, timing, training

# (tokens, d, h, experts, k, capacity factor or None for dropless)
LAYER_CASES = [
    (1, 8, 16, 2, 1, None),
    (17, 8, 16, 4, 2, None),
    (17, 8, 16, 4, 2, 0.5),
    (40, 16, 32, 8, 2, 1.0),
    (40, 16, 32, 8, 1, 0.25),
    (33, 12, 24, 3, 3, 0.75),
    (64, 16, 32, 16, 4, 1.25),
]
# (tokens, experts, capacity factor, k, expected capacity)
CAPACITY_CASES = [(64, 8, 1.25, 2, 20), (64, 8, 0.25, 2, 4), (10, 3, 1.0, 1, 4), (8, 8, 1.0, 1, 1),
                  (0, 4, 1.0, 1, 0), (100, 7, 2.0, 3, 87)]
# (expert choices (T, k), capacity, expected keep mask) in arrival order
DROP_CASES = [
    ([[0], [0], [0], [1], [0]], 2, [[1], [1], [0], [1], [0]]),
    ([[0, 1], [1, 0], [0, 1]], 2, [[1, 1], [1, 1], [0, 0]]),
    ([[2, 0], [2, 1], [2, 0], [1, 2]], 1, [[1, 1], [0, 1], [0, 0], [0, 0]]),
    ([[0], [1], [2]], 0, [[0], [0], [0]]),
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny tensors: one thread is faster and kinder to a shared 2-core machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _setup(tokens, d, h, experts, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(tokens, d, generator=g)
    gate = torch.randn(d, experts, generator=g)
    ex = layer.Experts.random(experts, d, h, seed=seed + 1)
    return x, gate, ex, router.route(x, gate, k)


@pytest.mark.parametrize("method", layer.METHODS)
@pytest.mark.parametrize("tokens,d,h,experts,k,cf", LAYER_CASES)
def test_batched_layer_equals_per_token_reference(tokens, d, h, experts, k, cf, method):
    x, _, ex, r = _setup(tokens, d, h, experts, k)
    cap = None if cf is None else router.expert_capacity(tokens, experts, cf, k)
    keep = router.apply_capacity(r.expert, experts, cap).keep
    fast = layer.moe_forward(x, ex, r.expert, r.weight, keep, method=method)
    ref = layer.moe_forward_reference(x, ex, r.expert, r.weight, keep)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    if cf is not None and not bool(keep.all()):
        # the drops matter: without them the output differs
        full = layer.moe_forward(x, ex, r.expert, r.weight, None, method=method)
        assert not torch.allclose(full, fast)


@pytest.mark.parametrize("combine", layer.COMBINES)
@pytest.mark.parametrize("method", layer.METHODS)
@pytest.mark.parametrize("tokens,d,h,experts,k,cf", LAYER_CASES + [(6, 8, 16, 4, 2, 0.0)])
def test_both_combines_equal_the_reference(tokens, d, h, experts, k, cf, method, combine):
    # the last case has capacity 0: everything dropped, the output is zero
    x, _, ex, r = _setup(tokens, d, h, experts, k, seed=3)
    cap = None if cf is None else router.expert_capacity(tokens, experts, cf, k)
    keep = router.apply_capacity(r.expert, experts, cap).keep
    fast = layer.moe_forward(x, ex, r.expert, r.weight, keep, method=method, combine=combine)
    ref = layer.moe_forward_reference(x, ex, r.expert, r.weight, keep)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    if cf == 0.0:
        assert not bool(keep.any()) and torch.count_nonzero(fast) == 0


def test_combine_rejects_unknown_names():
    x, _, ex, r = _setup(4, 8, 16, 2, 1)
    with pytest.raises(ValueError, match="combine: expected one of"):
        layer.moe_forward(x, ex, r.expert, r.weight, combine="atomic")


# (expert choices (T, k), experts, keep or None, expected order, expected counts, expected kept)
DISPATCH_CASES = [
    ([[1, 0], [0, 2]], 3, None, [1, 2, 0, 3], [2, 1, 1], 4),
    ([[2], [2], [0]], 3, None, [2, 0, 1], [1, 0, 2], 3),
    ([[1, 0], [0, 1]], 2, [[1, 0], [1, 1]], [2, 0, 3, 1], [1, 2], 3),
]


@pytest.mark.parametrize("choices,experts,keep,order,counts,kept", DISPATCH_CASES)
def test_dispatch_sorts_by_expert_in_arrival_order_dropped_last(choices, experts, keep, order,
                                                                counts, kept):
    keep_t = None if keep is None else torch.tensor(keep, dtype=torch.bool)
    o, c, n = layer.dispatch(torch.tensor(choices), experts, keep_t)
    assert o.tolist() == order and c.tolist() == counts and n == kept


@given(st.integers(1, 30), st.integers(1, 6), st.integers(0, 10**6))
@settings(max_examples=25, deadline=None)
def test_gather_combine_equals_index_add_combine(tokens, experts, seed):
    # random expert-ordered rows and weights, random drops: both scatter-backs agree
    g = torch.Generator().manual_seed(seed)
    k = min(2, experts)
    expert = torch.stack([torch.randperm(experts, generator=g)[:k] for _ in range(tokens)])
    keep = torch.rand(tokens, k, generator=g) > 0.3
    weight = torch.rand(tokens, k, generator=g)
    order, _, kept = layer.dispatch(expert, experts, keep)
    assume(kept > 0)  # moe_forward returns zeros before combining when nothing is kept
    ys = torch.randn(kept, 5, generator=g)
    a = layer._combine_gather(ys, order, weight, keep)
    b = layer._combine_index_add(ys, order, weight, tokens, k)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_dropless_output_is_the_weighted_sum_of_every_expert_dense():
    x, _, ex, r = _setup(12, 8, 16, 4, 2)
    combine = layer.moe_to_dense(ex, r.expert, r.weight)  # (T, E)
    torch.testing.assert_close(combine.sum(1), torch.ones(12))
    every = torch.stack([layer.ffn(x, ex.w1[e], ex.w2[e]) for e in range(4)], dim=1)  # (T, E, d)
    dense = (combine.unsqueeze(-1) * every).sum(1)
    torch.testing.assert_close(layer.moe_forward(x, ex, r.expert, r.weight), dense, atol=1e-5, rtol=1e-5)


def test_grouped_method_refuses_float64_with_a_message():
    x, _, ex, r = _setup(4, 8, 16, 2, 1)
    ex64 = layer.Experts(ex.w1.double(), ex.w2.double())
    with pytest.raises(ValueError, match="expected float32, bfloat16 or float16, got torch.float64"):
        layer.moe_forward(x.double(), ex64, r.expert, r.weight.double(), method="grouped")
    with pytest.raises(ValueError, match="method: expected one of"):
        layer.moe_forward(x, ex, r.expert, r.weight, method="fast")


@pytest.mark.parametrize("tokens,experts,cf,k,expected", CAPACITY_CASES)
def test_expert_capacity_formula(tokens, experts, cf, k, expected):
    assert router.expert_capacity(tokens, experts, cf, k) == expected == math.ceil(tokens / experts * cf) * k


@pytest.mark.parametrize("choices,capacity,expected", DROP_CASES)
def test_capacity_drops_exactly_the_assignments_over_capacity_in_arrival_order(choices, capacity, expected):
    expert = torch.tensor(choices)
    experts = int(expert.max()) + 1
    c = router.apply_capacity(expert, experts, capacity)
    assert c.keep.tolist() == [[bool(v) for v in row] for row in expected]
    assert c.load.tolist() == [min(int(w), capacity) for w in c.wanted]
    assert (c.dropped == c.wanted - c.load).all()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(1, 3), st.integers(0, 12), st.integers(0, 10**6))
def test_capacity_matches_reference_loop(tokens, experts, k, capacity, seed):
    k = min(k, experts)
    g = torch.Generator().manual_seed(seed)
    expert = torch.stack([torch.randperm(experts, generator=g)[:k] for _ in range(tokens)])
    c = router.apply_capacity(expert, experts, capacity)
    assert torch.equal(c.keep, router.apply_capacity_reference(expert, experts, capacity))
    assert int(c.load.max()) <= capacity
    # every expert keeps exactly its first min(wanted, capacity) arrivals
    flat, keep = expert.reshape(-1), c.keep.reshape(-1)
    for e in range(experts):
        kept = keep[flat == e]
        n = min(int((flat == e).sum()), capacity)
        assert kept[:n].all() and not kept[n:].any()


def test_dropless_keeps_everything():
    expert = torch.tensor([[0, 1]] * 9)
    c = router.apply_capacity(expert, 3, None)
    assert c.keep.all() and c.load.tolist() == [9, 9, 0] and c.dropped_tokens == 0
    np.testing.assert_allclose(router.utilisation(c.load, 9, 2), [1.5, 1.5, 0.0])  # expert 2 is dead


@pytest.mark.parametrize("experts", [2, 4, 8, 64])
@pytest.mark.parametrize("alpha", [1.0, 0.01])
def test_balancing_loss_is_alpha_for_perfectly_uniform_routing(experts, alpha):
    tokens = experts * 5
    probs = torch.full((tokens, experts), 1.0 / experts)
    expert = (torch.arange(tokens) % experts).unsqueeze(1)
    assert router.load_balancing_loss(probs, expert, alpha=alpha).item() == pytest.approx(alpha)


def test_balancing_loss_is_E_when_everything_goes_to_one_expert():
    probs = torch.zeros(10, 8)
    probs[:, 3] = 1.0
    expert = torch.full((10, 1), 3)
    assert router.load_balancing_loss(probs, expert, alpha=1.0).item() == pytest.approx(8.0)


def test_z_loss_of_zero_logits_is_log_E_squared():
    assert router.router_z_loss(torch.zeros(5, 8)).item() == pytest.approx(math.log(8) ** 2)
    assert router.router_z_loss(torch.zeros(5, 8), beta=1e-3).item() == pytest.approx(1e-3 * math.log(8) ** 2)


def test_route_weights_are_renormalised_top_k():
    x, gate, _, r = _setup(30, 8, 16, 6, 3)
    torch.testing.assert_close(r.weight.sum(1), torch.ones(30))
    assert torch.equal(r.expert, r.probs.topk(3, dim=1).indices)
    assert (r.weight[:, :-1] >= r.weight[:, 1:]).all()


def test_temperature_and_skew_change_the_routing():
    x, gate, _, _ = _setup(200, 16, 16, 8, 2)
    hot = router.route(x, gate, 2, temperature=100.0)
    assert float(hot.probs.max()) < 0.2  # near uniform 1/8
    plain = router.route(x, gate, 2)
    skewed = router.route(x, gate, 2, skew=8.0)
    assert (skewed.expert == 0).sum() > (plain.expert == 0).sum()
    assert router.load_balancing_loss(skewed.probs, skewed.expert, 1.0) > router.load_balancing_loss(
        plain.probs, plain.expert, 1.0)


def test_jitter_perturbs_only_when_asked():
    x, gate, _, r = _setup(50, 8, 16, 4, 1)
    again = router.route(x, gate, 1, jitter=0.0)
    assert torch.equal(r.logits, again.logits)
    noisy = router.route(x, gate, 1, jitter=0.3, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(r.logits, noisy.logits)


@pytest.mark.parametrize("kwargs,match", [
    ({"k": 9}, r"top-k: expected an integer in \[1, 8\], got 9"),
    ({"capacity_factor": -1.0}, "capacity factor: expected"),
    ({"tokens": 0}, "tokens: expected"),
    ({"temperature": 0.0}, "temperature: expected"),
])
def test_routing_spec_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        example.RoutingSpec(**kwargs)


def test_routing_example_rows_are_consistent():
    res = example.routing_example(example.RoutingSpec(tokens=64, experts=8, k=2, capacity_factor=0.5))
    rows = res.expert_rows()
    assert sum(r["wanted"] for r in rows) == 128
    assert all(r["load"] <= 8 and r["load"] + r["dropped"] == r["wanted"] for r in rows)
    assert res.z_loss > 0 and res.balance_loss > 0
    assert res.cap.dropped_tokens >= int(res.cap.dropped.sum()) / 2  # k=2: a token drops at most 2


def test_mixtral_preset_matches_the_chapter():
    p = params.param_count(params.MIXTRAL_8X7B)
    assert p["total"] / 1e9 == pytest.approx(46.7, abs=0.05)
    assert p["active"] / 1e9 == pytest.approx(12.9, abs=0.05)
    assert p["experts_total"] == 4 * p["experts_active"]  # 8 experts held, 2 used


def test_layer_params():
    p = params.layer_params(d_model=4, d_ff=16, experts=8, k=2)
    assert p["total"] == 8 * 2 * 4 * 16 + 4 * 8
    assert p["active"] == 2 * 2 * 4 * 16 + 4 * 8
    with pytest.raises(ValueError, match="top-k"):
        params.layer_params(4, 16, 2, 3)


def test_train_router_rows_tiny():
    rows = list(training.train_router_rows(experts=3, k=2, alpha=0.5, epochs=2, batch=256))
    assert len(rows) == training.train_router_plan_total(2, 3)
    df = pd.DataFrame(rows)
    # every row names where it trained (no GPU here: the CPU, by its model name)
    assert (df["device"] == "cpu").all() and df["device_name"].str.startswith("CPU: ").all()
    assert set(df["variant"]) == {"no balancing loss", "balancing alpha=0.5"}
    epochs = df[df["kind"] == "epoch"]
    assert (epochs["test_accuracy"] > 0.3).all()  # well above chance (0.1) already
    loads = epochs[[f"load_e{e}" for e in range(3)]].to_numpy()
    np.testing.assert_allclose(loads.sum(1), 1.0, atol=1e-3)
    spec = df[df["kind"] == "specialisation"][[f"class_{c}" for c in range(10)]].to_numpy()
    np.testing.assert_allclose(spec.reshape(2, 3, 10).sum(1), 1.0, atol=1e-3)


def test_timing_sweep_rows_tiny():
    spec = timing.SweepSpec(d_model=16, experts=4, k=2, batches=(1, 4), min_run_time=0.001,
                         device="cpu")
    rows = list(timing.timing_sweep_rows(spec))
    assert len(rows) == spec.total == 10
    df = pd.DataFrame(rows)
    assert (df.loc[df["variant"] == "dense_1x", "ratio_vs_dense_1x"] == 1.0).all()
    ok = df[df["status"] == "ok"]
    assert (ok["time_ms"] > 0).all()
    from engine.bench.measurement import EAGER, is_noisy  # every timing is a Measurement's row

    assert (ok["method"] == EAGER).all() and (ok["backend"] == ok["variant"]).all()
    assert (ok["time_ms"] == 1e3 * ok["median_s"]).all() and (ok["device_name"] == ok["device"]).all()
    assert all(r.noisy == is_noisy(r.median_s, r.iqr_s, r.runs) for r in ok.itertuples())
    dense_total = df[df["variant"] == "dense_total"].iloc[0]
    moe_row = df[df["variant"].str.startswith("moe_")].iloc[0]
    assert dense_total["params"] == pytest.approx(moe_row["params"], rel=0.02)  # equal total
    summary = timing.sweep_summary(rows)
    assert {s["variant"] for s in summary} <= {"moe_grouped", "moe_loop"} and summary


def test_sweep_spec_validation():
    with pytest.raises(ValueError, match="dtype: expected one of"):
        timing.SweepSpec(dtype="int8")
    with pytest.raises(ValueError, match="batches: expected at least one"):
        timing.SweepSpec(batches=())
    assert timing.powers_of_two(1, 16) == (1, 2, 4, 8, 16)


def test_load_reference_sweep(tmp_path):
    assert timing.load_reference_sweep(tmp_path) is None
    (tmp_path / "moe").mkdir()
    pd.DataFrame([{"batch": 1, "variant": "dense_1x", "status": "ok", "time_ms": 1.0,
                   "ratio_vs_dense_1x": 1.0, "device": "NVIDIA H100", "dtype": "bfloat16",
                   "d_model": 2048, "date_utc": "2026-11-22T07:15:00Z"}]).to_csv(
        tmp_path / "moe" / "moe_timing.csv", index=False)
    rows, label = timing.load_reference_sweep(tmp_path)
    assert len(rows) == 1 and "NVIDIA H100" in label and "2026-11-22" in label
    pd.DataFrame([{"x": 1}]).to_csv(tmp_path / "moe" / "moe_timing.csv", index=False)
    assert timing.load_reference_sweep(tmp_path) is None  # not a MoE timing run: not listed


def test_the_router_trains_on_the_labs_one_digits_split():
    from engine.data import digits_split

    xtr, xte, ytr, yte = training.standardised_digits()
    _, _, ytr0, yte0 = digits_split()
    assert xtr.shape == (1347, 64) and xte.shape == (450, 64)
    assert (ytr == ytr0).all() and (yte == yte0).all()  # the same images, the same test set
    assert abs(float(xtr.mean())) < 1e-4  # standardised by the training set's own statistics


@pytest.mark.parametrize("method", layer.METHODS)
def test_batched_layer_carries_gradients_like_the_reference(method):
    x, _, ex, r = _setup(20, 8, 16, 4, 2)
    w1 = ex.w1.clone().requires_grad_(True)
    fast = layer.moe_forward(x, layer.Experts(w1, ex.w2), r.expert, r.weight, method=method)
    fast.square().sum().backward()
    w1_ref = ex.w1.clone().requires_grad_(True)
    layer.moe_forward_reference(x, layer.Experts(w1_ref, ex.w2), r.expert, r.weight).square().sum().backward()
    torch.testing.assert_close(w1.grad, w1_ref.grad, atol=1e-4, rtol=1e-4)


def test_timing_sweep_reports_a_failing_variant_and_goes_on(monkeypatch):
    real = layer.moe_forward

    def failing(*args, method="loop", **kwargs):
        if method == "grouped":
            raise RuntimeError("CUDA out of memory (simulated)\ndetails")
        return real(*args, method=method, **kwargs)

    monkeypatch.setattr(timing, "moe_forward", failing)  # the name the sweep calls
    spec = timing.SweepSpec(d_model=16, experts=2, k=1, batches=(1, 2), min_run_time=0.001, device="cpu")
    rows = list(timing.timing_sweep_rows(spec))
    assert len(rows) == spec.total
    bad = [r for r in rows if r["variant"] == "moe_grouped"]
    assert all(r["status"] == "error: RuntimeError: CUDA out of memory (simulated)" for r in bad)
    assert all("time_ms" not in r for r in bad)  # no number drawn for it
    assert [s["variant"] for s in timing.sweep_summary(rows)] == ["moe_loop"]


def test_gpu_script_checks_agree_on_cpu():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_moe.py"
    spec = importlib.util.spec_from_file_location("gpu_moe", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rows = script.check_rows(torch.device("cpu"), torch.float32, layer.METHODS)
    assert len(rows) == len(script.CHECKS) * len(layer.METHODS) * len(layer.COMBINES)
    assert {(r["method"], r["combine"]) for r in rows} == {(m, c) for m in layer.METHODS
                                                          for c in layer.COMBINES}
    assert all(r["status"] == "ok" and r["agrees"] for r in rows), rows
    assert any(r["empty_experts"] > 0 for r in rows) and any(r["dropped_assignments"] > 0 for r in rows)


def test_layer_agreement_on_the_slider_example_with_drops():
    res = example.routing_example(example.RoutingSpec(tokens=96, experts=8, k=2, capacity_factor=0.5))
    assert int(res.cap.dropped.sum()) > 0
    agree = example.layer_agreement(res, d_ff=32)
    assert set(agree) == set(layer.METHODS) and max(agree.values()) < 1e-4


def test_load_reference_sweep_picks_the_newest_run_by_its_date(tmp_path):
    for name, device, date in (("a", "NVIDIA H200", "2026-11-23T07:15:00Z"),
                               ("b", "NVIDIA H100", "2026-11-22T07:15:00Z")):
        (tmp_path / name).mkdir()
        pd.DataFrame([{"batch": 1, "variant": "dense_1x", "status": "ok", "time_ms": 1.0,
                       "ratio_vs_dense_1x": 1.0, "device": device, "date_utc": date}]).to_csv(
            tmp_path / name / "moe_timing.csv", index=False)
    assert "NVIDIA H200" in timing.load_reference_sweep(tmp_path)[1]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", layer.METHODS)
@pytest.mark.parametrize("cf", [None, 0.5])
def test_batched_layer_on_gpu_bf16_matches_the_reference(method, cf):
    tokens, d, h, experts, k = 256, 128, 512, 8, 2
    x, _, ex, r = _setup(tokens, d, h, experts, k)
    cap = None if cf is None else router.expert_capacity(tokens, experts, cf, k)
    keep = router.apply_capacity(r.expert, experts, cap).keep
    ref = layer.moe_forward_reference(x.double(), layer.Experts(ex.w1.double(), ex.w2.double()),
                                    r.expert, r.weight.double(), keep)
    gpu = layer.Experts(ex.w1.cuda().bfloat16(), ex.w2.cuda().bfloat16())
    out = layer.moe_forward(x.cuda().bfloat16(), gpu, r.expert.cuda(), r.weight.cuda().bfloat16(),
                          keep.cuda(), method=method)
    assert (out.double().cpu() - ref).abs().max() < 2e-2 * max(1.0, ref.abs().max().item())


def test_the_sweep_budget_counts_host_memory_only_so_a_gpu_can_run_the_reference_shape():
    spec = timing.SweepSpec(d_model=2048, batches=(1, 1024, 16384), dtype="bfloat16")
    assert spec.memory_bytes("cuda") < 4 * 2**30 < spec.memory_bytes("cpu")   # the default budget
    assert spec.memory_bytes("cuda") < spec.memory_bytes("cpu")


def test_noisy_sweep_rows_and_the_ratios_over_them_are_drawn_noisy():
    from components import figures_moe as figs
    from engine.bench.measurement import NOISY_LABEL

    rows = [{"variant": v, "batch": b, "time_ms": t, "ratio_vs_dense_1x": t, "noisy": n, "status": "ok"}
            for v, b, t, n in (("dense_1x", 1, 1.0, "True"), ("dense_1x", 4, 1.0, "False"),
                               ("moe_grouped", 1, 2.0, "False"), ("moe_grouped", 4, 2.5, "False"))]
    time_fig, ratio_fig = figs.sweep_time(rows), figs.sweep_ratio(rows)
    dense = next(t for t in time_fig.data if t.name.startswith(figs.LABELS.get("dense_1x", "dense_1x")))
    assert list(dense.marker.symbol) == ["circle-open", "circle"]        # the string "False" is not noisy
    moe = next(t for t in ratio_fig.data if t.name.startswith(figs.LABELS.get("moe_grouped", "moe_grouped")))
    assert list(moe.marker.symbol) == ["circle-open", "circle"]          # over a noisy dense row
    assert any(t.name == NOISY_LABEL for t in ratio_fig.data)


def test_a_summary_sentence_over_noisy_rows_says_so():
    from components import figures_moe as figs

    rows = [{"variant": v, "batch": b, "time_ms": t, "ratio_vs_dense_1x": t, "k": 2, "status": "ok",
             "noisy": str(v == "dense_active" and b == 1)}
            for b in (1, 64) for v, t in (("dense_1x", 1.0), ("dense_active", 2.0), ("dense_total", 8.0),
                                          ("moe_grouped", 3.0))]
    summary = timing.sweep_summary(rows)
    assert summary[0]["noisy_at"] == [1]
    assert "Rough: rows at 1 token(s) are noisy" in figs.sweep_summary_lines("this run", rows, summary)[0]
    clean = [dict(r, noisy="False") for r in rows]
    assert "Rough" not in figs.sweep_summary_lines("this run", clean, timing.sweep_summary(clean))[0]


def test_the_ratio_figure_draws_each_runs_own_ideal_and_names_the_local_run():
    from components import figures_moe as figs

    def run(k, device):
        return [{"variant": v, "batch": 1, "time_ms": 1.0, "ratio_vs_dense_1x": r, "k": k, "experts": 8,
                 "d_model": 64, "dtype": "float32", "device": device, "status": "ok", "noisy": "False"}
                for v, r in (("dense_1x", 1.0), ("moe_grouped", 3.0))]
    local, ref = run(8, "CPU: X"), run(2, "NVIDIA H100")
    here = f"this run ({timing.run_label(local)})"
    assert here == "this run (CPU: X, float32, d=64, E/k=8/8)"
    fig = figs.sweep_ratio(local, ref, "H100 reference", here)
    ideals = sorted((a for a in fig.layout.annotations if a.text.startswith("ideal")), key=lambda a: a.text)
    # short labels right of the plot (x = 1 on the plot's domain, anchored left: off the data),
    # the run each belongs to in full on hover
    assert [a.text for a in ideals] == ["ideal: k = 2<br>(reference)", "ideal: k = 8<br>(this run)"]
    assert all(a.x == 1 and a.xanchor == "left" for a in ideals)
    assert "H100 reference" in ideals[0].hovertext and here in ideals[1].hovertext
    assert fig.layout.margin.r >= 90  # room for the labels


def test_sweep_legend_names_each_variant_once_and_each_run_with_its_device():
    from components import figures_moe as figs

    def run(device, dtype):
        return [{"variant": v, "batch": b, "time_ms": t * b, "ratio_vs_dense_1x": t, "k": 2, "experts": 8,
                 "d_model": 64, "dtype": dtype, "device": device, "status": "ok", "noisy": "False"}
                for b in (1, 4) for v, t in (("dense_1x", 1.0), ("moe_grouped", 3.0), ("moe_loop", 4.0))]
    local, ref = run("CPU: X", "float32"), run("NVIDIA H100", "bfloat16")
    here = f"this run ({timing.run_label(local)})"
    ref_label = timing.run_label(ref) + ", 2026-11-22"
    fig = figs.sweep_time(local, ref, ref_label, here)
    legend = [t.name.replace("<br>", " ") for t in fig.data if t.showlegend is not False]  # long ones wrap
    assert legend == [figs.LABELS[v] for v in ("dense_1x", "moe_grouped", "moe_loop")] + [
        here, ref_label + " (committed reference)"]
    drawn = [t for t in fig.data if t.legendgroup in figs.LABELS and t.showlegend is False]
    dashes = {(t.legendgroup, t.line.dash) for t in drawn}
    assert dashes == {(v, d) for v in ("dense_1x", "moe_grouped", "moe_loop") for d in ("solid", "dash")}
    assert all(ref_label in t.hovertemplate for t in drawn if t.line.dash == "dash")
    # a variant's own entry is filled in its colour (a hollow point means noisy)
    entry = next(t for t in fig.data if t.name == figs.LABELS["moe_grouped"] and t.showlegend is not False)
    assert entry.marker.color == figs.COLORS["moe_grouped"] and entry.legendgroup == "moe_grouped"
    # the legend sits below the plot in a bottom margin that grows with its entries: none is cut
    assert fig.layout.legend.orientation == "v" and fig.layout.legend.y < 0
    assert fig.layout.margin.b >= 62 + 20 * len(legend)
    assert fig.layout.height - fig.layout.margin.t - fig.layout.margin.b == figs.PLOT_HEIGHT
