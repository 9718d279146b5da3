"""/generator callbacks called as plain functions."""
import base64
import io
import wave

import numpy as np
import pytest

import app  # noqa: F401  (registers the pages)
from components.chain_controls import CHAIN_DEFAULTS, chain_query, params_from_query
from engine.chain.generator import make_chain
from pages import generator as gen

DEFAULT_VALUES = tuple(CHAIN_DEFAULTS.values())

# (a change to the defaults, substring of the message shown on the page)
BAD_INPUTS = [
    ({"k": 2}, "expected at most K = 2"),
    ({"n_phases": 0}, "n_phases: expected an integer in [1, 64]"),
    ({"k": 500}, "k: expected an integer in [1, 64] on this page"),
    ({"preset": "nope"}, "preset: expected one of"),
    ({"hidden": None}, "hidden: expected an integer"),
    ({"seed": "x"}, "seed: expected an integer"),
]


def _values(**change):
    return tuple({**CHAIN_DEFAULTS, **change}.values())


def test_compute_returns_frames_for_every_phase_and_the_views():
    frames, err, elements, eq, cost, cost_cols, phases, phase_cols, stats, href = gen.compute(*DEFAULT_VALUES)
    assert err is None
    T, P = CHAIN_DEFAULTS["n_phases"], CHAIN_DEFAULTS["n_patterns"]
    assert frames["T"] == T and len(frames["lut"]) == T
    assert set(frames["wav"]) == {str(p) for p in range(P)}
    assert set(frames["pipe"]["values"]) == {str(p) for p in range(P)}
    # graph: a node per entry and an edge per nonzero
    nodes = [e for e in elements if "source" not in e["data"]]
    assert len(nodes) == make_chain(**CHAIN_DEFAULTS).to_graph().n_nodes
    # equality figure: one bar per phase, all at rounding level
    assert len(eq["data"][0]["y"]) == T and max(eq["data"][0]["y"]) <= 1e-12
    assert [r["column"] for r in cost] == ["clock", "lookup", "select", "sparse", "activation",
                                          "propagate", "assemble"]
    assert len(phases) == T and {"phase", "pattern", "nnz"} <= {c["id"] for c in phase_cols}
    assert href.startswith("/scanner?") and params_from_query(
        dict(kv.split("=") for kv in href.split("?")[1].split("&"))) == CHAIN_DEFAULTS


def test_frames_follow_the_chain():
    values = _values(preset="concentrated", activation="relu", k=10, nnz_per_row=2, seed=4)
    frames = gen.compute(*values)[0]
    chain = make_chain(**dict(zip(CHAIN_DEFAULTS, values)))
    allc = chain.forward_all()
    for t in range(chain.spec.n_phases):
        p = str(chain.lut[t])
        np.testing.assert_allclose(frames["pipe"]["values"][p]["activation"], allc["activation"][t], atol=1e-6)
        np.testing.assert_allclose(frames["harm_y"][p], allc["assemble"][t], atol=1e-6)
    assert frames["pipe"]["captions"][4] == "relu on nonzeros"
    # the lit path holds the pattern node and the nonzero dice of that pattern
    T = chain.spec.n_phases
    key = frames["gkey"]
    lit = set(frames["active"]["3"]["nodes"])
    assert f"#{key}n{T + 3}" in lit
    assert {f"#{key}n{T + chain.spec.n_patterns + k}" for k in np.flatnonzero(chain.R[3])} <= lit
    # another chain brings other element ids (cytoscape cannot re-wire an existing edge)
    assert gen.compute(*DEFAULT_VALUES)[0]["gkey"] != key


def test_wav_of_each_pattern_is_a_playable_tone():
    frames = gen.compute(*DEFAULT_VALUES)[0]
    uri = frames["wav"]["0"]
    assert uri.startswith("data:audio/wav;base64,")
    with wave.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as w:
        assert w.getnchannels() == 1 and w.getnframes() > 1000
    assert frames["wav"]["0"] != frames["wav"]["1"]  # the tone changes with the pattern


@pytest.mark.parametrize("change, text", BAD_INPUTS)
def test_bad_inputs_show_a_message_and_change_nothing_else(change, text):
    out = gen.compute(*_values(**change))
    assert text in str(out[1].children)
    assert out[1].className == "msg msg-error"
    assert all(o is gen.dash.no_update for i, o in enumerate(out) if i != 1)


def test_layout_reads_the_chain_from_the_url_query():
    lay = gen.layout(preset="dense", k="12", activation="relu", bogus="1", seed="not-a-number")
    text = str(lay)
    assert "'dense'" in text and "'relu'" in text
    params = params_from_query({"preset": "dense", "k": "12", "seed": "zz"})
    assert params["k"] == 12 and params["seed"] == CHAIN_DEFAULTS["seed"]
    assert chain_query(params).startswith("?preset=dense")
