"""lab-bsr's launch configurations: ``Config`` and its label grammar
("pers n256 o1 N w4 s7"), what the tuner tries (``candidate_configs``), the presets
chosen on the H200 (``PRESETS``, ``SPLIT_PRESETS``, ``UNION_PRESETS`` and the
pointer twins), ``preset_config`` and ``config_ok`` (can this configuration run these
inputs here). The dated tuning runs behind the presets are under benchmarks/results/.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import torch

from engine.sparse.kernels.bsr_cache import KERNEL_CACHE
from engine.sparse.kernels.bsr_matrix import BsrMatrix, auto_split_len

UNION_KINDS = ("utma",)  # several block rows per program (see union_plan)
TMA_KINDS = ("tma", "pers")  # one block row per work item, tiles moved by TMA


def interpreting() -> bool:
    """True when Triton's CPU interpreter is switched on (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


@dataclass(frozen=True)
class Config:
    """One way to launch the kernel. kind "ptr" (pointer loads; any GROUP, TRANS),
    "tma" (tensor-memory-accelerator descriptors; GROUP 1, no TRANS, sm_90+),
    "pers" (persistent, TMA: ``occ`` programs per SM walk host-balanced runs of steps,
    see ``persist_plan``; GROUP 1, no TRANS), or "utma" (the union schedule, B by TMA,
    ``rows`` block rows per program, see ``union_plan``). ``skip`` is the "S" of a union
    label ("utma n256 r2 S w4 s3", the MMA-skipping form now in
    benchmarks/bsr_explore_kernels.py): such labels still parse, and ``config_ok`` refuses
    them, as no kernel here takes it. Labels of the explored kinds "uptr" and "uatma"
    (in old tuning CSVs under benchmarks/results/) do not parse: ``from_label`` raises."""

    block_n: int = 128
    group: int = 1
    trans: bool = False
    num_warps: int = 4
    num_stages: int = 3
    kind: str = "ptr"
    rows: int = 1  # union kinds: block rows per program
    skip: bool = False  # union kinds, rows == 2: skip the MMA of missing blocks
    occ: int = 1  # "pers": programs per SM
    store: str = "N"  # "pers": "H" stores Y in two halves when no row is split (half
    #                   the shared-memory staging, so one more stage of loads fits)

    @property
    def union(self) -> bool:
        """True for the several-block-rows-per-program kernel (kind "utma")."""
        return self.kind in UNION_KINDS

    def label(self) -> str:
        if self.kind == "pers":
            return (f"pers n{self.block_n} o{self.occ} {self.store} "
                    f"w{self.num_warps} s{self.num_stages}")
        if self.union:
            return (f"{self.kind} n{self.block_n} r{self.rows} {'S' if self.skip else 'N'} "
                    f"w{self.num_warps} s{self.num_stages}")
        return (f"{self.kind} n{self.block_n} g{self.group} {'T' if self.trans else 'N'} "
                f"w{self.num_warps} s{self.num_stages}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_label(cls, label: str) -> "Config":
        """Inverse of ``label()``: "ptr n128 g1 N w4 s3" -> Config."""
        parts = label.split()
        if (len(parts) != 6 or parts[0] not in ("ptr",) + TMA_KINDS + UNION_KINDS
                or parts[4][0] != "w"):
            raise ValueError(f"config: expected a label like 'ptr n128 g1 N w4 s3', got {label!r}")
        if parts[0] == "pers":
            return cls(block_n=int(parts[1][1:]), occ=int(parts[2][1:]), store=parts[3],
                       num_warps=int(parts[4][1:]), num_stages=int(parts[5][1:]), kind="pers")
        if parts[0] in UNION_KINDS:
            return cls(block_n=int(parts[1][1:]), rows=int(parts[2][1:]), skip=parts[3] == "S",
                       num_warps=int(parts[4][1:]), num_stages=int(parts[5][1:]), kind=parts[0])
        return cls(block_n=int(parts[1][1:]), group=int(parts[2][1:]), trans=parts[3] == "T",
                   num_warps=int(parts[4][1:]), num_stages=int(parts[5][1:]), kind=parts[0])


# Deeper load pipelines and the persistent kernel, by block size (H200 trials of
# 2026-11-30, benchmarks/results/bsr_explore/). Triton's pipeliner keeps about
# (num_stages - 1) // 2 + 1 tiles in flight here (the B tile's address depends on a
# loaded column index), so s5-s9 are what put 3-5 tiles in flight.
DEEP_CANDIDATES = {
    16: ("pers n256 o1 N w4 s7", "pers n128 o2 N w4 s7"),
    32: ("pers n256 o1 N w4 s7", "pers n128 o2 N w4 s7"),
    64: ("pers n256 o1 N w4 s7", "pers n256 o1 H w4 s9", "pers n128 o2 N w4 s7",
         "pers n128 o2 N w4 s8", "pers n128 o2 N w4 s6", "tma n128 g1 N w4 s5",
         "tma n128 g1 N w4 s7", "tma n256 g1 N w4 s8"),
    128: ("pers n128 o1 N w8 s5", "pers n64 o2 N w4 s5"),
}


# The union schedule (several block rows per program, one B tile for all of them)
# (measured on the H100, 2026-11-22: r4 at b64, and the MMA-skipping "S" form,
# were 1.3-2x slower than r2 at every density; the pointer-load "uptr" and the
# pairs-with-A-by-TMA "uatma" kinds never won on the H200 of 2026-11-30: all three
# are in benchmarks/bsr_explore_kernels.py now)
UNION_CANDIDATES = {16: ("utma n128 r4 N w4 s3", "utma n256 r4 N w4 s3", "utma n128 r8 N w8 s3"),
                    32: ("utma n128 r2 N w4 s3", "utma n256 r2 N w4 s3"),
                    64: ("utma n128 r2 N w4 s3", "utma n256 r2 N w8 s3", "utma n128 r2 N w8 s3"),
                    128: ("utma n64 r2 N w8 s2",)}

# The tuner's one-row kernels by block size, in the order they are tried: pointer loads
# (any GPU; small blocks reduce G = 2-8 blocks a step, mostly transposed), then TMA
# (sm_90+ only: ``candidate_configs(tma=False)`` leaves them out).
POINTER_CANDIDATES = {
    16: ("ptr n64 g4 T w4 s3", "ptr n64 g8 T w4 s3", "ptr n128 g4 T w4 s3", "ptr n128 g8 T w4 s3",
         "ptr n256 g4 T w4 s3", "ptr n256 g8 T w4 s3", "ptr n128 g8 T w8 s3", "ptr n128 g4 T w4 s4",
         "ptr n128 g4 N w4 s3"),
    32: ("ptr n64 g2 T w4 s3", "ptr n64 g4 T w4 s3", "ptr n128 g2 T w4 s3", "ptr n128 g4 T w4 s3",
         "ptr n256 g2 T w4 s3", "ptr n256 g4 T w4 s3", "ptr n128 g2 T w8 s4", "ptr n128 g2 N w4 s3",
         "ptr n256 g2 N w8 s3"),
    64: ("ptr n64 g1 N w4 s3", "ptr n64 g1 N w4 s4", "ptr n64 g1 N w8 s3", "ptr n128 g1 N w4 s3",
         "ptr n128 g1 N w4 s4", "ptr n128 g1 N w8 s3", "ptr n256 g1 N w4 s3", "ptr n256 g1 N w4 s4",
         "ptr n256 g1 N w8 s3", "ptr n128 g1 T w4 s3", "ptr n256 g1 T w8 s3", "ptr n128 g2 N w4 s3",
         "ptr n512 g1 N w8 s2", "ptr n512 g1 N w8 s3", "ptr n64 g2 N w4 s3", "ptr n256 g2 N w8 s3"),
    128: ("ptr n64 g1 N w4 s3", "ptr n64 g1 N w8 s3", "ptr n64 g1 N w8 s2", "ptr n128 g1 N w4 s3",
          "ptr n128 g1 N w8 s3", "ptr n128 g1 N w8 s2", "ptr n256 g1 N w4 s3", "ptr n256 g1 N w8 s3",
          "ptr n256 g1 N w8 s2"),
}
TMA_CANDIDATES = {
    16: (), 32: (),
    64: ("tma n128 g1 N w4 s3", "tma n128 g1 N w4 s4", "tma n256 g1 N w8 s3", "tma n256 g1 N w4 s3",
         "tma n128 g1 N w4 s2", "tma n64 g1 N w4 s3", "tma n64 g1 N w4 s4"),
    128: ("tma n64 g1 N w4 s3", "tma n128 g1 N w8 s3", "tma n128 g1 N w4 s2"),
}


def candidate_configs(block: int, k: int, tma: bool = True) -> list[Config]:
    """The configurations the tuner tries for one block size (k limits BLOCK_N), in this
    order: UNION_CANDIDATES, DEEP_CANDIDATES, POINTER_CANDIDATES, TMA_CANDIDATES (TMA and
    union kinds only with ``tma``)."""
    bn_max = max(16, min(512, 1 << max(4, (k - 1).bit_length())))
    out: list[Config] = []

    def add(label: str):
        c = Config.from_label(label)
        tma_kind = c.kind in TMA_KINDS + UNION_KINDS
        limit = min(bn_max, 256) if tma_kind else bn_max  # a TMA box is at most 256 wide
        if c.block_n <= limit and c not in out:
            if not tma_kind or tma:
                out.append(c)

    for label in (UNION_CANDIDATES[block] + DEEP_CANDIDATES[block] + POINTER_CANDIDATES[block]
                  + TMA_CANDIDATES[block]):
        add(label)
    return out


DEFAULT_CONFIG = {16: Config(128, 4, True), 32: Config(128, 2, True),
                  64: Config(128, 1, False), 128: Config(64, 1, False)}

# What the tuner chose on the H200 (2026-11-30, benchmarks/results/bsr_bench.csv and
# bsr_tune.csv: n = 8192, k = 512, fp16), by block and by stored-block density up to
# the given bound; b128 from its own H200 sweep that day (benchmarks/results/bsr_b128/:
# the persistent kernel at every density from 0 to 95 % sparsity, 1.1-1.6x faster
# than the earlier H100 preset "ptr n64 g1 N w4 s3" in bsr_tune.csv). Used when tuning
# is off (e.g. through the backend registry, where a first call should not spend a
# minute compiling candidates).
PRESETS: dict[int, list[tuple[float, Config]]] = {
    16: [(0.15, Config.from_label("ptr n128 g4 N w4 s3")),
         (1.0, Config.from_label("ptr n128 g4 T w4 s3"))],
    32: [(0.15, Config.from_label("ptr n128 g2 T w4 s3")),
         (1.0, Config.from_label("ptr n128 g2 T w8 s4"))],
    64: [(0.075, Config.from_label("pers n128 o2 N w4 s8")),
         (0.55, Config.from_label("pers n256 o1 N w4 s7")),
         (1.0, Config.from_label("pers n256 o1 H w4 s9"))],
    128: [(1.0, Config.from_label("pers n128 o1 N w8 s5"))],
}
# The pointer-load twin of each TMA preset, for GPUs without TMA (before sm_90),
# for k not a multiple of 8, and for the CPU interpreter.
_PTR_TWIN = {"pers n128 o2 N w4 s8": Config.from_label("ptr n128 g1 N w4 s5"),
             "pers n256 o1 N w4 s7": Config.from_label("ptr n128 g1 N w4 s5"),
             "pers n256 o1 H w4 s9": Config.from_label("ptr n256 g1 N w8 s3"),
             "pers n128 o1 N w8 s5": Config.from_label("ptr n64 g1 N w8 s3"),
             "tma n128 g1 N w4 s7": Config.from_label("ptr n128 g1 N w4 s5")}
# When rows are cut into segments, the persistent kernel also carries the workspace
# epilogue (atomics, a branch, and shared memory that leaves room for fewer load
# stages): on the H200's power-law pattern (one row of 128 blocks, mean 9.8) it took
# 66.5 us against 19.8 us for the one-row TMA kernel with split rows
# (benchmarks/results/bsr_explore/balance.csv). Presets then use the one-row kernel
# the tuner chose there (b64), or the tuner's best one-row kernel of the b128 sweep
# (second to the persistent kernel at 75-95 % sparsity; not timed with cut rows).
SPLIT_PRESETS = {64: Config.from_label("tma n128 g1 N w4 s7"),
                 128: Config.from_label("tma n64 g1 N w4 s3")}


# Where the union schedule (two block rows per program sharing each B tile) beat the
# one-row kernel: b32 at 50-75 % sparsity, by 1.07-1.22x in both H100 runs of 2026-11-22
# and by 1.01-1.11x on the H200 (benchmarks/results/bsr_union.csv). (low density bound,
# high bound, config). Used only when no row will be cut (the union schedule never cuts
# rows) and TMA is there.
UNION_PRESETS: dict[int, list[tuple[float, float, Config]]] = {
    32: [(0.225, 0.55, Config.from_label("utma n256 r2 N w4 s3"))],
}


def preset_config(a: "BsrMatrix", b: torch.Tensor, split_len: Any = "auto") -> Config:
    """The tuner's choice for this block size and density (``PRESETS``; no timing).
    split_len: the segment length the call will use ("auto": ``auto_split_len(a)``,
    None: rows are never cut); where rows will be cut, neither the union schedule nor
    the persistent kernel is chosen (``SPLIT_PRESETS``)."""
    if split_len == "auto":
        split_len = auto_split_len(a)
    cut = split_len is not None and a.plan(split_len).n_split > 0
    dens = a.density
    for lo, hi, ucfg in UNION_PRESETS.get(a.block, ()):
        if lo < dens <= hi and config_ok(a, b, ucfg) and not cut:
            return ucfg
    cfg = next(c for bound, c in PRESETS[a.block] if dens <= bound)
    if cut and cfg.kind == "pers":
        cfg = SPLIT_PRESETS.get(a.block, DEFAULT_CONFIG[a.block])
    if not config_ok(a, b, cfg):
        cfg = _PTR_TWIN.get(cfg.label(), DEFAULT_CONFIG[a.block])
    return cfg

def triton_cdiv(x: int, y: int) -> int:
    return -(-x // y)


def _has_tma(device: torch.device) -> bool:
    """True on sm_90+ GPUs (asked only for tensors already on that GPU; kept in
    ``KERNEL_CACHE``)."""
    return KERNEL_CACHE.get_or_make(
        ("tma", str(device)), lambda: torch.cuda.get_device_capability(device)[0] >= 9)


def config_ok(a: BsrMatrix, b: torch.Tensor, cfg: Config) -> bool:
    """True when ``cfg`` can run these inputs here (kind, TMA on this device, k)."""
    if cfg.kind in TMA_KINDS + UNION_KINDS:
        if interpreting() and a.device.type == "cpu":
            where_ok = True
        else:
            where_ok = a.device.type == "cuda" and _has_tma(a.device)
        if not where_ok or b.shape[1] % 8 or cfg.group != 1 or cfg.trans:
            return False
        if cfg.union:  # the MMA-skipping form moved to benchmarks/bsr_explore_kernels.py
            return cfg.rows >= 1 and not cfg.skip
        return a.nnz_blocks > 0 and cfg.occ >= 1 and cfg.store in ("N", "H")
    return cfg.kind == "ptr"
