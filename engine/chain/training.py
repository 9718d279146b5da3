"""A trained chain: learn R, W and M with autograd so that each pattern plays a chord.

The deck's point from the other side: a network trained from data *is* the rule
pipeline. Start from a seeded chain, pick target harmonic amplitudes per pattern (a
preset such as a major triad, or your own), and minimise

    loss = mean over patterns p of || M W sigma(R_p) - target_p ||^2

with Adam (torch, float64). R keeps its sparsity: its gradient is masked to the
nonzeros it started with, so the trained chain has the same support, the same dice,
and the generator's pipeline and graph (message passing) still agree to rounding.

    run = TrainRun(make_chain(), targets_for(make_chain(), "major triad"), steps=300)
    for row in run.rows(): ...            # {"step": i, "loss": ...} as training goes
    run.chain                             # the Chain with the learned R, W, M

Training is deterministic (CPU, float64, no randomness after the seeded start), so
``trained_chain(params, target, steps, lr)`` is a pure function of its arguments.
"""
from __future__ import annotations

import dataclasses
from dataclasses import replace
from typing import Iterator

import numpy as np

from engine.chain.generator import Chain, ChainSpec, chain_from_dict
from engine.runtime.cache import pure_cache
from engine.runtime.threads import torch_threads
from engine.validate import check_choice, check_float, check_int

# harmonics of f0 = 220 Hz: 4, 5, 6 -> 880, 1100, 1320 Hz, a major triad (4:5:6) on A
TARGETS = {
    "major triad": "every pattern plays harmonics 4, 5 and 6 (A major, 4:5:6)",
    "arpeggio": "pattern p plays one note of the triad: harmonic 4, 5 or 6 in turn",
    "octaves": "pattern p plays harmonic 1, 2 or 4 in turn (A3, A4, A5)",
    "custom": "your amplitudes: one row of F numbers per pattern, rows separated by ';'",
}
TRAIN_LIMITS = {"steps": (1, 2000), "lr": (1e-4, 1.0)}


def parse_custom(text: str, n_harmonics: int) -> np.ndarray:
    """'1 0 0; 0 1 0' -> (rows, F) amplitudes; rows cycle over the patterns."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("custom target: expected rows of numbers separated by ';', got nothing")
    rows = []
    for i, part in enumerate(text.split(";")):
        if not part.strip():
            continue
        try:
            vals = [float(v) for v in part.replace(",", " ").split()]
        except ValueError:
            raise ValueError(f"custom target row {i + 1}: expected numbers, got {part.strip()!r}")
        if len(vals) != n_harmonics or not np.all(np.isfinite(vals)):
            raise ValueError(f"custom target row {i + 1}: expected {n_harmonics} finite amplitudes "
                             f"(one per harmonic), got {len(vals)}")
        rows.append(vals)
    if not rows:
        raise ValueError("custom target: expected at least one row of numbers, got none")
    return np.array(rows)


def targets_for(chain: Chain, target: str, custom: str = "", level: float | None = None) -> np.ndarray:
    """(P, F) target amplitudes for ``target`` (see ``TARGETS``).

    level: the amplitude of a note (default: the largest |y| of the untrained chain, so
    the targets are reachable at the chain's own scale).
    """
    target = check_choice("target", target, tuple(TARGETS))
    P, F = chain.spec.n_patterns, chain.spec.n_harmonics
    if level is None:
        level = float(np.max(np.abs(chain.forward_all()["assemble"]))) or 1.0
    out = np.zeros((P, F))
    need = {"major triad": 6, "arpeggio": 6, "octaves": 4}.get(target, 1)
    if F < need:
        raise ValueError(f"target {target!r}: expected at least {need} harmonics (F >= {need}), "
                         f"got F = {F}")
    if target == "major triad":
        out[:, [3, 4, 5]] = level
    elif target == "arpeggio":
        out[np.arange(P), 3 + np.arange(P) % 3] = level
    elif target == "octaves":
        out[np.arange(P), np.array([0, 1, 3])[np.arange(P) % 3]] = level
    else:
        rows = parse_custom(custom, F)
        out = rows[np.arange(P) % len(rows)]
    return out


class TrainRun:
    """One training run: ``rows()`` yields the loss step by step; ``chain`` is the result."""

    def __init__(self, chain: Chain, targets: np.ndarray, steps: int = 300, lr: float = 0.05):
        self.start = chain
        self.targets = np.asarray(targets, dtype=float)
        if self.targets.shape != (chain.spec.n_patterns, chain.spec.n_harmonics):
            raise ValueError(f"targets: expected shape {(chain.spec.n_patterns, chain.spec.n_harmonics)}"
                             f" (patterns x harmonics), got {self.targets.shape}")
        self.steps = check_int("steps", steps, *TRAIN_LIMITS["steps"])
        self.lr = check_float("lr", lr, *TRAIN_LIMITS["lr"])
        self.chain: Chain | None = None
        self.losses: list[float] = []

    def rows(self) -> Iterator[dict]:
        import torch

        c = self.start
        f64 = dict(dtype=torch.float64)
        mask = torch.tensor(c.R != 0, **f64)
        R = torch.tensor(c.R, **f64, requires_grad=True)
        W = torch.tensor(c.W, **f64, requires_grad=True)
        M = torch.tensor(c.M, **f64, requires_grad=True)
        target = torch.tensor(self.targets, **f64)
        sigma = _torch_sigma(c.spec.activation)
        # torch.optim pulls in torch._dynamo on first use (seconds): imported here, in the
        # training job's own process, never when a page imports this module
        from torch.optim import Adam

        opt = Adam([R, W, M], lr=self.lr)

        def loss_fn():
            a = torch.where(mask > 0, sigma(R), torch.zeros_like(R))   # (P, K), on the support
            y = a @ W.T @ M.T                                            # (P, F)
            return ((y - target) ** 2).sum(dim=1).mean()

        with torch_threads(1):  # tiny matrices: one thread beats an oversubscribed pool
            for step in range(self.steps + 1):
                opt.zero_grad(set_to_none=True)
                loss = loss_fn()
                value = loss.item()
                self.losses.append(value)
                yield {"step": step, "loss": value, "steps": self.steps, "lr": self.lr}
                if step == self.steps:
                    break
                loss.backward()
                R.grad *= mask          # keep R's sparsity: no gradient off the support
                opt.step()              # (zero gradient and zero moments: R stays 0 off it)
                with torch.no_grad():   # an entry Adam pushed to exactly 0 stays in the support
                    R.copy_(torch.where((mask > 0) & (R == 0), torch.full_like(R, 1e-12), R))
        self.chain = replace(c, R=R.detach().numpy().copy(), W=W.detach().numpy().copy(),
                             M=M.detach().numpy().copy(), _graph=None)

    def run(self) -> "TrainRun":
        for _ in self.rows():
            pass
        return self


def _torch_sigma(name: str):
    import torch

    return {"relu": torch.relu, "tanh": torch.tanh, "identity": lambda v: v,
            "sigmoid": torch.sigmoid}[name]


def trained_chain(params: dict, target: str, steps: int = 300, lr: float = 0.05,
                  custom: str = "") -> tuple[Chain, list[float]]:
    """The chain of ``params`` trained to ``target``: (chain, loss per step). Pure."""
    start = chain_from_dict(params)
    run = TrainRun(start, targets_for(start, target, custom), steps, lr).run()
    return run.chain, run.losses


@pure_cache
def _trained(spec: ChainSpec, target: str, steps: int, lr: float, custom: str) -> tuple[Chain, list]:
    return trained_chain(dataclasses.asdict(spec), target, steps, lr, custom)


def _trained_key(params: dict, target: str, steps: int, lr: float, custom: str) -> tuple:
    """``_trained``'s arguments for these settings, validated once."""
    target = check_choice("target", target, tuple(TARGETS))
    return (chain_from_dict(params).spec, target, check_int("steps", steps, *TRAIN_LIMITS["steps"]),
            check_float("lr", lr, *TRAIN_LIMITS["lr"]), custom if target == "custom" else "")


def cached_trained_chain(params: dict, target: str, steps: int, lr: float,
                         custom: str = "") -> tuple[Chain, list[float]]:
    """``trained_chain`` through the lab's pure cache (shared by workers and jobs), keyed by
    the validated spec, so a page shows what a training job computed without redoing it."""
    return _trained(*_trained_key(params, target, steps, lr, custom))


def remember_trained(run: "TrainRun", params: dict, target: str, custom: str = "") -> None:
    """Put a finished job's run into the pure cache under ``cached_trained_chain``'s key
    (the page then draws it without training the chain a second time)."""
    _trained.put((run.chain, run.losses), *_trained_key(params, target, run.steps, run.lr, custom))
