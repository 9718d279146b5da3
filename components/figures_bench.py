"""Figures for /paradox and /runs: speedup, efficiency and bandwidth against sparsity.

Every function takes a pandas DataFrame of benchmark rows (engine/bench/schema.py)
and returns a plotly Figure; they never compute timings, only draw them.
The x axis is 1 / density (= the theoretical speedup) on a log scale, labelled with
the sparsity, so 50 %, 90 %, 99 %, 99.9 % are evenly spread.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from components.figures_common import (NOISY_COLOR, add_noisy_legend, add_points, empty_figure, noisy_mask,
                                       label_log_axis, point_marker, reference_line)
from engine.bench.measurement import NOISY_LABEL, noisy_flag, ratio_noisy
from engine.bench.sweeps import DENSE_KEYS  # the dense row a speedup divides by (one definition)

RATIO_VALUES = ("speedup", "efficiency")  # columns that divide by the dense time
COLORS = {"torch-dense": "#555555", "torch-csr": "#1f77b4", "torch-coo": "#ff7f0e",
          "torch-bsr": "#2ca02c", "scipy-csr": "#9467bd", "lab-bsr": "#d62728",
          "torch-2:4": "#8c564b"}
EXTRA = ["#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
CHAPTER = pd.DataFrame({"sparsity": [0.5, 0.9, 0.95, 0.99], "theoretical": [2.0, 10.0, 20.0, 100.0],
                        "chapter_actual": [1.1, 1.8, 2.3, 3.5]})


def color_of(backend: str) -> str:
    if backend in COLORS:
        return COLORS[backend]
    return EXTRA[sum(map(ord, backend)) % len(EXTRA)]




def _ok(frame: pd.DataFrame | None) -> pd.DataFrame:
    if frame is None or len(frame) == 0 or "status" not in frame:
        return pd.DataFrame()
    out = frame[frame["status"].isin(["ok", "reused"])].copy()
    for col in ("sparsity", "speedup", "efficiency", "gbs", "peak_gbs", "median_s", "density"):
        if col in out:
            out[col] = pd.to_numeric(out[col], errors="coerce")
    out["noisy"] = noisy_mask(out["noisy"], len(out)) if "noisy" in out else False
    # a speedup (or efficiency) is t_dense / t: noisy when either time is (one rule, ratio_noisy)
    keys = [c for c in DENSE_KEYS if c in out]
    out["speedup_noisy"] = ratio_noisy(out.to_dict("records"),
                                       out[out["backend"] == "torch-dense"].to_dict("records"), keys) \
        if len(out) and "backend" in out else out["noisy"]
    return out


def _x(sparsity) -> np.ndarray:
    s = np.asarray(sparsity, dtype=float)
    return 1.0 / np.clip(1.0 - s, 1e-6, None)


def _sparsity_axis(fig: go.Figure, sparsities) -> None:
    ticks = sorted({float(s) for s in sparsities if s is not None and not math.isnan(float(s))})
    fig.update_xaxes(type="log", title_text="sparsity (fraction of zeros; log scale of 1/density)",
                     tickvals=list(_x(ticks)), ticktext=[f"{100 * s:.4g}%" for s in ticks],
                     tickangle=-45 if len(ticks) > 4 else 0)


def _base(title: str, ytitle: str, legend_below: bool = False) -> go.Figure:
    """A log-y figure; ``legend_below`` for the half-width figures (the plot keeps its width)."""
    fig = go.Figure()
    legend = ({"font": {"size": 11}, "orientation": "h", "x": 0, "y": -0.48, "yanchor": "top"}
              if legend_below else {"font": {"size": 11}, "orientation": "v"})
    fig.update_layout(title={"text": title, "font": {"size": 15}},
                      height=520 if legend_below else 420, margin={"l": 70, "r": 20, "t": 50, "b": 60},
                      legend=legend)
    fig.update_yaxes(type="log", title_text=ytitle)
    return fig


def _series(frame: pd.DataFrame, value: str, label: str, dash: str | None, symbol: str, fig: go.Figure,
            skip_dense: bool = True, group: str | None = None) -> None:
    """One line per backend (median per sparsity); under a legend group titled ``group``
    (e.g. "this CPU, n = 512") when given, else each name prefixed with ``label``."""
    prefix = "" if group else label
    for backend, g in frame.groupby("backend", sort=False):
        if skip_dense and backend == "torch-dense":
            continue
        flag = "speedup_noisy" if value in RATIO_VALUES else "noisy"
        g = g.groupby("sparsity", as_index=False).agg(**{value: (value, "median"), "noisy": (flag, "any")})
        g = g.sort_values("sparsity")
        g = g[np.isfinite(g[value]) & (g[value] > 0)]
        if g.empty:
            continue
        grouping = {"legendgroup": group, "legendgrouptitle_text": group} if group else {}
        add_points(fig, _x(g["sparsity"]), g[value], name=f"{prefix}{backend}", color=color_of(backend),
                   noisy=g["noisy"], dash=dash or "solid", symbol=symbol, **grouping,
                   customdata=g["sparsity"],
                   hovertemplate="sparsity %{customdata:.4g}<br>%{y:.3g}<extra>%{fullData.name}</extra>")


def timing_text(local: pd.DataFrame, reference: pd.DataFrame | None = None) -> str:
    """ " · timing: eager per call" from the rows' own ``method`` (each run named when they differ)."""
    from engine.bench.measurement import normalise_method

    def methods(frame):
        if frame is None or frame.empty or "method" not in frame:
            return ""
        return ", ".join(sorted({m for m in map(normalise_method, frame["method"].dropna()) if m}))

    mine, theirs = methods(local), methods(reference)
    if mine and theirs and mine != theirs:
        return f" · timing: {mine} (this run), {theirs} (reference)"
    return f" · timing: {mine or theirs}" if mine or theirs else ""


def _groups(ref: pd.DataFrame, ref_label: str, local_label: str | None) -> tuple[str | None, str | None]:
    """Legend group titles (local, reference) when both are drawn and the local one is named."""
    if local_label and not ref.empty:
        return local_label, ref_label
    return None, None


def _local_and_reference(fig: go.Figure, loc: pd.DataFrame, ref: pd.DataFrame, value: str,
                         ref_label: str, local_label: str | None, **kw) -> None:
    """This run's ``value`` (solid circles) and the reference run's (dotted open diamonds)."""
    mine, theirs = _groups(ref, ref_label, local_label)
    if not loc.empty:
        _series(loc, value, "", None, "circle", fig, group=mine, **kw)
    if not ref.empty:
        _series(ref, value, f"{ref_label}: ", "dot", "diamond-open", fig, group=theirs, **kw)


def _sparsities(*frames: pd.DataFrame) -> pd.Series:
    return pd.concat([d["sparsity"] for d in frames if not d.empty])


def speedup_figure(local: pd.DataFrame | None, reference: pd.DataFrame | None = None,
                   breakeven: pd.DataFrame | None = None, ref_label: str = "reference",
                   local_label: str | None = None) -> go.Figure:
    """Measured speedup t_dense / t_backend vs theoretical 1/density, log-log; break-even marked.

    ref_label / local_label: how the legend names the reference run and this run (the
    page names their mismatch: "reference: H100 80GB HBM3, n = 8192", "this CPU, n = 512").
    The chapter's measured speedups (1.1 / 1.8 / 2.3 / 3.5x) are drawn as stars. A break-even
    whose ``noisy`` flag is set (engine.bench.sweeps.break_even) is drawn hollow and grey and
    named "from noisy timings".
    """
    loc, ref = _ok(local), _ok(reference)
    if loc.empty and ref.empty:
        return empty_figure("No measured rows yet: run a sweep (or pick a reference run).")
    fig = _base("Measured vs theoretical speedup" + timing_text(loc, ref), "speedup over dense (x, log scale)")
    sp = _sparsities(loc, ref)
    xs = _x(np.linspace(sp.min(), sp.max(), 50))
    fig.add_trace(go.Scatter(x=xs, y=xs, mode="lines", name="theoretical 1/density",
                             line={"color": "#999", "dash": "dash"}))
    fig.add_trace(go.Scatter(x=_x(CHAPTER["sparsity"]), y=CHAPTER["chapter_actual"], mode="markers+text",
                             name="the chapter's measured speedups (device not named)",
                             marker={"symbol": "star", "size": 12, "color": "#111"},
                             text=[f"{v:g}x" for v in CHAPTER["chapter_actual"]], textposition="top center",
                             textfont={"size": 11}, customdata=CHAPTER["sparsity"],
                             hovertemplate="the chapter: %{y:.2g}x at sparsity %{customdata:.3g}<extra></extra>"))
    reference_line(fig, "break-even (speedup 1)", y=1.0, color="#c00", dash="dot", side="bottom")
    _local_and_reference(fig, loc, ref, "speedup", ref_label, local_label)
    if breakeven is not None and len(breakeven):
        mine, _theirs = _groups(ref, ref_label, local_label)
        group = {"legendgroup": mine} if mine else {}  # this run's break-evens under this run's title
        for _, r in breakeven.iterrows():
            be = r.get("break_even")
            if be is None or not np.isfinite(be):
                continue
            # a break-even read off a noisy speedup is drawn in the noisy style and named so
            noisy = noisy_flag(r.get("noisy"))
            color = NOISY_COLOR if noisy else color_of(r["backend"])
            fig.add_vline(x=float(_x(be)), line={"color": color, "width": 1, "dash": "dot"})
            fig.add_trace(go.Scatter(x=[float(_x(be))], y=[1.0], mode="markers",
                                     marker=point_marker([noisy], color_of(r["backend"]), "x", 12),
                                     name=f"break-even {r['backend']} ({100 * be:.3g}%"
                                          + (", from noisy timings)" if noisy else ")"), **group))
            if noisy:
                add_noisy_legend(fig)
    _sparsity_axis(fig, pd.concat([sp, CHAPTER["sparsity"]]))
    return label_log_axis(fig, also=(1.0,))


def _value_figure(loc: pd.DataFrame, ref: pd.DataFrame, value: str, title: str, ytitle: str,
                  ref_label: str, local_label: str | None, **kw) -> go.Figure:
    """A half-width log-y figure of ``value`` against sparsity, this run beside the reference."""
    if loc.empty and ref.empty:
        return empty_figure("No measured rows yet.")
    fig = _base(title, ytitle, legend_below=True)
    _local_and_reference(fig, loc, ref, value, ref_label, local_label, **kw)
    _sparsity_axis(fig, _sparsities(loc, ref))
    return label_log_axis(fig)


def efficiency_figure(local: pd.DataFrame | None, reference: pd.DataFrame | None = None,
                      ref_label: str = "reference", local_label: str | None = None) -> go.Figure:
    """Efficiency = measured speedup / theoretical speedup (1 = all of the skipped work saved)."""
    return _value_figure(_ok(local), _ok(reference), "efficiency",
                         "Efficiency: measured / theoretical speedup", "efficiency (fraction, log scale)",
                         ref_label, local_label)


def bandwidth_figure(local: pd.DataFrame | None, reference: pd.DataFrame | None = None,
                     ref_label: str = "reference", local_label: str | None = None) -> go.Figure:
    """Achieved GB/s under the minimum-traffic model, with the device's peak when known."""
    loc, ref = _ok(local), _ok(reference)
    fig = _value_figure(loc, ref, "gbs", "Achieved memory bandwidth (minimum-traffic model)",
                        "GB/s (log scale)", ref_label, local_label, skip_dense=False)
    peaks = []
    for d, label in ((loc, "this device"), (ref, "reference")):
        if not d.empty and "peak_gbs" in d and np.isfinite(d["peak_gbs"]).any():
            peak = float(d["peak_gbs"].dropna().iloc[0])
            reference_line(fig, f"{label}'s peak {peak:.0f} GB/s", y=peak, color="#000", along=0.99)
            peaks.append(peak)
    return label_log_axis(fig, also=peaks) if fig.data else fig


# run i of a comparison: its line dash and marker (the colour is the series')
RUN_DASHES = ("solid", "dot", "dash", "longdash")
RUN_SYMBOLS = ("circle", "diamond-open", "square", "triangle-up")


def _run_trace(fig: go.Figure, i: int, label: str, name, x, y, noisy=None) -> None:
    """Series ``name`` of run ``i`` as a line with markers in the legend group ``label``
    (titled so), noisy points (``noisy``: one flag per point) hollow and grey."""
    add_points(fig, x, y, name=str(name) if name != "" else "all rows", noisy=noisy,
               color=_series_color(fig, str(name)) if name != "" else EXTRA[i % len(EXTRA)],
               dash=RUN_DASHES[i % len(RUN_DASHES)], symbol=RUN_SYMBOLS[i % len(RUN_SYMBOLS)],
               legendgroup=label, legendgrouptitle_text=label)


def _series_name(series: str, value) -> str:
    """A curve's legend name: the backend (pattern, ...) itself, or "block 16" for a number."""
    return f"{series} {value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else str(value)


SERIES_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                  "#bcbd22", "#7f7f7f")


def _series_color(fig: go.Figure, name: str) -> str:
    """A backend's own colour (COLORS); any other series (a pattern, a family) the colour
    the figure already gave that name, else the next unused one of SERIES_PALETTE."""
    if name in COLORS:
        return COLORS[name]
    given = {t.name: t.line.color for t in fig.data if t.name and t.line.color}
    if name in given:
        return given[name]
    used = set(given.values())
    free = [c for c in SERIES_PALETTE if c not in used]
    return free[0] if free else SERIES_PALETTE[len(given) % len(SERIES_PALETTE)]


def _median_per(g: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The median ``y`` per ``x`` and whether any row there is noisy (rows' ``noisy``, or
    ``speedup_noisy`` for a ratio to dense when _ok set it)."""
    flag = "speedup_noisy" if y in RATIO_VALUES and "speedup_noisy" in g else "noisy"
    g = g.assign(noisy=noisy_mask(g[flag], len(g)) if flag in g else False)
    return g.groupby(x, as_index=False).agg(**{y: (y, "median"), "noisy": ("noisy", "any")}) \
        .sort_values(x).dropna(subset=[y])


def _compare_layout(fig: go.Figure, title: str) -> None:
    """Title, and the legend below the plot (its group titles are long): the plot keeps the width."""
    groups = len({t.legendgroup for t in fig.data})
    fig.update_layout(title={"text": title, "font": {"size": 15}},
                      height=470 + 40 * groups, margin={"l": 70, "r": 20, "t": 50, "b": 60},
                      legend={"font": {"size": 11}, "groupclick": "toggleitem", "orientation": "h",
                              "x": 0, "y": -0.25, "yanchor": "top", "tracegroupgap": 4})


def compare_figure(frames: list[tuple[str, pd.DataFrame]], x: str, y: str,
                   series: str | None = "backend", shown: str = "") -> go.Figure:
    """Two (or more) runs in one plot: y against x, a line per (run, series).

    Each run's lines are one legend group titled with its label (the page names there
    how the runs differ); ``shown`` ("spmv, float16") titles the legend and the plot with
    the op and dtype the rows drawn are of. A trace's legendgroup is its run's label."""
    frames = [(label, f) for label, f in frames if f is not None and len(f)]
    if not frames:
        return empty_figure("Open a run to plot it.")
    if x == "sparsity":
        fig = compare_figure_sparsity(frames, y, series)
        return _shown(fig, shown)
    fig = go.Figure()
    for i, (label, f) in enumerate(frames):
        f = f.copy()
        if "status" in f:
            f = f[f["status"].isin(["ok", "reused"]) | ~f["status"].isin(["unsupported", "refused", "error"])]
        if x not in f or y not in f:
            continue
        f[y] = pd.to_numeric(f[y], errors="coerce")
        xs = pd.to_numeric(f[x], errors="coerce")
        if xs.notna().all():
            f[x] = xs
        groups = [(_series_name(series, k), g) for k, g in f.groupby(series, sort=False)] \
            if series and series in f else [("", f)]
        for name, g in groups:
            g = _median_per(g, x, y)
            if g.empty:
                continue
            _run_trace(fig, i, label, name, g[x], g[y], g["noisy"])
    if not fig.data:
        return empty_figure(f"No numeric values of {y} against {x} in these runs.")
    _compare_layout(fig, f"{y} against {x}")
    fig.update_xaxes(title_text=axis_title(x))
    fig.update_yaxes(title_text=axis_title(y))
    if y in LOG_COLUMNS:
        label_log_axis(fig.update_yaxes(type="log"))
    return _shown(fig, shown)


def _shown(fig: go.Figure, shown: str) -> go.Figure:
    """The op and dtype drawn, in the plot's title and as the legend's title."""
    if shown and fig.data:
        fig.update_layout(title_text=f"{fig.layout.title.text} · {shown} rows",
                          legend_title_text=f"{shown} rows")
    return fig


def compare_figure_sparsity(frames, y: str, series: str | None) -> go.Figure:
    """compare_figure with sparsity on the 1/density log axis."""
    fig = go.Figure()
    all_s = []
    for i, (label, f) in enumerate(frames):
        f = _ok(f) if "status" in f else f.copy()
        if y not in f or "sparsity" not in f or f.empty:
            continue
        f[y] = pd.to_numeric(f[y], errors="coerce")
        groups = [(_series_name(series, k), g) for k, g in f.groupby(series, sort=False)] \
            if series and series in f else [("", f)]
        for name, g in groups:
            g = _median_per(g, "sparsity", y)
            g = g[g[y] > 0] if y in LOG_COLUMNS else g
            if g.empty:
                continue
            all_s.extend(g["sparsity"].tolist())
            _run_trace(fig, i, label, name, _x(g["sparsity"]), g[y], g["noisy"])
    if not fig.data:
        return empty_figure(f"No numeric values of {y} in these runs.")
    _compare_layout(fig, f"{y} against sparsity")
    fig.update_yaxes(title_text=axis_title(y), type="log" if y in LOG_COLUMNS else "linear")
    _sparsity_axis(fig, _apart(all_s))
    return label_log_axis(fig) if y in LOG_COLUMNS else fig


def _apart(sparsities, gap: float = 0.03) -> list[float]:
    """The sparsities whose ticks do not overlap: a tick closer than ``gap`` (a fraction of
    the log axis) to the last one kept is left out (0.9004 beside 0.9 on 1/density)."""
    ticks = sorted({float(s) for s in sparsities if s is not None and not math.isnan(float(s))})
    if len(ticks) < 2:
        return ticks
    pos = np.log10(_x(ticks))
    span = max(float(pos[-1] - pos[0]), 1e-9)
    kept = [0]
    for i in range(1, len(ticks)):
        if (pos[i] - pos[kept[-1]]) / span >= gap:
            kept.append(i)
    return [ticks[i] for i in kept]


LOG_COLUMNS = {"speedup", "median_s", "iqr_s", "gflops", "gbs", "efficiency", "prepare_s", "theoretical"}
# An axis title per column (table headers take their units from components.tables.COLUMN_UNITS).
AXIS_TITLES = {"speedup": "speedup over dense (x)", "median_s": "median time (s)", "iqr_s": "IQR of time (s)",
               "gflops": "useful GFLOP/s", "gbs": "GB/s (minimum-traffic model)", "efficiency": "efficiency (fraction)",
               "prepare_s": "conversion time (s)", "theoretical": "theoretical speedup (x)",
               "pct_peak_bw": "% of peak bandwidth", "sparsity": "sparsity (fraction of zeros)",
               "rows": "rows (m)", "k": "k (columns of B)", "density": "density (fraction of non-zeros)",
               "target_sparsity": "target sparsity (fraction of zeros)",
               "acc_dense": "accuracy of the dense model (fraction)", "acc_pruned": "accuracy after pruning (fraction)",
               "acc_finetuned": "accuracy after fine-tuning (fraction)",
               "speedup_vs_dense": "speedup over dense (x)",
               "matrix_over_native": "sparse-matrix time / native time (x)",
               "ratio_vs_dense_1x": "time / dense FFN time (x)", "speedup_vs_torch_bsr": "speedup over torch BSR (x)"}


def axis_title(col: str) -> str:
    """An axis title with its unit: AXIS_TITLES, else the column and its table unit."""
    from components.tables import COLUMN_UNITS

    if col in AXIS_TITLES:
        return AXIS_TITLES[col]
    return f"{col} ({COLUMN_UNITS[col]})" if col in COLUMN_UNITS else col


def measured_vs_chapter(local: pd.DataFrame | None) -> pd.DataFrame:
    """The chapter's table beside the measured speedups at the same sparsities (NaN: not measured)."""
    out = CHAPTER.rename(columns={"theoretical": "theoretical (1/density)",
                                  "chapter_actual": "chapter's actual"}).copy()
    loc = _ok(local)
    if not loc.empty:
        for backend, g in loc.groupby("backend", sort=False):
            if backend == "torch-dense":
                continue
            med = g.groupby("sparsity")["speedup"].median()
            out[f"measured {backend}"] = [float(med[s]) if s in med.index else float("nan")
                                          for s in CHAPTER["sparsity"]]
    out["sparsity"] = [f"{100 * s:g}%" for s in CHAPTER["sparsity"]]
    return out


def measured_table(local: pd.DataFrame | None) -> pd.DataFrame:
    """Speedup per sparsity (rows) and backend (columns), with theoretical, for every sparsity measured."""
    loc = _ok(local)
    if loc.empty:
        return pd.DataFrame()
    piv = loc.pivot_table(index="sparsity", columns="backend", values="speedup", aggfunc="median")
    piv = piv.drop(columns=[c for c in piv.columns if c == "torch-dense"])
    piv.insert(0, "theoretical (1/density)", loc.groupby("sparsity")["theoretical"].median())
    piv = piv.reset_index()
    piv["sparsity"] = [f"{100 * s:.4g}%" for s in piv["sparsity"]]
    piv.columns = [str(c) if c in ("sparsity", "theoretical (1/density)") else f"measured {c}" for c in piv.columns]
    return piv


PER_CALL_VIEWS = (("per call", "per call: x dense", "per call: lab-bsr (us)", "per call: noisy"),
                  ("kernel only", "kernel-only: x dense", "kernel-only: lab-bsr (us)", "kernel-only: noisy"))


SERIES_COLORS = ("#1f77b4", "#ff7f0e", *EXTRA)  # one per sparsity (and shape) in the per-call figures


def per_call_figures(table: pd.DataFrame) -> tuple[go.Figure, go.Figure]:
    """lab-bsr's speedup over dense against k, timed per call (eager) and kernel only
    (CUDA-graph replay): two figures on one y range, each titled with its timing method;
    noisy speedups (either time noisy) hollow and grey (add_points).

    table: engine.bench.bsr_results.percall_table (one row per n, block, dtype, sparsity, k).
    """
    from engine.bench.bsr_results import KERNEL_ONLY, PER_CALL

    if table is None or not len(table):
        empty = empty_figure("No per-call run committed yet (benchmarks/gpu_bsr_app.py on a GPU writes one).")
        return empty, empty
    speed = [c for _v, c, _t, _n in PER_CALL_VIEWS]
    top = float(table[speed].max().max())
    several = table[["n", "block", "dtype"]].drop_duplicates().shape[0] > 1
    figs = []
    for (view, col, us, noisy), method in zip(PER_CALL_VIEWS, (PER_CALL, KERNEL_ONLY)):
        fig = _base(f"{view}: {method}", "lab-bsr speedup over dense (x, log scale)", legend_below=True)
        fig.update_layout(title={"font": {"size": 13}}, height=440, legend={"y": -0.28})
        for i, ((n, block, dtype, s), g) in enumerate(table.sort_values("k").groupby(
                ["n", "block", "dtype", "sparsity"], sort=False)):
            name = f"{100 * s:g}% sparsity" + (f", n = {n}, {block}x{block}, {dtype}" if several else "")
            add_points(fig, g["k"], g[col], name=name, color=SERIES_COLORS[i % len(SERIES_COLORS)],
                       noisy=g[noisy], mode="lines+markers+text",
                       text=[f"{v:.2f}x" for v in g[col]], textposition="top center", customdata=g[us],
                       hovertemplate="k = %{x}: %{y:.3g}x dense, %{customdata:.4g} us<extra>%{fullData.name}</extra>")
        reference_line(fig, "as fast as dense", y=1.0, color="#c00", dash="dot", side="bottom")
        fig.update_xaxes(type="log", title_text="k (columns of B)", tickvals=sorted(set(table["k"])))
        fig.update_yaxes(range=[math.log10(0.5), math.log10(top * 1.6)])
        figs.append(label_log_axis(fig, also=(0.5, top * 1.6)))
    return figs[0], figs[1]


def per_call_note(view):
    """Whose side-by-side run it is (device, date, file, shape) and one sentence from its
    table: per call and kernel only at the highest sparsity, smallest k; or why there is none.

    view: engine.bench.bsr_runs.SideBySide."""
    from components.layout import message

    table = view.table
    if view.problem:
        return message(f"The per-call run could not be read: {view.problem}", "error")
    if table is None or not len(table):
        return message("No per-call run committed yet: run benchmarks/gpu_bsr_app.py on a GPU.", "info")
    row = table.sort_values(["sparsity", "k"], ascending=[False, True]).iloc[0]
    n = int(row["n"])
    where = (f"{table.attrs.get('device', 'the GPU')} ({table.attrs.get('date', 'undated')}, "
             f"benchmarks/results/{view.reference.name}, benchmarks/gpu_bsr_app.py): lab-bsr at "
             f"{view.shape_text}, A {n} x {n} times B {n} x k, against dense torch.matmul")
    noisy = f" Hollow grey points: {NOISY_LABEL}." if table.filter(like="noisy").any().any() else ""
    return message(f"On {where}. At {100 * row['sparsity']:g}% sparsity and k = {int(row['k'])}: per call "
                   f"{row['per call: x dense']:.2f}x dense, kernel only {row['kernel-only: x dense']:.2f}x "
                   f"(a call takes {row['per call / kernel-only']:.2f}x the kernel's time).{noisy}", "info")
