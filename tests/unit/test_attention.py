"""engine.attention.attend: every implementation equals the reference on every mask (CPU)."""
import math

import pytest
import torch

from engine.attention import attend as A
from engine.attention import masks as M

S, BLOCK = 128, 16
PARAMS = {"w": 9, "d": 3, "g": 3, "r": 2, "seed": 5, "p": 20, "docs": 3}
# (implementation, masks it runs on, tolerance in float32)
IMPLS = [
    ("sdpa-masked", tuple(M.MASK_KINDS), 2e-5),
    ("flex", tuple(M.MASK_KINDS), 2e-5),   # eager on CPU: torch's unfused FlexAttention
    ("sdpa-causal", ("causal",), 2e-5),
    ("sdpa-dense", ("full",), 2e-5),
]
CASES = [(impl, kind, tol) for impl, kinds, tol in IMPLS for kind in kinds]


@pytest.fixture(scope="module")
def qkv():
    return A.random_qkv(1, 2, S, 16, "float32", seed=3)


@pytest.mark.parametrize("impl,kind,tol", CASES)
def test_implementation_equals_reference(qkv, impl, kind, tol):
    q, k, v = qkv
    mask = M.build_mask(kind, S, PARAMS, BLOCK)
    expected = A.attention_reference(q, k, v, M.materialize(mask, S))
    got = A.run_attention(impl, q, k, v, mask, block=BLOCK, compile=False)
    assert got.shape == (1, 2, S, 16)
    assert torch.allclose(got, expected, atol=tol, rtol=tol), float((got - expected).abs().max())


def test_reference_matches_the_chapters_loop():
    """The chapter's per-row sliding-window loop (start = i - window, end = i + 1) keeps
    window + 1 keys, i.e. sliding_window(window + 1) here."""
    torch.manual_seed(0)
    s, d, window = 40, 8, 6
    q, k, v = (torch.randn(s, d, dtype=torch.float64) for _ in range(3))
    loop = torch.zeros_like(q)
    for i in range(s):
        start, end = max(0, i - window), i + 1
        attn = torch.softmax(q[i:i + 1] @ k[start:end].T / math.sqrt(d), dim=-1)
        loop[i] = attn @ v[start:end]
    dense = M.materialize(M.sliding_window(window + 1), s)
    ours = A.attention_reference(q[None, None], k[None, None], v[None, None], dense)[0, 0]
    assert torch.allclose(ours, loop, atol=1e-12)


def test_masked_entries_have_zero_weight_and_rows_sum_to_one():
    q, k = A.structured_qk(64, 32)
    dense = M.materialize(M.sliding_window(5), 64)
    w = A.attention_weights(q, k, dense)
    assert torch.all(w[~dense] == 0)
    assert torch.allclose(w.sum(-1), torch.ones(64))


def test_backends_refuse_masks_they_cannot_run(qkv):
    q, k, v = qkv
    with pytest.raises(ValueError, match="expected the causal mask"):
        A.run_attention("sdpa-causal", q, k, v, M.sliding_window(4))
    with pytest.raises(ValueError, match="expected the full mask"):
        A.run_attention("sdpa-dense", q, k, v, M.causal())
    with pytest.raises(ValueError, match="attention backend: expected one of"):
        A.run_attention("cudnn-magic", q, k, v, M.causal())


def test_structured_input_has_the_chapters_pattern():
    s = 256
    q, k = A.structured_qk(s)
    w = A.attention_weights(q, k, M.materialize(M.causal(), s))
    idx = torch.arange(s)
    sink, self_ = float(w[1:, 0].mean()), float(w[idx, idx].mean())
    near = float(M.materialize(M.sliding_window(8), s).float().mul(w).sum(-1).mean())
    assert sink > 0.15 and self_ > 0.15
    assert near + sink > 0.85  # self, first token and neighbours hold nearly all the weight


def test_mask_fidelity():
    s = 64
    q, k = A.structured_qk(s)
    v = torch.randn(s, 64)
    base = M.materialize(M.causal(), s)
    out = A.mask_fidelity(q, k, v, {"causal": base, "window": M.materialize(M.sliding_window(4), s)}, base)
    assert out["causal"]["mass_kept"] == pytest.approx(1.0)
    assert out["causal"]["output_rel_error"] == pytest.approx(0.0, abs=1e-6)
    assert 0 < out["window"]["mass_kept"] < 1 and out["window"]["output_rel_error"] > 0


def test_flex_on_cpu_is_reported_unavailable_unless_asked():
    reason = A.flex_unavailable_reason("cpu")
    assert reason.startswith("unavailable: ") and "compile" in reason
    assert A.flex_unavailable_reason("cpu", allow_cpu_compile=True) is None
    assert A.flex_unavailable_reason("cpu", compile=False) is None


def test_sweep_rows_on_cpu():
    config = A.SweepConfig(seq_lens=(64, 128), masks=("sliding_window", "bigbird"),
                           params=(("w", 16), ("g", 2), ("r", 1)), block=16, heads=2, head_dim=16,
                           repeats=2)
    threads = torch.get_num_threads()
    rows = list(A.attention_sweep(config, "cpu"))
    assert torch.get_num_threads() == threads  # rows run at the Timer's thread count, then restored
    assert len(rows) == config.total == 2 * (2 + 2 * 2)
    by = {(r["seq_len"], r["mask_kind"], r["impl"]): r for r in rows}
    causal = by[(128, "causal", "sdpa-causal")]
    assert causal["status"] == "ok" and causal["speedup_vs_causal"] == pytest.approx(1.0)
    assert causal["kernel_ms"] > 0 and math.isnan(causal["compile_s"])
    masked = by[(128, "sliding_window", "sdpa-masked")]
    assert masked["status"] == "ok" and masked["mask_build_ms"] > 0
    assert masked["speedup_vs_causal"] == pytest.approx(causal["kernel_ms"] / masked["kernel_ms"])
    assert masked["theory_vs_causal"] == pytest.approx(128 * 129 / 2 / sum(min(i + 1, 16) for i in range(128)))
    flex = by[(128, "bigbird", "flex")]
    assert flex["status"].startswith("unavailable:") and math.isnan(flex["kernel_ms"])
    assert all(r["device"] == "cpu" and r["dtype"] == "float32" for r in rows)
    # every timing comes from a Measurement: its method, runs and one noise rule
    from engine.bench.measurement import EAGER, is_noisy

    timed = [r for r in rows if r["status"] == "ok"]
    assert all(r["method"] == EAGER and r["op"] == "attention" and r["backend"] == r["impl"] for r in timed)
    assert all(r["runs"] >= config.repeats and r["median_s"] == pytest.approx(r["kernel_ms"] / 1e3)
               for r in timed)
    assert all(r["noisy"] == is_noisy(r["median_s"], r["iqr_s"], r["runs"]) for r in timed)
    assert all(r["settled"] == (not r["noisy"]) or r["runs"] >= 3 * config.repeats for r in timed)


def test_time_kernel_repeats_until_settled_or_the_budget_is_spent():
    import time as _time

    import random

    rng = random.Random(0)

    def jumpy():  # 0.3 ms or 6 ms at random: never settles
        _time.sleep(0.006 if rng.random() < 0.5 else 0.0003)

    started = _time.perf_counter()
    t = A.time_kernel(jumpy, torch.device("cpu"), repeats=3, budget_s=0.5)
    assert _time.perf_counter() - started < 5
    assert t["settled"] is False and t["noisy"] is True and t["runs"] > 3

    steady = A.time_kernel(lambda: sum(range(200)), torch.device("cpu"), repeats=3, budget_s=5)
    assert steady["runs"] >= 3 and (steady["settled"] is True) == (not steady["noisy"])


def test_sweep_time_budget_skips_rows():
    config = A.SweepConfig(seq_lens=(64,), masks=("causal",), block=16, heads=1, head_dim=16,
                           repeats=1, time_budget_s=0.0)
    rows = list(A.attention_sweep(config, "cpu"))
    assert rows and all(r["status"] == "skipped: time budget" for r in rows[1:])


def test_crossover():
    rows = [{"impl": "flex", "status": "ok", "mask": "w", "seq_len": s, "speedup_vs_causal": sp}
            for s, sp in ((1024, 0.5), (2048, 1.2), (4096, 0.9), (8192, 2.0), (16384, 5.0))]
    rows += [{"impl": "flex", "status": "ok", "mask": "never", "seq_len": 1024, "speedup_vs_causal": 0.3}]
    assert A.crossover(rows) == {"w": 8192, "never": None}


def test_crossover_rests_only_on_settled_rows():
    """A noisy FlexAttention row, or a noisy baseline at its length, decides nothing."""
    rows = [{"impl": "flex", "status": "ok", "mask": "w", "seq_len": s, "speedup_vs_causal": sp,
             "noisy": s == 4096} for s, sp in ((1024, 0.5), (2048, 1.2), (4096, 0.9), (8192, 2.0))]
    assert A.crossover(rows) == {"w": 2048}  # the dip at 4096 was noise
    assert A.noisy_lengths(rows) == {"w": [4096]}
    rows.append({"impl": "sdpa-causal", "status": "ok", "mask": "causal", "seq_len": 2048, "noisy": "True"})
    assert A.crossover(rows) == {"w": 8192} and A.noisy_lengths(rows) == {"w": [2048, 4096]}


@pytest.mark.parametrize("kwargs,text", [
    ({"seq_lens": ()}, "sequence lengths: expected at least one"),
    ({"seq_lens": (8,)}, "sequence length: expected an integer in"),
    ({"masks": ("nope",)}, "mask: expected one of"),
    ({"dtype": "int8"}, "dtype: expected one of"),
])
def test_sweep_config_checks(kwargs, text):
    with pytest.raises(ValueError, match=text):
        A.SweepConfig(**kwargs)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", ["causal", "sliding_window", "bigbird", "document"])
def test_compiled_flex_equals_sdpa_on_gpu(kind):
    s = 1024
    q, k, v = A.random_qkv(1, 2, s, 64, "bfloat16", "cuda")
    mask = M.build_mask(kind, s, {"w": 128}, 128, "cuda")
    expected = A.run_attention("sdpa-masked", q, k, v, mask)
    got = A.run_attention("flex", q, k, v, mask, block=128, compile=True)
    assert (got.float() - expected.float()).abs().max() < 2e-2


def test_gpu_script_holds_the_lab_against_a_bare_run_timed_the_same_way():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_attention.py"
    spec = importlib.util.spec_from_file_location("gpu_attention", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    bare = [{"seq_len": 4096, "status": "ok", "bare_sdpa_causal_ms": 0.334, "bare_flex_ms": 0.136,
             "bare_speedup": 0.334 / 0.136, "bare_sdpa_causal_events_ms": 0.340,
             "bare_flex_events_ms": 0.125, "bare_events_speedup": 0.340 / 0.125},
            {"seq_len": 16384, "status": "error: OutOfMemoryError"}]
    rows = [{"seq_len": 4096, "impl": "flex", "status": "ok", "mask": "sliding_window(w=256)",
             "kernel_ms": 0.124, "speedup_vs_causal": 0.345 / 0.124},
            {"seq_len": 4096, "impl": "sdpa-causal", "status": "ok", "mask": "causal", "kernel_ms": 0.345}]
    ok, failed = script.compare_with_bare(bare, rows, 256)
    assert ok["speedup_lab_over_bare_events"] == pytest.approx((0.345 / 0.124) / (0.340 / 0.125))
    assert ok["within_10pct"] is True  # 1.02 against back-to-back bare
    assert ok["within_10pct_do_bench"] is False  # 1.13 against do_bench (L2 flushed)
    assert "within_10pct" not in failed and failed["status"].startswith("error")


def test_timer_threads_sets_the_timer_count_and_gives_the_old_one_back():
    import torch

    from engine.attention import attend as attention

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with attention.timer_threads():
            assert torch.get_num_threads() == attention.TIMER_THREADS
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
