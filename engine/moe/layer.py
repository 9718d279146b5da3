"""The MoE layer batched by expert, beside its slow per-token reference.

Shapes use T tokens, d model width, h expert FFN width, E experts, k experts per token.
``moe_forward`` sorts the assignments by expert (``dispatch``), runs one GEMM pair per
expert (``loop``) or one grouped GEMM pair (``grouped``) and combines back to the
tokens; ``moe_forward_reference`` is the per-token loop it must equal. The router is
``engine.moe.router``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.validate import check_choice

METHODS = ("grouped", "loop")


# ------------------------------------------------------------------------------ layer
@dataclass
class Experts:
    """E two-layer FFN experts stored like nn.Linear weights (out, in).

    w1: (E, h, d) and w2: (E, d, h): expert e computes ``gelu(x @ w1[e].T) @ w2[e].T``.
    """

    w1: torch.Tensor
    w2: torch.Tensor

    @classmethod
    def random(cls, experts: int, d: int, h: int, dtype=torch.float32, device="cpu",
               seed: int = 0) -> "Experts":
        g = torch.Generator().manual_seed(seed)
        w1 = torch.randn(experts, h, d, generator=g) / math.sqrt(d)
        w2 = torch.randn(experts, d, h, generator=g) / math.sqrt(h)
        return cls(w1.to(device, dtype), w2.to(device, dtype))

    @property
    def n(self) -> int:
        return self.w1.shape[0]

    def params(self) -> int:
        return self.w1.numel() + self.w2.numel()

    def __repr__(self) -> str:
        e, h, d = self.w1.shape
        return f"Experts(E={e}, d={d}, h={h}, dtype={self.w1.dtype})"


def ffn(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """One dense FFN: x (T, d), w1 (h, d), w2 (d, h) -> (T, d)."""
    return F.gelu(x @ w1.T) @ w2.T


def _grouped_mm():
    return getattr(torch, "_grouped_mm", None)


def grouped_mm_available(device: torch.device | str = "cpu", dtype=torch.bfloat16) -> str | None:
    """None if torch's grouped GEMM runs here for ``dtype``, else the reason it does not."""
    fn = _grouped_mm()
    if fn is None:
        return f"torch {torch.__version__} has no torch._grouped_mm"
    try:
        a = torch.ones(4, 16, device=device, dtype=dtype)
        b = torch.ones(2, 16, 16, device=device, dtype=dtype)
        fn(a, b, offs=torch.tensor([2, 4], device=device, dtype=torch.int32))
    except Exception as exc:  # unsupported device / dtype / architecture
        return f"torch._grouped_mm failed: {str(exc).splitlines()[0][:160]}"
    return None


COMBINES = ("gather", "index_add")


def dispatch(expert: torch.Tensor, experts: int, keep: torch.Tensor | None = None,
             sync: bool = True) -> tuple[torch.Tensor, torch.Tensor, int | None]:
    """Sort the T*k assignments by expert (dropped ones last): (order, counts, kept).

    order: (T*k,) assignment indices (row-major over (T, k)) grouped by expert, stable
    (arrival order within an expert); counts: (E,) kept assignments per expert; kept:
    how many assignments survive (T*k when dropless, no host sync; with drops one sync
    unless ``sync=False``, then None).
    """
    flat = expert.reshape(-1)
    if keep is not None:
        flat = torch.where(keep.reshape(-1), flat, torch.full_like(flat, experts))
    order = torch.argsort(flat, stable=True)
    # scatter_add, not bincount: bincount on CUDA waits for the host to size its output
    counts = torch.zeros(experts + 1, dtype=torch.long, device=flat.device).scatter_add_(
        0, flat, torch.ones_like(flat))[:experts]
    if keep is None:
        kept = flat.numel()
    else:
        kept = int(counts.sum()) if sync else None
    return order, counts, kept


def _combine_gather(ys: torch.Tensor, order: torch.Tensor, weight: torch.Tensor,
                    keep: torch.Tensor | None) -> torch.Tensor:
    """Scatter back without atomics: ys (kept, d) in expert order -> (T, d).

    The inverse permutation puts each assignment's row back at its (t, j) place (one
    gather into (T, k, d)); then ``out = sum_j w[:, j] * rows[:, j]`` by one multiply and
    k - 1 fused multiply-adds (elementwise, memory bound; a batched (1 x k) @ (k x d)
    GEMM here ran as a slow GEMV). Dropped assignments point at row 0 with weight 0.
    """
    tokens, k = weight.shape
    n = order.numel()
    inv = torch.empty_like(order)
    inv[order] = torch.arange(n, device=order.device)
    w = weight.to(ys.dtype)
    if keep is not None and ys.shape[0] < n:
        w = w * keep.to(ys.dtype)
        inv = torch.where(inv < ys.shape[0], inv, torch.zeros_like(inv))
    rows = ys.index_select(0, inv).view(tokens, k, ys.shape[1])  # (T, k, d)
    w = w.unsqueeze(-1)  # (T, k, 1)
    out = rows[:, 0] * w[:, 0]
    for j in range(1, k):
        out = torch.addcmul(out, rows[:, j], w[:, j])
    return out


def _combine_index_add(ys: torch.Tensor, order: torch.Tensor, weight: torch.Tensor,
                       tokens: int, k: int) -> torch.Tensor:
    """The first version: scale ys by the weights, index_add (atomics) into (T, d)."""
    ys = ys * weight.reshape(-1)[order[:ys.shape[0]]].unsqueeze(1).to(ys.dtype)
    out = torch.zeros(tokens, ys.shape[1], device=ys.device, dtype=ys.dtype)
    return out.index_add_(0, order[:ys.shape[0]] // k, ys)


def moe_forward(x: torch.Tensor, experts: Experts, expert: torch.Tensor, weight: torch.Tensor,
                keep: torch.Tensor | None = None, method: str = "loop",
                combine: str = "gather") -> torch.Tensor:
    """The MoE layer batched by expert: x (T, d) -> (T, d).

    expert, weight: (T, k) from ``route``; keep: (T, k) from ``apply_capacity`` (None:
    dropless). Assignments are sorted by expert (dropped ones last, ``dispatch``),
    gathered into one contiguous block per expert, run with one GEMM pair per expert
    (``loop``) or one grouped GEMM pair (``grouped``, torch._grouped_mm, no host sync
    when dropless), then combined back to their tokens with their weights:
    ``combine="gather"`` (inverse permutation + one batched weighted sum over k, no
    atomics) or ``"index_add"`` (scale rows, atomic index_add; the first version).
    """
    check_choice("method", method, METHODS)
    check_choice("combine", combine, COMBINES)
    tokens, k = expert.shape
    if method == "grouped" and x.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"method grouped: expected float32, bfloat16 or float16, got {x.dtype}")
    order, counts, kept = dispatch(expert, experts.n, keep)
    if kept == 0:  # everything dropped (capacity 0)
        return torch.zeros_like(x)
    token = order[:kept] // k  # (kept,) the token of each sorted assignment
    xs = x.index_select(0, token)  # (kept, d)
    if method == "grouped":
        offs = counts.cumsum(0).to(torch.int32)
        mm = _grouped_mm()
        hidden = F.gelu(mm(xs, experts.w1.transpose(-2, -1), offs=offs))
        ys = mm(hidden, experts.w2.transpose(-2, -1), offs=offs)
    else:
        sizes = counts.tolist()  # one host sync; the loop needs the sizes anyway
        ys = torch.empty_like(xs)
        grad = torch.is_grad_enabled() and (xs.requires_grad or experts.w1.requires_grad
                                            or experts.w2.requires_grad)
        start = 0
        for e, n in enumerate(sizes):
            if n:
                hidden = F.gelu(xs[start:start + n] @ experts.w1[e].T)
                if grad:
                    ys[start:start + n] = hidden @ experts.w2[e].T
                else:  # write the second GEMM straight into its rows (a contiguous slice)
                    torch.mm(hidden, experts.w2[e].T, out=ys[start:start + n])
            start += n
    if combine == "gather":
        return _combine_gather(ys, order, weight, keep)
    return _combine_index_add(ys, order, weight, tokens, k)


def moe_forward_reference(x: torch.Tensor, experts: Experts, expert: torch.Tensor,
                          weight: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Slow reference: each token, each of its kept choices, one expert at a time."""
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(expert.shape[1]):
            if keep is not None and not bool(keep[t, j]):
                continue
            e = int(expert[t, j])
            out[t] += weight[t, j] * ffn(x[t:t + 1], experts.w1[e], experts.w2[e])[0]
    return out


def moe_to_dense(experts: Experts, expert: torch.Tensor, weight: torch.Tensor,
                 keep: torch.Tensor | None = None) -> torch.Tensor:
    """(T, E) dense combine matrix: entry (t, e) is the weight token t gives expert e."""
    w = weight if keep is None else weight * keep.to(weight.dtype)
    return torch.zeros(expert.shape[0], experts.n, dtype=weight.dtype).scatter_add_(1, expert, w)
