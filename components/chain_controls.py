"""The chain's parameters as controls, shared by /generator and /scanner.

The scanner receives the generator's chain through URL query parameters
(``/scanner?preset=dense&k=24&...``): ``chain_query`` writes them, ``params_from_query``
reads them back (unknown keys dropped, unreadable values left at their defaults; the
engine validates the rest and the page shows its message).
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from dash import ClientsideFunction, Input, Output, State, clientside_callback, dcc, html

from components.layout import labelled
from engine.chain.generator import ACTIVATIONS, PRESETS

CHAIN_DEFAULTS: dict[str, Any] = {
    "preset": "balanced", "n_phases": 16, "n_patterns": 8, "k": 24, "nnz_per_row": 3,
    "hidden": 12, "n_harmonics": 6, "activation": "tanh", "seed": 0,
}
# The page's ranges (smaller than the engine's, so every node of the graph can be drawn).
PAGE_LIMITS = {"n_phases": (1, 64), "n_patterns": (1, 32), "k": (1, 64), "nnz_per_row": (1, 64),
               "hidden": (1, 32), "n_harmonics": (1, 16), "seed": (0, 10**6)}
NUMBER_LABELS = {
    "n_phases": ("T phases", "clock ticks per cycle"),
    "n_patterns": ("P patterns", "rows of the routing matrix R"),
    "k": ("K entries", "length of the sparse vector"),
    "nnz_per_row": ("nonzeros per row", "dice per pattern (<= K; dense fills all K)"),
    "hidden": ("H hidden", "rows of W"),
    "n_harmonics": ("F harmonics", "rows of M, tones of the output"),
    "seed": ("seed", "all randomness"),
}
PRESET_HELP = {
    "concentrated": "one or two heavy entries per row",
    "balanced": "roughly uniform weights",
    "dense": "every entry nonzero, all small",
    "random": "seeded gaussian",
}
NUMBER_KEYS = tuple(NUMBER_LABELS)


def control_id(prefix: str, key: str) -> str:
    return f"{prefix}-{key.replace('_', '-')}"


def chain_controls(prefix: str, values: dict | None = None) -> list:
    """Preset and activation radio buttons, then a number box per size; ids ``{prefix}-{key}``."""
    v = {**CHAIN_DEFAULTS, **(values or {})}
    out = [
        labelled("Pattern dictionary", dcc.RadioItems(
            id=control_id(prefix, "preset"), value=v["preset"], inline=True,
            options=[{"label": p, "value": p, "title": PRESET_HELP[p]} for p in PRESETS],
            className="radio-inline"), help="the deck's three patterns, or seeded random"),
        labelled("Activation", dcc.RadioItems(
            id=control_id(prefix, "activation"), value=v["activation"], inline=True,
            options=list(ACTIVATIONS), className="radio-inline"),
            help="applied to the nonzeros only"),
    ]
    for key in NUMBER_KEYS:
        lo, hi = PAGE_LIMITS[key]
        label, help_text = NUMBER_LABELS[key]
        out.append(labelled(label, dcc.Input(
            id=control_id(prefix, key), type="number", min=lo, max=hi, step=1, value=v[key],
            debounce=True, className="num-input"), help=help_text))
    return out


def chain_inputs(prefix: str) -> list[tuple[str, str]]:
    """(id, "value") for every chain control, in ``CHAIN_DEFAULTS`` order."""
    return [(control_id(prefix, key), "value") for key in CHAIN_DEFAULTS]


def chain_params(*values: Any) -> dict[str, Any]:
    """Control values (in ``CHAIN_DEFAULTS`` order) -> make_chain keyword arguments.

    Sizes beyond the page's limits are refused here with the engine's wording.
    """
    params = dict(zip(CHAIN_DEFAULTS, values))
    for key, (lo, hi) in PAGE_LIMITS.items():
        val = params.get(key)
        if isinstance(val, (int, float)) and not isinstance(val, bool) and not lo <= val <= hi:
            raise ValueError(f"{key}: expected an integer in [{lo}, {hi}] on this page, got {val!r}")
    return params


def chain_query(params: dict) -> str:
    """``?preset=...&k=...`` for a link to another page with the same chain."""
    return "?" + urlencode({k: params[k] for k in CHAIN_DEFAULTS if k in params})


TRAIN_KEYS = ("target", "steps", "lr", "custom")


def train_query(trained: dict | None) -> str:
    """``&target=...&steps=...`` for a trained chain (empty for the seeded weights)."""
    if not trained:
        return ""
    return "&" + urlencode({k: trained[k] for k in TRAIN_KEYS if trained.get(k) not in (None, "")})


def train_from_query(query: dict) -> dict[str, Any] | None:
    """The training settings a link carries (with the link's chain parameters), or None
    (the seeded weights); the engine validates them when it trains."""
    query = query or {}
    if not isinstance(query.get("target"), str):
        return None
    out: dict[str, Any] = {"target": query["target"], "custom": query.get("custom", ""),
                           "params": params_from_query(query)}
    for key, cast in (("steps", int), ("lr", float)):
        try:
            out[key] = cast(query.get(key))
        except (TypeError, ValueError):
            return None
    return out


def params_from_query(query: dict) -> dict[str, Any]:
    """Chain parameters from URL query values (strings); what cannot be read keeps its default."""
    out = dict(CHAIN_DEFAULTS)
    for key, raw in (query or {}).items():
        if key not in CHAIN_DEFAULTS or not isinstance(raw, str):
            continue
        if key in NUMBER_KEYS:
            try:
                out[key] = int(raw)
            except ValueError:
                continue
        elif key == "preset" and raw in PRESETS:
            out[key] = raw
        elif key == "activation" and raw in ACTIVATIONS:
            out[key] = raw
    return out


def maybe_trained(chain, params: dict, trained: dict | None):
    """The trained chain when a training (``{"params", "target", "steps", "lr", "custom"}``)
    matches these chain parameters, else ``chain`` as it is: (chain, a sentence saying which
    weights are drawn, the training used or None). Trained from the pure cache."""
    from engine.chain.training import cached_trained_chain

    if not trained or dict(trained.get("params") or {}) != dict(params) \
            or chain.spec.weights != "gaussian":
        return chain, "Drawing the seeded weights.", None
    got, losses = cached_trained_chain(params, trained["target"], trained["steps"], trained["lr"],
                                       trained.get("custom", ""))
    return got, (f"Drawing the trained weights: target {trained['target']}, {trained['steps']} "
                 f"steps, loss {losses[0]:.3g} -> {losses[-1]:.3g}."), trained


TPS_CHOICES = (1, 2, 5, 10, 20)


def clock_row(prefix: str, *extra) -> html.Div:
    """A page's clock: play, one step back / forward, the rate, and the phase line.

    The clock itself runs in the browser (assets/generator.js: ``Clock``); ``register_clock``
    wires these controls to it.
    """
    return html.Div([
        html.Button("Play", id=f"{prefix}-play", className="btn btn-primary", n_clicks=0),
        html.Button("< step", id=f"{prefix}-back", className="btn", n_clicks=0, title="one phase back"),
        html.Button("step >", id=f"{prefix}-fwd", className="btn", n_clicks=0, title="one phase forward"),
        html.Div([html.Label("ticks per second", className="control-label"),
                  dcc.RadioItems(id=f"{prefix}-tps", value=5, inline=True, className="radio-inline",
                                 options=[{"label": str(v), "value": v} for v in TPS_CHOICES])],
                 className="gen-tps"),
        html.Div("phase 0 / 0", id=f"{prefix}-phase-text", className="gen-phase-text", role="status"),
        *extra,
    ], className="gen-clock-row")


def register_clock(prefix: str, namespace: str, *render_states: State) -> None:
    """The clock's three browser callbacks, on ``{prefix}-phase`` and ``{prefix}-frames``.

    A step or new frames set the phase; the stored phase is drawn by ``render`` (which
    writes the phase line itself); play / pause and the rate go to the page's clock.
    No tick goes through Dash.
    """
    phase = State(f"{prefix}-phase", "data")
    clientside_callback(ClientsideFunction(namespace, "tick"), Output(f"{prefix}-phase", "data"),
                        Input(f"{prefix}-back", "n_clicks"), Input(f"{prefix}-fwd", "n_clicks"),
                        Input(f"{prefix}-frames", "data"), phase)
    clientside_callback(ClientsideFunction(namespace, "render"),
                        Output(f"{prefix}-phase-text", "children"),
                        Input(f"{prefix}-phase", "data"), State(f"{prefix}-frames", "data"),
                        *render_states)
    clientside_callback(ClientsideFunction(namespace, "play"), Output(f"{prefix}-play", "children"),
                        Input(f"{prefix}-play", "n_clicks"), Input(f"{prefix}-tps", "value"), phase)
