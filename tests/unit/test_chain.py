"""engine.chain.generator: the pipeline equals the graph, the shapes, the errors, the audio."""
import io
import wave

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from engine.chain.generator import (ACTIVATIONS, COLUMNS, PRESETS, chain_from_dict, graph_forward,
                          make_chain, pipeline_graph_difference, to_wav_bytes, waveform)

# (kwargs for make_chain, substring the ValueError must contain)
BAD = [
    (dict(k=2, nnz_per_row=3), "expected at most K = 2"),
    (dict(n_phases=0), "n_phases: expected an integer in [1, 256], got 0"),
    (dict(preset="sparse-ish"), "preset: expected one of"),
    (dict(activation="gelu"), "activation: expected one of"),
    (dict(nnz_per_row=0), "nnz_per_row: expected"),
    (dict(hidden=1.5), "hidden: expected an integer"),
    (dict(weights="orthogonal", n_patterns=8, k=8, nnz_per_row=2, hidden=8, n_harmonics=8),
     "disjoint supports"),
    (dict(weights="orthogonal", n_patterns=2, k=8, nnz_per_row=2, hidden=6, n_harmonics=8),
     "K <= hidden <= n_harmonics"),
]

# (preset, nnz_per_row, property of each routing row's magnitudes)
PRESET_SHAPES = [
    ("concentrated", 6, lambda m: 1 <= np.sum(m > 1.0) <= 2 and np.sum(m < 0.2) >= 4),
    ("balanced", 6, lambda m: m.max() / m.min() < 1.3),
    ("dense", 6, lambda m: m.max() < 0.4),
    ("random", 6, lambda m: np.all(m > 0)),
]


@pytest.mark.parametrize("kwargs, text", BAD)
def test_bad_parameters_say_what_was_expected_and_got(kwargs, text):
    with pytest.raises(ValueError, match="expected") as err:
        make_chain(**kwargs)
    assert text in str(err.value)


@pytest.mark.parametrize("preset, nnz, shape_ok", PRESET_SHAPES)
def test_presets_shape_the_routing_rows(preset, nnz, shape_ok):
    chain = make_chain(preset, n_patterns=10, k=20, nnz_per_row=nnz, seed=3)
    for row in chain.R:
        mags = np.abs(row[row != 0])
        assert mags.size == (20 if preset == "dense" else nnz)  # dense fills every entry
        assert shape_ok(mags), (preset, mags)


def test_dense_has_the_most_nonzeros_and_the_smallest_magnitudes():
    """The deck: dense has "the highest nonzero count and the lowest individual magnitude"."""
    chains = {p: make_chain(p, n_patterns=8, k=24, nnz_per_row=3, seed=s)
              for p in PRESETS for s in [0]}
    nnz = {p: np.count_nonzero(c.R, axis=1) for p, c in chains.items()}
    mean_mag = {p: np.abs(c.R[c.R != 0]).mean() for p, c in chains.items()}
    others = [p for p in PRESETS if p != "dense"]
    assert all(nnz["dense"].min() > nnz[p].max() for p in others), nnz
    assert all(mean_mag["dense"] < mean_mag[p] for p in others), mean_mag
    assert chains["dense"].spec.row_nnz == 24
    cost = chains["dense"].cost_table().set_index("column")
    assert cost.loc["propagate", "actual_ops"] == 12 * 24  # nothing to skip in a dense row


def test_columns_have_the_documented_shapes_and_meaning():
    chain = make_chain("balanced", n_phases=10, n_patterns=4, k=12, nnz_per_row=3, hidden=7,
                       n_harmonics=5, activation="relu", seed=1)
    cols = chain.forward(6)
    assert list(cols) == list(COLUMNS)
    assert {c: v.shape for c, v in cols.items()} == {
        "clock": (10,), "lookup": (4,), "select": (12,), "sparse": (12,), "activation": (12,),
        "propagate": (7,), "assemble": (5,)}
    p = chain.lut[6]
    assert p == 6 % 4 and cols["clock"][6] == 1 and cols["lookup"][p] == 1
    np.testing.assert_array_equal(cols["select"], chain.R[p])          # the one-hot pick
    assert np.count_nonzero(cols["sparse"]) == 3                        # the dice
    np.testing.assert_array_equal(cols["activation"], np.maximum(chain.R[p], 0))
    np.testing.assert_allclose(cols["assemble"], chain.M @ chain.W @ np.maximum(chain.R[p], 0))


def test_sigmoid_keeps_zero_at_zero_and_changes_only_the_nonzeros():
    chain = make_chain(activation="sigmoid", seed=2)
    x = chain.forward(0)["sparse"]
    a = chain.forward(0)["activation"]
    assert np.all(a[x == 0] == 0)
    np.testing.assert_allclose(a[x != 0], 1 / (1 + np.exp(-x[x != 0])))


def test_forward_all_stacks_forward():
    chain = make_chain("random", n_phases=9, n_patterns=5, activation="sigmoid", seed=4)
    allc = chain.forward_all()
    for t in range(9):
        one = chain.forward(t)
        for c in COLUMNS:
            np.testing.assert_allclose(allc[c][t], one[c], atol=1e-12)


def test_graph_has_a_node_per_entry_and_an_edge_per_nonzero():
    chain = make_chain(n_phases=6, n_patterns=3, k=10, nnz_per_row=2, hidden=4, n_harmonics=3)
    g = chain.to_graph()
    assert g.n_nodes == 6 + 3 + 10 * 3 + 4 + 3
    used = int(chain.support_mask.sum())
    assert g.n_edges == 6 + np.count_nonzero(chain.R) + 2 * used + 4 * 10 + 3 * 4
    assert np.all(g.weight != 0)


def test_graph_forward_does_not_use_the_pipeline():
    # Corrupt the pipeline's matrices after building the graph: the graph must not follow.
    chain = make_chain(seed=5)
    g = chain.to_graph()
    before = graph_forward(g, 2)["assemble"].copy()
    chain.W = chain.W * 0
    np.testing.assert_array_equal(graph_forward(g, 2)["assemble"], before)
    assert np.all(chain.forward(2)["assemble"] == 0)


@settings(max_examples=60, deadline=None)
@given(preset=st.sampled_from(PRESETS), activation=st.sampled_from(sorted(ACTIVATIONS)),
       n_phases=st.integers(1, 20), n_patterns=st.integers(1, 8), k=st.integers(1, 16),
       nnz=st.integers(1, 16), hidden=st.integers(1, 10), f=st.integers(1, 8),
       seed=st.integers(0, 2**32 - 1))
def test_pipeline_equals_graph_for_random_configurations(preset, activation, n_phases,
                                                         n_patterns, k, nnz, hidden, f, seed):
    nnz = min(nnz, k)
    chain = make_chain(preset, n_phases, n_patterns, k, nnz, hidden, f, activation, seed)
    diff = pipeline_graph_difference(chain)
    assert diff.shape == (n_phases,)
    assert diff.max() <= 1e-12


def test_chain_from_dict_ignores_unknown_keys_and_is_seeded():
    a = chain_from_dict({"preset": "dense", "seed": 9, "page": "generator"})
    b = make_chain("dense", seed=9)
    np.testing.assert_array_equal(a.R, b.R)
    assert not np.array_equal(make_chain("dense", seed=10).R, b.R)


def test_phase_table_and_cost_table():
    chain = make_chain(n_phases=5, n_patterns=5, k=8, nnz_per_row=2, hidden=3, n_harmonics=4)
    table = chain.phase_table()
    assert list(table["phase"]) == [0, 1, 2, 3, 4]
    assert set(table["nnz"]) == {2}
    assert {"act_0", "act_7", "y_1", "y_4", "max_abs_pipeline_minus_graph"} <= set(table.columns)
    cost = chain.cost_table().set_index("column")
    assert cost.loc["propagate", "dense_ops"] == 3 * 8 and cost.loc["propagate", "actual_ops"] == 3 * 2
    assert cost.loc["select", "actual_ops"] == 1  # the one-hot pick is O(1)


def test_wav_is_mono_16_bit_and_tone_follows_the_amplitudes():
    data = to_wav_bytes([1.0, 0.0, 0.5], f0=200, sample_rate=8000, seconds=0.25)
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 8000, 2000)
        pcm = np.frombuffer(w.readframes(2000), dtype="<i2")
    assert 0.85 < np.abs(pcm).max() / 32767 <= 0.9 + 1e-4
    spectrum = np.abs(np.fft.rfft(pcm.astype(float)))
    freqs = np.fft.rfftfreq(pcm.size, 1 / 8000)
    peaks = set(np.round(freqs[np.argsort(spectrum)[-2:]]).astype(int))
    assert peaks == {200, 600}  # harmonics 1 and 3 carry the energy
    silent = to_wav_bytes([0.0, 0.0])
    with wave.open(io.BytesIO(silent)) as w:
        assert not np.any(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"))


def test_waveform_rejects_bad_amplitudes():
    with pytest.raises(ValueError, match="expected a non-empty vector"):
        waveform([])
    with pytest.raises(ValueError, match="expected"):
        waveform([np.nan, 1.0])
    t, s = waveform([2.0], f0=100, sample_rate=1000, seconds=0.01)
    np.testing.assert_allclose(s, 2 * np.sin(2 * np.pi * 100 * t))
