"""Attention masks: the mask zoo, block masks, and when sparse attention beats dense."""
from __future__ import annotations


import dash
import pandas as pd
from dash import Input, Output, State, callback, dcc, html

from components import figures_attention as figs
from components.jobs import JobPlan, job_ids, job_panel, register_job
from components.layout import (controls_row, error_message, labelled, message, page_header,
                               section, stat)
from components.tables import csv_download, data_table, register_csv_download
from engine.attention import masks as M
from engine.attention.attend import (SweepConfig, attention_sweep, crossover, mask_zoo,
                                     noisy_lengths, sweep_memory_bytes)
from engine.bench.reference import Reference, references
from engine.runtime.device import describe_device
from engine.validate import check_budget, check_choice, check_int

dash.register_page(__name__, path="/attention", name="Attention masks", nav_name="Attention", order=8,
                   description="The mask zoo, block masks, and when sparse attention beats dense "
                               "flash attention.")

P = "attention"
IDS = job_ids(P)
SEQ_CHOICES = (64, 128, 256, 512, 1024, 2048, 4096)
BLOCK_CHOICES = (8, 16, 32, 64, 128)
PARAM_LABELS = {"w": "window w (tokens)", "d": "dilation d", "g": "global tokens g",
                "r": "random blocks r per query block", "seed": "seed", "p": "prefix p (tokens)",
                "docs": "documents"}
PARAM_LIMITS = {"w": (1, 4096), "d": (1, 64), "g": (1, 4096), "r": (1, 64), "seed": (0, 10**6),
                "p": (0, 4096), "docs": (1, 256)}
WEIGHTS_MAX_SEQ = 512  # attention weights are computed on at most this many tokens
SWEEP_SEQS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
SWEEP_BLOCK = 128


def _param_control(name: str) -> html.Div:
    lo, hi = PARAM_LIMITS[name]
    return html.Div(labelled(PARAM_LABELS[name], dcc.Input(
        id=f"{P}-{name}", type="number", min=lo, max=hi, step=1, value=M.DEFAULT_PARAMS[name],
        debounce=0.4, style={"width": "100%"})), id=f"{P}-{name}-wrap")


def _wide(control: html.Div) -> html.Div:
    control.className = "control attention-wide"
    return control


def layout(**_kwargs):
    gpu = describe_device().kind == "cuda"  # nvidia-smi only: no CUDA in the web process
    mask_options = [{"label": k.label, "value": k.key} for k in M.MASK_KINDS.values()]
    return html.Div([
        page_header(
            "Attention masks",
            "Attention can skip work only where its mask is empty, and only in whole blocks. "
            "Pick a mask, move its window and the block size, and compare the token mask with "
            "the block mask a kernel such as FlexAttention actually iterates over; then time "
            "masked attention against dense flash attention across sequence lengths.",
            seed="the sparsity chapter, 10.5 Sparsity in Attention"),
        html.Div([
            message(["The chapter reports that trained heads mostly attend to themselves, the "
                     "first token and nearby tokens, that Longformer and BigBird combine local, "
                     "global and random links, and that for many applications FlashAttention "
                     "computing dense attention exactly beats sparse attention; sparse attention "
                     "shines for very long sequences (the chapter says beyond about 16K tokens)."],
                    "info"),
        ]),
        section(
            "Mask",
            controls_row(
                labelled("mask", dcc.Dropdown(id=f"{P}-mask", options=mask_options,
                                              value="longformer", clearable=False)),
                labelled("sequence length S", dcc.Dropdown(
                    id=f"{P}-seq", options=[{"label": str(s), "value": s} for s in SEQ_CHOICES],
                    value=512, clearable=False)),
                labelled("block size", dcc.Dropdown(
                    id=f"{P}-block", options=[{"label": str(b), "value": b} for b in BLOCK_CHOICES],
                    value=32, clearable=False),
                    help="also the granularity of random links"),
            ),
            controls_row(*[_param_control(n) for n in PARAM_LABELS]),
            html.Div(id=f"{P}-mask-help", className="control-help"),
            html.Div(id=f"{P}-error"),
            html.Div(id=f"{P}-stats"),
            html.Div([
                dcc.Graph(id=f"{P}-token-map", config={"displaylogo": False}),
                dcc.Graph(id=f"{P}-block-map", config={"displaylogo": False}),
            ], className="two-col"),
            note="True entries are kept. Long sequences are drawn pooled: each cell shows the "
                 "kept fraction of the tokens (or blocks) it covers.",
        ),
        section(
            "What each mask keeps of a real input",
            html.Div(id=f"{P}-weights-note", className="section-note"),
            html.Div([
                dcc.Graph(id=f"{P}-weights-base", config={"displaylogo": False}),
                dcc.Graph(id=f"{P}-weights-mask", config={"displaylogo": False}),
            ], className="two-col"),
            html.Div(id=f"{P}-zoo-table"),
            csv_download(f"{P}-zoo-csv", "Download zoo CSV"),
            dcc.Store(id=f"{P}-zoo-rows"),
            note="Q and K are built so that dense causal attention has the chapter's pattern "
                 "(self, first token, neighbours, plus noise). Mass kept: the share of the dense "
                 "causal weights that falls on keys the mask keeps; output error: relative "
                 "distance of the masked output from dense causal attention.",
        ),
        section(
            "Timing sweep: when does masked attention beat dense flash?",
            html.P(id=f"{P}-device-note", className="section-note"),
            controls_row(
                _wide(labelled("sequence lengths", dcc.Checklist(
                    id=f"{P}-sweep-seqs", value=[1024, 4096, 16384] if gpu else [256, 512, 1024],
                    inline=True,
                    options=[{"label": f" {s}", "value": s} for s in SWEEP_SEQS],
                    inputStyle={"marginLeft": "8px"}))),
                _wide(labelled("masks", dcc.Checklist(
                    id=f"{P}-sweep-masks", value=["sliding_window", "bigbird"], inline=True,
                    options=[{"label": f" {k.label}", "value": k.key} for k in M.MASK_KINDS.values()
                             if k.key not in ("full", "causal")],
                    inputStyle={"marginLeft": "8px"}))),
                labelled("options", dcc.Checklist(
                    id=f"{P}-sweep-opts", value=[],
                    options=[{"label": " compile FlexAttention on CPU (about a minute per mask "
                                       "and length)", "value": "flex_cpu"}])),
            ),
            controls_row(labelled("speedup measured against", dcc.RadioItems(
                id=f"{P}-baseline", value="causal", inline=True, inputStyle={"marginRight": "4px"},
                labelStyle={"marginRight": "14px"},
                options=[{"label": "SDPA causal (flash)", "value": "causal"},
                         {"label": "SDPA without mask (flash; fair for two-sided masks)",
                          "value": "dense"}]))),
            job_panel(P, run_label="Run sweep",
                      note=f"Uses the mask parameters above; BlockMask block size {SWEEP_BLOCK}. "
                           "Each length times SDPA causal and SDPA without mask (flash), then per "
                           "mask SDPA with the boolean mask and FlexAttention. Rows arrive as they "
                           "finish and are stored (see Runs)."),
            html.Div(id=f"{P}-crossover-text"),
            html.Div([
                dcc.Graph(id=f"{P}-crossover", config={"displaylogo": False}),
                dcc.Graph(id=f"{P}-breakdown", config={"displaylogo": False}),
            ], className="two-col"),
            html.Div(id=f"{P}-sweep-table"),
        ),
        section(
            "Reference run from the GPU (committed CSV)",
            controls_row(labelled("reference CSV", dcc.Dropdown(id=f"{P}-ref-file", clearable=False))),
            html.Div(id=f"{P}-ref-note"),
            html.Div([
                dcc.Graph(id=f"{P}-ref-plot", config={"displaylogo": False}),
                dcc.Graph(id=f"{P}-ref-breakdown", config={"displaylogo": False}),
            ], className="two-col"),
            html.Div(id=f"{P}-ref-table"),
            html.Div(id=f"{P}-bare"),
            csv_download(f"{P}-ref-csv", "Download reference CSV"),
            dcc.Store(id=f"{P}-ref-rows"),
            note="For comparison, a figure given to the lab from an H100 in November 2026 (not "
                 "measured here, configuration not stated): FlexAttention with a 256-token "
                 "sliding window at 5.0x the speed of SDPA causal at S = 16384 (32x by FLOPs) "
                 "and only 1.07x at S = 4096. Neither the chapter's nor this lab's number.",
        ),
    ])


# -- the mask ------------------------------------------------------------------------
PARAM_NAMES = tuple(PARAM_LABELS)
PARAM_INPUTS = [Input(f"{P}-{n}", "value") for n in PARAM_NAMES]
PARAM_STATES = [State(f"{P}-{n}", "value") for n in PARAM_NAMES]


def read_params(values) -> dict:
    """Widget values -> checked mask parameters (ValueError "expected ... got ...")."""
    out = {}
    for name, value in zip(PARAM_NAMES, values):
        lo, hi = PARAM_LIMITS[name]
        out[name] = check_int(PARAM_LABELS[name], value, lo=lo, hi=hi)
    return out


@callback([Output(f"{P}-{n}-wrap", "style") for n in PARAM_NAMES] + [Output(f"{P}-mask-help", "children")],
          Input(f"{P}-mask", "value"))
def show_params(kind):
    info = M.MASK_KINDS.get(kind) if isinstance(kind, str) else None
    used = info.params if info else ()
    styles = [{} if n in used else {"display": "none"} for n in PARAM_NAMES]
    return styles + [f"{info.label}: {info.help}." if info else ""]


def _stats_block(st: M.MaskStats) -> html.Div:
    return html.Div([
        stat("token density", f"{st.density:.1%}", id=f"{P}-density"),
        stat(f"block density ({st.block})", f"{st.block_density:.1%}", id=f"{P}-block-density"),
        stat("theory vs dense (tokens)", f"{st.speedup_vs_dense:.2f}x"),
        stat("theory vs causal (tokens)", f"{st.speedup_vs_causal:.2f}x", id=f"{P}-theory"),
        stat("theory vs causal (blocks)", f"{st.block_speedup_vs_causal:.2f}x"),
        stat("partial / full blocks", f"{st.blocks_partial} / {st.blocks_full}"),
        stat("FLOPs per head (d = 64)",
             f"{M.attention_flops(st.nnz, 64) / 1e6:.3g} M of {M.attention_flops(st.seq_len ** 2, 64) / 1e6:.3g} M"),
    ] + ([message(f"{st.empty_rows} query rows keep no key: their output is zero (FlexAttention) "
                  "or NaN (SDPA).", "warn")] if st.empty_rows else []))


@callback(Output(f"{P}-token-map", "figure"), Output(f"{P}-block-map", "figure"),
          Output(f"{P}-stats", "children"), Output(f"{P}-error", "children"),
          Input(f"{P}-mask", "value"), Input(f"{P}-seq", "value"), Input(f"{P}-block", "value"),
          *PARAM_INPUTS)
def draw_mask(kind, seq_len, block, *values):
    try:
        seq_len = check_int("sequence length", seq_len, lo=16, hi=max(SEQ_CHOICES))
        block = check_int("block size", block, lo=1, hi=max(BLOCK_CHOICES))
        mask = M.build_mask(kind, seq_len, read_params(values), block)
        dense = M.materialize(mask, seq_len)
        blocks = M.block_mask(dense, block)
        st = M.stats_of(dense, block, mask.name, blocks)
    except ValueError as exc:
        return dash.no_update, dash.no_update, None, error_message(exc)
    pooled, factor = M.downsample(dense)
    pooled_blocks, bfactor = M.downsample(blocks.float(), 128)
    return (figs.mask_heatmap(pooled, factor, f"Token mask: {mask.name}"),
            figs.block_heatmap(pooled_blocks, block, f"Block mask at block {block}: "
                               f"{st.blocks_total - st.blocks_partial - st.blocks_full} of "
                               f"{st.blocks_total} blocks skipped", bfactor),
            _stats_block(st), None)


# -- attention weights of a structured input -------------------------------------------
@callback(Output(f"{P}-weights-base", "figure"), Output(f"{P}-weights-mask", "figure"),
          Output(f"{P}-zoo-table", "children"), Output(f"{P}-zoo-rows", "data"),
          Output(f"{P}-weights-note", "children"),
          Input(f"{P}-mask", "value"), Input(f"{P}-seq", "value"), Input(f"{P}-block", "value"),
          *PARAM_INPUTS)
def draw_weights(kind, seq_len, block, *values):
    try:
        full_len = check_int("sequence length", seq_len, lo=16, hi=max(SEQ_CHOICES))
        seq_len = min(full_len, WEIGHTS_MAX_SEQ)
        block = check_int("block size", block, lo=1, hi=max(BLOCK_CHOICES))
        params = read_params(values)
        check_choice("mask", kind, M.MASK_KINDS)
        rows, parts = mask_zoo(seq_len, block, params)
    except ValueError as exc:
        return dash.no_update, dash.no_update, error_message(exc), [], ""
    pb, f = M.downsample(parts["weights"]["causal"])
    pm, _ = M.downsample(parts["weights"][kind])
    note = (f"S = {seq_len} tokens (the first {seq_len} of {full_len}: the weights are kept small), "
            "head dim 64." if full_len > seq_len else f"S = {seq_len} tokens, head dim 64.")
    return (figs.weights_heatmap(pb, f, "Dense causal attention weights"),
            figs.weights_heatmap(pm, f, f"Weights under {parts['names'][kind]}"),
            data_table(f"{P}-zoo", pd.DataFrame(rows), page_size=10), rows, note)


register_csv_download(f"{P}-zoo-csv", (f"{P}-zoo-rows", "data"), "attention_mask_zoo.csv")


# -- the sweep ---------------------------------------------------------------------------
@callback(Output(f"{P}-device-note", "children"), Input(f"{P}-sweep-seqs", "id"))
def device_note(_id):
    dev = describe_device()
    if dev.kind == "cuda":
        return (f"Runs on {dev.label} in bfloat16, batch 4, 16 heads, head dim 64; "
                "FlexAttention is compiled once per mask and length (compile time shown apart).")
    return (f"No GPU here: runs on the {dev.label} in float32, batch 1, 4 heads, head dim 64. "
            "CPU timings say little about GPU kernels; see the reference run below.")


def plan_sweep(seqs, masks, opts, block, *values) -> JobPlan:
    """Runs inside the background job: may touch CUDA through job_device()."""
    from engine.runtime.device import job_device, runtime_device_name

    if not seqs:
        raise ValueError("sequence lengths: expected at least one, got none")
    if not masks:
        raise ValueError("masks: expected at least one, got none")
    params = read_params(values)
    device = job_device()
    gpu = device.type == "cuda"
    config = SweepConfig(seq_lens=tuple(sorted(int(s) for s in seqs)), masks=tuple(masks),
                         params=tuple(params.items()), batch=4 if gpu else 1, heads=16 if gpu else 4,
                         head_dim=64, dtype="bfloat16" if gpu else "float32", block=SWEEP_BLOCK,
                         repeats=10 if gpu else 5, flex_compile_on_cpu="flex_cpu" in (opts or []))
    if not gpu:
        check_budget("attention sweep", sweep_memory_bytes(config, "cpu"))
    name = runtime_device_name(device)
    return JobPlan(rows=attention_sweep(config, device, name), total=config.total,
                   params={"seq_lens": list(config.seq_lens), "masks": list(config.masks), **params},
                   meta={"device": name, "page": "attention"})


register_job(P, [State(f"{P}-sweep-seqs", "value"), State(f"{P}-sweep-masks", "value"),
                 State(f"{P}-sweep-opts", "value"), State(f"{P}-block", "value"), *PARAM_STATES],
             plan_sweep, kind="attention", filename="attention_sweep.csv")


def _rows(rows) -> list[dict]:
    """Only the dict rows of a store (anything else from a client is dropped)."""
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def crossover_text(rows, baseline="causal") -> html.Div | None:
    speed_col, _theory, base_name, base_text = figs.BASELINES.get(baseline, figs.BASELINES["causal"])
    found = crossover(rows or [], "flex", speed_col)
    noisy = noisy_lengths(rows or [], "flex")
    left_out = (" Left out as noisy (IQR / median > 0.1, drawn hollow): "
                + "; ".join(f"{m} at S = {', '.join(map(str, v))}" for m, v in noisy.items()) + "."
                if noisy else "")
    if not found:
        flex_rows = [r for r in rows or [] if r.get("impl") == "flex"]
        if flex_rows and all(str(r.get("status", "")).startswith("unavailable") for r in flex_rows):
            return message(f"FlexAttention {flex_rows[0]['status']}", "warn")
        return message("No settled FlexAttention timing to judge from." + left_out, "warn") if noisy else None
    parts = [f"{m} from S = {s}" if s else f"{m} not within the settled lengths"
             for m, s in found.items()]
    return message(f"Where FlexAttention stays faster than {base_text} ({base_name}): "
                   + "; ".join(parts) + "." + left_out, "ok" if any(found.values()) else "info")


def sweep_table(rows, table_id: str = f"{P}-sweep-rows"):
    if not rows:
        return None
    cols = ["seq_len", "mask", "impl", "status", "kernel_ms", "iqr_ms", "speedup_vs_causal",
            "speedup_vs_dense", "block_theory_vs_causal", "mask_build_ms", "compile_s", "density",
            "block_density", "max_abs_diff", "noisy"]
    frame = pd.DataFrame(rows)
    return data_table(table_id, frame[[c for c in cols if c in frame]], page_size=12)


@callback(Output(f"{P}-crossover", "figure"), Output(f"{P}-breakdown", "figure"),
          Output(f"{P}-sweep-table", "children"), Output(f"{P}-crossover-text", "children"),
          Input(IDS.rows, "data"), Input(f"{P}-baseline", "value"))
def draw_sweep(rows, baseline="causal"):
    rows = _rows(rows)
    return (figs.crossover_figure(rows, baseline=baseline), figs.time_breakdown_figure(rows),
            sweep_table(rows), crossover_text(rows, baseline))


# -- the committed reference CSV ----------------------------------------------------------
def reference_files() -> list[Reference]:
    """Committed attention sweeps (engine.bench.reference), newest first by their own date."""
    return references("attention")


@callback(Output(f"{P}-ref-file", "options"), Output(f"{P}-ref-file", "value"),
          Input(f"{P}-ref-file", "id"))
def list_reference(_id):
    refs = reference_files()
    names = sorted(r.name for r in refs)
    return [{"label": f, "value": f} for f in names], (refs[0].name if refs else None)


@callback(Output(f"{P}-ref-plot", "figure"), Output(f"{P}-ref-note", "children"),
          Output(f"{P}-ref-rows", "data"), Output(f"{P}-ref-breakdown", "figure"),
          Output(f"{P}-ref-table", "children"), Input(f"{P}-ref-file", "value"),
          Input(f"{P}-baseline", "value"))
def draw_reference(name, baseline="causal"):
    files = {r.name: r.path for r in reference_files()}
    if not isinstance(name, str) or name not in files:
        return (figs.crossover_figure([], "Reference run", baseline),
                message("No reference CSV committed yet under benchmarks/results/ "
                        "(python3 benchmarks/gpu_attention.py --out benchmarks/results).", "info"), [],
                figs.time_breakdown_figure([], "Reference run: where the time goes"), None)
    frame = pd.read_csv(files[name])
    rows = frame.to_dict("records")
    devs = ", ".join(sorted({str(d) for d in frame.get("device_name", pd.Series(["?"])).dropna()}))
    vers = ", ".join(sorted({str(d) for d in frame.get("torch_version", pd.Series(["?"])).dropna()}))
    when = str(frame["measured_at"].dropna().min()) if "measured_at" in frame else "?"
    mode = ", ".join(sorted({str(m) for m in frame.get("flex_compile", pd.Series(dtype=str)).dropna()}))
    mode_text = f"; FlexAttention compile mode: {mode}" if mode else ""
    note = html.Div([message(f"{name}: measured on {devs} (torch {vers}, {when}); {len(frame)} rows"
                             f"{mode_text}.", "info"), crossover_text(rows, baseline)])
    return (figs.crossover_figure(rows, f"Reference run on {devs}", baseline), note, rows,
            figs.time_breakdown_figure(rows), sweep_table(rows, f"{P}-ref-rows-table"))


register_csv_download(f"{P}-ref-csv", (f"{P}-ref-rows", "data"), "attention_reference.csv")

BARE_FILE = "attention_bare_check.csv"
BARE_COLUMNS = ["seq_len", "window", "status", "lab_speedup", "bare_events_speedup", "bare_speedup",
                "within_10pct", "within_10pct_do_bench", "speedup_lab_over_bare_events",
                "speedup_lab_over_bare", "lab_flex_ms", "bare_flex_events_ms", "bare_flex_ms",
                "lab_sdpa_causal_ms", "bare_sdpa_causal_events_ms", "bare_sdpa_causal_ms",
                "device_name"]


@callback(Output(f"{P}-bare", "children"), Input(f"{P}-ref-file", "value"))
def draw_bare(name):
    """The GPU script's bare FlexAttention / SDPA measurement beside the lab's, if committed
    (the one in the chosen reference CSV's folder)."""
    files = {r.name: r.path for r in reference_files()}
    if not isinstance(name, str) or name not in files:  # only next to a listed reference CSV
        return None
    path = files[name].parent / BARE_FILE
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    cols = [c for c in BARE_COLUMNS if c in frame]
    return html.Div([
        html.H3("Lab vs a bare measurement (sliding window)"),
        html.P("Bare: FlexAttention's own create_block_mask and torch.compile(flex_attention), "
               "compiled afresh per length, on a plain sliding-window predicate, and SDPA "
               "is_causal; timed with triton.testing.do_bench (L2 flushed before each call) and "
               "as back-to-back calls between CUDA events (the *_events_ columns, L2 warm, as the "
               "lab's timer calls). Lab: the same pair from the sweep. within_10pct compares the "
               "speedups timed the same way (back to back); within_10pct_do_bench against do_bench. "
               "Older runs hold only the do_bench columns.",
               className="section-note"),
        data_table(f"{P}-bare-table", frame[cols], page_size=6),
        csv_download(f"{P}-bare-csv", "Download bare-check CSV"),
        dcc.Store(id=f"{P}-bare-rows", data=frame.to_dict("records")),
    ])


register_csv_download(f"{P}-bare-csv", (f"{P}-bare-rows", "data"), BARE_FILE)
