"""The CSV schema of benchmark rows: column -> type, which are required, and checks.

Rows are flat dicts built from ``Measurement.row()`` (engine/bench/measurement.py) plus
each sweep's own columns; the measured columns are derived from Measurement here, once.
A CSV exported from a run (page, CLI or GPU script) reads back to the same columns and
types (see ``read_rows_csv``); old CSVs (without warmup/number_per_run, with the old
method text) still load.
"""
from __future__ import annotations

import io
import math

import pandas as pd

from engine.bench.measurement import Measurement, Task

# Types of the columns Measurement.row() writes; the dims and versions columns are named
# by each schema (ints and strings). measurement_columns() checks this covers row().
MEASUREMENT_TYPES = {"op": "str", "backend": "str", "dtype": "str", "block": "int", "pattern": "str",
                     "sparsity": "float", "density": "float", "device": "str", "device_name": "str",
                     "method": "str", "repeats": "int", "warmup": "int", "number_per_run": "int",
                     "runs": "int", "median_s": "float", "iqr_s": "float", "noisy": "bool"}


def measurement_columns(dims: tuple[str, ...], versions: tuple[str, ...] = ("torch_version",),
                        required: tuple[str, ...] = ()) -> dict[str, tuple[str, bool]]:
    """The columns of ``Measurement.row()`` for a task with these dims and versions.

    Derived from a Measurement itself (so a field added there shows up here):
    column -> (type, required); ``required`` names the columns every row must fill.
    """
    sample = Measurement(Task(op="x", dims={d: 1 for d in dims}, versions={v: "" for v in versions}),
                         times_s=(1.0,))
    out = {}
    for name in sample.row():
        kind = "int" if name in dims else "str" if name in versions else MEASUREMENT_TYPES.get(name)
        if kind is None:
            raise AssertionError(f"schema: expected a type for Measurement column {name!r}, got none")
        out[name] = (kind, name in required)
    return out


# column: (type, required). type is "str", "int", "float" or "bool".
_PARADOX_MEASURED = measurement_columns(
    ("rows", "cols", "k"), ("torch_version", "scipy_version"),
    required=("op", "backend", "rows", "cols", "k", "sparsity", "pattern", "block", "dtype", "device",
              "repeats", "device_name", "torch_version"))
PARADOX_COLUMNS: dict[str, tuple[str, bool]] = {
    "sweep": ("str", True),
    "spec_key": ("str", True),
    "status": ("str", True),          # ok | unsupported | refused | error | reused
    "format": ("str", True),
    "seed": ("int", False),
    **_PARADOX_MEASURED,              # median_s: required (not NaN) when status == ok
    "nnz": ("float", False),
    "prepare_s": ("float", False),
    "dense_median_s": ("float", False),
    "speedup": ("float", False),
    "theoretical": ("float", False),
    "efficiency": ("float", False),
    "gflops": ("float", False),
    "gbs": ("float", False),
    "bytes_moved": ("float", False),
    "peak_gbs": ("float", False),
    "pct_peak_bw": ("float", False),
    "message": ("str", False),
    "measured_at": ("str", False),
    "source_run": ("str", False),     # a reused row: the stored run it came from
}
# The structured-sparsity sweep (engine/bench/pattern_sweep.py): paradox rows + the part.
STRUCTURED_COLUMNS = {**PARADOX_COLUMNS, "part": ("str", True)}  # "block" or "2:4"
# The user-matrix sweep (engine/bench/matrix_sweep.py, kind "your-matrix").
MATRIX_COLUMNS: dict[str, tuple[str, bool]] = {
    "sweep": ("str", True), "status": ("str", True), "matrix_hash": ("str", True),
    "matrix_name": ("str", False), "candidate": ("str", True), "backend": ("str", True),
    "format": ("str", True), "block": ("int", False), "reordered": ("bool", False),
    "op": ("str", True), "k": ("int", True), "dtype": ("str", True), "device": ("str", True),
    "device_name": ("str", True), "rows": ("int", True), "cols": ("int", True),
    "nnz": ("int", True), "fill_in": ("float", False), "repeats": ("int", False),
    "method": ("str", False), "median_s": ("float", False), "iqr_s": ("float", False),
    "runs": ("int", False), "noisy": ("bool", False), "prepare_s": ("float", False),
    "warmup": ("int", False), "number_per_run": ("int", False),  # Measurement.row()'s "how"
    "dense_median_s": ("float", False), "speedup": ("float", False),
    "predicted_s": ("float", False), "bound": ("str", False), "efficiency": ("float", False),
    "bytes_moved": ("float", False), "flops": ("float", False), "gbs": ("float", False),
    "max_rel_err": ("float", False), "calibrated_at": ("str", False),
    "torch_version": ("str", False), "message": ("str", False), "measured_at": ("str", False),
}
STATUSES = ("ok", "unsupported", "refused", "error", "reused")
OK_REQUIRED = ("median_s", "iqr_s", "density", "speedup", "theoretical")


def columns(required: str, optional: str = "") -> dict[str, tuple[str, bool]]:
    """ "op:str rows:int ..." (required) and the same for optional columns -> a schema."""
    out = {}
    for text, req in ((required, True), (optional, False)):
        for item in text.split():
            name, _, kind = item.partition(":")
            out[name] = (kind or "str", req)
    return out


# The other kinds of run the lab's jobs export (the columns their engine rows carry).
# Timing kinds carry the Measurement's columns too (theirs listed below win on overlap).
ATTENTION_COLUMNS = measurement_columns(("seq_len", "batch", "heads", "head_dim")) | {"settled": ("bool", False)} | columns(
    "sweep status seq_len:int mask impl",
    "device device_name dtype batch:int heads:int head_dim:int block:int torch_version mask_kind message "
    "density:float block_density:float theory_vs_causal:float theory_vs_dense:float "
    "block_theory_vs_causal:float block_theory_vs_dense:float useful_flops:float mask_build_ms:float "
    "compile_s:float first_call_ms:float kernel_ms:float iqr_ms:float runs:int noisy:bool method "
    "tflops:float speedup_vs_causal:float speedup_vs_dense:float max_abs_diff:float measured_at "
    "triton_version cuda flex_compile script")
MOE_TIMING_COLUMNS = measurement_columns(("batch", "d_model", "d_ff", "experts", "k")) | columns(
    "batch:int variant status time_ms:float ratio_vs_dense_1x:float",
    "device dtype d_model:int d_ff:int experts:int k:int torch host params:int active_params:int timer "
    "iqr_ms:float runs:int noisy:bool tokens_per_s:float message date_utc")
MOE_ROUTER_COLUMNS = columns(  # rows of several kinds (curves, loads, specialisation): "kind" says which
    "kind variant",
    "device device_name epoch:int alpha:float train_loss:float test_accuracy:float balance_loss:float max_share:float dead_experts:int "
    "expert:int " + " ".join(f"load_e{i}:float" for i in range(64)) + " "
    + " ".join(f"class_{i}:float" for i in range(10)))
ISOMORPHISM_COLUMNS = columns(
    "channels:int image batch:int matrix_over_native:float",
    "c_out:int c_in:int kernel stride padding dilation device dtype rows:int cols:int nnz:int density:float "
    "build_s:float native_median_s:float native_iqr_s:float matrix_median_s:float matrix_iqr_s:float "
    "noisy:bool max_abs_diff:float repeats:int torch method cudnn_allow_tf32:bool device_name status message "
    "date_utc cuda op backend kh:int kw:int height:int width:int block pattern sparsity torch_version "
    "warmup:int number_per_run:int runs:int median_s:float iqr_s:float settled:bool native_runs:int "
    "native_noisy:bool matrix_runs:int matrix_noisy:bool budget_s:float")
PAPER_COLUMNS = columns(
    "task variant epoch:int epoch_s:float",
    "dataset train_loss:float test_loss:float metric_name metric:float params:int n_train:int n_test:int "
    "device dtype lr:float batch_size:int seed:int torch max_abs_diff_vs_native:float date_utc cuda method "
    "device_type test_window_overlap:float chance_window_overlap:float")
STRUCTURED_MATRICES_COLUMNS = measurement_columns(("n", "batch")) | columns(
    "family name status n:int batch:int",
    "label config dtype device device_name params:int storage_bytes:int flops:float "
    "theoretical_speedup:float median_s:float iqr_s:float noisy:bool speedup_vs_dense:float "
    "speedup_vs_dense_fp32:float efficiency:float torch method message date_utc cuda tf32_matmul "
    "host_pid:int")
STRUCTURED_ACCURACY_COLUMNS = columns(
    "model pattern sparsity:float acc_dense:float",
    "target_sparsity:float acc_pruned:float acc_finetuned:float drop_pts:float prunable_weights:int "
    "epochs:int finetune_epochs:int seed:int seconds:float device device_name")
# /scanner's phase-transition map (engine.chain.recovery.phase_transition_rows) and the
# /generator's trained chain (engine.chain.training: the loss step by step).
SCANNER_PHASE_MAP_COLUMNS = columns(
    "K:int nonzeros:int outputs:int trials:int omp_success_rate:float pinv_success_rate:float", "device")
GENERATOR_TRAINING_COLUMNS = columns("step:int loss:float", "steps:int lr:float device")

# The headless GPU scripts (benchmarks/bsr_bench.py, gpu_bsr_app.py, ...): Measurement rows
# (engine.bench.script_rows) with their dims and versions, plus each script's derived columns.
SCRIPT_COLUMNS = measurement_columns(
    ("n", "k", "d", "hidden", "tokens"), ("torch_version", "triton_version"),
    required=("op", "backend", "method", "device", "device_name", "torch_version")) | columns(
    "script measured_at timing",
    "ms:float ms_q25:float ms_q75:float figure status config rel_err:float speedup_vs_dense:float "
    "speedup_vs_torch_bsr:float theory:float efficiency:float tflops:float nnz_blocks:int "
    "flops_dense:float flops_sparse:float gather_bytes:float gather_tb_per_s:float max_row_blocks:int "
    "mean_row_blocks:float fraction_of_ceiling:float host_us_per_call:float stored_blocks:int mode "
    "dense_tflops_equiv:float first_call_s:float")

# Every kind of run /runs imports and the CLI writes, listed here (nothing registers at import).
SCHEMAS: dict[str, dict[str, tuple[str, bool]]] = {
    "paradox": PARADOX_COLUMNS, "structured": STRUCTURED_COLUMNS, "your-matrix": MATRIX_COLUMNS,
    "attention": ATTENTION_COLUMNS, "moe-timing": MOE_TIMING_COLUMNS, "moe-router": MOE_ROUTER_COLUMNS,
    "isomorphism-timing": ISOMORPHISM_COLUMNS, "paper-training": PAPER_COLUMNS,
    "structured-matrices": STRUCTURED_MATRICES_COLUMNS, "structured-accuracy": STRUCTURED_ACCURACY_COLUMNS,
    "scanner-phase-map": SCANNER_PHASE_MAP_COLUMNS, "generator-training": GENERATOR_TRAINING_COLUMNS,
    "gpu-script": SCRIPT_COLUMNS,
}
# Which values each kind's "status" column may hold. Kinds not listed write free text there
# ("unavailable: on CPU, ..." on /attention) and are not checked.
KIND_STATUSES = {"paradox": STATUSES, "structured": STATUSES, "your-matrix": STATUSES}
# Columns with a value required on rows whose status is "ok" (the numbers drawn).
KIND_OK_REQUIRED = {"paradox": OK_REQUIRED, "structured": OK_REQUIRED, "attention": ("kernel_ms",),
                    "moe-timing": ("time_ms",), "structured-matrices": ("median_s",),
                    "isomorphism-timing": ("matrix_over_native",)}


def kind_of_columns(header) -> str | None:
    """The kind a CSV without a "sweep" column shows by its columns: the kind whose
    required columns it has (the one with most of them); None when none fits."""
    cols = set(header)
    best, size = None, 0
    for kind, schema in SCHEMAS.items():
        required = {c for c, (_t, req) in schema.items() if req}
        if "sweep" in required or not required <= cols:
            continue
        if len(required) > size:
            best, size = kind, len(required)
    return best


def schema_for(kind: str) -> dict[str, tuple[str, bool]]:
    """The columns of one kind of run; ValueError "kind: expected one of ..." otherwise."""
    if kind not in SCHEMAS:
        raise ValueError(f"kind: expected one of {', '.join(SCHEMAS)}, got {kind!r}")
    return SCHEMAS[kind]


def column_order(columns: dict = PARADOX_COLUMNS) -> list[str]:
    return list(columns)


def coerce_frame(frame: pd.DataFrame, columns: dict = PARADOX_COLUMNS) -> pd.DataFrame:
    """Cast known columns to their schema type (unknown columns kept as they are)."""
    out = frame.copy()
    for name, (kind, _req) in columns.items():
        if name not in out.columns:
            continue
        if kind in ("int", "float"):
            out[name] = pd.to_numeric(out[name], errors="coerce")
            if kind == "int" and out[name].notna().all():
                out[name] = out[name].astype("int64")
        elif kind == "bool":
            out[name] = out[name].map(_as_bool)
        else:
            out[name] = out[name].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return out


def _as_bool(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return False
    return bool(v)


_QUOTED = ("'=", "'+", "'-", "'@", "'\t", "'\r")


def read_rows_csv(text: str, columns: dict = PARADOX_COLUMNS) -> pd.DataFrame:
    """A CSV written by ``engine.runtime.store.to_csv_text`` back as a typed frame."""
    frame = pd.read_csv(io.StringIO(text), keep_default_na=True)
    # to_csv_text quotes text that a spreadsheet would run; undo that on the way in.
    for col in frame.columns:
        if frame[col].dtype == object or pd.api.types.is_string_dtype(frame[col]):
            frame[col] = frame[col].map(lambda v: v[1:] if isinstance(v, str) and v[:2] in _QUOTED else v)
    return coerce_frame(frame, columns)
