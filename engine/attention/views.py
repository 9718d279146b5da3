"""What /attention shows for one setting of its widgets, with the widgets' limits.

The page builds its widgets from the limits here (so a widget cannot offer what the
engine refuses), turns their values into ONE ``MaskSpec`` (checked once, "expected ...
got ..."), and asks for ``mask_view`` (token and block mask, pooled for drawing, and the
stats) or ``weights_view`` (the attention weights of a structured input under each zoo
mask). Both estimate their memory from the spec and are refused against
SPARSITY_LAB_MEMORY_BUDGET_MB before allocating. Heatmaps leave here with at most
``HEATMAP_CELLS`` cells a side (block means: the kept fraction, or the mean weight).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.attention import attend
from engine.attention import masks as M
from engine.runtime.cache import pure_cache
from engine.runtime.threads import threads_for
from engine.validate import check_budget, check_choice, check_int

SEQ_CHOICES = (64, 128, 256, 512, 1024, 2048, 4096)
BLOCK_CHOICES = (8, 16, 32, 64, 128)
PARAM_LABELS = {"w": "window w (tokens)", "d": "dilation d", "g": "global tokens g",
                "r": "random blocks r per query block", "seed": "seed", "p": "prefix p (tokens)",
                "docs": "documents"}
PARAM_LIMITS = {"w": (1, 4096), "d": (1, 64), "g": (1, 4096), "r": (1, 64), "seed": (0, 10**6),
                "p": (0, 4096), "docs": (1, 256)}
PARAM_NAMES = tuple(PARAM_LABELS)
WEIGHTS_MAX_SEQ = 512  # attention weights are computed on at most this many tokens
HEATMAP_CELLS = 256  # a heatmap is drawn from at most this many cells a side
BLOCK_CELLS = 128  # ... and a block map from at most this many
HEAD_DIM = 64
# Bytes per (query, key) cell at the peak of materialising one mask: the bool mask, the
# float copy pooled for drawing and the predicate's broadcast temporaries (measured over
# the zoo with every parameter at its maximum: up to 23 bytes a cell at S = 2048).
MASK_BYTES_PER_CELL = 32
# ... and of the zoo on the structured input: per mask its bool mask and its (S, S)
# float32 weights, scores and output terms (measured under 2 at S = 512).
ZOO_BYTES_PER_CELL = 13


@dataclass(frozen=True)
class MaskSpec:
    """One setting of the mask widgets: kind, sequence length, block size, parameters."""

    kind: str
    seq_len: int
    block: int
    params: tuple[tuple[str, int], ...]

    @classmethod
    def from_widgets(cls, kind, seq_len, block, values) -> "MaskSpec":
        """Widget values (``values`` in PARAM_NAMES order) -> a checked spec."""
        check_choice("mask", kind, M.MASK_KINDS)
        seq_len = check_choice("sequence length", seq_len, SEQ_CHOICES)
        block = check_choice("block size", block, BLOCK_CHOICES)
        return cls(kind, seq_len, block, tuple(read_params(values).items()))

    @property
    def param_dict(self) -> dict:
        return dict(self.params)

    @property
    def weights_len(self) -> int:
        """Tokens the weights are computed on: the first min(S, WEIGHTS_MAX_SEQ)."""
        return min(self.seq_len, WEIGHTS_MAX_SEQ)

    def mask_memory_bytes(self) -> int:
        return MASK_BYTES_PER_CELL * self.seq_len ** 2

    def weights_memory_bytes(self) -> int:
        return ZOO_BYTES_PER_CELL * len(M.MASK_KINDS) * self.weights_len ** 2


def read_params(values) -> dict:
    """Widget values (PARAM_NAMES order) -> checked mask parameters."""
    values = list(values)
    if len(values) != len(PARAM_NAMES):
        raise ValueError(f"mask parameters: expected {len(PARAM_NAMES)} values, got {len(values)}")
    return {name: check_int(PARAM_LABELS[name], value, *PARAM_LIMITS[name])
            for name, value in zip(PARAM_NAMES, values)}


@dataclass(frozen=True)
class MaskView:
    """The token mask and block mask of one spec, pooled for drawing, and its stats.

    token: (q', kv') kept fraction per cell, ``token_factor`` tokens a side per cell;
    blocks: (q'', kv'') mean block state (0 empty, 1 partial, 2 full), ``block_factor``
    blocks a side per cell."""

    name: str
    token: np.ndarray
    token_factor: int
    blocks: np.ndarray
    block_factor: int
    stats: M.MaskStats

    @property
    def blocks_skipped(self) -> int:
        st = self.stats
        return st.blocks_total - st.blocks_partial - st.blocks_full


def mask_view(spec: MaskSpec) -> MaskView:
    """Refused first if the estimate passes the budget; then computed once per spec
    (the lab's bounded cache of pure results)."""
    check_budget(f"mask at S = {spec.seq_len}", spec.mask_memory_bytes())
    with threads_for(spec.seq_len ** 2):  # S = 4096: 16.7 M entries, worth both threads
        return _mask_view(spec)


@pure_cache
def _mask_view(spec: MaskSpec) -> MaskView:
    mask = M.build_mask(spec.kind, spec.seq_len, spec.param_dict, spec.block)
    dense = M.materialize(mask, spec.seq_len)
    blocks = M.block_mask(dense, spec.block)
    stats = M.stats_of(dense, spec.block, mask.name, blocks)
    token, factor = M.downsample(dense, HEATMAP_CELLS)
    pooled_blocks, bfactor = M.downsample(blocks.float(), BLOCK_CELLS)
    return MaskView(mask.name, token.numpy().astype(np.float32), factor,
                    pooled_blocks.numpy().astype(np.float32), bfactor, stats)


@dataclass(frozen=True)
class WeightsView:
    """Dense causal weights and the weights under the chosen mask, pooled to at most
    HEATMAP_CELLS a side (``factor`` tokens per cell), with the zoo's rows."""

    base: np.ndarray
    masked: np.ndarray
    factor: int
    mask_name: str
    rows: list
    seq_len: int
    full_len: int

    @property
    def note(self) -> str:
        pooled = (f" Drawn as means of {self.factor} x {self.factor} tokens "
                  f"({self.base.shape[0]} x {self.base.shape[1]} cells)." if self.factor > 1 else "")
        if self.full_len > self.seq_len:
            return (f"S = {self.seq_len} tokens (the first {self.seq_len} of {self.full_len}: the "
                    f"weights are kept small), head dim {HEAD_DIM}." + pooled)
        return f"S = {self.seq_len} tokens, head dim {HEAD_DIM}." + pooled


def weights_view(spec: MaskSpec) -> WeightsView:
    """Refused first if the estimate passes the budget. The zoo does not depend on the
    chosen mask, so it is computed once per (length, block, parameters) and cached."""
    check_budget(f"attention weights at S = {spec.weights_len}", spec.weights_memory_bytes())
    rows, pooled, factor, names = pooled_zoo(spec.weights_len, spec.block, spec.params)
    return WeightsView(pooled["causal"], pooled[spec.kind], factor, names[spec.kind], list(rows),
                       spec.weights_len, spec.seq_len)


@pure_cache
def pooled_zoo(seq_len: int, block: int, params: tuple) -> tuple[tuple, dict, int, dict]:
    """engine.attention.attend.mask_zoo with each mask's weights pooled to at most
    HEATMAP_CELLS a side (float32): (rows, {kind: weights}, factor, {kind: name})."""
    from engine.attention.attend import mask_zoo

    rows, parts = mask_zoo(seq_len, block, dict(params))
    pooled, factor = {}, 1
    for kind, weights in parts["weights"].items():
        cells, factor = M.downsample(weights, HEATMAP_CELLS)
        pooled[kind] = cells.numpy().astype(np.float32)
    return tuple(rows), pooled, factor, parts["names"]


# -- the sweep: its widgets' choices, its config, its verdict and the committed runs -----
SWEEP_SEQS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
SWEEP_BLOCK = 128  # the BlockMask block size of the page's sweep
SWEEP_MASKS = tuple(k for k in M.MASK_KINDS if k not in ("full", "causal"))  # the baselines run anyway


def sweep_config(seqs, masks, opts, values, gpu: bool):
    """The sweep widgets -> an engine.attention.attend.SweepConfig, checked against the
    widgets' own choices (the GPU: bfloat16, batch 4, 16 heads; the CPU: float32, batch 1,
    4 heads); ``opts`` may hold "flex_cpu" (compile FlexAttention on a CPU)."""
    from engine.attention.attend import SweepConfig

    if not isinstance(seqs, list) or not seqs:
        raise ValueError("sequence lengths: expected at least one, got none")
    if not isinstance(masks, list) or not masks:
        raise ValueError("masks: expected at least one, got none")
    seq_lens = tuple(sorted({check_choice("sequence length", s, SWEEP_SEQS) for s in seqs}))
    masks = tuple(check_choice("mask", m, SWEEP_MASKS) for m in masks)
    return SweepConfig(seq_lens=seq_lens, masks=masks, params=tuple(read_params(values).items()),
                       batch=4 if gpu else 1, heads=16 if gpu else 4, head_dim=HEAD_DIM,
                       dtype="bfloat16" if gpu else "float32", block=SWEEP_BLOCK,
                       repeats=10 if gpu else 5, flex_compile_on_cpu="flex_cpu" in (opts or []))



# baseline -> (speedup column, theory column, the baseline's name, what it is)
BASELINES = {
    "causal": ("speedup_vs_causal", "block_theory_vs_causal", "SDPA causal", "dense causal flash"),
    "dense": ("speedup_vs_dense", "block_theory_vs_dense", "SDPA without mask", "dense flash"),
}
BASELINE_IMPLS = tuple(impl for impl, _mask in attend.BASELINES)  # the rows those speedups divide by


def crossover_verdict(rows: list[dict], baseline: str = "causal") -> tuple[str, str] | None:
    """(sentence, kind "ok" / "info" / "warn") on where FlexAttention stays faster than the
    baseline, resting only on settled rows (the noisy ones are named); None: nothing to say."""
    from engine.attention.attend import crossover, noisy_lengths

    speed_col, _theory, base_name, base_text = BASELINES.get(baseline, BASELINES["causal"])
    found = crossover(rows, "flex", speed_col)
    noisy = noisy_lengths(rows, "flex")
    left_out = (" Left out as noisy (IQR / median > 0.1, drawn hollow): "
                + "; ".join(f"{m} at S = {', '.join(map(str, v))}" for m, v in noisy.items()) + "."
                if noisy else "")
    if not found:
        flex_rows = [r for r in rows if r.get("impl") == "flex"]
        if flex_rows and all(str(r.get("status", "")).startswith("unavailable") for r in flex_rows):
            return f"FlexAttention {flex_rows[0]['status']}", "warn"
        return ("No settled FlexAttention timing to judge from." + left_out, "warn") if noisy else None
    parts = [f"{m} from S = {s}" if s else f"{m} not within the settled lengths" for m, s in found.items()]
    return (f"Where FlexAttention stays faster than {base_text} ({base_name}): " + "; ".join(parts)
            + "." + left_out, "ok" if any(found.values()) else "info")


@dataclass(frozen=True)
class ReferenceRun:
    """A committed attention sweep: its rows, where and when it ran, and the bare check
    (the GPU script's own FlexAttention / SDPA measurement) beside it, if committed."""

    name: str
    rows: list
    devices: str
    note: str
    bare_rows: list


BARE_FILE = "attention_bare_check.csv"


def reference_run(name: str, refs) -> ReferenceRun | None:
    """The listed reference ``name`` (``refs``: engine.bench.reference.references("attention")),
    or None when it is not listed (only listed files are opened)."""
    import pandas as pd

    by_name = {r.name: r for r in refs}
    if not isinstance(name, str) or name not in by_name:
        return None
    ref = by_name[name]
    frame = ref.frame()

    def values(col: str) -> str:
        return ", ".join(sorted({str(v) for v in frame[col].dropna()})) if col in frame else "?"

    when = str(frame["measured_at"].dropna().min()) if "measured_at" in frame else "?"
    mode = values("flex_compile") if "flex_compile" in frame else ""
    note = (f"{name}: measured on {values('device_name')} (torch {values('torch_version')}, {when}); "
            f"{len(frame)} rows" + (f"; FlexAttention compile mode: {mode}" if mode else "") + ".")
    bare = ref.path.parent / BARE_FILE
    bare_rows = pd.read_csv(bare).to_dict("records") if bare.is_file() else []
    return ReferenceRun(name, frame.to_dict("records"), values("device_name"), note, bare_rows)
