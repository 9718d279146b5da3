"""Figures of the /structured-sparsity page: pattern heatmaps, timing and accuracy plots.

Every function takes plain data (numpy arrays, DataFrames or rows) and returns a
plotly Figure; nothing here computes or measures.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.figures_common import (add_points, colorscale, empty_figure, label_log_axis,
                                       subplot_grid, unvalidated_figure)
from engine.bench.bsr_results import TARGET_BLOCK
FONT = dict(family="Inter, Segoe UI, system-ui, sans-serif", size=12)
PALETTE = ["#2f6fdb", "#d9480f", "#1f8a4c", "#7048e8", "#c2255c", "#0b7285", "#e67700",
           "#5c7cfa", "#495057", "#a61e4d"]
OK = ("ok", "reused")


def pattern_titles(view) -> list[str]:
    """The subplot titles of pattern_heatmaps: each pattern's zeros and how the whole
    matrix is drawn (entry by entry, or cells of f x f), then each zoomed corner."""
    info = {r["pattern"]: r for r in view.rows}
    n, f, z = view.size, view.factor, view.zoom[0].shape[0]
    whole = (f"whole {n} x {n}" if f == 1 else
             f"{n} x {n} as {view.overview[0].shape[0]} x {view.overview[0].shape[1]} cells of {f} x {f}")
    return ([f"{lab}: {100 * info[lab]['sparsity']:.1f} % zeros<br>{whole}" for lab in view.labels]
            + [f"{lab}: top-left {z} x {z} entries" for lab in view.labels])


def pattern_heatmaps(view) -> go.Figure:
    """The same n x n matrix pruned by each pattern (an engine.sparse.pruning.PatternView).

    Top row: the whole matrix, as the kept |w| when it fits in VIEW_MAX_CELLS cells a
    side, else downsampled by block density (the fraction kept per f x f cell, said in
    the titles and colour bar). Bottom row: the top-left corner entry by entry, where
    the shape of each pattern shows. Arrays go out as float32 (plotly's binary encoding).
    Built as plain dicts on a cached subplot grid (figures_common.subplot_grid): the
    figure make_subplots and per-panel updates give, without validating every property.
    """
    labels, f = list(view.labels), view.factor
    layout = subplot_grid(2, len(labels), pattern_titles(view), horizontal_spacing=0.05, vertical_spacing=0.14,
                          row_heights=[0.5, 0.5])
    wmax = view.w_max or 1.0
    blues = colorscale("Blues")
    traces = []
    for i, lab in enumerate(labels, start=1):
        over_bar = "|w| kept" if f == 1 else f"fraction kept per {f}x{f} cell"
        last = i == len(labels)
        traces.append(dict(
            type="heatmap", z=view.overview[i - 1], zmin=0, zmax=wmax if f == 1 else 1.0, colorscale=blues,
            showscale=last, colorbar=dict(title=dict(text=over_bar, side="right"), thickness=12, len=0.42, y=0.79),
            hovertemplate=("row %{y}, col %{x}: |w| %{z:.3g}" if f == 1 else
                           f"rows %{{y}}x{f}.., cols %{{x}}x{f}..: %{{z:.0%}} kept") + f"<extra>{lab}</extra>",
            xaxis="x" if i == 1 else f"x{i}", yaxis="y" if i == 1 else f"y{i}"))
        k = len(labels) + i
        traces.append(dict(
            type="heatmap", z=view.zoom[i - 1], zmin=0, zmax=wmax, colorscale=blues, showscale=last,
            colorbar=dict(title=dict(text="|w| kept", side="right"), thickness=12, len=0.42, y=0.21),
            xgap=1, ygap=1, hovertemplate="row %{y}, col %{x}: |w| %{z:.3g}<extra>" + lab + "</extra>",
            xaxis=f"x{k}", yaxis=f"y{k}"))
        for r, unit in ((1, "" if f == 1 else f" / {f}"), (2, "")):
            k = (r - 1) * len(labels) + i
            suffix = "" if k == 1 else str(k)
            layout[f"xaxis{suffix}"].update(title=dict(text="column" + unit), showgrid=False)
            layout[f"yaxis{suffix}"].update(autorange="reversed", showgrid=False, scaleanchor=f"x{suffix}",
                                            **(dict(title=dict(text="row" + unit)) if i == 1 else {}))
    for note in layout["annotations"]:
        note["font"]["size"] = 12
    layout.update(height=780, font=FONT, margin=dict(l=50, r=30, t=70, b=40), plot_bgcolor="white")
    return unvalidated_figure(traces, layout)


def _series_label(row: pd.Series) -> str:
    if row["backend"] in ("torch-bsr", "lab-bsr") or str(row.get("format", "")) == "bsr":
        return f"{row['backend']} b{int(row['block'])}"
    return f"{row['backend']} (blocks of {int(row['block'])})"


def _sources(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(frame["source"])) if "source" in frame else ["this run"]


def speedup_figure(frame: pd.DataFrame) -> go.Figure:
    """Speedup over dense against sparsity for each backend and block size (block part).

    frame: sweep rows (+ optional "source" column: one panel per source, side by side).
    The dashed line is the theoretical 1 / density; 1.0 is break-even.
    """
    ok = _ok(frame, part="block")
    if ok.empty:
        return empty_figure("No block-sparse timings yet: run the sweep (or pick a reference).")
    sources = _sources(ok)
    fig = make_subplots(rows=1, cols=len(sources), subplot_titles=sources, shared_yaxes=True,
                        horizontal_spacing=0.06)
    colors: dict[str, str] = {}
    for c, src in enumerate(sources, start=1):
        part = ok[ok["source"] == src] if "source" in ok else ok
        part = part[part["backend"] != "torch-dense"]
        if part.empty:  # e.g. a run cancelled after its dense row: an empty panel, titled
            continue
        part = part.assign(series=[_series_label(r) for _i, r in part.iterrows()])
        for series, g in part.groupby("series", sort=True):
            # x is the measured fraction of zeros (random tiles miss the target a little),
            # so the theoretical 1/density line is exact for every point
            g = g.assign(measured=1 - pd.to_numeric(g["density"], errors="coerce"))
            g = g.groupby("sparsity", as_index=False)[["measured", "speedup"]].median()
            color = colors.setdefault(series, PALETTE[len(colors) % len(PALETTE)])
            fig.add_trace(go.Scatter(x=g["measured"], y=g["speedup"], mode="lines+markers",
                                     name=series, legendgroup=series, showlegend=series not in
                                     [t.name for t in fig.data], line=dict(color=color)),
                          row=1, col=c)
        measured = 1 - pd.to_numeric(ok["density"], errors="coerce")
        s = np.linspace(float(measured.min()), float(measured.max()), 40)
        fig.add_trace(go.Scatter(x=s, y=1 / (1 - s), mode="lines", name="theoretical 1/density",
                                 legendgroup="theory", showlegend=(c == 1),
                                 line=dict(color="#868e96", dash="dash")), row=1, col=c)
        fig.add_hline(y=1.0, line=dict(color="#c53030", width=1), row=1, col=c)
        fig.update_xaxes(title_text="sparsity (measured fraction of zeros)", row=1, col=c)
    fig.update_yaxes(type="log", title_text="speedup over dense (x, log)", row=1, col=1)
    fig.update_layout(height=440, font=FONT, margin=dict(l=60, r=20, t=40, b=50),
                      legend=dict(orientation="v", x=1.02, y=1), plot_bgcolor="white")
    return fig


def efficiency_figure(frame: pd.DataFrame) -> go.Figure:
    """Share of the theoretical speedup achieved (speedup x density) per block size, block backends."""
    ok = _ok(frame, part="block")
    ok = ok[ok["backend"] != "torch-dense"] if not ok.empty else ok
    if ok.empty:
        return empty_figure("No timings yet.")
    ok = ok.assign(efficiency=pd.to_numeric(ok["speedup"]) / pd.to_numeric(ok["theoretical"]))
    if "source" not in ok:
        ok = ok.assign(source="this run")
    sources = _sources(ok)
    fig = go.Figure()
    for i, ((src, backend), g) in enumerate(ok.groupby(["source", "backend"], sort=True)):
        g = g.groupby("block", as_index=False)["efficiency"].median().sort_values("block")
        name = backend if len(sources) == 1 else f"{backend} ({src})"
        fig.add_trace(go.Bar(x=[str(int(b)) for b in g["block"]], y=100 * g["efficiency"], name=name,
                             marker_color=PALETTE[i % len(PALETTE)],
                             hovertemplate="block %{x}: %{y:.1f} %<extra>" + name + "</extra>"))
    fig.update_layout(barmode="group", height=380, font=FONT, plot_bgcolor="white",
                      margin=dict(l=60, r=20, t=30, b=50),
                      xaxis=dict(title="block size b (b x b tiles)", type="category",
                                 categoryorder="array",
                                 categoryarray=[str(int(b)) for b in sorted(ok["block"].unique())]),
                      yaxis=dict(title="speedup / theoretical (%), median over sparsities"))
    return fig


def break_even_figure(be: pd.DataFrame) -> go.Figure:
    """Break-even sparsity per block size and backend; backends never faster are listed, not drawn."""
    if be is None or be.empty:
        return empty_figure("No break-even yet: run the sweep.")
    be = be.copy()
    if "source" not in be:
        be["source"] = "this run"
    sources = list(dict.fromkeys(be["source"]))
    fig = go.Figure()
    never = []
    for i, ((src, backend), g) in enumerate(be.groupby(["source", "backend"], sort=True)):
        name = backend if len(sources) == 1 else f"{backend} ({src})"
        drawn = g[np.isfinite(pd.to_numeric(g["break_even"], errors="coerce"))]
        never += [f"{name} b{int(b)}" for b in g.loc[~g.index.isin(drawn.index), "block"]]
        if drawn.empty:
            continue
        fig.add_trace(go.Scatter(x=[str(int(b)) for b in drawn["block"]], y=drawn["break_even"],
                                 mode="markers+lines", name=name, marker=dict(size=10),
                                 line=dict(color=PALETTE[i % len(PALETTE)]),
                                 hovertemplate="block %{x}: break-even at %{y:.3f}<extra>" + name
                                 + "</extra>"))
    title = ""
    if never:
        lines, line = [], "never faster than dense in the range measured:"
        for item in never[:9]:
            if len(line) + len(item) > 80:
                lines.append(line)
                line = ""
            line += (" " if line else "") + item + ","
        lines.append(line.rstrip(",") + (" ..." if len(never) > 9 else ""))
        title = "<br>".join(lines[:3])
    fig.update_layout(height=440, font=FONT, plot_bgcolor="white", showlegend=True,
                      margin=dict(l=60, r=20, t=70, b=120),
                      legend=dict(orientation="h", x=0, y=-0.3, yanchor="top"),
                      title=dict(text=title, font=dict(size=11, color="#5b6475"), x=0.01),
                      xaxis=dict(title="block size b (b x b tiles)", type="category",
                                 categoryorder="array",
                                 categoryarray=[str(int(b)) for b in sorted(be["block"].unique())]),
                      yaxis=dict(title="break-even sparsity (fraction of zeros)", range=[0, 1]))
    if not fig.data:
        fig.add_annotation(text="No backend reached dense speed in the range measured.",
                           x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    return fig


def nm_figure(frame: pd.DataFrame) -> go.Figure:
    """2:4 speedup over dense (same matrix, same run) per product shape; unavailable rows as text.

    The dashed line is the 2x the sparse tensor cores promise; 1.0 is dense speed.
    """
    part = frame[frame["part"] == "2:4"] if "part" in frame and len(frame) else pd.DataFrame()
    if part.empty:
        return empty_figure("No 2:4 timings yet.")
    if "source" not in part:
        part = part.assign(source="this run")
    bad = part[(~part["status"].isin(OK)) & (part["backend"] != "torch-dense")]
    notes = sorted(set(f"{r.backend}: {r.message}" for r in bad.itertuples()))
    ok = part[part["status"].isin(OK) & (part["backend"] == "torch-2:4")]
    if ok.empty:
        return empty_figure("<br>".join(notes[:3]) or "No 2:4 timings yet.")
    fig = go.Figure()
    for i, (src, g) in enumerate(ok.groupby("source", sort=False)):
        g = g.sort_values(["rows", "k"])
        fig.add_trace(go.Bar(
            x=[f"n={int(r)}<br>k={int(k)}" for r, k in zip(g["rows"], g["k"])],
            y=pd.to_numeric(g["speedup"]), name=f"2:4 ({src})", marker_color=PALETTE[i % len(PALETTE)],
            customdata=np.stack([1e3 * pd.to_numeric(g["median_s"]),
                                 1e3 * pd.to_numeric(g["dense_median_s"])], axis=1),
            hovertemplate="%{x}: %{y:.3f}x (2:4 %{customdata[0]:.3g} ms, dense "
                          "%{customdata[1]:.3g} ms)<extra></extra>"))
    fig.add_hline(y=1.0, line=dict(color="#c53030", width=1))
    fig.add_hline(y=2.0, line=dict(color="#868e96", dash="dash"),
                  annotation_text="2x: the sparse tensor cores' peak", annotation_position="top left")
    fig.update_layout(barmode="group", height=440, font=FONT, plot_bgcolor="white",
                      margin=dict(l=60, r=20, t=70, b=120), showlegend=True,
                      legend=dict(orientation="h", x=0, y=-0.3, yanchor="top"),
                      title=dict(text="<br>".join(notes[:2]), font=dict(size=12, color="#7f1d1d")),
                      xaxis=dict(title="product (n x n) @ (n x k)", automargin=True, tickangle=0),
                      yaxis=dict(title="2:4 speedup over dense (x)", rangemode="tozero"))
    return fig


def accuracy_figure(frame: pd.DataFrame, stage: str = "finetuned") -> go.Figure:
    """Accuracy drop vs dense (percentage points) per pattern, one bar per model.

    stage: "finetuned" (after fine-tuning with the mask held) or "pruned" (right after
    pruning, before any fine-tuning).
    """
    if frame is None or frame.empty:
        return empty_figure("No accuracy rows yet: run the accuracy job.")
    rows = frame[frame["pattern"] != "dense"]
    if rows.empty:
        return empty_figure("Only the dense models so far.")
    fig = go.Figure()
    rows = rows.assign(drop=rows["drop_pts"] if stage == "finetuned"
                       else 100 * (rows["acc_dense"] - rows["acc_pruned"]))
    seeds = rows["seed"].nunique() if "seed" in rows else 1
    for i, (model, g) in enumerate(rows.groupby("model", sort=True)):
        g = g.groupby(["pattern", "target_sparsity"], sort=False, as_index=False).agg(
            mean=("drop", "mean"), lo=("drop", "min"), hi=("drop", "max"), n=("drop", "size"),
            ft=("acc_finetuned", "mean"), pr=("acc_pruned", "mean"))
        labels = [f"{p} @ {100 * s:.0f} %" for p, s in zip(g["pattern"], g["target_sparsity"])]
        error = dict(type="data", symmetric=False, array=g["hi"] - g["mean"],
                     arrayminus=g["mean"] - g["lo"], visible=seeds > 1, color="#495057")
        fig.add_trace(go.Bar(x=labels, y=g["mean"], name=model.upper(), error_y=error,
                             marker_color=PALETTE[i % len(PALETTE)],
                             customdata=np.stack([100 * g["ft"], 100 * g["pr"], g["n"]], axis=1),
                             hovertemplate="%{x}: drop %{y:.2f} pts (fine-tuned %{customdata[0]:.1f} %, "
                                           "right after pruning %{customdata[1]:.1f} %; "
                                           "%{customdata[2]} seed(s))<extra>" + model + "</extra>"))
    fig.add_hline(y=0, line=dict(color="#495057", width=1))
    fig.update_layout(barmode="group", height=400, font=FONT, plot_bgcolor="white",
                      margin=dict(l=60, r=20, t=30, b=90),
                      xaxis=dict(title="pattern @ sparsity", tickangle=-30),
                      yaxis=dict(title="accuracy drop vs dense (percentage points)"),
                      title=dict(text=("after fine-tuning" if stage == "finetuned"
                                       else "right after pruning, before fine-tuning")
                                 + (f"; mean of {seeds} seeds, whiskers min-max" if seeds > 1 else ""),
                                 font=dict(size=12, color="#5b6475")))
    return fig


def _ok(frame: pd.DataFrame, part: str | None = None) -> pd.DataFrame:
    if frame is None or len(frame) == 0 or "status" not in frame:
        return pd.DataFrame()
    ok = frame[frame["status"].isin(OK)]
    if part and "part" in ok:
        ok = ok[ok["part"] == part]
    ok = ok.copy()
    for col in ("speedup", "sparsity", "theoretical", "median_s", "block"):
        if col in ok:
            ok[col] = pd.to_numeric(ok[col], errors="coerce")
    return ok[np.isfinite(ok["speedup"])] if "speedup" in ok else ok


def fmt_pct(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


def bsr_bench_figure(rows: pd.DataFrame, speed_col: str, timing_label: str, device: str,
                     goals: Mapping[float, float], legend_title: str = "") -> go.Figure:
    """lab-bsr (solid) and torch BSR (dotted) speedup over dense against sparsity, one
    colour per block size, from benchmarks/bsr_bench.py; noisy points (the rows'
    ``speedup_noisy``, else ``noisy``) hollow and grey (add_points); ``goals`` (sparsity ->
    speedup, this lab's goals at TARGET_BLOCK x TARGET_BLOCK blocks) as red crosses, 1/density dashed, break-even (1) in red.
    ``legend_title``: what the legend must say about the run drawn (e.g. how it differs
    from the run it is set beside)."""
    data = rows[rows["method"].isin(("lab-bsr", "torch-bsr"))].dropna(subset=[speed_col])
    if data.empty:
        return empty_figure("No lab-bsr benchmark rows (benchmarks/results/bsr_bench.csv).")
    fig = go.Figure()
    for i, (block, g) in enumerate(data.groupby("block", sort=True)):
        color = PALETTE[i % len(PALETTE)]
        for method, dash in (("lab-bsr", "solid"), ("torch-bsr", "dot")):
            m = g[g["method"] == method].sort_values("sparsity")
            if m.empty:
                continue
            add_points(fig, m["sparsity"], m[speed_col], name=f"{method}, {int(block)}x{int(block)}",
                       color=color, dash=dash, noisy=m.get("speedup_noisy", m.get("noisy")),
                       symbol="circle" if dash == "solid" else "diamond-open",
                       hovertemplate=f"{method} b{int(block)}<br>sparsity %{{x:.2f}}<br>%{{y:.2f}}x dense<extra></extra>")
    s = np.linspace(float(data["sparsity"].min()), float(data["sparsity"].max()), 40)
    fig.add_trace(go.Scatter(x=s, y=1 / (1 - s), mode="lines", name="theoretical 1/density",
                             line=dict(color="#868e96", dash="dash")))
    fig.add_trace(go.Scatter(x=list(goals), y=list(goals.values()),
                             mode="markers+text", name=f"lab goals ({TARGET_BLOCK}x{TARGET_BLOCK} blocks)",
                             text=[f"goal {v:g}x at {s:.0%}" for s, v in goals.items()],
                             textposition=["top right" if s == min(goals) else "top left" for s in goals],
                             marker=dict(symbol="x", size=12, color="#c53030")))
    fig.add_hline(y=1.0, line=dict(color="#c53030", width=1, dash="dot"))
    fig.update_xaxes(title_text="block sparsity (fraction of b x b blocks that are zero)")
    fig.update_yaxes(type="log", title_text="speedup over dense cuBLAS (x, log)")
    label_log_axis(fig, also=(1.0,))
    fig.update_layout(title=dict(text=f"lab-bsr and torch BSR against dense on {device}: {timing_label}",
                                 font=dict(size=14)),
                      height=460, font=FONT, margin=dict(l=60, r=20, t=50, b=50),
                      legend=dict(orientation="v", x=1.02, y=1, title=dict(text=legend_title)),
                      plot_bgcolor="white")
    return fig
