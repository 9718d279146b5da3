"""Attention masks as small predicates, and one path from a predicate to block masks.

A mask is a predicate ``(b, h, q_idx, kv_idx) -> bool`` written with tensor ops only,
so the same function works on broadcast index tensors (``q_idx: (Q, 1)``,
``kv_idx: (1, KV)`` -> ``(Q, KV)`` bool) and as FlexAttention's ``mask_mod`` (scalar
index tensors under vmap or inside a compiled kernel). True means "this query may
attend to this key".

    m = or_masks(sliding_window(64, two_sided=True), global_tokens(4))   # Longformer
    dense = materialize(m, 1024)              # (1024, 1024) bool
    blocks = block_mask(dense, 64)            # (16, 16) int8: 0 empty, 1 partial, 2 full
    mask_stats(m, 1024, 64).density

Every mask has a readable ``name`` (for legends and CSV rows) and keeps its
``parts`` when it is a combination, so BigBird can be checked against the union of
its pieces. Masks that need tables (``random_keys``, ``document``) are built for a
sequence length and a device; move them with ``mask.to(device)``.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from engine.validate import check_choice, check_int

MaskMod = Callable[[Any, Any, Any, Any], Any]
MAX_SEQ = 65536
MAX_DENSE_ELEMENTS = 2**31  # refuse a dense (Q, KV) materialisation above this
BLOCK_EMPTY, BLOCK_PARTIAL, BLOCK_FULL = 0, 1, 2


@dataclass(frozen=True)
class Mask:
    """A named predicate ``(b, h, q_idx, kv_idx) -> bool``.

    name: a readable name such as ``"sliding_window(w=256)"``.
    mask_mod: the predicate (works on broadcast index tensors and inside FlexAttention).
    parts: the masks it combines (empty for a primitive).
    combine: "and" / "or" for a combination, "" for a primitive.
    tensors: lookup tables the predicate reads (moved by :meth:`to`).
    rebuild: device -> Mask, for masks that hold tables.
    """

    name: str
    mask_mod: MaskMod = field(repr=False, compare=False)
    parts: tuple["Mask", ...] = field(default=(), repr=False)
    combine: str = ""
    rebuild: Callable[[Any], "Mask"] | None = field(default=None, repr=False, compare=False)

    def __call__(self, b, h, q_idx, kv_idx):
        return self.mask_mod(b, h, q_idx, kv_idx)

    def to_dense(self, q_len: int, kv_len: int | None = None, device: Any = "cpu") -> torch.Tensor:
        """The (q_len, kv_len) bool mask (see :func:`materialize`)."""
        return materialize(self, q_len, kv_len, device)

    def to(self, device: Any) -> "Mask":
        """The same mask with its lookup tables on ``device``."""
        if self.rebuild is not None:
            return self.rebuild(device)
        if self.parts:
            parts = tuple(p.to(device) for p in self.parts)
            return (and_masks if self.combine == "and" else or_masks)(*parts, name=self.name)
        return self

    def __str__(self) -> str:
        return self.name


def _mask(name: str, fn: MaskMod, rebuild=None) -> Mask:
    return Mask(name=name, mask_mod=fn, rebuild=rebuild)


# -- combinators ----------------------------------------------------------------
def _fold(masks: tuple[Mask, ...], name: str | None, word: str, join) -> Mask:
    """One mask keeping (q, kv) by ``join``-ing what ``masks`` keep (``word``: and / or)."""
    if not masks:
        raise ValueError(f"{word}_masks: expected at least one mask, got none")
    mods = [m.mask_mod for m in masks]

    def fn(b, h, q_idx, kv_idx):
        out = mods[0](b, h, q_idx, kv_idx)
        for mod in mods[1:]:
            out = join(out, mod(b, h, q_idx, kv_idx))
        return out

    return Mask(name or f"{word}(" + ", ".join(m.name for m in masks) + ")", fn, tuple(masks), word)


def and_masks(*masks: Mask, name: str | None = None) -> Mask:
    """Keep (q, kv) when every mask keeps it."""
    return _fold(masks, name, "and", operator.and_)


def or_masks(*masks: Mask, name: str | None = None) -> Mask:
    """Keep (q, kv) when any mask keeps it."""
    return _fold(masks, name, "or", operator.or_)


# -- primitives -----------------------------------------------------------------
def full() -> Mask:
    """Every query sees every key (dense attention)."""
    return _mask("full", lambda b, h, q, kv: (q >= 0) & (kv >= 0))


def causal() -> Mask:
    """Query i sees keys 0..i."""
    return _mask("causal", lambda b, h, q, kv: q >= kv)


def sliding_window(w: int, two_sided: bool = False) -> Mask:
    """Query i sees the w keys i-w+1..i (causal): w keys counting the query itself, the
    convention of FlexAttention's examples and of Mistral's sliding window.

    The chapter's loop (``start = max(0, i - window_size)``, ``end = i + 1``) gives query i
    the keys i-window_size..i, one more: its window_size = w is this sliding_window(w + 1).
    For w = 4, query 10 sees keys 7..10 here and 6..10 in the chapter's loop.
    ``two_sided``: keys with |i - j| < w (Longformer's encoder window)."""
    w = check_int("window w", w, lo=1, hi=MAX_SEQ)
    if two_sided:
        return _mask(f"sliding_window(w={w}, two-sided)",
                     lambda b, h, q, kv: ((q - kv) < w) & ((kv - q) < w))
    return _mask(f"sliding_window(w={w})", lambda b, h, q, kv: (q >= kv) & ((q - kv) < w))


def dilated(w: int, d: int) -> Mask:
    """Causal, w keys at stride d: i, i-d, ..., i-(w-1)d (a receptive field of w*d)."""
    w = check_int("window w", w, lo=1, hi=MAX_SEQ)
    d = check_int("dilation d", d, lo=1, hi=MAX_SEQ)
    span = w * d
    return _mask(f"dilated(w={w}, d={d})",
                 lambda b, h, q, kv: (q >= kv) & ((q - kv) < span) & (((q - kv) % d) == 0))


def global_tokens(g: int) -> Mask:
    """The first g tokens see every key and are seen by every query."""
    g = check_int("global tokens g", g, lo=1, hi=MAX_SEQ)
    return _mask(f"global_tokens(g={g})", lambda b, h, q, kv: (q < g) | (kv < g))


def prefix_lm(p: int) -> Mask:
    """Every query sees the first p tokens (a bidirectional prefix); after it, causal."""
    p = check_int("prefix p", p, lo=0, hi=MAX_SEQ)
    return _mask(f"prefix_lm(p={p})", lambda b, h, q, kv: (kv < p) | (q >= kv))


def random_keys(r: int, seed: int, seq_len: int, block: int = 1, device: Any = "cpu") -> Mask:
    """Each query block (of ``block`` tokens) sees r key blocks drawn at random (with
    replacement, so sometimes fewer distinct). ``block=1``: r random keys per token;
    BigBird draws whole blocks so its random links stay block-sparse.

    Holds a (ceil(seq_len / block), r) table of key-block indices.
    """
    r = check_int("random keys r", r, lo=1, hi=1024)
    seed = check_int("seed", seed, lo=0)
    seq_len = check_int("sequence length", seq_len, lo=1, hi=MAX_SEQ)
    block = check_int("random block", block, lo=1, hi=seq_len)
    n_blocks = -(-seq_len // block)
    gen = torch.Generator().manual_seed(seed)
    table = torch.randint(0, n_blocks, (n_blocks, r), generator=gen).to(device)
    cols = [table[:, j].contiguous() for j in range(r)]

    def fn(b, h, q, kv):
        qb, kb = q // block, kv // block
        out = cols[0][qb] == kb
        for col in cols[1:]:
            out = out | (col[qb] == kb)
        return out

    name = f"random(r={r}, seed={seed})" if block == 1 else f"random(r={r}, seed={seed}, block={block})"
    return _mask(name, fn, rebuild=lambda dev: random_keys(r, seed, seq_len, block, dev))


random = random_keys  # the short name: random(r, seed, seq_len, block=1)


def document(lengths: list[int] | tuple[int, ...], device: Any = "cpu") -> Mask:
    """Tokens see only tokens of their own document; documents of ``lengths`` packed
    one after another (sequence length = sum(lengths))."""
    lengths = tuple(check_int("document length", n, lo=1, hi=MAX_SEQ) for n in lengths)
    if not lengths:
        raise ValueError("document lengths: expected at least one length, got none")
    doc_id = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths)).to(device)

    def fn(b, h, q, kv):
        return doc_id[q] == doc_id[kv]

    return _mask(f"document(n={len(lengths)})", fn, rebuild=lambda dev: document(lengths, dev))


def split_lengths(seq_len: int, n_docs: int, seed: int = 0) -> tuple[int, ...]:
    """``n_docs`` document lengths (each >= 1) summing to ``seq_len``, cut at random."""
    seq_len = check_int("sequence length", seq_len, lo=1, hi=MAX_SEQ)
    n_docs = check_int("documents", n_docs, lo=1, hi=seq_len)
    gen = torch.Generator().manual_seed(seed)
    cuts = torch.randperm(seq_len - 1, generator=gen)[: n_docs - 1] + 1
    edges = [0] + sorted(cuts.tolist()) + [seq_len]
    return tuple(b - a for a, b in zip(edges[:-1], edges[1:]))


def longformer(w: int, g: int) -> Mask:
    """Longformer: a two-sided sliding window or g global tokens."""
    return or_masks(sliding_window(w, two_sided=True), global_tokens(g),
                    name=f"longformer(w={w}, g={g})")


def bigbird(w: int, g: int, r: int, seed: int, seq_len: int, block: int = 1,
            device: Any = "cpu") -> Mask:
    """BigBird: two-sided window, g global tokens, and r random key blocks per query block."""
    parts = (sliding_window(w, two_sided=True), global_tokens(g),
             random_keys(r, seed, seq_len, block, device))
    return or_masks(*parts, name=f"bigbird(w={w}, g={g}, r={r}, seed={seed}, block={block})")


# -- the zoo: kinds the page and the sweep offer ---------------------------------
@dataclass(frozen=True)
class MaskKind:
    key: str
    label: str
    params: tuple[str, ...]  # of w, d, g, r, seed, p, docs
    help: str


MASK_KINDS: dict[str, MaskKind] = {k.key: k for k in (
    MaskKind("full", "Full (dense)", (), "every query sees every key"),
    MaskKind("causal", "Causal", (), "query i sees keys 0..i"),
    MaskKind("sliding_window", "Sliding window", ("w",),
             "causal; the last w keys counting the query itself (the chapter's loop with "
             "window_size = w takes w + 1: it starts at i - w)"),
    MaskKind("dilated", "Dilated window", ("w", "d"), "causal; w keys at stride d"),
    MaskKind("global_tokens", "Global tokens", ("g",), "first g tokens see and are seen by all"),
    MaskKind("random", "Random", ("r", "seed"), "r random key blocks per query block"),
    MaskKind("prefix_lm", "Prefix LM", ("p",), "bidirectional prefix of p tokens, then causal"),
    MaskKind("document", "Documents (causal)", ("docs", "seed"),
             "causal inside each of `docs` packed documents"),
    MaskKind("longformer", "Longformer", ("w", "g"), "two-sided window or global"),
    MaskKind("bigbird", "BigBird", ("w", "g", "r", "seed"), "two-sided window, global, random blocks"),
)}
DEFAULT_PARAMS = {"w": 64, "d": 2, "g": 4, "r": 2, "seed": 0, "p": 64, "docs": 4}


def build_mask(kind: str, seq_len: int, params: dict | None = None, block: int = 1,
               device: Any = "cpu") -> Mask:
    """The zoo mask ``kind`` for a sequence of ``seq_len`` tokens.

    params: any of w, d, g, r, seed, p, docs (defaults in DEFAULT_PARAMS);
    block: the granularity of random links (the block size of the block mask).
    """
    check_choice("mask", kind, MASK_KINDS)
    seq_len = check_int("sequence length", seq_len, lo=1, hi=MAX_SEQ)
    p = {**DEFAULT_PARAMS, **{k: v for k, v in (params or {}).items() if v is not None}}
    if kind == "full":
        return full()
    if kind == "causal":
        return causal()
    if kind == "sliding_window":
        return sliding_window(p["w"])
    if kind == "dilated":
        return dilated(p["w"], p["d"])
    if kind == "global_tokens":
        return global_tokens(p["g"])
    if kind == "random":
        return random_keys(p["r"], p["seed"], seq_len, block, device)
    if kind == "prefix_lm":
        return prefix_lm(p["p"])
    if kind == "document":
        lengths = split_lengths(seq_len, p["docs"], p["seed"])
        return and_masks(causal(), document(lengths, device),
                         name=f"document(n={len(lengths)}, causal)")
    if kind == "longformer":
        return longformer(p["w"], p["g"])
    return bigbird(p["w"], p["g"], p["r"], p["seed"], seq_len, block, device)


# -- materialisation -------------------------------------------------------------
def materialize(mask: Mask, q_len: int, kv_len: int | None = None, device: Any = "cpu",
                chunk_rows: int = 4096) -> torch.Tensor:
    """The token mask as a dense bool tensor (q_len, kv_len), True = kept.

    The predicate is evaluated on broadcast index tensors, ``chunk_rows`` query rows
    at a time (so masks built from tables do not blow up memory).
    """
    q_len = check_int("query length", q_len, lo=1, hi=MAX_SEQ)
    kv_len = q_len if kv_len is None else check_int("key length", kv_len, lo=1, hi=MAX_SEQ)
    if q_len * kv_len > MAX_DENSE_ELEMENTS:
        raise ValueError(f"dense mask: expected at most {MAX_DENSE_ELEMENTS} elements, "
                         f"got {q_len} x {kv_len}")
    mask = mask.to(device)
    zero = torch.zeros((), dtype=torch.int32, device=device)
    kv = torch.arange(kv_len, dtype=torch.int32, device=device).unsqueeze(0)
    out = torch.empty((q_len, kv_len), dtype=torch.bool, device=device)
    for start in range(0, q_len, chunk_rows):
        q = torch.arange(start, min(q_len, start + chunk_rows), dtype=torch.int32,
                         device=device).unsqueeze(1)
        out[start:start + q.shape[0]] = torch.as_tensor(mask(zero, zero, q, kv)).expand(q.shape[0], kv_len)
    return out


def block_mask(dense: torch.Tensor, block: int) -> torch.Tensor:
    """Per (block x block) tile of ``dense`` (Q, KV): 0 empty, 1 partial, 2 full.

    Returns int8 (ceil(Q / block), ceil(KV / block)). Padding past the edge counts as
    masked out, so an edge tile is full only when all its real entries are kept.
    """
    if dense.dim() != 2 or dense.dtype != torch.bool:
        raise ValueError(f"dense mask: expected a 2-D bool tensor, got {tuple(dense.shape)} {dense.dtype}")
    block = check_int("block size", block, lo=1, hi=MAX_SEQ)
    q_len, kv_len = dense.shape
    nq, nk = -(-q_len // block), -(-kv_len // block)
    if q_len % block == 0 and kv_len % block == 0:
        kept = dense.reshape(nq, block, nk, block).sum(dim=(1, 3), dtype=torch.int32)
        real = torch.full_like(kept, block * block)
    else:
        padded = torch.zeros((nq * block, nk * block), dtype=torch.int32, device=dense.device)
        padded[:q_len, :kv_len] = dense.to(torch.int32)
        valid = torch.zeros_like(padded)
        valid[:q_len, :kv_len] = 1
        kept = padded.reshape(nq, block, nk, block).sum(dim=(1, 3))
        real = valid.reshape(nq, block, nk, block).sum(dim=(1, 3))
    out = torch.full((nq, nk), BLOCK_PARTIAL, dtype=torch.int8, device=dense.device)
    out[kept == 0] = BLOCK_EMPTY
    out[kept == real] = BLOCK_FULL
    return out


def is_causal_mask(dense: torch.Tensor) -> bool:
    """True when ``dense`` (S, S) equals the causal mask exactly."""
    s = dense.shape[0]
    return dense.shape == (s, s) and bool(torch.equal(
        dense, torch.ones((s, s), dtype=torch.bool, device=dense.device).tril()))


# -- densities and FLOPs ---------------------------------------------------------
def attention_flops(kept_pairs: float, head_dim: int, batch: int = 1, heads: int = 1) -> float:
    """Forward FLOPs of attention over ``kept_pairs`` (q, kv) pairs: 2 for QK^T and 2
    for PV multiply-adds per pair and head dimension (softmax not counted)."""
    return 4.0 * float(kept_pairs) * head_dim * batch * heads


@dataclass(frozen=True)
class MaskStats:
    """Counts and ratios of one mask at one sequence length and block size.

    nnz: kept (q, kv) pairs; density: nnz / S^2; causal_pairs: S(S+1)/2;
    blocks_*: tiles of block x block that are empty / partial / full;
    speedup_vs_dense / _vs_causal: theoretical speedups by kept pairs (1 / density);
    block_speedup_*: the same counting whole non-empty tiles (what a block-sparse
    kernel such as FlexAttention can at best skip to).
    """

    name: str
    seq_len: int
    block: int
    nnz: int
    density: float
    causal_pairs: int
    blocks_total: int
    blocks_partial: int
    blocks_full: int
    block_density: float
    speedup_vs_dense: float
    speedup_vs_causal: float
    block_speedup_vs_dense: float
    block_speedup_vs_causal: float
    empty_rows: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def stats_of(dense: torch.Tensor, block: int, name: str = "",
             blocks: torch.Tensor | None = None) -> MaskStats:
    """MaskStats of a dense (S, S) bool mask at ``block`` (``blocks``: its block_mask,
    when already computed)."""
    s = dense.shape[0]
    nnz = int(dense.sum())
    blocks = block_mask(dense, block) if blocks is None else blocks
    nb = blocks.shape[0]
    nonempty = int((blocks != BLOCK_EMPTY).sum())
    causal_pairs = s * (s + 1) // 2
    causal_blocks = nb * (nb + 1) // 2

    def ratio(a: float, b: float) -> float:
        return a / b if b else math.inf

    return MaskStats(
        name=name, seq_len=s, block=block, nnz=nnz, density=nnz / (s * s),
        causal_pairs=causal_pairs, blocks_total=nb * nb,
        blocks_partial=int((blocks == BLOCK_PARTIAL).sum()),
        blocks_full=int((blocks == BLOCK_FULL).sum()), block_density=nonempty / (nb * nb),
        speedup_vs_dense=ratio(s * s, nnz), speedup_vs_causal=ratio(causal_pairs, nnz),
        block_speedup_vs_dense=ratio(nb * nb, nonempty),
        block_speedup_vs_causal=ratio(causal_blocks, nonempty),
        empty_rows=int((~dense.any(dim=1)).sum()))


def mask_stats(mask: Mask, seq_len: int, block: int) -> MaskStats:
    """Materialise ``mask`` at ``seq_len`` on the CPU and count it at ``block``."""
    return stats_of(materialize(mask, seq_len), block, mask.name)


def downsample(dense: torch.Tensor, max_cells: int = 256) -> tuple[torch.Tensor, int]:
    """Mean-pool a (Q, KV) mask or weight map to at most ``max_cells`` per side (for
    heatmaps of long sequences). Returns (pooled float (q', kv'), factor)."""
    q_len, kv_len = dense.shape
    factor = max(1, -(-max(q_len, kv_len) // max_cells))
    if factor == 1:
        return dense.float(), 1
    x = dense.float().unsqueeze(0).unsqueeze(0)
    pooled = torch.nn.functional.avg_pool2d(x, factor, ceil_mode=True)
    return pooled[0, 0], factor
