"""Mixture of Experts: router, capacity and drops, balancing losses, a layer batched by expert.

Shapes use T tokens, d model width, h expert FFN width, E experts, k experts per token.

The pieces, in the order a token meets them:

* ``route``: a linear gate ``x @ gate -> logits (T, E)``, an optional skew that biases
  the logits toward the low-numbered experts (to make imbalance on purpose), jitter
  noise, a temperature, softmax, top-k and renormalised top-k weights.
* ``apply_capacity``: Switch-Transformer capacity. Each expert takes at most
  ``capacity`` assignments; assignments arrive in token order (token 0 first; within a
  token, its first choice before its second) and those past capacity are dropped.
  ``capacity=None`` is the dropless path.
* ``load_balancing_loss`` (``alpha * E * sum_i f_i P_i``) and ``router_z_loss``.
* ``moe_forward``: the layer batched by expert (sort assignments by expert, one GEMM
  per expert or one grouped GEMM, scatter back with the weights);
  ``moe_forward_reference`` is the slow per-token loop it must equal.
* ``param_count``: total vs active parameters, with the Mixtral 8x7B preset.
* ``train_router_rows`` and ``timing_sweep_rows``: generators of result rows for jobs.
"""
from __future__ import annotations

import math
import platform
import time
from dataclasses import asdict, dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from engine.bench.measurement import Task
from engine.validate import check_choice, check_float, check_int
from engine.runtime.threads import torch_threads

METHODS = ("grouped", "loop")


# ----------------------------------------------------------------------------- router
@dataclass
class Routing:
    """What the router decided for T tokens over E experts, k per token.

    logits: (T, E) after skew, jitter and temperature; probs: (T, E) softmax;
    expert: (T, k) chosen experts, best first; weight: (T, k) renormalised to sum 1.
    """

    logits: torch.Tensor
    probs: torch.Tensor
    expert: torch.Tensor
    weight: torch.Tensor

    @property
    def tokens(self) -> int:
        return self.probs.shape[0]

    @property
    def experts(self) -> int:
        return self.probs.shape[1]

    @property
    def k(self) -> int:
        return self.expert.shape[1]

    def dense_weights(self, keep: torch.Tensor | None = None) -> torch.Tensor:
        """(T, E) matrix of the weight each token gives each expert (0 where not routed)."""
        w = self.weight if keep is None else self.weight * keep.to(self.weight.dtype)
        out = torch.zeros_like(self.probs)
        return out.scatter_add_(1, self.expert, w)

    def __repr__(self) -> str:
        return f"Routing(tokens={self.tokens}, experts={self.experts}, k={self.k})"


def skew_bias(experts: int, skew: float) -> torch.Tensor:
    """(E,) logit bias: ``skew`` for expert 0 falling linearly to 0 for the last expert."""
    if experts == 1:
        return torch.full((1,), float(skew))
    return skew * torch.linspace(1.0, 0.0, experts)


def route(x: torch.Tensor, gate: torch.Tensor, k: int, temperature: float = 1.0,
          jitter: float = 0.0, skew: float = 0.0,
          generator: torch.Generator | None = None) -> Routing:
    """Route tokens ``x: (T, d)`` with the gate ``gate: (d, E)`` to ``k`` experts each.

    jitter multiplies the inputs by U(1 - jitter, 1 + jitter) as Switch Transformer does;
    temperature divides the logits (low = confident, high = uniform).
    """
    if x.ndim != 2 or gate.ndim != 2 or x.shape[1] != gate.shape[0]:
        raise ValueError(f"route: expected x (T, d) and gate (d, E), got {tuple(x.shape)} "
                         f"and {tuple(gate.shape)}")
    experts = gate.shape[1]
    check_int("top-k", k, 1, experts)
    check_float("temperature", temperature, 1e-3, 1e3)
    check_float("jitter", jitter, 0.0, 1.0)
    if jitter > 0:
        noise = torch.rand(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
        x = x * (1.0 - jitter + 2.0 * jitter * noise)
    logits = x @ gate
    if skew:
        logits = logits + skew_bias(experts, skew).to(logits.device, logits.dtype)
    if temperature != 1.0:  # no kernel for a division by one
        logits = logits / temperature
    probs = torch.softmax(logits.float(), dim=-1).to(logits.dtype)
    top_p, top_i = probs.topk(k, dim=-1)
    weight = top_p / top_p.sum(dim=-1, keepdim=True)
    return Routing(logits, probs, top_i, weight)


# --------------------------------------------------------------------------- capacity
def expert_capacity(tokens: int, experts: int, capacity_factor: float, k: int = 1) -> int:
    """Switch-style capacity: ``ceil(tokens / experts * capacity_factor) * k`` assignments."""
    check_int("tokens", tokens, 0, 10**9)
    check_int("experts", experts, 1, 4096)
    check_float("capacity factor", capacity_factor, 0.0, 1e6)
    check_int("top-k", k, 1, experts)
    return int(math.ceil(tokens / experts * capacity_factor)) * k


@dataclass
class Capacity:
    """keep: (T, k) bool, False for dropped assignments; load: (E,) assignments kept;
    wanted: (E,) assignments routed before drops; dropped: (E,) = wanted - load."""

    keep: torch.Tensor
    load: torch.Tensor
    wanted: torch.Tensor
    dropped: torch.Tensor
    capacity: int | None

    @property
    def dropped_tokens(self) -> int:
        """Tokens that lost at least one of their k assignments."""
        return int((~self.keep).any(dim=1).sum())


def apply_capacity(expert: torch.Tensor, experts: int, capacity: int | None) -> Capacity:
    """Drop assignments past ``capacity`` per expert, in arrival order.

    expert: (T, k) chosen experts. Arrival order is token order, and within one token
    its choices best first (row-major over (T, k)). ``capacity=None``: keep everything.
    """
    flat = expert.reshape(-1)
    onehot = F.one_hot(flat, experts)  # (T*k, E)
    wanted = onehot.sum(dim=0)
    if capacity is None:
        keep = torch.ones_like(flat, dtype=torch.bool)
    else:
        # position of each assignment in its expert's queue, counting from 0
        position = (onehot.cumsum(dim=0) * onehot).sum(dim=1) - 1
        keep = position < capacity
    load = torch.bincount(flat[keep], minlength=experts)
    return Capacity(keep.reshape(expert.shape), load, wanted, wanted - load, capacity)


def apply_capacity_reference(expert: torch.Tensor, experts: int, capacity: int | None) -> torch.Tensor:
    """Slow reference of ``apply_capacity``: the (T, k) keep mask by a plain loop."""
    count = [0] * experts
    keep = torch.ones(expert.shape, dtype=torch.bool)
    for t in range(expert.shape[0]):
        for j in range(expert.shape[1]):
            e = int(expert[t, j])
            if capacity is not None and count[e] >= capacity:
                keep[t, j] = False
            else:
                count[e] += 1
    return keep


def utilisation(load: torch.Tensor, tokens: int, k: int = 1) -> np.ndarray:
    """(E,) load / fair share, where the fair share is ``tokens * k / E`` (1 = even, 0 = dead)."""
    experts = load.shape[0]
    fair = tokens * k / experts
    return (load.double() / fair).cpu().numpy() if fair else np.zeros(experts)


# ----------------------------------------------------------------------------- losses
def load_balancing_loss(probs: torch.Tensor, expert: torch.Tensor, alpha: float = 0.01) -> torch.Tensor:
    """Switch load-balancing loss ``alpha * E * sum_i f_i P_i``.

    probs: (T, E) router probabilities; expert: (T, k) chosen experts.
    f_i is the share of the T*k assignments sent to expert i (no gradient);
    P_i the mean router probability of expert i. Perfectly uniform routing gives alpha.
    """
    tokens, experts = probs.shape
    counts = torch.bincount(expert.reshape(-1), minlength=experts).to(probs.dtype)
    f = counts / max(expert.numel(), 1)
    p = probs.mean(dim=0)
    return alpha * experts * (f * p).sum()


def router_z_loss(logits: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Router z-loss ``beta * mean_t logsumexp(logits_t)^2`` (ST-MoE); logits: (T, E)."""
    return beta * torch.logsumexp(logits.float(), dim=-1).pow(2).mean()


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


# ------------------------------------------------------------------ the slider example
@dataclass(frozen=True)
class RoutingSpec:
    """What the page's sliders ask for."""

    tokens: int = 64
    experts: int = 8
    k: int = 2
    capacity_factor: float = 1.25
    d_model: int = 64
    temperature: float = 1.0
    skew: float = 0.0
    jitter: float = 0.0
    dropless: bool = False
    seed: int = 0

    def __post_init__(self):
        check_int("tokens", self.tokens, 1, 4096)
        check_int("experts", self.experts, 1, 256)
        check_int("top-k", self.k, 1, self.experts)
        check_float("capacity factor", self.capacity_factor, 0.0, 64.0)
        check_int("model width", self.d_model, 2, 4096)
        check_float("temperature", self.temperature, 1e-3, 1e3)
        check_float("skew", self.skew, -100.0, 100.0)
        check_float("jitter", self.jitter, 0.0, 1.0)


@dataclass
class RoutingResult:
    spec: RoutingSpec
    routing: Routing
    cap: Capacity
    balance_loss: float
    z_loss: float
    x: torch.Tensor  # (T, d) the routed tokens

    def expert_rows(self) -> list[dict]:
        """One row per expert: load, capacity, drops, utilisation, mean probability."""
        s = self.spec
        util = utilisation(self.cap.load, s.tokens, s.k)
        mean_p = self.routing.probs.mean(dim=0)
        return [{"expert": e, "wanted": int(self.cap.wanted[e]), "load": int(self.cap.load[e]),
                 "capacity": self.cap.capacity if self.cap.capacity is not None else "none",
                 "dropped": int(self.cap.dropped[e]), "utilisation": round(float(util[e]), 4),
                 "mean_prob": round(float(mean_p[e]), 4)}
                for e in range(s.experts)]


def routing_example(spec: RoutingSpec) -> RoutingResult:
    """Route ``spec.tokens`` random tokens with a random gate, seeded: everything the page shows."""
    g = torch.Generator().manual_seed(spec.seed)
    x = torch.randn(spec.tokens, spec.d_model, generator=g)
    gate = torch.randn(spec.d_model, spec.experts, generator=g) / math.sqrt(spec.d_model)
    r = route(x, gate, spec.k, spec.temperature, spec.jitter, spec.skew, generator=g)
    cap = None if spec.dropless else expert_capacity(spec.tokens, spec.experts,
                                                     spec.capacity_factor, spec.k)
    c = apply_capacity(r.expert, spec.experts, cap)
    return RoutingResult(spec, r, c, float(load_balancing_loss(r.probs, r.expert, alpha=1.0)),
                         float(router_z_loss(r.logits)), x)


def layer_agreement(res: RoutingResult, d_ff: int, max_tokens: int = 64, seed: int = 0) -> dict:
    """Run the first ``max_tokens`` routed tokens of the example (with the example's drops,
    decided over all its tokens) through random experts of width ``d_ff``: the batched
    layer, both methods, against the per-token reference. Returns {method: max |diff|}."""
    check_int("FFN width", d_ff, 1, 1 << 16)
    ex = Experts.random(res.spec.experts, res.spec.d_model, d_ff, seed=seed)
    r, n = res.routing, min(max_tokens, res.spec.tokens)
    x, expert, weight, keep = res.x[:n], r.expert[:n], r.weight[:n], res.cap.keep[:n]
    ref = moe_forward_reference(x, ex, expert, weight, keep)
    return {m: float((moe_forward(x, ex, expert, weight, keep, method=m) - ref).abs().max())
            for m in METHODS}


# --------------------------------------------------------------------- parameter count
@dataclass(frozen=True)
class MoEConfig:
    """A decoder-only MoE transformer, for counting parameters."""

    name: str
    d_model: int
    d_ff: int
    n_layers: int
    experts: int
    k: int
    vocab: int = 32000
    n_heads: int = 32
    n_kv_heads: int = 32
    gated: bool = True  # SwiGLU experts: three matrices instead of two
    tied_embeddings: bool = False

    def __post_init__(self):
        check_int("model width", self.d_model, 1, 1 << 20)
        check_int("FFN width", self.d_ff, 1, 1 << 22)
        check_int("layers", self.n_layers, 1, 10_000)
        check_int("experts", self.experts, 1, 4096)
        check_int("top-k", self.k, 1, self.experts)
        check_int("heads", self.n_heads, 1, 4096)
        check_int("KV heads", self.n_kv_heads, 1, self.n_heads)


MIXTRAL_8X7B = MoEConfig("Mixtral 8x7B", d_model=4096, d_ff=14336, n_layers=32, experts=8, k=2,
                         vocab=32000, n_heads=32, n_kv_heads=8, gated=True)
PRESETS = {MIXTRAL_8X7B.name: MIXTRAL_8X7B}


def param_count(cfg: MoEConfig) -> dict:
    """Total and active (per token) parameters, split by part. Norms are counted, biases not."""
    d, L = cfg.d_model, cfg.n_layers
    head = d // cfg.n_heads
    attention = L * (2 * d * d + 2 * d * cfg.n_kv_heads * head)  # q, o and k, v
    per_expert = (3 if cfg.gated else 2) * d * cfg.d_ff
    experts_total = L * cfg.experts * per_expert
    experts_active = L * cfg.k * per_expert
    router = L * d * cfg.experts
    norms = L * 2 * d + d
    embeddings = cfg.vocab * d * (1 if cfg.tied_embeddings else 2)
    shared = attention + router + norms + embeddings
    total = shared + experts_total
    active = shared + experts_active
    return {"config": cfg.name, "total": total, "active": active,
            "active_fraction": active / total, "experts_total": experts_total,
            "experts_active": experts_active, "attention": attention, "router": router,
            "embeddings": embeddings, "norms": norms, "per_expert": per_expert,
            "bytes_bf16_total": 2 * total, "bytes_bf16_active": 2 * active}


# ------------------------------------------------------------------- trained router
class DigitsMoE(torch.nn.Module):
    """A tiny MoE classifier for 8x8 digits: router (64 -> E), experts 64 -> h -> 10."""

    def __init__(self, experts: int, k: int, hidden: int = 32, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.k = k
        self.gate = torch.nn.Parameter(torch.randn(64, experts, generator=g) * 0.1)
        self.w1 = torch.nn.Parameter(torch.randn(experts, hidden, 64, generator=g) / 8.0)
        self.w2 = torch.nn.Parameter(torch.randn(experts, 10, hidden, generator=g) / math.sqrt(hidden))

    def forward(self, x: torch.Tensor):
        """x: (B, 64) -> class logits (B, 10) and the Routing."""
        r = route(x, self.gate, self.k)
        hidden = F.gelu(torch.einsum("bd,ehd->beh", x, self.w1))  # (B, E, h): tiny, so dense
        per_expert = torch.einsum("beh,ech->bec", hidden, self.w2)  # (B, E, 10)
        combine = torch.zeros_like(r.probs).scatter(1, r.expert, r.weight)  # (B, E)
        return torch.einsum("be,bec->bc", combine, per_expert), r


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: x (1797, 64) pixel values 0..16, y (1797,) classes 0..9.

    Read from the CSV that ships inside scikit-learn (importing sklearn.datasets takes
    seconds on a busy machine); falls back to ``sklearn.datasets.load_digits``.
    """
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
        if path.exists():
            table = np.loadtxt(path, delimiter=",")
            return table[:, :-1], table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data, data.target


def _digits(seed: int):
    """Standardised train / test split (75 / 25, stratified by class, seeded)."""
    x, y = load_digits_arrays()
    x = x.astype(np.float32) / 16.0
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-3)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        test[idx[: len(idx) // 4]] = True
    return x[~test], x[test], y[~test], y[test]


def train_router_plan_total(epochs: int, experts: int) -> int:
    """Rows ``train_router_rows`` yields: per variant, epochs + experts + one summary."""
    return 2 * (epochs + experts + 1)


def train_router_rows(experts: int = 8, k: int = 2, alpha: float = 0.1, epochs: int = 10,
                      batch: int = 128, lr: float = 1e-2, seed: int = 0,
                      threads: int | None = 1) -> Iterator[dict]:
    """Train the digits MoE twice (no balancing loss; with ``alpha``) and yield rows.

    Per variant: one ``kind="epoch"`` row per epoch (loss, test accuracy, balancing
    loss, per-expert share of test-set assignments ``load_e{i}``), then one
    ``kind="specialisation"`` row per expert (fraction of each class's test tokens it
    took: ``class_0 .. class_9``), then a ``kind="summary"`` row. With k=1 the
    renormalised weight is always 1, so only the balancing loss trains the router.
    threads: torch CPU threads while training (1 is fastest for a model this small).
    """
    check_int("experts", experts, 2, 64)
    check_int("top-k", k, 1, experts)
    check_float("alpha", alpha, 0.0, 10.0)
    check_int("epochs", epochs, 1, 500)
    check_int("batch", batch, 1, 2048)
    if threads:
        with torch_threads(threads):
            yield from _train_router(experts, k, alpha, epochs, batch, lr, seed)
    else:
        yield from _train_router(experts, k, alpha, epochs, batch, lr, seed)


def _train_router(experts, k, alpha, epochs, batch, lr, seed) -> Iterator[dict]:
    torch.manual_seed(seed)
    xtr, xte, ytr, yte = _digits(seed)
    xtr, xte = torch.from_numpy(xtr), torch.from_numpy(xte)
    ytr, yte = torch.from_numpy(ytr).long(), torch.from_numpy(yte).long()
    for variant, a in (("no balancing loss", 0.0), (f"balancing alpha={alpha:g}", alpha)):
        model = DigitsMoE(experts, k, seed=seed)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        g = torch.Generator().manual_seed(seed)
        for epoch in range(1, epochs + 1):
            model.train()
            perm = torch.randperm(len(xtr), generator=g)
            total = 0.0
            for i in range(0, len(xtr), batch):
                idx = perm[i:i + batch]
                logits, r = model(xtr[idx])
                loss = F.cross_entropy(logits, ytr[idx])
                if a:
                    loss = loss + load_balancing_loss(r.probs, r.expert, alpha=a)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            with torch.no_grad():
                logits, r = model(xte)
                acc = float((logits.argmax(1) == yte).float().mean())
                share = torch.bincount(r.expert.reshape(-1), minlength=experts).double() / r.expert.numel()
                row = {"kind": "epoch", "variant": variant, "alpha": a, "epoch": epoch,
                       "train_loss": round(total / len(xtr), 5), "test_accuracy": round(acc, 4),
                       "balance_loss": round(float(load_balancing_loss(r.probs, r.expert, 1.0)), 4),
                       "max_share": round(float(share.max()), 4),
                       "dead_experts": int((share == 0).sum())}
                row.update({f"load_e{e}": round(float(share[e]), 4) for e in range(experts)})
            yield row
        with torch.no_grad():
            _, r = model(xte)
            top1 = r.expert[:, 0]
            for e in range(experts):
                row = {"kind": "specialisation", "variant": variant, "alpha": a, "expert": e}
                for c in range(10):
                    in_class = yte == c
                    row[f"class_{c}"] = round(float((top1[in_class] == e).double().mean()), 4)
                yield row
        yield {"kind": "summary", "variant": variant, "alpha": a, "test_accuracy": round(acc, 4),
               "balance_loss": round(float(load_balancing_loss(r.probs, r.expert, 1.0)), 4),
               "max_share": round(float(share.max()), 4), "dead_experts": int((share == 0).sum())}


# ---------------------------------------------------------------------- timing sweep
@dataclass(frozen=True)
class SweepSpec:
    """Dense FFN vs MoE timing. h = ffn_mult * d per expert; batches are token counts."""

    d_model: int = 256
    ffn_mult: int = 4
    experts: int = 8
    k: int = 2
    batches: tuple = (1, 4, 16, 64, 256, 1024)
    dtype: str = "float32"
    device: str = "auto"
    min_run_time: float = 0.05
    methods: tuple = ("grouped", "loop")

    def __post_init__(self):
        check_int("model width", self.d_model, 8, 16384)
        check_int("FFN multiple", self.ffn_mult, 1, 16)
        check_int("experts", self.experts, 1, 256)
        check_int("top-k", self.k, 1, self.experts)
        check_choice("dtype", self.dtype, ("float32", "bfloat16", "float16"))
        check_float("min run time", self.min_run_time, 0.0, 10.0)
        if not self.batches:
            raise ValueError("batches: expected at least one batch size, got none")
        for b in self.batches:
            check_int("batch", b, 1, 1 << 20)
        for m in self.methods:
            check_choice("method", m, METHODS)

    def variants(self) -> list[str]:
        return ["dense_1x", "dense_active", "dense_total"] + [f"moe_{m}" for m in self.methods]

    @property
    def total(self) -> int:
        return len(self.batches) * len(self.variants())


def powers_of_two(lo: int, hi: int) -> tuple:
    out, b = [], max(lo, 1)
    while b <= hi:
        out.append(b)
        b *= 2
    return tuple(out)


WARMUP_S = 0.25  # seconds of back-to-back calls before a row is timed (clocks, caches)
REPEATS = 50  # timed runs per row (median and IQR over these)
TARGET_RUN_S = 0.01  # each timed run repeats the call to last about this long


def _warm(fn, device: str, seconds: float) -> None:
    """Call ``fn`` back to back for about ``seconds`` (at least 3 calls), then sync."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    started = time.perf_counter()
    calls = 0
    while calls < 3 or time.perf_counter() - started < seconds:
        fn()
        calls += 1
        if calls % 8 == 0:
            sync()
    sync()


def time_call(fn, min_run_time: float, task):
    """A Measurement (engine.bench.measurement) of ``fn``: warm-up, CUDA sync, median and IQR.

    Each row first runs ``fn`` back to back for ``min(WARMUP_S, 2 * min_run_time)``
    seconds (GPU clocks settle, caches and kernel choices fill), then the lab's timer
    (engine.bench.timer.measure) takes up to ``REPEATS`` runs, each repeating the call for
    about ``min(TARGET_RUN_S, min_run_time / 20)`` (min_run_time 0.2, the GPU script's:
    10 ms, so a 2 ms GEMM is averaged over 5 calls per run; the page's 0.05: 2.5 ms),
    within ``max(20 * min_run_time, 0.5)`` s per row. ``task``: what is timed
    (engine.bench.measurement.Task, whose device is synchronised).
    """
    from engine.bench.timer import measure

    _warm(fn, task.device, min(WARMUP_S, 2 * min_run_time))
    return measure(fn, repeats=REPEATS, target_run_s=min(TARGET_RUN_S, min_run_time / 20),
                   max_total_s=max(20 * min_run_time, 0.5), task=task)


def timing_sweep_rows(spec: SweepSpec) -> Iterator[dict]:
    """Yield one timing row per (batch, variant).

    Variants: ``dense_1x`` one FFN of width h (the cost of one expert);
    ``dense_active`` width k*h (equal active parameters); ``dense_total`` width E*h
    (equal total parameters); ``moe_<method>`` the routed layer (gate, top-k, sort,
    experts, scatter). ``ratio_vs_dense_1x`` = t / t(dense_1x) at the same batch
    (ideal for the MoE: k). Rows the device cannot run say ``unavailable: reason``.
    """
    from engine.runtime.device import job_device, runtime_device_name

    dev = job_device(spec.device)
    dtype = getattr(torch, spec.dtype)
    d, h, E, k = spec.d_model, spec.ffn_mult * spec.d_model, spec.experts, spec.k
    g = torch.Generator().manual_seed(0)
    exp = Experts.random(E, d, h, dtype=dtype, device=dev)
    gate = (torch.randn(d, E, generator=g) / math.sqrt(d)).to(dev, dtype)
    dense = {"dense_1x": 1, "dense_active": k, "dense_total": E}
    weights = {}
    for name, mult in dense.items():
        weights[name] = ((torch.randn(mult * h, d, generator=g) / math.sqrt(d)).to(dev, dtype),
                         (torch.randn(d, mult * h, generator=g) / math.sqrt(mult * h)).to(dev, dtype))
    unavailable = {}
    if "grouped" in spec.methods:
        reason = grouped_mm_available(dev, dtype)
        if reason:
            unavailable["moe_grouped"] = reason
    base = {"device": runtime_device_name(dev), "dtype": spec.dtype, "d_model": d, "d_ff": h,
            "experts": E, "k": k, "torch": torch.__version__, "host": platform.node()}
    for batch in spec.batches:
        x = torch.randn(batch, d, generator=g).to(dev, dtype)
        t_ref = None
        for variant in spec.variants():
            row = dict(base, batch=batch, variant=variant)
            if variant in dense:
                w1, w2 = weights[variant]
                fn = (lambda w1=w1, w2=w2: ffn(x, w1, w2))
                row["params"] = w1.numel() + w2.numel()
                row["active_params"] = row["params"]
            else:
                method = variant.split("_", 1)[1]
                if variant in unavailable:
                    row.update(status=f"unavailable: {unavailable[variant]}")
                    yield row
                    continue

                def fn(method=method):
                    r = route(x, gate, k)
                    return moe_forward(x, exp, r.expert, r.weight, method=method)
                row["params"] = exp.params() + gate.numel()
                row["active_params"] = k * exp.params() // E + gate.numel()
            task = Task(op="moe-layer" if variant.startswith("moe") else "ffn", backend=variant,
                        dims={"batch": batch, "d_model": d, "d_ff": h, "experts": E, "k": k},
                        dtype=spec.dtype, device=dev.type, device_name=base["device"],
                        versions={"torch_version": torch.__version__})
            try:
                with torch.inference_mode():
                    m = time_call(fn, spec.min_run_time, task)
            except (RuntimeError, ValueError) as exc:  # e.g. out of memory: say so, go on
                row.update(status=f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                yield row
                continue
            median = m.median_s
            row.update({k2: v for k2, v in m.row().items() if k2 not in ("device", "k")})
            row.update(status="ok", timer=f"engine.bench.timer.measure ({m.method}), median",
                       time_ms=median * 1e3, iqr_ms=m.iqr_s * 1e3,
                       tokens_per_s=batch / median if median else float("nan"))
            if variant == "dense_1x":
                t_ref = median
            row["ratio_vs_dense_1x"] = median / t_ref if t_ref else float("nan")
            yield row


def sweep_summary(rows: list[dict]) -> list[dict]:
    """Per MoE variant at the largest batch measured: time / dense_1x (ideal k), and the
    efficiency k / ratio; plus time / dense_active and / dense_total at the smallest and
    the largest batch (the memory paradox in two numbers each)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:
        return []
    times = {(r["batch"], r["variant"]): r["time_ms"] for r in ok}
    small, big = min(r["batch"] for r in ok), max(r["batch"] for r in ok)

    def ratio(batch, variant, base):
        a, b = times.get((batch, variant)), times.get((batch, base))
        return a / b if a and b else float("nan")

    out = []
    for r in ok:
        if r["batch"] == big and str(r["variant"]).startswith("moe_"):
            v = r["variant"]
            out.append({"variant": v, "batch": big, "ratio_vs_dense_1x": r["ratio_vs_dense_1x"],
                        "ideal": r["k"], "efficiency": r["k"] / r["ratio_vs_dense_1x"],
                        "small_batch": small,
                        "small_vs_dense_active": ratio(small, v, "dense_active"),
                        "small_vs_dense_total": ratio(small, v, "dense_total"),
                        "big_vs_dense_active": ratio(big, v, "dense_active"),
                        "big_vs_dense_total": ratio(big, v, "dense_total")})
    return out


def spec_dict(spec) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(spec).items()}


def now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def layer_params(d_model: int, d_ff: int, experts: int, k: int, gated: bool = False) -> dict:
    """Total vs active parameters of one MoE FFN layer (router included, biases not)."""
    check_int("model width", d_model, 1, 1 << 20)
    check_int("FFN width", d_ff, 1, 1 << 22)
    check_int("experts", experts, 1, 4096)
    check_int("top-k", k, 1, experts)
    per_expert = (3 if gated else 2) * d_model * d_ff
    router = d_model * experts
    total, active = experts * per_expert + router, k * per_expert + router
    return {"config": f"one layer: d={d_model}, h={d_ff}, E={experts}, k={k}", "total": total,
            "active": active, "active_fraction": active / total, "per_expert": per_expert,
            "router": router, "bytes_bf16_total": 2 * total, "bytes_bf16_active": 2 * active}


def load_reference_sweep(root=None) -> tuple[list[dict], str] | None:
    """The newest committed MoE timing run (engine.bench.reference; ``root``: another results
    folder), by the date inside it, as rows and a label naming its device, dtype, d and date;
    None when there is none."""
    from engine.bench.reference import references

    refs = references("moe", root)
    if not refs:
        return None
    ref = refs[0]
    df = ref.frame()
    dtype = ", ".join(ref.dtypes)
    d = ", ".join(map(str, ref.shape.get("d_model", ())))
    label = f"{ref.device_name or 'unknown device'}, {dtype}, d={d or '?'}, {ref.date[:10] or 'undated'}"
    return df.to_dict("records"), label
