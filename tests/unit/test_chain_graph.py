"""engine.chain.graph: the reverse pass as message passing, levels, the critical path."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from engine.chain.generator import ACTIVATIONS, COLUMNS, PRESETS, make_chain
from engine.chain.graph import (UNREACHED, chain_levels, critical_path, graph_reverse, independent,
                                level_table, levels, reverse_graph, reverse_scan_difference)
from engine.chain.scanner import noisy_outputs

# A hand-built DAG:   0 -> 2 -> 4 -> 5        levels: 0:0 1:0 2:1 3:1 4:2 5:3 6:-1 (isolated)
#                     1 -> 3 -> 4             critical path 0/1 -> 2/3 -> 4 -> 5 (3 edges)
#                     0 -> 4 (a shortcut: the longest path still decides)
HAND = dict(n_nodes=7, src=[0, 2, 4, 1, 3, 0], dst=[2, 4, 5, 3, 4, 4])


def test_levels_and_critical_path_of_a_hand_built_graph():
    lv = levels(**HAND)
    assert list(lv) == [0, 0, 1, 1, 2, 3, 0]  # node 6 has no edges: a source at level 0
    lv = levels(**HAND, sources=[0, 1])
    assert list(lv) == [0, 0, 1, 1, 2, 3, UNREACHED]
    path = critical_path(**HAND, sources=[0, 1])
    assert path == [0, 2, 4, 5] and len(path) - 1 == 3
    for a, b in zip(path, path[1:]):  # every step is an edge of the graph
        assert (a, b) in set(zip(HAND["src"], HAND["dst"]))
    assert independent(7, HAND["src"], HAND["dst"], [2, 3])
    assert not independent(7, HAND["src"], HAND["dst"], [0, 4])


def test_a_cycle_and_bad_edges_are_refused():
    with pytest.raises(ValueError, match="expected no cycle"):
        levels(3, [0, 1, 2], [1, 2, 0])
    with pytest.raises(ValueError, match=r"expected node ids in \[0, 2\], got \[0, 5\]"):
        levels(3, [0], [5])


def test_the_chain_has_seven_levels_of_independent_nodes():
    chain = make_chain()
    g = chain.to_graph()
    table = level_table(chain)
    assert list(table["level"]) == list(range(7)) and table.attrs["critical_path"] == 6
    assert list(table["layers"]) == list(COLUMNS)
    assert table["independent"].all()
    used = int(chain.support_mask.sum())
    assert list(table["parallel_nodes"]) == [16, 8, used, used, used, 12, 6]
    # off-support select, sparse and activation nodes never hear from the clock
    assert table.attrs["unreached"] == 3 * (24 - used)
    # the work: dense matrices vs nonzero weights vs messages actually sent
    row = table.set_index("layers").loc["select"]
    assert row["dense_ops"] == 24 * 8 and row["weight_ops"] == 8 * 3 and row["sent_ops"] == 3
    assert (table["sent_ops"] <= table["weight_ops"]).all()
    assert (table["weight_ops"][1:] <= table["dense_ops"][1:]).all()
    path = critical_path(g.n_nodes, g.src, g.dst, sources=range(16))
    assert len(path) == 7 and [chain_levels(chain)[n] for n in path] == list(range(7))


def test_reversing_twice_gives_the_graph_back():
    g = make_chain(seed=2).to_graph()
    rr = reverse_graph(reverse_graph(g))
    assert np.array_equal(rr.src, g.src) and np.array_equal(rr.dst, g.dst)
    assert np.array_equal(rr.edge_layer, g.edge_layer) and np.array_equal(rr.weight, g.weight)


@settings(max_examples=30, deadline=None)
@given(preset=st.sampled_from(PRESETS), activation=st.sampled_from(list(ACTIVATIONS)),
       t=st.integers(1, 12), p=st.integers(1, 8), k=st.integers(1, 20), nnz=st.integers(1, 5),
       h=st.integers(1, 16), f=st.integers(1, 12), noise=st.sampled_from([0.0, 0.3]),
       seed=st.integers(0, 10_000))
def test_reverse_message_passing_equals_the_transpose_products(preset, activation, t, p, k, nnz,
                                                               h, f, noise, seed):
    chain = make_chain(preset, n_phases=t, n_patterns=p, k=k, nnz_per_row=min(nnz, k), hidden=h,
                       n_harmonics=f, activation=activation, seed=seed)
    Y = noisy_outputs(chain, noise, seed)
    diff = reverse_scan_difference(chain, Y)
    assert set(diff) == set(COLUMNS)
    assert max(diff.values()) <= 1e-9, diff


def test_graph_reverse_refuses_a_wrong_output():
    g = make_chain(n_harmonics=6).to_graph()
    with pytest.raises(ValueError, match="expected 6 finite outputs"):
        graph_reverse(g, np.ones(5))
