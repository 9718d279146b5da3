"""/scanner callbacks called as plain functions."""
import pytest

import app  # noqa: F401  (registers the pages)
from components.chain_controls import CHAIN_DEFAULTS
from engine.chain.generator import make_chain
from engine.chain.scanner import SCAN_PRESETS
from pages import scanner as sc

# (reverse settings: mode, lam, noise), substring of the message
BAD = [
    (("adjoint", 0.0, 0.0), "mode: expected one of"),
    (("tikhonov", 0, 0.0), "expected a ridge parameter > 0"),
    (("tikhonov", None, 0.0), "lam: expected a number"),
    (("pinv", 0.0, -1), "noise: expected a number in [0.0, 100.0]"),
]


def _run(chain=None, weights="gaussian", mode="transpose", lam=0.01, noise=0.0, trained=None):
    values = list((chain or CHAIN_DEFAULTS).values()) if isinstance(chain or CHAIN_DEFAULTS, dict) else list(chain)
    return sc.compute(*values, weights, mode, lam, noise, trained)


def _agree(out) -> float:
    return sum(r["agree"] for r in out[14]) / len(out[14])


def test_presets_fill_the_chain_controls():
    out = sc.apply_preset("orthogonal + identity")
    assert out[-1] == "orthogonal" and out[7] == "identity"
    assert sc.apply_preset(sc.CUSTOM) == [sc.dash.no_update] * (len(CHAIN_DEFAULTS) + 1)


def test_orthogonal_preset_agrees_everywhere_and_says_so():
    *chain, weights = sc.apply_preset("orthogonal + identity")
    out = _run(chain, weights)
    assert out[0] is None
    assert _agree(out) == 1.0
    assert "Nothing is lost" in str(out[3])
    assert all(r["correct"] for r in out[11])
    assert len(out[14]) == SCAN_PRESETS["orthogonal + identity"]["n_phases"] * 7
    assert all(r["bound"] < 1e-8 for r in out[14])
    assert "equals the vector-Jacobian product" in str(out[2]) and "It does not" not in str(out[2])


def test_relu_wide_preset_diverges_and_says_why():
    *chain, weights = sc.apply_preset("relu + wide W")
    out = _run(chain, weights)
    sparse = [r for r in out[14] if r["column"] == "sparse"]
    assert min(r["rel_error"] for r in sparse) > 0.1 and min(r["bound"] for r in sparse) > 0.1
    # relu is not the VJP's sigma': the claim is not made left of the activation
    assert "It does not for sparse" in str(out[2])
    why = str(out[3])
    assert "rank 8 < 24" in why and "relu set" in why


def test_noise_widens_the_bound():
    *chain, weights = sc.apply_preset("orthogonal + identity")
    bounds = [max(r["bound"] for r in _run(chain, weights, noise=n)[14]) for n in (0.0, 0.1, 0.5)]
    assert bounds[0] < 1e-8 < bounds[1] < bounds[2]


def test_omp_mode_on_the_sparse_preset():
    *chain, weights = sc.apply_preset("sparse recovery (F < K)")
    omp, pinv = _run(chain, weights, mode="omp"), _run(chain, weights, mode="pinv")
    err = lambda out: max(r["rel_error"] for r in out[14] if r["column"] == "sparse")
    assert err(omp) < 1e-8 < 0.1 < err(pinv)
    assert all(r["correct"] for r in omp[11])


def test_modes_change_the_result_and_frames_cover_every_phase():
    t_out = _run(mode="transpose")
    p_out = _run(mode="pinv")
    k_out = _run(mode="tikhonov", lam=0.5)
    o_out = _run(mode="omp")
    assert t_out[14] != p_out[14] != k_out[14] != o_out[14]
    frames = p_out[16]
    assert frames["T"] == CHAIN_DEFAULTS["n_phases"] and len(frames["phases"]) == frames["T"]
    assert all(len(ph["agree"]) == 7 for ph in frames["phases"])
    # singular values: three lines (W, M, M W)
    assert [d["name"] for d in p_out[8]["data"]] == ["W", "M", "M W"]


@pytest.mark.parametrize("settings, text", BAD)
def test_bad_settings_show_a_message(settings, text):
    mode, lam, noise = settings
    out = _run(mode=mode, lam=lam, noise=noise)
    assert text in str(out[0].children)
    assert all(o is sc.dash.no_update for o in out[1:])


def test_orthogonal_weights_that_do_not_fit_are_explained():
    out = _run(weights="orthogonal")  # defaults: K = 24 > H = 12
    assert "K <= hidden <= n_harmonics" in str(out[0].children)


def test_layout_takes_the_chain_from_the_url():
    text = str(sc.layout(preset="concentrated", k="10", activation="sigmoid"))
    assert "'concentrated'" in text and "'sigmoid'" in text and "value=10" in text


def test_the_graph_view_is_the_generators_graph_reversed():
    out = _run()
    elements, frames = out[17], out[16]
    g = make_chain(**CHAIN_DEFAULTS).to_graph()
    key = frames["gkey"]
    nodes = {e["data"]["id"]: e for e in elements if "source" not in e["data"]}
    edges = [e for e in elements if "source" in e["data"]]
    assert len(edges) == g.n_edges and "All" in out[18]
    layer = lambda node_id: int(nodes[node_id]["classes"].split()[0][1:])  # "L3" -> 3
    # every wire flows right to left: from a later layer to an earlier one
    assert all(layer(e["data"]["source"]) > layer(e["data"]["target"]) for e in edges)
    assert all(e["data"]["id"].startswith(key) for e in edges)
    # same positions as the generator's drawing of the same chain
    from components.figures_chain import graph_elements
    gen_pos = {e["data"]["id"][len(key):]: e["position"] for e in graph_elements(
        make_chain(**CHAIN_DEFAULTS)) if "position" in e}
    assert all(gen_pos[i[len(key):]] == e["position"] for i, e in nodes.items())
    # the frames colour the nodes: per phase, per column, a verdict and a bound
    assert frames["offsets"] == list(g.offsets)
    assert all(len(ph["bound"]) == 7 for ph in frames["phases"])


def test_the_phase_map_job_plans_every_cell_and_refuses_bad_input():
    job = sc.plan_phase_map(8, 2)
    assert job.total == 4 * 8 and job.params["K"] == 8
    rows = list(job.rows)
    assert len(rows) == job.total and {"omp_success_rate", "pinv_success_rate"} <= set(rows[0])
    fig = sc.draw_phase_map(rows)
    assert len(fig["data"][0]["z"]) == 4 and len(fig["data"][0]["z"][0]) == 8
    with pytest.raises(ValueError, match="K entries: expected an integer in"):
        sc.plan_phase_map(1, 2)
    assert "Run the map" in str(sc.draw_phase_map([]).layout.annotations[0].text)


def test_the_callback_declares_one_output_per_returned_value():
    from dash._callback import GLOBAL_CALLBACK_MAP

    registered = {**GLOBAL_CALLBACK_MAP, **app.app.callback_map}  # the app takes them over
    key = next(k for k in registered if k.startswith("..scan-error.children..."))
    assert len(key.strip(".").split("...")) == len(_run()) == sc.N_OUT


def test_the_scanner_runs_a_trained_chain_backwards_from_its_link():
    from components.chain_controls import train_from_query

    query = {"target": "arpeggio", "steps": "60", "lr": "0.05", "custom": ""}
    trained = train_from_query(query)
    assert trained["params"] == CHAIN_DEFAULTS and trained["steps"] == 60
    out = _run(trained=trained)
    assert out[0] is None and "trained weights: target arpeggio, 60 steps" in out[19]
    seeded = _run()
    assert "seeded weights" in seeded[19] and seeded[14] != out[14]
    # other chain parameters than the link's: the seeded weights, and the page says so
    other = _run(chain={**CHAIN_DEFAULTS, "seed": 5}, trained=trained)
    assert "seeded weights" in other[19]
