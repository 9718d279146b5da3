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
    (frames, err, elements, eq, cost, cost_cols, phases, phase_cols, stats, href, note, levels,
     level_cols, level_stat, weights_note) = gen.compute(*DEFAULT_VALUES, None)
    assert weights_note == "Drawing the seeded weights."
    assert err is None
    T, P = CHAIN_DEFAULTS["n_phases"], CHAIN_DEFAULTS["n_patterns"]
    assert frames["T"] == T and len(frames["lut"]) == T
    assert set(frames["wav"]) == {str(p) for p in range(P)}
    assert set(frames["pipe"]["values"]) == {str(p) for p in range(P)}
    # graph: a node per entry, a label per layer and, at this size, an edge per nonzero
    g = make_chain(**CHAIN_DEFAULTS).to_graph()
    nodes = [e for e in elements if "source" not in e["data"] and "layer-label" not in e["classes"]]
    labels = [e["data"]["label"] for e in elements if e.get("classes") == "layer-label"]
    assert len(nodes) == g.n_nodes and len(labels) == 7
    assert labels[0].startswith("1 clock\nlevel 0") and labels[6].startswith("7 assemble (M)\nlevel 6")
    assert len([e for e in elements if "source" in e["data"]]) == g.n_edges
    assert note == f"All {g.n_edges} edges are drawn."
    # parallelism: seven levels, a critical path of six steps
    assert [r["level"] for r in levels] == list(range(7)) and "6 steps" in str(level_stat)
    # equality figure: one bar per phase, all at rounding level
    assert len(eq["data"][0]["y"]) == T and max(eq["data"][0]["y"]) <= 1e-12
    assert [r["column"] for r in cost] == ["clock", "lookup", "select", "sparse", "activation",
                                          "propagate", "assemble"]
    assert len(phases) == T and {"phase", "pattern", "nnz"} <= {c["id"] for c in phase_cols}
    assert href.startswith("/scanner?") and params_from_query(
        dict(kv.split("=") for kv in href.split("?")[1].split("&"))) == CHAIN_DEFAULTS


def test_frames_follow_the_chain():
    values = _values(preset="concentrated", activation="relu", k=10, nnz_per_row=2, seed=4)
    frames = gen.compute(*values, None)[0]
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
    assert T + 3 in lit
    assert {T + chain.spec.n_patterns + k for k in np.flatnonzero(chain.R[3])} <= lit
    # another chain brings other element ids (cytoscape cannot re-wire an existing edge)
    assert gen.compute(*DEFAULT_VALUES, None)[0]["gkey"] != key


LARGEST = dict(preset="dense", n_phases=64, n_patterns=32, k=64, nnz_per_row=8, hidden=32,
               n_harmonics=16)


def test_the_largest_graph_is_thinned_and_says_what_is_hidden():
    import json

    out = gen.compute(*_values(**LARGEST), None)
    frames, elements, note = out[0], out[2], out[10]
    g = make_chain(**{**CHAIN_DEFAULTS, **LARGEST}).to_graph()
    edges = [e for e in elements if "source" in e["data"]]
    assert len(edges) < g.n_edges / 4  # 4800 edges: the drawing keeps the strongest
    assert f"of {g.n_edges} edges" in note and "3 select: 1" in note and "(W)" in note
    # every node keeps an input: no drawn node of a later layer looks cut off
    targets = {e["data"]["target"] for e in edges}
    key = frames["gkey"]
    assert all(f"{key}n{n}" in targets for n in range(g.offsets[1], g.n_nodes))
    # the payload stays compact (issue: no response over 1 MB)
    assert len(json.dumps(frames)) + len(json.dumps(elements)) < 1_000_000
    # the lit path only names drawn edges
    drawn = {int(e["data"]["id"].split("e")[-1]) for e in edges}
    assert all(set(a["edges"]) <= drawn for a in frames["active"].values())


def test_wav_of_each_pattern_is_a_playable_tone():
    frames = gen.compute(*DEFAULT_VALUES, None)[0]
    uri = frames["wav"]["0"]
    assert uri.startswith("data:audio/wav;base64,")
    with wave.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as w:
        assert w.getnchannels() == 1 and w.getnframes() > 1000
    assert frames["wav"]["0"] != frames["wav"]["1"]  # the tone changes with the pattern


@pytest.mark.parametrize("change, text", BAD_INPUTS)
def test_bad_inputs_show_a_message_and_change_nothing_else(change, text):
    out = gen.compute(*_values(**change), None)
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


def test_the_callback_declares_one_output_per_returned_value():
    """Calling compute() directly cannot see a missing Output: count the registered ones."""
    from dash._callback import GLOBAL_CALLBACK_MAP

    registered = {**GLOBAL_CALLBACK_MAP, **app.app.callback_map}  # the app takes them over
    key = next(k for k in registered if k.startswith("..gen-frames.data..."))
    assert len(key.strip(".").split("...")) == len(gen.compute(*DEFAULT_VALUES, None))


def test_training_job_then_the_views_draw_the_learned_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    job = gen.plan_training(*DEFAULT_VALUES, "major triad", "", 80, 0.05)
    rows = list(job.rows)
    assert job.total == 81 and [r["step"] for r in rows] == list(range(81))
    assert rows[-1]["loss"] < rows[0]["loss"]
    fig = gen.draw_loss(rows)
    assert fig["data"][0]["y"][0] == rows[0]["loss"] and fig["layout"]["yaxis"]["type"] == "log"
    trained = {"params": dict(CHAIN_DEFAULTS), "target": "major triad", "steps": 80, "lr": 0.05,
               "custom": ""}
    out = gen.compute(*DEFAULT_VALUES, trained)
    seeded = gen.compute(*DEFAULT_VALUES, None)
    assert "trained weights: target major triad, 80 steps" in out[14]
    assert out[0]["pipe"]["R"] != seeded[0]["pipe"]["R"]  # the learned R is drawn ...
    support = lambda R: [[v != 0 for v in row] for row in R]
    assert support(out[0]["pipe"]["R"]) == support(seeded[0]["pipe"]["R"])  # ... on R's support
    assert max(out[3]["data"][0]["y"]) <= 1e-12  # pipeline == graph still
    assert "target=major+triad" in out[9] and "steps=80" in out[9]  # the scanner gets it too
    # a training for other chain parameters is not applied
    other = gen.compute(*_values(seed=3), trained)
    assert other[14] == "Drawing the seeded weights."
    with pytest.raises(ValueError, match="target: expected one of"):
        gen.plan_training(*DEFAULT_VALUES, "chord", "", 80, 0.05)


def test_the_views_come_from_the_pure_cache(tmp_path, monkeypatch):
    from components.figures_chain import generator_views

    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    before = generator_views.cache_info()
    first = gen.compute(*_values(seed=11), None)
    second = gen.compute(*_values(seed=11), None)
    after = generator_views.cache_info()
    assert after.hits >= before.hits + 1 or after.skipped > before.skipped  # off: skipped
    assert first[0] == second[0] and first[2] == second[2]
    assert gen.compute(*_values(seed=12), None)[0]["gkey"] != first[0]["gkey"]  # no collision
