"""engine.layers.lowering: every construction equals the native torch layer / its reference."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.layers import lowering as low

# (C_out, C_in, kh, kw, H, W, stride, padding, dilation)
CONV_CASES = [
    (1, 1, 3, 3, 8, 8, 1, 0, 1),
    (1, 1, 3, 3, 8, 8, 1, 1, 1),
    (4, 3, 3, 3, 9, 7, 2, 1, 1),
    (2, 5, 2, 4, 6, 11, (1, 3), (0, 2), (2, 1)),
    (3, 2, 5, 5, 12, 12, 3, 2, 2),
    (8, 8, 1, 1, 5, 5, 1, 0, 1),
]
# (channels, H, W, kernel, stride)
POOL_CASES = [(1, 8, 8, 2, 2), (3, 9, 7, 3, 2), (2, 6, 6, (2, 3), (2, 1))]
# (h, d, T)
RNN_CASES = [(1, 1, 1), (4, 2, 5), (3, 6, 8)]
# (d, d_k, d_v, T, causal)
ATTN_CASES = [(1, 1, 1, 1, False), (3, 4, 2, 5, False), (2, 3, 3, 4, True)]

FLOAT64 = torch.float64


def _torch_conv(x, w, stride, padding, dilation):
    return F.conv2d(torch.as_tensor(x)[None], torch.as_tensor(w), stride=stride, padding=padding,
                    dilation=dilation)[0].numpy()


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_matrix_equals_torch_and_reference(case):
    co, ci, kh, kw, h, w, s, p, d = case
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((co, ci, kh, kw))
    x = rng.standard_normal((ci, h, w))
    m = low.conv2d_as_sparse(weight, (h, w), stride=s, padding=p, dilation=d)
    want = _torch_conv(x, weight, s, p, d)
    assert isinstance(m, sp.csr_matrix)
    assert m.shape == (want.size, ci * h * w)
    np.testing.assert_allclose(m @ x.reshape(-1), want.reshape(-1), atol=1e-10)
    np.testing.assert_allclose(low.conv2d_reference(x, weight, s, p, d), want, atol=1e-10)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(co=st.integers(1, 4), ci=st.integers(1, 4), kh=st.integers(1, 4), kw=st.integers(1, 4),
       h=st.integers(1, 10), w=st.integers(1, 10), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 2), pw=st.integers(0, 2), dh=st.integers(1, 3), dw=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_conv_matrix_equals_torch_hypothesis(co, ci, kh, kw, h, w, sh, sw, ph, pw, dh, dw, seed):
    assume(low.conv_output_size(h, kh, sh, ph, dh) >= 1)
    assume(low.conv_output_size(w, kw, sw, pw, dw) >= 1)
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((co, ci, kh, kw))
    x = rng.standard_normal((ci, h, w))
    m = low.conv2d_as_sparse(weight, (h, w), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw))
    want = _torch_conv(x, weight, (sh, sw), (ph, pw), (dh, dw))
    np.testing.assert_allclose(m @ x.reshape(-1), want.reshape(-1), atol=1e-10)
    # float32 weights (torch tensors) stay within 1e-5 of torch in float32
    w32 = torch.as_tensor(weight, dtype=torch.float32)
    m32 = low.conv2d_as_sparse(w32, (h, w), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw))
    assert m32.dtype == np.float32
    np.testing.assert_allclose(m32 @ x.reshape(-1).astype(np.float32), want.reshape(-1), atol=1e-4,
                               rtol=1e-5)


def test_conv_matrix_keeps_explicit_zeros_and_pattern_matches():
    weight = np.zeros((2, 1, 3, 3))
    weight[0, 0, 1, 1] = 1.0
    m = low.conv2d_as_sparse(weight, (5, 5), padding=1)
    pat = low.conv2d_pattern(weight.shape, (5, 5), padding=1)
    # every position of every window is stored, even where the weight is zero
    assert m.nnz == pat.nnz
    valid_per_axis = np.array([2, 3, 3, 3, 2])  # taps inside the 5-pixel row for padding 1
    assert m.nnz == 2 * int(np.outer(valid_per_axis, valid_per_axis).sum())
    np.testing.assert_array_equal(np.sort(pat.rows), np.repeat(np.arange(m.shape[0]), np.diff(m.indptr)))
    np.testing.assert_array_equal(pat.cols, m.indices)
    # the identity kernel channel copies the image
    x = np.arange(25.0)
    np.testing.assert_allclose((m @ x)[:25], x)


def test_receptive_field_of_a_row_is_the_kernel_window():
    pat = low.conv2d_pattern((1, 2, 3, 3), (6, 6))
    field = low.receptive_field(pat, 5, (2, 6, 6))  # 4x4 output; row 5 = (1, 1) reads rows 1..3, cols 1..3
    want = np.zeros((6, 6))
    want[1:4, 1:4] = 2  # two input channels
    np.testing.assert_array_equal(field, want)
    m = low.conv2d_as_sparse(np.ones((1, 2, 3, 3)), (6, 6))
    np.testing.assert_array_equal(low.receptive_field(m, 5, (2, 6, 6)), want)


@pytest.mark.parametrize("bad, match", [
    (dict(weight=np.ones((1, 1, 3))), "expected shape"),
    (dict(weight=np.ones((1, 1, 5, 5)), input_hw=(3, 3)), "expected a kernel that fits"),
    (dict(stride=0), "stride: expected an integer >= 1"),
    (dict(padding=-1), "padding: expected an integer >= 0"),
    (dict(dilation=(1, 2, 3)), "dilation: expected an int or a pair"),
])
def test_conv_rejects_bad_input_with_expected_got(bad, match):
    args = dict(weight=np.ones((1, 1, 3, 3)), input_hw=(8, 8), stride=1, padding=0, dilation=1)
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        low.conv2d_as_sparse(**args)


@pytest.mark.parametrize("case", POOL_CASES)
def test_avgpool_and_maxpool_matrices_equal_torch(case):
    c, h, w, k, s = case
    x = np.random.default_rng(1).standard_normal((c, h, w))
    a = low.avgpool2d_as_sparse(c, (h, w), k, s)
    want = F.avg_pool2d(torch.as_tensor(x)[None], k, s)[0].numpy()
    np.testing.assert_allclose(a @ x.reshape(-1), want.reshape(-1), atol=1e-12)
    sel = low.maxpool2d_selection(x, k, s)
    want_max = F.max_pool2d(torch.as_tensor(x)[None], k, s)[0].numpy()
    np.testing.assert_allclose(sel @ x.reshape(-1), want_max.reshape(-1), atol=0)
    assert (sel.sum(axis=1) == 1).all()


def test_maxpool_selection_depends_on_the_input():
    x = np.zeros((1, 2, 2))
    x[0, 0, 0] = 1.0
    y = np.zeros((1, 2, 2))
    y[0, 1, 1] = 1.0
    assert (low.maxpool2d_selection(x, 2) != low.maxpool2d_selection(y, 2)).nnz > 0


@settings(max_examples=25, deadline=None)
@given(c=st.integers(1, 4), h=st.integers(2, 12), w=st.integers(2, 12), k=st.integers(1, 3),
       s=st.integers(1, 3), seed=st.integers(0, 999))
def test_pooling_hypothesis(c, h, w, k, s, seed):
    assume(k <= h and k <= w)
    x = np.random.default_rng(seed).standard_normal((c, h, w))
    a = low.avgpool2d_as_sparse(c, (h, w), k, s)
    np.testing.assert_allclose(a @ x.reshape(-1),
                               F.avg_pool2d(torch.as_tensor(x)[None], k, s).reshape(-1).numpy(),
                               atol=1e-12)
    np.testing.assert_allclose(low.maxpool2d_selection(x, k, s) @ x.reshape(-1),
                               F.max_pool2d(torch.as_tensor(x)[None], k, s).reshape(-1).numpy())


@pytest.mark.parametrize("h, d, t_len", RNN_CASES)
def test_rnn_matrix_equals_unrolled_recurrence(h, d, t_len):
    rng = np.random.default_rng(2)
    wi, wh = rng.standard_normal((h, d)), 0.5 * rng.standard_normal((h, h))
    x = rng.standard_normal((t_len, d))
    lmat = low.rnn_as_block_lower_triangular(wi, wh, t_len)
    assert lmat.shape == (t_len * h, t_len * d)
    ref = low.rnn_reference(wi, wh, x)
    np.testing.assert_allclose(lmat @ x.reshape(-1), ref.reshape(-1), atol=1e-10)
    # torch's RNN without bias and without nonlinearity is not offered; check with an explicit loop
    hs, state = [], torch.zeros(h, dtype=FLOAT64)
    for xt in torch.as_tensor(x):
        state = torch.as_tensor(wi) @ xt + torch.as_tensor(wh) @ state
        hs.append(state)
    np.testing.assert_allclose(lmat @ x.reshape(-1), torch.stack(hs).reshape(-1).numpy(), atol=1e-10)
    facts = low.matrix_facts(lmat, "rnn", block=(h, d))
    assert facts["block_lower_triangular"] is True
    assert facts["block_upper_triangular"] is (t_len == 1)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 5), d=st.integers(1, 5), t_len=st.integers(1, 8), seed=st.integers(0, 999))
def test_rnn_hypothesis_against_torch_rnn_tanh(h, d, t_len, seed):
    rng = np.random.default_rng(seed)
    wi, wh = rng.standard_normal((h, d)), 0.4 * rng.standard_normal((h, h))
    x = rng.standard_normal((t_len, d))
    lmat = low.rnn_as_block_lower_triangular(wi, wh, t_len)
    np.testing.assert_allclose(lmat @ x.reshape(-1), low.rnn_reference(wi, wh, x).reshape(-1),
                               atol=1e-9, rtol=1e-9)
    # the tanh reference is torch's own nn.RNN (no bias)
    rnn = torch.nn.RNN(d, h, bias=False, batch_first=True).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.as_tensor(wi))
        rnn.weight_hh_l0.copy_(torch.as_tensor(wh))
        out, _ = rnn(torch.as_tensor(x)[None])
    np.testing.assert_allclose(low.rnn_reference(wi, wh, x, "tanh"), out[0].numpy(), atol=1e-10)


def test_rnn_tanh_gap_is_measured_and_nonzero():
    rng = np.random.default_rng(3)
    wi, wh = rng.standard_normal((4, 2)), 0.8 * rng.standard_normal((4, 4))
    gap = low.rnn_tanh_gap(wi, wh, rng.standard_normal((10, 2)))
    assert len(gap["maxdiff_tanh_once"]) == 10
    assert gap["maxdiff_tanh_once"][0] < 1e-12          # one step: tanh once is exact
    assert gap["rel_error_tanh_once"] > 1e-3             # later steps: it is not
    # tiny inputs: tanh is nearly linear, so the gap nearly vanishes
    small = low.rnn_tanh_gap(wi, wh, 1e-4 * rng.standard_normal((10, 2)))
    assert small["rel_error_tanh_once"] < 1e-6


@pytest.mark.parametrize("d, dk, dv, t_len, causal", ATTN_CASES)
def test_attention_tensor_cubic_contraction_equals_reference(d, dk, dv, t_len, causal):
    rng = np.random.default_rng(4)
    wq, wk, wv = rng.standard_normal((d, dk)), rng.standard_normal((d, dk)), rng.standard_normal((d, dv))
    x = rng.standard_normal((t_len, d))
    tensor = low.linear_attention_as_tensor(wq, wk, wv, t_len, causal=causal, scale=0.5)
    n = t_len * d
    assert tensor.shape == (t_len * dv, n, n, n)
    want = low.linear_attention_reference(wq, wk, wv, x, causal=causal, scale=0.5)
    # the explicit (torch) computation of the same layer
    xt = torch.as_tensor(x)
    scores = (xt @ torch.as_tensor(wq)) @ (xt @ torch.as_tensor(wk)).T
    if causal:
        scores = torch.tril(scores)
    np.testing.assert_allclose(want, 0.5 * (scores @ (xt @ torch.as_tensor(wv))).numpy(), atol=1e-10)
    flat = x.reshape(-1)
    dense = tensor.to_dense()
    np.testing.assert_allclose(np.einsum("oijk,i,j,k->o", dense, flat, flat, flat), want.reshape(-1),
                               atol=1e-9)
    np.testing.assert_allclose(tensor.contract(flat), want.reshape(-1), atol=1e-9)
    lifted = np.einsum("i,j,k->ijk", flat, flat, flat).reshape(-1)
    np.testing.assert_allclose(tensor.as_matrix() @ lifted, want.reshape(-1), atol=1e-9)


def test_attention_nonzero_triples_share_tokens():
    rng = np.random.default_rng(5)
    t_len, d = 4, 2
    tensor = low.linear_attention_as_tensor(*(rng.standard_normal((d, d)) for _ in range(3)), t_len)
    support = low.token_support(tensor, t_len)                   # (t_out, t_i, t_j, t_k)
    t_out, t_i, t_j, t_k = np.nonzero(support)
    assert (t_i == t_out).all() and (t_j == t_k).all()
    assert len(t_out) == t_len * t_len                           # every (t, s) pair occurs
    causal = low.linear_attention_as_tensor(*(rng.standard_normal((d, d)) for _ in range(3)), t_len,
                                            causal=True)
    t_out, _, t_j, _ = np.nonzero(low.token_support(causal, t_len))
    assert (t_j <= t_out).all() and len(t_out) == t_len * (t_len + 1) // 2
    assert tensor.density == pytest.approx(tensor.nnz / (t_len * d) ** 4)


@settings(max_examples=20, deadline=None)
@given(d=st.integers(1, 3), dv=st.integers(1, 3), t_len=st.integers(1, 4), seed=st.integers(0, 999))
def test_scores_bilinear_and_attention_tensor_hypothesis(d, dv, t_len, seed):
    rng = np.random.default_rng(seed)
    wq, wk, wv = rng.standard_normal((d, d)), rng.standard_normal((d, d)), rng.standard_normal((d, dv))
    x = rng.standard_normal((t_len, d))
    flat = x.reshape(-1)
    scores = low.attention_scores_as_tensor(wq, wk, t_len)
    np.testing.assert_allclose(np.einsum("pij,i,j->p", scores.to_dense(), flat, flat),
                               ((x @ wq) @ (x @ wk).T).reshape(-1), atol=1e-9)
    tensor = low.linear_attention_as_tensor(wq, wk, wv, t_len)
    np.testing.assert_allclose(tensor.contract(flat),
                               low.linear_attention_reference(wq, wk, wv, x).reshape(-1), atol=1e-9)


def test_softmax_gap_against_torch_attention():
    rng = np.random.default_rng(6)
    wq, wk, wv = rng.standard_normal((3, 3)), rng.standard_normal((3, 3)), rng.standard_normal((3, 2))
    x = rng.standard_normal((5, 3))
    gap = low.attention_softmax_gap(wq, wk, wv, x, causal=True)
    xt = torch.as_tensor(x)
    want = F.scaled_dot_product_attention((xt @ torch.as_tensor(wq))[None], (xt @ torch.as_tensor(wk))[None],
                                          (xt @ torch.as_tensor(wv))[None], is_causal=True)[0]
    np.testing.assert_allclose(gap["softmax"], want.numpy(), atol=1e-10)
    assert gap["max_abs_diff"] > 1e-3 and gap["rel_error"] > 1e-3


# (name, matrix, expected triangularity)
def _facts_cases():
    one = np.ones((1, 1, 3, 3))
    return [
        ("single channel, no padding", low.conv2d_as_sparse(one, (8, 8)), "upper-triangular"),
        ("single channel, same padding", low.conv2d_as_sparse(one, (8, 8), padding=1), "neither"),
        ("two channels, no padding", low.conv2d_as_sparse(np.ones((2, 2, 3, 3)), (8, 8)), "neither"),
        ("identity", sp.identity(4, format="csr"), "diagonal"),
    ]


def test_matrix_facts_tell_the_truth():
    for name, m, tri in _facts_cases():
        facts = low.matrix_facts(m, name)
        dense = m.toarray() != 0
        i, j = np.nonzero(dense)
        assert facts["triangularity"] == tri, name
        assert facts["nnz_below_diagonal"] == int((i > j).sum())
        assert facts["nnz_above_diagonal"] == int((i < j).sum())
        assert facts["upper_bandwidth"] == int(max((j - i).max(), 0))
        assert facts["density"] == pytest.approx(dense.sum() / dense.size)


def test_spy_grid_aggregates_to_at_most_512_cells():
    m = low.conv2d_as_sparse(np.ones((2, 2, 3, 3)), (24, 24), padding=1)   # 1152 x 1152
    grid = low.spy_grid(m, 512)
    assert grid["z"].shape == (512, 512) and grid["aggregated"]
    assert grid["count"].sum() == m.nnz
    small = low.spy_grid(sp.identity(5), 512)
    assert small["z"].shape == (5, 5) and not small["aggregated"]
    np.testing.assert_array_equal(np.isnan(small["z"]), ~np.eye(5, dtype=bool))
    assert list(small["row_edges"]) == [0, 1, 2, 3, 4, 5]


def test_timing_row_reports_equal_outputs():
    row = low.time_conv_native_vs_matrix(2, 8, 4, repeats=3)
    assert row["max_abs_diff"] < 1e-4
    assert row["native_median_s"] > 0 and row["matrix_median_s"] > 0
    assert row["nnz"] == low.conv2d_as_sparse(np.ones((2, 2, 3, 3)), (8, 8), padding=1).nnz


def test_timing_row_comes_from_measurements_and_repeats_until_settled():
    from engine.bench.measurement import is_noisy

    row = low.time_conv_native_vs_matrix(2, 8, 4, repeats=5)
    assert row["method"] == "eager per call" and row["runs"] >= 1 and row["native_runs"] >= 1
    assert row["runs"] >= 3 or row["matrix_noisy"]              # too few runs (budget spent) is noisy by rule
    assert (row["c_out"], row["c_in"], row["height"], row["width"], row["batch"]) == (2, 2, 8, 8, 4)
    assert row["matrix_noisy"] == is_noisy(row["matrix_median_s"], row["matrix_iqr_s"], row["matrix_runs"])
    assert row["noisy"] == (row["native_noisy"] or row["matrix_noisy"])
    assert isinstance(row["settled"], bool) and (row["settled"] or row["matrix_noisy"] or row["runs"] >= 1000)


def test_sweep_summary_uses_only_steady_rows():
    rows = [{"channels": 1, "image": "16x16", "batch": 8, "status": "ok", "matrix_over_native": 2.0, "noisy": False},
            {"channels": 4, "image": "16x16", "batch": 8, "status": "ok", "matrix_over_native": 0.5, "noisy": True},
            {"channels": 64, "image": "64x64", "batch": 8, "status": "skipped: too large"}]
    lines = low.sweep_summary(rows)
    text = " ".join(t for _k, t in lines)
    assert "1 channel" in text and "2x" in text and "0.5x" not in text
    assert "1 of 2 timed rows stayed noisy" in text
    assert low.sweep_summary([{"channels": 4, "image": "16x16", "batch": 8, "status": "ok",
                               "matrix_over_native": 0.5, "noisy": True}])[0][0] == "warn"
