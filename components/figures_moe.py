"""Figures for /moe: routing heatmap, expert load, trained router, timing sweep.

Each function takes plain data (arrays, lists of row dicts) and returns a go.Figure;
no engine calls here.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.figures_common import (MUTED, add_points, empty_figure, legend_below, log_ticks,
                                       reference_line)
from engine.bench.measurement import NOISY_LABEL, ratio_noisy
from engine.runtime.cache import pure_cache

COLORS = {"dense_1x": "#7a8599", "dense_active": "#2f6fdb", "dense_total": "#b7791f",
          "moe_grouped": "#c53030", "moe_loop": "#1f8a4c"}
LABELS = {"dense_1x": "dense FFN, width h (one expert)",
          "dense_active": "dense, equal active params (k*h)",
          "dense_total": "dense, equal total params (E*h)",
          "moe_grouped": "MoE, grouped GEMM", "moe_loop": "MoE, one GEMM per expert"}


def _base(fig: go.Figure, height: int = 360, **layout) -> go.Figure:
    title = layout.pop("title", None)
    top = 80 if title else 40
    if title:
        layout["title"] = dict(text=title, x=0, xanchor="left", y=0.98, yanchor="top",
                               font=dict(size=14))
    legend = layout.pop("legend", dict(orientation="h", yanchor="bottom", y=1.01, x=0))
    # the lab's template (plotly's default, components.figures_common): naming one here
    # validated and copied it for every figure (~12 ms each, 5 per routing change)
    fig.update_layout(height=height, margin=dict(l=60, r=20, t=top, b=50), legend=legend, **layout)
    return fig


def routing_heatmap(weights: np.ndarray, keep_weights: np.ndarray) -> go.Figure:
    """weights: (T, E) routed weight per token and expert; keep_weights: same after drops.

    Dropped assignments (routed but over capacity) are drawn as -1 in grey.
    """
    tokens, experts = weights.shape
    z = keep_weights.copy()
    z[(weights > 0) & (keep_weights == 0)] = -1.0
    colorscale = [[0.0, "#9aa3b2"], [0.4999, "#9aa3b2"], [0.5, "#ffffff"], [1.0, "#2f6fdb"]]
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"E{e}" for e in range(experts)], y=list(range(tokens)), zmin=-1, zmax=1,
        colorscale=colorscale, colorbar=dict(title="weight", tickvals=[-1, 0, 0.5, 1],
                                             ticktext=["dropped", "0", "0.5", "1"]),
        hovertemplate="token %{y}, %{x}: %{z:.3f}<extra></extra>"))
    fig.update_xaxes(title="expert")
    fig.update_yaxes(title="token (arrival order)", autorange="reversed")
    return _base(fig, 420, title="Routing weights, token x expert (grey: dropped over capacity)")


def load_bars(rows: list[dict], capacity: int | None, fair: float) -> go.Figure:
    """Per-expert kept load and dropped assignments, with the capacity and the fair share."""
    df = pd.DataFrame(rows)
    x = [f"E{e}" for e in df["expert"]]
    fig = go.Figure()
    fig.add_bar(x=x, y=df["load"], name="kept", marker_color="#2f6fdb")
    fig.add_bar(x=x, y=df["dropped"], name="dropped", marker_color="#c53030")
    if capacity is not None:
        fig.add_hline(y=capacity, line=dict(color="#1d2330", dash="dash"),
                      annotation_text=f"capacity {capacity}", annotation_position="top left")
    fig.add_hline(y=fair, line=dict(color="#1f8a4c", dash="dot"),
                  annotation_text=f"fair share {fair:.1f}", annotation_position="bottom right")
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title="expert")
    fig.update_yaxes(title="assignments (tokens x choices)")
    return _base(fig, 420, title="Expert load against capacity")


def utilisation_bars(rows: list[dict]) -> go.Figure:
    df = pd.DataFrame(rows)
    colors = ["#c53030" if u == 0 else "#2f6fdb" for u in df["utilisation"]]
    fig = go.Figure(go.Bar(x=[f"E{e}" for e in df["expert"]], y=df["utilisation"],
                           marker_color=colors, name="utilisation"))
    fig.add_hline(y=1.0, line=dict(color="#1f8a4c", dash="dot"), annotation_text="even")
    fig.update_xaxes(title="expert")
    fig.update_yaxes(title="load / fair share (0 = dead)")
    return _base(fig, 300, title="Utilisation per expert", showlegend=False)


def train_curves(rows: list[dict]) -> go.Figure:
    df = pd.DataFrame([r for r in rows if r.get("kind") == "epoch"])
    if df.empty:
        return empty_figure("Train the router to see accuracy and balance per epoch.")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("test accuracy", "balancing loss (alpha=1)"))
    for i, (variant, part) in enumerate(df.groupby("variant", sort=False)):
        color = ["#c53030", "#2f6fdb"][i % 2]
        fig.add_scatter(x=part["epoch"], y=part["test_accuracy"], name=variant, mode="lines+markers",
                        line=dict(color=color), row=1, col=1)
        fig.add_scatter(x=part["epoch"], y=part["balance_loss"], name=variant, mode="lines+markers",
                        line=dict(color=color), showlegend=False, row=1, col=2)
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="accuracy (fraction)", row=1, col=1)
    fig.update_yaxes(title="E * sum f_i P_i (1 = even)", row=1, col=2)
    return _base(fig, 380, legend=dict(orientation="h", x=0, y=-0.2, yanchor="top"))


def train_load(rows: list[dict]) -> go.Figure:
    """Share of test-set assignments per expert: first and last epoch, per variant."""
    df = pd.DataFrame([r for r in rows if r.get("kind") == "epoch"])
    if df.empty:
        return empty_figure("Expert load appears here after training.")
    cols = sorted((c for c in df.columns if c.startswith("load_e")), key=lambda c: int(c[6:]))
    fig = go.Figure()
    palette = {0: ("#f0a3a3", "#c53030"), 1: ("#a9c4f2", "#2f6fdb")}
    for i, (variant, part) in enumerate(df.groupby("variant", sort=False)):
        first, last = part.iloc[0], part.iloc[-1]
        light, dark = palette[i % 2]
        fig.add_bar(x=[c[5:].upper() for c in cols], y=[first[c] for c in cols],
                    name=f"{variant}: epoch {int(first['epoch'])}", marker_color=light)
        fig.add_bar(x=[c[5:].upper() for c in cols], y=[last[c] for c in cols],
                    name=f"{variant}: epoch {int(last['epoch'])}", marker_color=dark)
    fig.add_hline(y=1 / len(cols), line=dict(color="#1f8a4c", dash="dot"), annotation_text="even")
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="expert")
    fig.update_yaxes(title="share of test assignments")
    return _base(fig, 360)


def specialisation(rows: list[dict]) -> go.Figure:
    df = pd.DataFrame([r for r in rows if r.get("kind") == "specialisation"])
    if df.empty:
        return empty_figure("Expert x class specialisation appears here after training.")
    variants = list(dict.fromkeys(df["variant"]))
    fig = make_subplots(rows=1, cols=len(variants), subplot_titles=variants, horizontal_spacing=0.16)
    classes = [f"class_{c}" for c in range(10)]
    for i, v in enumerate(variants, start=1):
        part = df[df["variant"] == v].sort_values("expert")
        fig.add_heatmap(z=part[classes].to_numpy(), x=[str(c) for c in range(10)],
                        y=[f"E{int(e)}" for e in part["expert"]], zmin=0, zmax=1,
                        colorscale="Blues", showscale=(i == len(variants)),
                        colorbar=dict(title="share"),
                        hovertemplate="digit %{x}, %{y}: %{z:.2f}<extra></extra>", row=1, col=i)
        fig.update_xaxes(title="digit class", row=1, col=i)
        fig.update_yaxes(title="expert (top-1 choice)", autorange="reversed", row=1, col=i)
    return _base(fig, 400, title="First-choice expert per digit (share of its test images)")


def _sweep_frame(rows: list[dict], source: str) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if df.empty or "status" not in df:
        return pd.DataFrame()
    df = df[df["status"] == "ok"].copy()
    df["source"] = source
    return df


def _batch_axis(fig: go.Figure, batches) -> None:
    ticks = sorted({int(b) for b in batches})
    if len(ticks) > 8:  # every other power of two
        ticks = ticks[::2]
    fig.update_xaxes(title="batch (tokens)", type="log", tickvals=ticks,
                     ticktext=[f"{t // 1024}k" if t >= 1024 and t % 1024 == 0 else str(t) for t in ticks])


SOURCE_DASH = ("solid", "dash")  # this run, the committed reference
PLOT_HEIGHT = 330  # px of the sweep figures' plot area; their legends go below it
RIGHT_MARGIN = 96  # room for the "ideal: k" labels right of the ratio plot


def _wrap(text: str, width: int = 64) -> str:
    """``text`` broken at ", " into lines of about ``width`` characters (a legend entry
    that fits half the page)."""
    lines, line = [], ""
    for part in text.split(", "):
        if line and len(line) + len(part) + 2 > width:
            lines.append(line + ",")
            line = part
        else:
            line = f"{line}, {part}" if line else part
    return "<br>".join(lines + [line])


def _sweep_lines(fig: go.Figure, df: pd.DataFrame, local_label: str, y: str, unit: str,
                 skip=(), noisy=None) -> None:
    """One line per (run, variant): colour says the variant, the line style the run (solid:
    this run, dashed: the reference). The legend names each variant once (clicking it
    shows or hides the variant in both runs) and each run once, with its device, dtype,
    shape and date; the hover repeats both for every point."""
    sources = list(dict.fromkeys(df["source"]))
    variants = []
    for (source, variant), part in df.groupby(["source", "variant"], sort=False):
        if variant in skip:
            continue
        name = LABELS.get(variant, variant)
        dash = SOURCE_DASH[0] if source == local_label else SOURCE_DASH[1]
        add_points(fig, part["batch"], part[y], name=name, color=COLORS.get(variant, MUTED), size=7, dash=dash,
                   legendgroup=variant, showlegend=False,
                   noisy=noisy(part) if noisy else part["noisy"] if "noisy" in part else None,
                   hovertemplate=f"{name}<br>{source}<br>batch %{{x}} tokens: %{{y:.3g}} {unit}<extra></extra>")
        variants += [variant] * (variant not in variants)
    for variant in variants:  # the variant's entry: its colour, filled (a hollow point means noisy)
        color = COLORS.get(variant, MUTED)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines+markers", name=LABELS.get(variant, variant),
                                 legendgroup=variant, hoverinfo="skip", line=dict(color=color),
                                 marker=dict(color=color, size=7)))
    for source in sources:  # the runs' own entries: which line style is whose
        local = source == local_label
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="lines", hoverinfo="skip",
            name=_wrap(source if local else f"{source} (committed reference)"),
            line=dict(color=MUTED, dash=SOURCE_DASH[0] if local else SOURCE_DASH[1]), legendrank=1002))
    for trace in fig.data:  # the noisy marker's entry after the variants, before the runs
        if trace.name == NOISY_LABEL:
            trace.legendrank = 1001


def _sweep_layout(fig: go.Figure, right: int = 20) -> go.Figure:
    _base(fig, 500)
    return legend_below(fig, PLOT_HEIGHT, top=30, right=right)


def sweep_time(local: list[dict], reference: list[dict] | None = None,
               ref_label: str = "reference", local_label: str = "this run") -> go.Figure:
    """Time per forward vs batch (log-log), local solid, reference dashed; noisy rows
    (IQR / median > 0.1 or fewer than 3 timed runs) are drawn hollow and grey."""
    frames = [_sweep_frame(local, local_label)]
    if reference:
        frames.append(_sweep_frame(reference, ref_label))
    df = pd.concat([f for f in frames if not f.empty]) if any(not f.empty for f in frames) else None
    if df is None:
        return empty_figure("Run the sweep (or commit a GPU reference CSV) to see timings.")
    fig = go.Figure()
    _sweep_lines(fig, df, local_label, "time_ms", "ms")
    _batch_axis(fig, df["batch"])
    fig.update_yaxes(title="time per forward (ms)", type="log", **log_ticks(df["time_ms"]))
    return _sweep_layout(fig)


def sweep_ratio(local: list[dict], reference: list[dict] | None = None,
                ref_label: str = "reference", local_label: str = "this run", k: int = 2) -> go.Figure:
    """Time relative to one dense FFN of width h, per batch; ideal for the MoE is k (one line
    per top-k of the runs drawn; ``k`` when the rows carry none), labelled right of the
    plot. A ratio is drawn noisy when its row or the dense FFN's row at that batch is noisy."""
    frames = [_sweep_frame(local, local_label)]
    if reference:
        frames.append(_sweep_frame(reference, ref_label))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return empty_figure("Ratios appear after a sweep.")
    df = pd.concat(frames)
    fig = go.Figure()
    base = df[df["variant"] == "dense_1x"].to_dict("records")
    _sweep_lines(fig, df, local_label, "ratio_vs_dense_1x", "x one dense FFN", skip=("dense_1x",),
                 noisy=lambda part: ratio_noisy(part.to_dict("records"), base, on=("source", "batch")))
    _batch_axis(fig, df["batch"])
    ks = sorted({int(v) for v in df["k"].dropna()}) if "k" in df else []
    ks = ks or [k]
    ratios = df.loc[df["variant"] != "dense_1x", "ratio_vs_dense_1x"]
    fig.update_yaxes(title="time / one dense FFN's time (x)", type="log",
                     **log_ticks(list(pd.to_numeric(ratios, errors="coerce")) + ks))
    # one ideal line per top-k among the runs drawn, labelled in the right margin, clear of
    # the lines (on the log axis add_hline's label would sit at 10**k, not at k)
    for kk in ks:
        runs = sorted(set(df.loc[df["k"] == kk, "source"])) if "k" in df else sorted(set(df["source"]))
        who = "" if len(ks) < 2 else "<br>(" + ", ".join(
            "this run" if r == local_label else "reference" for r in runs) + ")"
        reference_line(fig, f"ideal: k = {kk}{who}", y=float(kk), color="#1d2330", dash="dot", along=1.01,
                       hovertext=f"ideal MoE = k = {kk}: the cost of k dense FFNs ({'; '.join(runs) or 'top-k'})")
    return _sweep_layout(fig, right=RIGHT_MARGIN)


def params_bars(rows: list[dict]) -> go.Figure:
    df = pd.DataFrame(rows)
    fig = go.Figure()
    fig.add_bar(x=df["config"], y=df["total"] / 1e9, name="total (held in memory)", marker_color="#b7791f")
    fig.add_bar(x=df["config"], y=df["active"] / 1e9, name="active per token", marker_color="#2f6fdb")
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="model")
    fig.update_yaxes(title="parameters (billions)")
    return _base(fig, 320)


# -- sentences beside the figures (text the page shows; the numbers come from the engine)
def training_summary_lines(rows: list[dict]) -> list[str]:
    """One line per trained variant, from its summary row (where it trained included)."""
    return [f"{r['variant']}: test accuracy {r['test_accuracy']:.3f}, balancing loss "
            f"{r['balance_loss']:.3f}, largest expert share {r['max_share']:.3f}, dead experts "
            f"{r['dead_experts']}" + (f" (trained on {r['device_name']})" if r.get("device_name") else "")
            for r in rows if r.get("kind") == "summary"]


def sweep_summary_lines(source: str, rows: list[dict], summary: list[dict]) -> list[str]:
    """What one run (``source``: "this run" or the reference's label) says: per MoE variant
    its cost against one dense FFN and the equal-active / equal-total dense layers
    (``summary``: engine.moe.timing.sweep_summary), then what could not be measured."""
    lines = [f"{source}: {s['variant']} at {s['batch']} tokens takes {s['ratio_vs_dense_1x']:.2f}x one "
             f"dense FFN (ideal {s['ideal']}x, {100 * s['efficiency']:.0f}% of ideal); against the "
             f"dense layer with equal active / equal total parameters: {s['small_vs_dense_active']:.2f}x / "
             f"{s['small_vs_dense_total']:.2f}x at {s['small_batch']} token(s), "
             f"{s['big_vs_dense_active']:.2f}x / {s['big_vs_dense_total']:.2f}x at {s['batch']}."
             + (f" Rough: rows at {', '.join(map(str, s['noisy_at']))} token(s) are noisy "
                "(IQR/median > 0.1)." if s.get("noisy_at") else "")
             for s in summary]
    for r in rows:  # once per variant and reason: the first batch, and every error
        status = str(r.get("status", ""))
        if status.startswith(("unavailable", "error")) and (r.get("batch") == 1 or status.startswith("error")):
            lines.append(f"{source}: {r['variant']} at {r.get('batch')} tokens: {status}")
    return lines


@pure_cache
def routing_figures_json(view) -> tuple[dict, dict, dict]:
    """The routing section's heatmap, load and utilisation figures of one
    engine.moe.example.RoutingView as JSON-ready dicts, built once per view and cached:
    building three plotly figures costs far more than reading them back."""
    return (routing_heatmap(view.weights, view.kept).to_plotly_json(),
            load_bars(view.rows, view.stats["capacity"], view.fair_share).to_plotly_json(),
            utilisation_bars(view.rows).to_plotly_json())
