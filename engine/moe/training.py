"""A router trained on scikit-learn's digits (engine.data's one split), without and
with the balancing loss: ``train_router_rows`` yields the job's rows."""
from __future__ import annotations

import contextlib
import math
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from engine.data import digits_split
from engine.moe.router import load_balancing_loss, route
from engine.runtime.threads import torch_threads
from engine.validate import check_budget, check_float, check_int


# The training widgets' ranges (lo, hi); train_router_rows refuses anything outside them.
TRAIN_LIMITS = {"experts": (2, 32), "k": (1, 8), "alpha": (0.0, 10.0), "epochs": (1, 200)}
HIDDEN = 32  # each expert's hidden width



class DigitsMoE(torch.nn.Module):
    """A tiny MoE classifier for 8x8 digits: router (64 -> E), experts 64 -> h -> 10."""

    def __init__(self, experts: int, k: int, hidden: int = HIDDEN, seed: int = 0):
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


def train_memory_bytes(experts: int, batch: int = 128) -> int:
    """Estimated peak bytes of one training run: the standardised digits (float32, plus
    numpy's float64 table), the model with its gradients and Adam's two moments, and the
    (B, E, h) activations of a training batch and of the test set, forward and backward."""
    data = 1797 * 64 * (4 * 2 + 8)
    model = 4 * 4 * experts * (64 + HIDDEN * 64 + 10 * HIDDEN)
    activations = 4 * 3 * max(batch, 450) * experts * (2 * HIDDEN + 10)
    return data + model + activations


def check_training(experts, k, alpha, epochs, batch: int = 128) -> dict:
    """The training widgets checked once against TRAIN_LIMITS and the memory budget:
    {experts, k, alpha, epochs} as numbers (ValueError "expected ... got ...")."""
    experts = check_int("experts", experts, *TRAIN_LIMITS["experts"])
    out = {"experts": experts, "k": check_int("top-k", k, 1, min(TRAIN_LIMITS["k"][1], experts)),
           "alpha": check_float("alpha", alpha, *TRAIN_LIMITS["alpha"]),
           "epochs": check_int("epochs", epochs, *TRAIN_LIMITS["epochs"])}
    check_int("batch", batch, 1, 2048)
    check_budget("router training", train_memory_bytes(experts, batch))
    return out


def train_router_plan_total(epochs: int, experts: int) -> int:
    """Rows ``train_router_rows`` yields: per variant, epochs + experts + one summary."""
    return 2 * (epochs + experts + 1)


def standardised_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """engine.data's one digits split, each pixel standardised by the training set's
    mean and spread: x_train (1347, 64), x_test (450, 64) float32, y_train, y_test."""
    xtr, xte, ytr, yte = digits_split()
    mean, std = xtr.mean(axis=0), xtr.std(axis=0) + 1e-3
    return (xtr - mean) / std, (xte - mean) / std, ytr, yte


def train_router_rows(experts: int = 8, k: int = 2, alpha: float = 0.1, epochs: int = 10,
                      batch: int = 128, lr: float = 1e-2, seed: int = 0,
                      threads: int | None = 1, device: str = "auto") -> Iterator[dict]:
    """Train the digits MoE twice (no balancing loss; with ``alpha``) and yield rows.

    Per variant: one ``kind="epoch"`` row per epoch (loss, test accuracy, balancing
    loss, per-expert share of test-set assignments ``load_e{i}``), then one
    ``kind="specialisation"`` row per expert (fraction of each class's test tokens it
    took: ``class_0 .. class_9``), then a ``kind="summary"`` row. With k=1 the
    renormalised weight is always 1, so only the balancing loss trains the router.
    device: "auto" (the GPU when there is one: call inside a job, it may initialise
    CUDA), "cuda" or "cpu"; every row names it (``device``, ``device_name``).
    threads: torch CPU threads while training (1 is fastest for a model this small).
    """
    check_training(experts, k, alpha, epochs, batch)
    from engine.runtime.device import job_device, runtime_device_name

    dev = job_device(device)
    where = {"device": dev.type, "device_name": runtime_device_name(dev)}
    rows = _train_router(experts, k, alpha, epochs, batch, lr, seed, dev)
    with torch_threads(threads) if threads else contextlib.nullcontext():
        for row in rows:
            yield {**row, **where}


def _train_router(experts, k, alpha, epochs, batch, lr, seed, dev) -> Iterator[dict]:
    torch.manual_seed(seed)
    xtr, xte, ytr, yte = (torch.from_numpy(a).to(dev) for a in standardised_digits())
    for variant, a in (("no balancing loss", 0.0), (f"balancing alpha={alpha:g}", alpha)):
        model = DigitsMoE(experts, k, seed=seed).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        g = torch.Generator().manual_seed(seed)  # batch order on the host: the same on every device
        for epoch in range(1, epochs + 1):
            model.train()
            perm = torch.randperm(len(xtr), generator=g).to(dev)
            total = torch.zeros((), device=dev)
            for i in range(0, len(xtr), batch):
                idx = perm[i:i + batch]
                logits, r = model(xtr[idx])
                loss = F.cross_entropy(logits, ytr[idx])
                if a:
                    loss = loss + load_balancing_loss(r.probs, r.expert, alpha=a)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.detach() * len(idx)  # no host sync per step
            with torch.no_grad():
                logits, r = model(xte)
                acc = float((logits.argmax(1) == yte).float().mean())
                share = torch.bincount(r.expert.reshape(-1), minlength=experts).double() / r.expert.numel()
                row = {"kind": "epoch", "variant": variant, "alpha": a, "epoch": epoch,
                       "train_loss": round(float(total) / len(xtr), 5), "test_accuracy": round(acc, 4),
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
