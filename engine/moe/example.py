"""What /moe's routing sliders ask for: random tokens through a seeded random gate,
with their capacity, drops, losses, per-expert rows and the batched layer's agreement
with its reference."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from engine.moe.layer import METHODS, Experts, moe_forward, moe_forward_reference
from engine.moe.router import (Capacity, Routing, apply_capacity, expert_capacity,
                               load_balancing_loss, route, router_z_loss, utilisation)
from engine.runtime.cache import pure_cache
from engine.validate import check_budget, check_fields, check_int


# The routing sliders' ranges, (lo, hi, step): the page builds its sliders from these and
# RoutingSpec refuses anything outside them ("expected ... got ...").
ROUTING_LIMITS = {
    "tokens": (8, 512, 8), "experts": (2, 64, 1), "k": (1, 8, 1),
    "capacity_factor": (0.25, 4.0, 0.25), "d_model": (8, 512, 8), "d_ff": (32, 4096, 32),
    "temperature": (0.1, 5.0, 0.1), "skew": (0.0, 5.0, 0.1), "jitter": (0.0, 0.5, 0.01),
    "seed": (0, 10**6, 1),
}
ROUTING_LABELS = {"tokens": "tokens", "experts": "experts", "k": "top-k",
                  "capacity_factor": "capacity factor", "d_model": "model width",
                  "d_ff": "FFN width", "temperature": "temperature", "skew": "skew",
                  "jitter": "jitter", "seed": "seed"}
AGREEMENT_TOKENS = 64  # the batched-vs-reference check runs on this many tokens
AGREEMENT_MAX_FF = 128  # ... with experts at most this wide: a check, not a benchmark


@dataclass(frozen=True)
class RoutingSpec:
    """What the page's sliders ask for (each within ROUTING_LIMITS; top-k <= experts)."""

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
    d_ff: int = 256

    def __post_init__(self):
        k_lo, k_hi, k_step = ROUTING_LIMITS["k"]  # top-k is at most the number of experts
        experts = check_int("experts", self.experts, *ROUTING_LIMITS["experts"][:2])
        check_fields(self, {**ROUTING_LIMITS, "k": (k_lo, min(k_hi, experts), k_step)}, ROUTING_LABELS)

    def memory_bytes(self) -> int:
        """Estimated peak bytes of ``routing_view``: the tokens, gate and router outputs
        (float32), the (T k, E) int64 one-hot and its running count of the capacity pass,
        and the agreement check's experts (drawn, then scaled: two copies) and
        activations (measured at the sliders' limits: 48 MB for an estimate of 72 MB)."""
        t, e, k, d = self.tokens, self.experts, self.k, self.d_model
        h = min(self.d_ff, AGREEMENT_MAX_FF)
        router = 4 * (t * d + d * e + 4 * t * e) + 2 * 8 * t * k * e
        check = 4 * (4 * e * h * d + 4 * AGREEMENT_TOKENS * k * (h + d))
        return router + check


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


@dataclass(frozen=True)
class RoutingView:
    """Everything /moe's routing section shows for one RoutingSpec.

    weights / kept: (T, E) routed weights before and after capacity; rows: one per expert;
    stats: the headline numbers; agreement: {method: max |batched - reference|}."""

    spec: RoutingSpec
    weights: np.ndarray
    kept: np.ndarray
    rows: list
    stats: dict
    agreement: dict

    @property
    def fair_share(self) -> float:
        return self.spec.tokens * self.spec.k / self.spec.experts


def routing_view(spec: RoutingSpec) -> RoutingView:
    """Route the example (refused first if its estimate passes the memory budget) and
    check the batched layer against its reference on the first tokens; once per spec
    (the lab's bounded cache of pure results)."""
    check_budget("routing example", spec.memory_bytes())
    return _routing_view(spec)


@pure_cache
def _routing_view(spec: RoutingSpec) -> RoutingView:
    res = routing_example(spec)
    agree = layer_agreement(res, min(spec.d_ff, AGREEMENT_MAX_FF), AGREEMENT_TOKENS)
    rows = res.expert_rows()
    stats = {"balance_loss": res.balance_loss, "z_loss": res.z_loss, "capacity": res.cap.capacity,
             "dropped": int(res.cap.dropped.sum()), "assignments": spec.tokens * spec.k,
             "dropped_tokens": res.cap.dropped_tokens, "dead": sum(1 for r in rows if r["load"] == 0)}
    return RoutingView(spec, res.routing.dense_weights().numpy(),
                       res.routing.dense_weights(res.cap.keep).numpy(), rows, stats, agree)
