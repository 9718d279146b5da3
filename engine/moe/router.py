"""The MoE router: gate, top-k, Switch capacity and drops, the balancing losses.

Shapes use T tokens, d model width, E experts, k experts per token.

* ``route``: a linear gate ``x @ gate -> logits (T, E)``, an optional skew that biases
  the logits toward the low-numbered experts (to make imbalance on purpose), jitter
  noise, a temperature, softmax, top-k and renormalised top-k weights.
* ``apply_capacity``: Switch-Transformer capacity. Each expert takes at most
  ``capacity`` assignments; assignments arrive in token order (token 0 first; within a
  token, its first choice before its second) and those past capacity are dropped.
  ``capacity=None`` is the dropless path. ``apply_capacity_reference`` is its loop.
* ``load_balancing_loss`` (``alpha * E * sum_i f_i P_i``) and ``router_z_loss``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.validate import check_float, check_int


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
