"""engine.chain.scanner: the reverse pass, agreement, recovery, conditioning, VJP."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings, strategies as st

from engine.chain.generator import COLUMNS, PRESETS, make_chain
from engine.chain.scanner import (MODES, SCAN_PRESETS, VERDICTS, agreement, column_summary,
                                  conditioning, error_bounds, hallucinated_map, inverse_activation,
                                  recovery, reverse_operator, scan, vjp_claim, vjp_table)

# (scan kwargs, substring of the ValueError)
BAD = [
    (dict(mode="adjoint"), "mode: expected one of transpose, pinv, tikhonov, omp"),
    (dict(mode="tikhonov", lam=0.0), "expected a ridge parameter > 0"),
    (dict(mode="pinv", lam=-1.0), "lam: expected a number in [0.0"),
    (dict(y=np.ones(3)), "y: expected finite outputs of shape (F,) or (n, F) with F = 6"),
    (dict(y=np.full(6, np.nan)), "y: expected finite outputs"),
]

# (activation, pre-activation values, expected x back, expected clipped, expected ambiguous)
INVERSES = [
    ("identity", [-2.0, 0.0, 3.0], [-2.0, 0.0, 3.0], [0, 0, 0], [0, 0, 0]),
    ("tanh", [-0.5, 0.0, 1.5], [-0.5, 0.0, 1.5], [0, 0, 0], [0, 0, 0]),
    ("sigmoid", [-1.0, 0.0, 2.0], [-1.0, 0.0, 2.0], [0, 0, 0], [0, 0, 0]),
    ("relu", [-1.0, 0.0, 2.0], [0.0, 0.0, 2.0], [0, 0, 0], [1, 1, 0]),
]


@pytest.mark.parametrize("kwargs, text", BAD)
def test_bad_scan_arguments_say_what_was_expected(kwargs, text):
    chain = make_chain(n_harmonics=6)
    kw = {"y": np.ones(6), "mode": "transpose", "lam": 0.0, **kwargs}
    with pytest.raises(ValueError, match="expected") as err:
        scan(chain, kw.pop("y"), **kw)
    assert text in str(err.value)


@pytest.mark.parametrize("activation, x, back, clipped, ambiguous", INVERSES)
def test_inverse_activation_undoes_the_forward_where_it_can(activation, x, back, clipped, ambiguous):
    chain = make_chain(activation=activation)
    x = np.array(x)
    a = np.where(x != 0, chain._activate(x), 0.0)
    got, c, amb = inverse_activation(a, activation)
    np.testing.assert_allclose(got, back, atol=1e-9)
    assert list(c.astype(int)) == clipped and list(amb.astype(int)) == ambiguous


def test_atanh_and_logit_clip_and_count():
    x, c, _ = inverse_activation(np.array([1.0, -1.0, 0.3]), "tanh")
    assert list(c) == [True, True, False] and np.all(np.isfinite(x))
    x, c, _ = inverse_activation(np.array([1.0, -0.2, 0.0, 0.5]), "sigmoid")
    assert list(c) == [True, True, False, False] and x[2] == 0 and x[3] == 0


def test_reverse_operators():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(7, 4))
    np.testing.assert_array_equal(reverse_operator(A, "transpose"), A.T)
    np.testing.assert_allclose(reverse_operator(A, "pinv"), np.linalg.pinv(A), atol=1e-12)
    lam = 0.3
    ridge = np.linalg.solve(A.T @ A + lam * np.eye(4), A.T)
    np.testing.assert_allclose(reverse_operator(A, "tikhonov", lam), ridge, atol=1e-12)


NOT_DENSE = [p for p in PRESETS if p != "dense"]  # dense rows overlap: never orthogonal for P > 1


@settings(max_examples=25, deadline=None)
@given(preset=st.sampled_from(NOT_DENSE), p=st.integers(1, 6), nnz=st.integers(1, 3),
       extra_k=st.integers(0, 4), extra_h=st.integers(0, 4), extra_f=st.integers(0, 4),
       seed=st.integers(0, 10_000))
def test_orthogonal_identity_agrees_everywhere_in_transpose_mode(preset, p, nnz, extra_k, extra_h,
                                                                 extra_f, seed):
    k = p * nnz + extra_k
    chain = make_chain(preset, n_phases=p, n_patterns=p, k=k, nnz_per_row=nnz, hidden=k + extra_h,
                       n_harmonics=k + extra_h + extra_f, activation="identity", seed=seed,
                       weights="orthogonal")
    table = agreement(chain, "transpose")
    assert table["agree"].all(), table[~table["agree"]]
    assert (table["bound"] < 1e-8).all()  # certified: the transposes are exact inverses
    assert len(table) == p * len(COLUMNS)
    assert (table["cosine"] > 1 - 1e-9).all()
    assert recovery(chain, "transpose")["correct"].all()


def test_orthogonal_preset_of_the_page_agrees_and_relu_wide_diverges():
    ortho = agreement(make_chain(**SCAN_PRESETS["orthogonal + identity"]), "transpose")
    assert ortho["agree"].all() and ortho["bound"].max() < 1e-8
    relu = make_chain(**SCAN_PRESETS["relu + wide W"])
    table = agreement(relu, "transpose")
    summary = column_summary(table).set_index("column")
    assert (summary["within_bound"] == 1.0).all()  # no noise: the bound holds ...
    # ... but it certifies nothing useful: both the bound and the error are large
    assert summary.loc["sparse", "median_bound"] > 0.5 and summary.loc["sparse", "median_rel_error"] > 0.5
    cond = conditioning(relu).set_index("matrix")
    assert not cond.loc["W", "full_column_rank"] and cond.loc["W", "rank"] == 8
    assert recovery(relu, "transpose")["relu_lost"].sum() > 0


@settings(max_examples=25, deadline=None)
@given(preset=st.sampled_from(PRESETS), activation=st.sampled_from(["identity", "tanh", "sigmoid"]),
       p=st.integers(1, 8), k=st.integers(1, 10), nnz=st.integers(1, 10), extra_h=st.integers(0, 6),
       extra_f=st.integers(0, 6), seed=st.integers(0, 10_000))
def test_pinv_recovers_every_pattern_where_MW_has_full_column_rank(preset, activation, p, k, nnz,
                                                                   extra_h, extra_f, seed):
    nnz = min(nnz, k)
    chain = make_chain(preset, n_phases=2 * p, n_patterns=p, k=k, nnz_per_row=nnz,
                       hidden=k + extra_h, n_harmonics=k + extra_f, activation=activation, seed=seed)
    cond = conditioning(chain).set_index("matrix")
    assume(cond.loc["M W", "full_column_rank"] and cond.loc["M W", "condition"] < 1e6)
    rows = chain.R
    # distinct patterns are needed for the id to be recoverable at all
    assume(len({tuple(np.round(r, 12)) for r in rows}) == p)
    rec = recovery(chain, "pinv")
    assert rec["correct"].all(), rec
    assert (rec["hallucinated"] == 0).all() and (rec["missed"] == 0).all()


def test_pinv_fails_honestly_where_MW_is_rank_deficient():
    chain = make_chain(n_patterns=8, k=24, nnz_per_row=3, hidden=12, n_harmonics=6,
                       activation="identity", seed=1)
    assert not conditioning(chain).set_index("matrix").loc["M W", "full_column_rank"]
    assert recovery(chain, "pinv")["correct"].mean() < 1.0


@settings(max_examples=20, deadline=None)
@given(preset=st.sampled_from(PRESETS), activation=st.sampled_from(["identity", "tanh", "relu", "sigmoid"]),
       k=st.integers(1, 12), h=st.integers(1, 12), f=st.integers(1, 12), seed=st.integers(0, 999))
def test_transpose_is_the_vjp_on_the_linear_columns_and_for_identity_everywhere(
        preset, activation, k, h, f, seed):
    chain = make_chain(preset, n_phases=5, n_patterns=3, k=k, nnz_per_row=1, hidden=h,
                       n_harmonics=f, activation=activation, seed=seed)
    Y = np.random.default_rng(seed).normal(size=(5, f))
    table = vjp_table(chain, Y).set_index("column")
    assert list(table.index) == list(reversed(COLUMNS))
    assert table.loc[["assemble", "propagate", "activation"], "max_abs_diff"].max() <= 1e-12
    if activation == "identity":
        assert table["equals_vjp"].all()


def test_the_vjp_claim_is_made_only_where_it_holds():
    chain = make_chain(activation="tanh", seed=0)  # the page's default chain
    table = vjp_table(chain).set_index("column")
    assert table.loc[["propagate", "activation"], "equals_vjp"].all()
    # sigma^-1 (atanh) and sigma'(x) differ: the claim must not be made left of the activation
    assert not table.loc[["sparse", "select", "lookup", "clock"], "equals_vjp"].any()
    assert table.loc["sparse", "max_abs_diff"] > 1e-3
    claim = vjp_claim(table.reset_index())
    assert "for propagate, activation." in claim and "It does not for sparse" in claim
    ident = vjp_claim(vjp_table(make_chain(activation="identity")))
    assert "It does not" not in ident and "clock" in ident


@settings(max_examples=40, deadline=None)
@given(preset=st.sampled_from(PRESETS), activation=st.sampled_from(["identity", "tanh", "relu", "sigmoid"]),
       mode=st.sampled_from(MODES), p=st.integers(1, 6), k=st.integers(1, 16), nnz=st.integers(1, 4),
       h=st.integers(1, 16), f=st.integers(1, 16), seed=st.integers(0, 10_000),
       weights=st.sampled_from(["gaussian", "orthogonal"]))
def test_the_certified_bound_is_never_exceeded_without_noise(preset, activation, mode, p, k, nnz,
                                                           h, f, seed, weights):
    nnz = min(nnz, k)
    if weights == "orthogonal":  # the sizes orthogonal weights need
        assume(preset != "dense" or p == 1)
        k = max(k, p * nnz)
        h = max(h, k)
        f = max(f, h)
    chain = make_chain(preset, n_phases=2 * p, n_patterns=p, k=k, nnz_per_row=nnz, hidden=h,
                       n_harmonics=f, activation=activation, seed=seed, weights=weights)
    table = agreement(chain, mode, lam=0.05 if mode == "tikhonov" else 0.0)
    assert (table["verdict"] != VERDICTS[1]).all(), table[table["verdict"] == VERDICTS[1]]
    assert ((table["rel_error"] <= table["bound"]) | ~np.isfinite(table["bound"])).all()


def test_noise_widens_the_bound_and_the_error():
    chain = make_chain("balanced", n_phases=8, n_patterns=8, k=8, nnz_per_row=2, hidden=10,
                       n_harmonics=12, activation="identity", seed=3)
    levels = [0.0, 0.02, 0.05, 0.1, 0.2, 0.5]
    seeds = range(12)
    mean_err, bound = [], []
    for noise in levels:
        tables = [agreement(chain, "pinv", noise=noise, seed=s) for s in seeds]
        mean_err.append(np.mean([t["rel_error"].mean() for t in tables]))
        bound.append(error_bounds(chain, "pinv", noise=noise)["activation"].mean())
    assert all(b > a for a, b in zip(mean_err, mean_err[1:])), mean_err
    assert all(b > a for a, b in zip(bound, bound[1:])), bound
    assert bound[0] < 1e-8  # M W has full column rank: exact without noise
    # the bound uses the noise *level*; a draw above it can exceed the bound, never without noise
    noisy = pd.concat([agreement(chain, "pinv", noise=0.5, seed=s) for s in seeds])
    assert set(noisy["verdict"]) <= set(VERDICTS[:2])


def test_tikhonov_tends_to_pinv_and_shrinks_with_lam():
    chain = make_chain(n_harmonics=16, hidden=16, k=10, activation="identity", seed=2)
    y = chain.forward_all()["assemble"]
    pinv = scan(chain, y, "pinv").columns["activation"]
    small = scan(chain, y, "tikhonov", lam=1e-10).columns["activation"]
    big = scan(chain, y, "tikhonov", lam=10.0).columns["activation"]
    np.testing.assert_allclose(small, pinv, atol=1e-6)
    assert np.linalg.norm(big) < np.linalg.norm(pinv)


def test_hallucinated_support_in_transpose_mode_of_a_generic_chain():
    chain = make_chain(seed=5)
    halluc = hallucinated_map(chain, "transpose")
    assert halluc.shape == (chain.spec.n_phases, chain.spec.k)
    assert (halluc == 1).sum() > 0
    assert recovery(chain, "transpose")["hallucinated"].sum() == (halluc == 1).sum()


@pytest.mark.parametrize("mode", MODES)
def test_scan_batch_equals_one_by_one(mode):
    chain = make_chain(activation="tanh", seed=6)
    Y = chain.forward_all()["assemble"]
    batch = scan(chain, Y, mode, lam=0.1).columns
    for t in (0, 5):
        one = scan(chain, Y[t], mode, lam=0.1).columns
        for c in COLUMNS:
            np.testing.assert_allclose(batch[c][t], one[c][0], atol=1e-12)
