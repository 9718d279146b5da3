"""Attention masks: the mask zoo, block masks, and when sparse attention beats dense."""
from __future__ import annotations


import dash
from dash import Input, Output, State, dcc, html

from components import figures_attention as figs
from components.jobs import JobPlan, job_ids, job_panel, register_job
from components.layout import (controls_row, error_message, graph_pair, labelled, message,
                               page_header, section, stat)
from components.tables import csv_download, register_csv_download, table_slot
from components.compact_table import columns, compact_table
from components.ids import page_ids
from components.pure_callback import PURE_LAYOUT, pure_callback, pure_reference_callback
from engine.attention import masks as M
from engine.attention import views as V
from engine.attention.attend import attention_sweep, sweep_memory_bytes
from engine.bench.reference import Reference, references
from engine.runtime.device import describe_device
from engine.validate import check_budget

dash.register_page(__name__, path="/attention", name="Attention masks", nav_name="Attention", order=8,
                   description="The mask zoo, block masks, and when sparse attention beats dense "
                               "flash attention.",
                   pure_layout=PURE_LAYOUT)

P = "attention"
IDS = job_ids(P)
ID = page_ids(P, "mask", "seq", "block", *V.PARAM_NAMES, *[f"{n}_wrap" for n in V.PARAM_NAMES],
              "mask_help", "error", "stats", "density", "block_density", "theory", "token_map",
              "block_map", "weights_note", "weights_base", "weights_mask", "zoo_table", "zoo", "zoo_csv",
              "zoo_rows", "device_note", "sweep_seqs", "sweep_masks", "sweep_opts", "baseline",
              "crossover_text", "crossover", "breakdown", "sweep_table", "sweep_rows", "ref_file",
              "ref_note", "ref_plot", "ref_breakdown", "ref_table", "ref_rows_table", "bare", "ref_csv",
              "ref_rows", "bare_table", "bare_csv", "bare_rows")


def _param_control(name: str) -> html.Div:
    lo, hi = V.PARAM_LIMITS[name]
    return html.Div(labelled(V.PARAM_LABELS[name], dcc.Input(
        id=ID.of(name), type="number", min=lo, max=hi, step=1, value=M.DEFAULT_PARAMS[name],
        debounce=0.4, style={"width": "100%"})), id=ID.of(f"{name}_wrap"))


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
                labelled("mask", dcc.Dropdown(id=ID.mask, options=mask_options,
                                              value="longformer", clearable=False)),
                labelled("sequence length S", dcc.Dropdown(
                    id=ID.seq, options=[{"label": str(s), "value": s} for s in V.SEQ_CHOICES],
                    value=512, clearable=False)),
                labelled("block size", dcc.Dropdown(
                    id=ID.block, options=[{"label": str(b), "value": b} for b in V.BLOCK_CHOICES],
                    value=32, clearable=False),
                    help="also the granularity of random links"),
            ),
            controls_row(*[_param_control(n) for n in V.PARAM_NAMES]),
            html.Div(id=ID.mask_help, className="control-help"),
            html.Div(id=ID.error),
            html.Div(id=ID.stats),
            graph_pair(ID.token_map, ID.block_map),
            note="True entries are kept. Long sequences are drawn pooled: each cell shows the "
                 "kept fraction of the tokens (or blocks) it covers.",
        ),
        section(
            "What each mask keeps of a real input",
            html.Div(id=ID.weights_note, className="section-note"),
            graph_pair(ID.weights_base, ID.weights_mask),
            *table_slot(ID.zoo_table, ID.zoo_csv, ID.zoo_rows, "Download zoo CSV"),
            note="Q and K are built so that dense causal attention has the chapter's pattern "
                 "(self, first token, neighbours, plus noise). Mass kept: the share of the dense "
                 "causal weights that falls on keys the mask keeps; output error: relative "
                 "distance of the masked output from dense causal attention.",
        ),
        section(
            "Timing sweep: when does masked attention beat dense flash?",
            html.P(id=ID.device_note, className="section-note"),
            controls_row(
                _wide(labelled("sequence lengths", dcc.Checklist(
                    id=ID.sweep_seqs, value=[1024, 4096, 16384] if gpu else [256, 512, 1024],
                    inline=True,
                    options=[{"label": f" {s}", "value": s} for s in V.SWEEP_SEQS],
                    inputStyle={"marginLeft": "8px"}))),
                _wide(labelled("masks", dcc.Checklist(
                    id=ID.sweep_masks, value=["sliding_window", "bigbird"], inline=True,
                    options=[{"label": f" {M.MASK_KINDS[k].label}", "value": k} for k in V.SWEEP_MASKS],
                    inputStyle={"marginLeft": "8px"}))),
                labelled("options", dcc.Checklist(
                    id=ID.sweep_opts, value=[],
                    options=[{"label": " compile FlexAttention on CPU (about a minute per mask "
                                       "and length)", "value": "flex_cpu"}])),
            ),
            controls_row(labelled("speedup measured against", dcc.RadioItems(
                id=ID.baseline, value="causal", inline=True, inputStyle={"marginRight": "4px"},
                labelStyle={"marginRight": "14px"},
                options=[{"label": "SDPA causal (flash)", "value": "causal"},
                         {"label": "SDPA without mask (flash; fair for two-sided masks)",
                          "value": "dense"}]))),
            job_panel(P, run_label="Run sweep",
                      note=f"Uses the mask parameters above; BlockMask block size {V.SWEEP_BLOCK}. "
                           "Each length times SDPA causal and SDPA without mask (flash), then per "
                           "mask SDPA with the boolean mask and FlexAttention. Rows arrive as they "
                           "finish and are stored (see Runs)."),
            html.Div(id=ID.crossover_text),
            graph_pair(ID.crossover, ID.breakdown),
            html.Div(id=ID.sweep_table),
        ),
        section(
            "Reference run from the GPU (committed CSV)",
            controls_row(labelled("reference CSV", dcc.Dropdown(id=ID.ref_file, clearable=False))),
            html.Div(id=ID.ref_note),
            graph_pair(ID.ref_plot, ID.ref_breakdown),
            *table_slot(ID.ref_table, ID.ref_csv, ID.ref_rows, "Download reference CSV"),
            html.Div(id=ID.bare),
            note="For comparison, a figure given to the lab from an H100 in November 2026 (not "
                 "measured here, configuration not stated): FlexAttention with a 256-token "
                 "sliding window at 5.0x the speed of SDPA causal at S = 16384 (32x by FLOPs) "
                 "and only 1.07x at S = 4096. Neither the chapter's nor this lab's number.",
        ),
    ])


# -- the mask ------------------------------------------------------------------------
PARAM_INPUTS = [Input(ID.of(n), "value") for n in V.PARAM_NAMES]
PARAM_STATES = [State(ID.of(n), "value") for n in V.PARAM_NAMES]
MASK_INPUTS = [Input(ID.mask, "value"), Input(ID.seq, "value"), Input(ID.block, "value"), *PARAM_INPUTS]
ZOO_COLUMNS = columns("""
mask             | mask                 | the mask and its parameters
density          | token density        | kept (query, key) pairs / S²
block_density    | block density        | blocks a kernel visits / all blocks
theory_vs_causal | theory vs causal (x) | FLOPs of dense causal / FLOPs of the mask
mass_kept        | mass kept            | share of dense causal attention's weight on kept keys
output_rel_error | output error (rel.)  | relative distance of the masked output from dense causal attention
""")
SWEEP_COLUMNS = columns("""
seq_len                | S (tokens)     | sequence length
mask                   | mask           | the mask
impl                   | impl.          | implementation
status                 | status         | ok, or why not measured
kernel_ms              | kernel (ms)    | median kernel time
iqr_ms                 | IQR (ms)       | interquartile range of the kernel time
speedup_vs_causal      | vs causal (x)  | t(SDPA causal) / t
speedup_vs_dense       | vs no mask (x) | t(SDPA without mask) / t
block_theory_vs_causal | theory (x)     | FLOPs by whole blocks, against causal
mask_build_ms          | build (ms)     | building the mask (BlockMask or bool)
compile_s              | compile (s)    | torch.compile of FlexAttention
noisy                  | noisy          | IQR / median > 0.1: drawn hollow, no verdict rests on it
""")
BARE_COLUMNS = columns("""
seq_len                    | S (tokens)             | sequence length
window                     | window                 | sliding window (tokens)
status                     | status                 | ok, or why not measured
lab_speedup                | lab (x)                | the lab's FlexAttention speedup over SDPA causal
bare_events_speedup        | bare, events (x)       | bare speedup, back-to-back calls between CUDA events
bare_speedup               | bare, do_bench (x)     | bare speedup, triton do_bench (L2 flushed)
within_10pct               | within 10 %            | lab and bare (events) within 10 %
within_10pct_do_bench      | within 10 % (do_bench) | lab and bare (do_bench) within 10 %
lab_flex_ms                | lab flex (ms)          | the lab's FlexAttention time
bare_flex_events_ms        | bare flex (ms)         | bare FlexAttention, CUDA events
lab_sdpa_causal_ms         | lab causal (ms)        | the lab's SDPA causal time
bare_sdpa_causal_events_ms | bare causal (ms)       | bare SDPA causal, CUDA events
""")


@pure_callback([Output(ID.of(f"{n}_wrap"), "style") for n in V.PARAM_NAMES] + [Output(ID.mask_help, "children")],
          Input(ID.mask, "value"))
def show_params(kind):
    info = M.MASK_KINDS.get(kind) if isinstance(kind, str) else None
    used = info.params if info else ()
    styles = [{} if n in used else {"display": "none"} for n in V.PARAM_NAMES]
    return styles + [f"{info.label}: {info.help}." if info else ""]


def _stats_block(st: M.MaskStats) -> html.Div:
    return html.Div([
        stat("token density", f"{st.density:.1%}", id=ID.density),
        stat(f"block density ({st.block})", f"{st.block_density:.1%}", id=ID.block_density),
        stat("theory vs dense (tokens)", f"{st.speedup_vs_dense:.2f}x"),
        stat("theory vs causal (tokens)", f"{st.speedup_vs_causal:.2f}x", id=ID.theory),
        stat("theory vs causal (blocks)", f"{st.block_speedup_vs_causal:.2f}x"),
        stat("partial / full blocks", f"{st.blocks_partial} / {st.blocks_full}"),
        stat("FLOPs per head (d = 64)",
             f"{M.attention_flops(st.nnz, 64) / 1e6:.3g} M of {M.attention_flops(st.seq_len ** 2, 64) / 1e6:.3g} M"),
    ] + ([message(f"{st.empty_rows} query rows keep no key: their output is zero (FlexAttention) "
                  "or NaN (SDPA).", "warn")] if st.empty_rows else []))


def _view_of_widgets(view_of, kind, seq_len, block, values):
    """(view of the widgets' one MaskSpec, None), or (None, the spec's "expected ... got ..." message)."""
    try:
        return view_of(V.MaskSpec.from_widgets(kind, seq_len, block, values)), None
    except ValueError as exc:
        return None, error_message(exc)


@pure_callback(Output(ID.token_map, "figure"), Output(ID.block_map, "figure"), Output(ID.stats, "children"),
          Output(ID.error, "children"), *MASK_INPUTS)
def draw_mask(kind, seq_len, block, *values):
    view, error = _view_of_widgets(V.mask_view, kind, seq_len, block, values)
    if error:
        return dash.no_update, dash.no_update, None, error
    st = view.stats
    return (figs.mask_heatmap(view.token, view.token_factor, f"Token mask: {view.name}"),
            figs.block_heatmap(view.blocks, block, f"Block mask at block {block}: {view.blocks_skipped} "
                               f"of {st.blocks_total} blocks skipped", view.block_factor),
            _stats_block(st), None)


# -- attention weights of a structured input -------------------------------------------
@pure_callback(Output(ID.weights_mask, "figure"), Output(ID.zoo_table, "children"), Output(ID.zoo_rows, "data"),
          Output(ID.weights_note, "children"), *MASK_INPUTS)
def draw_weights(kind, seq_len, block, *values):
    view, error = _view_of_widgets(V.weights_view, kind, seq_len, block, values)
    if error:
        return dash.no_update, error, [], ""
    return (figs.weights_heatmap(view.masked, view.factor, f"Weights under {view.mask_name}"),
            compact_table(ID.zoo, view.rows, ZOO_COLUMNS, page_size=10), view.rows, view.note)


SEED_AT = V.PARAM_NAMES.index("seed")


@pure_callback(Output(ID.weights_base, "figure"), Input(ID.seq, "value"), Input(ID.of("seed"), "value"),
               State(ID.mask, "value"), State(ID.block, "value"),
               *[s for s in PARAM_STATES if s.component_id != ID.of("seed")])
def draw_base_weights(seq_len, seed, kind, block, *others):
    """Dense causal weights depend on the length and the input's seed only: a mask's own
    controls neither redraw nor resend them (the other values only find the cached zoo)."""
    values = [*others[:SEED_AT], seed, *others[SEED_AT:]]
    defaults = [seed if n == "seed" else M.DEFAULT_PARAMS[n] for n in V.PARAM_NAMES]
    # a mask setting being edited (State: it will not call again) must not leave the base at
    # an old length: the base does not depend on it, so the defaults stand in for it
    for spec_args in ((kind, block, values), ("causal", V.BLOCK_CHOICES[0], defaults)):
        try:
            view = V.weights_view(V.MaskSpec.from_widgets(spec_args[0], seq_len, spec_args[1], spec_args[2]))
            break
        except ValueError:
            continue
    else:
        return dash.no_update  # the length or the seed itself is refused: draw_weights shows why
    return figs.weights_heatmap(view.base, view.factor, "Dense causal attention weights")


register_csv_download(ID.zoo_csv, (ID.zoo_rows, "data"), "attention_mask_zoo.csv")


# -- the sweep ---------------------------------------------------------------------------
@pure_callback(Output(ID.device_note, "children"), Input(ID.sweep_seqs, "id"))
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

    device = job_device()
    config = V.sweep_config(seqs, masks, opts, values, gpu=device.type == "cuda")
    if device.type != "cuda":  # the budget is host memory; on a GPU the tensors live on the device
        check_budget("attention sweep", sweep_memory_bytes(config, "cpu"))
    name = runtime_device_name(device)
    return JobPlan(rows=attention_sweep(config, device, name), total=config.total,
                   params={"seq_lens": list(config.seq_lens), "masks": list(config.masks), **dict(config.params)},
                   meta={"device": name, "page": "attention"})


register_job(P, [State(ID.sweep_seqs, "value"), State(ID.sweep_masks, "value"),
                 State(ID.sweep_opts, "value"), State(ID.block, "value"), *PARAM_STATES],
             plan_sweep, kind="attention", filename="attention_sweep.csv")


def _rows(rows) -> list[dict]:
    """Only the dict rows of a store (anything else from a client is dropped)."""
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def crossover_text(rows, baseline="causal") -> html.Div | None:
    verdict = V.crossover_verdict(rows or [], baseline)
    return message(*verdict) if verdict else None


STATUS_WIDTH = "150px"  # the status column: one line, the full text on hover and under the table
MASK_WIDTH = "210px"  # the mask column: wide enough for "sliding_window(w=256)" on one line


def sweep_table(rows, table_id: str = ID.sweep_rows):
    """The sweep's rows, one line each at 1280 px: a long status ("unavailable: ...") is cut
    to one line (whole on hover) and said once, in full, under the table."""
    if not rows:
        return None
    table = compact_table(table_id, rows, SWEEP_COLUMNS)
    table.style_cell_conditional = [*table.style_cell_conditional,
                                    {"if": {"column_id": "status"}, "maxWidth": STATUS_WIDTH},
                                    {"if": {"column_id": "mask"}, "minWidth": MASK_WIDTH, "maxWidth": MASK_WIDTH}]
    table.style_data_conditional = [{"if": {"column_id": c}, "whiteSpace": "nowrap", "overflow": "hidden",
                                     "textOverflow": "ellipsis"} for c in ("status", "impl.")]
    statuses = [str(r.get("status", "")) for r in rows]
    why = [html.Li(f"{text} ({statuses.count(text)} row{'s' * (statuses.count(text) > 1)})")
           for text in dict.fromkeys(statuses) if text != "ok" and len(text) > 20]
    if not why:
        return table
    return html.Div([table, html.Div(["Status, in full:", html.Ul(why)], className="section-note",
                                     id=f"{table_id}-status")])


@pure_callback(Output(ID.crossover, "figure"), Output(ID.breakdown, "figure"), Output(ID.sweep_table, "children"),
          Output(ID.crossover_text, "children"), Input(IDS.rows, "data"), Input(ID.baseline, "value"))
def draw_sweep(rows, baseline="causal"):
    rows = _rows(rows)
    return (figs.crossover_figure(rows, baseline=baseline), figs.time_breakdown_figure(rows),
            sweep_table(rows), crossover_text(rows, baseline))


# -- the committed reference CSV ----------------------------------------------------------
def reference_files() -> list[Reference]:
    """Committed attention sweeps (engine.bench.reference), newest first by their own date."""
    return references("attention")


@pure_reference_callback(Output(ID.ref_file, "options"), Output(ID.ref_file, "value"), Input(ID.ref_file, "id"))
def list_reference(_id):
    refs = reference_files()
    return [{"label": f, "value": f} for f in sorted(r.name for r in refs)], (refs[0].name if refs else None)


@pure_reference_callback(Output(ID.ref_plot, "figure"), Output(ID.ref_note, "children"), Output(ID.ref_rows, "data"),
          Output(ID.ref_breakdown, "figure"), Output(ID.ref_table, "children"), Output(ID.bare, "children"),
          Input(ID.ref_file, "value"), Input(ID.baseline, "value"))
def draw_reference(name, baseline="causal"):
    """The chosen committed run (its CSV read once per change) and the bare check beside it."""
    run = V.reference_run(name, reference_files())
    if run is None:
        return (figs.crossover_figure([], "Reference run", baseline),
                message("No reference CSV committed yet under benchmarks/results/ "
                        "(python3 benchmarks/gpu_attention.py --out benchmarks/results).", "info"), [],
                figs.time_breakdown_figure([], "Reference run: where the time goes"), None, None)
    note = html.Div([message(run.note, "info"), crossover_text(run.rows, baseline)])
    return (figs.crossover_figure(run.rows, f"Reference run on {run.devices}", baseline), note, run.rows,
            figs.time_breakdown_figure(run.rows), sweep_table(run.rows, ID.ref_rows_table), bare_check(run))


register_csv_download(ID.ref_csv, (ID.ref_rows, "data"), "attention_reference.csv")


def bare_check(run: V.ReferenceRun) -> html.Div | None:
    """The GPU script's bare FlexAttention / SDPA measurement beside the lab's, if committed
    (the one in the chosen reference CSV's folder)."""
    if not run.bare_rows:
        return None
    return html.Div([
        html.H3("Lab vs a bare measurement (sliding window)"),
        html.P("Bare: FlexAttention's own create_block_mask and torch.compile(flex_attention), "
               "compiled afresh per length, on a plain sliding-window predicate, and SDPA "
               "is_causal; timed with triton.testing.do_bench (L2 flushed before each call) and "
               "as back-to-back calls between CUDA events (the events columns, L2 warm, as the "
               "lab's timer calls). Lab: the same pair from the sweep. 'within 10 %' compares the "
               "speedups timed the same way (back to back); the do_bench one against do_bench. "
               "Older runs hold only the do_bench columns; the CSV has every column.",
               className="section-note"),
        compact_table(ID.bare_table, run.bare_rows, BARE_COLUMNS, page_size=6),
        csv_download(ID.bare_csv, "Download bare-check CSV"),
        dcc.Store(id=ID.bare_rows, data=run.bare_rows),
    ])


register_csv_download(ID.bare_csv, (ID.bare_rows, "data"), V.BARE_FILE)
