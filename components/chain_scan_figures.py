"""Figures for /scanner: agreement heatmap, hallucinated support, singular values, and the
data of the reverse-pass animation (drawn by assets/generator.js: drawReverse)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from components.figures_chain import drawn_edges, graph_elements, graph_key, hidden_note
from components.figures_common import empty_figure
from components.tables import table_columns
from engine.chain.generator import COLUMN_TITLES, COLUMNS, Chain, make_chain
from engine.runtime.cache import pure_cache

SCAN_GRAPH_PREFIX = "s"  # the scanner's graph ids: a different key from the generator's

AGREE_SCALE = [[0.0, "#0b6b36"], [0.499, "#b9e3c9"], [0.5, "#f3c1c1"], [1.0, "#a61b1b"]]
SUPPORT_SCALE = [[0.0, "#ffffff"], [0.25, "#ffffff"], [0.25, "#b9e3c9"], [0.5, "#b9e3c9"],
                 [0.5, "#c53030"], [0.75, "#c53030"], [0.75, "#f08c00"], [1.0, "#f08c00"]]


def agreement_heatmap(table: pd.DataFrame) -> dict:
    """Phases (rows) x columns (forward order, so the reverse pass reads right to left).

    Colour: log10(rel_error / bound), clipped to [-3, 3]: green within the certified
    bound, red beyond it; a blank cell has no finite bound (hover still gives the error).
    """
    T = int(table["phase"].max()) + 1
    wide = table.pivot(index="phase", columns="column", values="rel_error")[list(COLUMNS)]
    bound = table.pivot(index="phase", columns="column", values="bound")[list(COLUMNS)].to_numpy()
    cos = table.pivot(index="phase", columns="column", values="cosine")[list(COLUMNS)]
    rel = wide.to_numpy()
    finite = np.isfinite(bound)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.maximum(rel, 1e-300) / np.where(finite, np.maximum(bound, 1e-300), 1.0)
    z = np.clip(np.log10(ratio), -3, 3)
    z = np.where(rel <= bound, np.minimum(z, -1e-3), np.maximum(z, 1e-3))
    z = np.where(finite, z, np.nan)
    custom = np.dstack([rel, np.where(finite, bound, -1.0), cos.to_numpy()])
    return {
        "data": [dict(type="heatmap", z=[[None if np.isnan(v) else float(v) for v in row] for row in z],
                      x=[COLUMN_TITLES[c] for c in COLUMNS],
                      y=list(range(T)), zmin=-3, zmax=3, colorscale=AGREE_SCALE,
                      customdata=custom.tolist(), xgap=1, ygap=1, hoverongaps=True,
                      colorbar=dict(title=dict(text="log10(rel. error / bound)", side="right"),
                                    thickness=12),
                      hovertemplate="phase %{y}, %{x}<br>rel. error %{customdata[0]:.3g}"
                                    "<br>bound %{customdata[1]:.3g} (-1: none)"
                                    "<br>cosine %{customdata[2]:.4f}<extra></extra>")],
        "layout": dict(height=max(300, min(640, 120 + 14 * T)), margin=dict(l=60, r=20, t=20, b=70),
                       xaxis=dict(title=dict(text="column (the scanner reads right to left)"), side="bottom"),
                       yaxis=dict(title=dict(text="phase t"), autorange="reversed"),
                       uirevision="agree", plot_bgcolor="#eef0f4"),
    }


def support_heatmap(forward_sparse: np.ndarray, halluc: np.ndarray) -> dict:
    """(T, K): kept support, hallucinated (reverse nonzero where forward zero), missed."""
    state = np.where(halluc == 1, 2, np.where(halluc == -1, 3, np.where(forward_sparse != 0, 1, 0)))
    names = np.array(["zero in both", "support kept", "hallucinated", "missed"])
    T, K = state.shape
    return {
        "data": [dict(type="heatmap", z=state.tolist(), zmin=-0.5, zmax=3.5, colorscale=SUPPORT_SCALE,
                      x=list(range(K)), y=list(range(T)), xgap=1, ygap=1, text=names[state].tolist(),
                      colorbar=dict(tickvals=[0, 1, 2, 3], ticktext=list(names), thickness=12),
                      hovertemplate="phase %{y}, entry k=%{x}: %{text}<extra></extra>")],
        "layout": dict(height=max(260, min(560, 110 + 12 * T)), margin=dict(l=60, r=20, t=20, b=50),
                       xaxis=dict(title=dict(text="k (entry of the sparse vector)")),
                       yaxis=dict(title=dict(text="phase t"), autorange="reversed"), uirevision="support"),
    }


def singular_value_figure(svals: dict[str, np.ndarray]) -> dict:
    colors = {"W": "#2f6fdb", "M": "#f08c00", "M W": "#1f8a4c"}
    data = [dict(type="scatter", mode="lines+markers", name=name, x=list(range(1, s.size + 1)),
                 y=[float(v) for v in np.maximum(s, 1e-300)], line=dict(color=colors.get(name)),
                 hovertemplate=f"{name}: sigma_%{{x}} = %{{y:.3g}}<extra></extra>")
            for name, s in svals.items()]
    return {"data": data,
            "layout": dict(height=300, margin=dict(l=70, r=20, t=20, b=50),
                           xaxis=dict(title=dict(text="index i (largest first)"), dtick=1 if max(
                               s.size for s in svals.values()) <= 20 else None),
                           yaxis=dict(title=dict(text="singular value sigma_i (log scale)"), type="log",
                                      exponentformat="e"),
                           legend=dict(orientation="h", y=1.08))}


def _r(a) -> list:
    return [round(float(v), 5) for v in np.asarray(a).ravel()]


def scan_frames(chain: Chain, fwd: dict[str, np.ndarray], rev: dict[str, np.ndarray],
                table: pd.DataFrame) -> dict:
    """What the reverse-pass animation needs, for every phase: forward and reverse values of
    every column (reverse values clipped at 3x the column's forward scale), per-column
    error, bound (None: no finite bound) and whether the error is within it."""
    T = chain.spec.n_phases
    scale = {c: float(np.max(np.abs(fwd[c]))) or 1.0 for c in COLUMNS}
    # (T, 7) arrays in COLUMNS order: one pandas lookup per cell costs ~100 ms at 64 phases
    wide, bound, agree = (table.pivot(index="phase", columns="column", values=v)
                          .reindex(index=range(T), columns=list(COLUMNS)).to_numpy()
                          for v in ("rel_error", "bound", "agree"))
    phases = []
    for t in range(T):
        phases.append({
            "fwd": [_r(fwd[c][t] / scale[c]) for c in COLUMNS],
            "rev": [_r(np.clip(rev[c][t] / scale[c], -3, 3)) for c in COLUMNS],
            "err": [float(v) for v in wide[t]],
            "bound": [float(v) if np.isfinite(v) else None for v in bound[t]],
            "agree": [bool(v) for v in agree[t]],
        })
    g = chain.to_graph()
    return {"T": T, "titles": [COLUMN_TITLES[c] for c in COLUMNS], "phases": phases,
            "lut": [int(p) for p in chain.lut], "gkey": graph_key(chain, SCAN_GRAPH_PREFIX),
            "offsets": [int(o) for o in g.offsets]}


def phase_transition_figure(rows: list[dict]) -> dict:
    """OMP's success rate over (nonzeros, outputs) at fixed K, from the job's rows, with
    the line where pinv starts to succeed (outputs = K) and the cells not yet computed
    left blank."""
    if not rows:
        return empty_figure("Run the map: each cell is a batch of random sparse recoveries.")
    frame = pd.DataFrame(rows)
    K = int(frame["K"].iloc[0])
    nz = list(range(1, K // 2 + 1))
    outs = list(range(1, K + 1))
    wide = frame.pivot_table(index="nonzeros", columns="outputs", values="omp_success_rate")
    wide = wide.reindex(index=nz, columns=outs)
    z = [[None if pd.isna(v) else float(v) for v in row] for row in wide.to_numpy()]
    pinv = frame[frame["pinv_success_rate"] > 0.5]["outputs"]
    shapes = []
    if len(pinv):
        x = float(pinv.min()) - 0.5
        shapes.append(dict(type="line", x0=x, x1=x, yref="paper", y0=0, y1=1,
                           line=dict(color="#c53030", dash="dash", width=2)))
    return {
        "data": [dict(type="heatmap", z=z, x=outs, y=nz, zmin=0, zmax=1, colorscale="Viridis",
                      colorbar=dict(title=dict(text="OMP success rate", side="right"), thickness=12),
                      hovertemplate="%{y} nonzeros, %{x} outputs: OMP succeeds %{z:.0%}"
                                    "<extra></extra>")],
        "layout": dict(height=370, margin=dict(l=70, r=20, t=40, b=55), shapes=shapes,
                       xaxis=dict(title=dict(text=f"outputs F (equations), K = {K} entries")),
                       yaxis=dict(title=dict(text="nonzeros of the sparse vector")),
                       annotations=[dict(x=float(pinv.min()) - 0.5 if len(pinv) else K, y=1.0,
                                         yref="paper", yanchor="bottom", showarrow=False,
                                         xanchor="right", text="pinv succeeds from here (F >= K)",
                                         font=dict(size=11, color="#c53030"),
                                         bgcolor="rgba(255,255,255,0.9)")],
                       uirevision="pt"),
    }


def _frame(df: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """A table's rows (infinities as blanks) and columns, as DataTable takes them."""
    return df.replace([np.inf, -np.inf], np.nan).to_dict("records"), table_columns(df)


# -- everything /scanner shows for one chain and reverse-pass setting, cached ------------------------
@pure_cache
def scanner_views(params: dict, weights: str, mode: str, lam: float, noise: float,
                  trained: dict | None = None) -> dict:
    """Every view's data for the chain of ``params`` run backwards with ``mode``: plain data
    and figures, deterministic in the arguments (the noise is seeded by the chain's seed),
    so it is kept in the lab's pure cache and clients moving the same controls share it.
    Raises ValueError / TypeError for a chain or setting the engine refuses."""
    from components.chain_controls import maybe_trained
    from engine.chain.scanner import (agreement, column_summary, conditioning, divergence_reasons,
                                      hallucinated_map, noisy_outputs, recovery, scan,
                                      singular_values, vjp_table)

    chain = make_chain(**params, weights=weights)
    chain, weights_note, _ = maybe_trained(chain, params, trained)
    lam = 0.0 if mode != "tikhonov" else lam
    seed = chain.spec.seed
    y = noisy_outputs(chain, noise, seed)
    table = agreement(chain, mode, lam, noise, seed)
    rec = recovery(chain, mode, lam, noise, seed)
    fwd = chain.forward_all()
    rev = scan(chain, y, mode, lam).columns
    drawn, notes = drawn_edges(chain)
    return {
        "table": table, "rec": rec, "vjp": vjp_table(chain, y),
        "why": divergence_reasons(chain, mode, lam, noise, seed),
        "heat": agreement_heatmap(table), "summary": _frame(column_summary(table)),
        "support": support_heatmap(fwd["sparse"], hallucinated_map(chain, mode, lam, noise, seed)),
        "sv": singular_value_figure(singular_values(chain)), "cond": _frame(conditioning(chain)),
        "rec_frame": _frame(rec), "table_frame": _frame(table),
        "frames": scan_frames(chain, fwd, rev, table),
        "elements": graph_elements(chain, reverse=True, prefix=SCAN_GRAPH_PREFIX, edges=drawn),
        "note": hidden_note(notes, chain.to_graph().n_edges, drawn.size),
        "weights_note": weights_note, "T": chain.spec.n_phases,
    }
