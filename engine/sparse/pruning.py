"""Magnitude pruning to a sparsity pattern, and what each pattern costs in accuracy.

Three patterns, all by magnitude (keep the largest ``|w|``):

* ``"unstructured"``: keep the ``round((1 - s) * size)`` largest entries anywhere.
* ``"block"``: tile the matrix into ``block x block`` tiles (edge tiles may be
  smaller) and keep whole tiles with the largest mean ``|w|``; the sparsity is the
  one asked to within one tile.
* ``"nm"`` (N:M, e.g. 2:4): in every group of ``m`` consecutive entries along the
  last dimension keep exactly the ``n`` largest. The sparsity is fixed at ``1 - n/m``.

Weights of more than two dimensions (conv kernels ``(out, in, kh, kw)``) are pruned
as the matrix ``(out, in * kh * kw)``, the way a GEMM sees them. ``prune_mask``
accepts numpy arrays and torch tensors and returns a boolean mask of the same kind
and shape (True = kept). ``prune_mask_reference`` is the slow loop beside it.

    mask = prune_mask(w, "block", 0.75, block=16)     # w: (256, 256) -> bool (256, 256)
    mask = prune_mask(w, "2:4", None)                 # same as pattern="nm", n=2, m=4

``accuracy_rows`` measures the accuracy cost: a small MLP and a small CNN trained
on scikit-learn's digits (the lab's one split, ``engine.data.digits_split``), pruned
to each pattern at matched sparsity and fine-tuned with the mask held (torch.optim's
Adam), one result row per (model, pattern, sparsity), each naming the device it ran on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from engine.runtime.cache import pure_cache
from engine.runtime.threads import torch_threads
from engine.validate import check_choice, check_choices, check_fields, check_float, check_int

PATTERNS = ("unstructured", "block", "nm")
NM_PRESETS = {"2:4": (2, 4), "1:4": (1, 4), "4:8": (4, 8)}
BLOCK_SIZES = (1, 4, 8, 16, 32, 64, 128)


# --------------------------------------------------------------------------- masks

@dataclass(frozen=True)
class PatternSpec:
    """A validated pattern: ``kind`` in PATTERNS plus its parameters."""

    kind: str
    sparsity: float
    block: int | None = None
    n: int | None = None
    m: int | None = None

    @property
    def label(self) -> str:
        if self.kind == "unstructured":
            return "unstructured"
        if self.kind == "block":
            return f"block {self.block}x{self.block}"
        return f"{self.n}:{self.m}"


def pattern_spec(pattern: str, sparsity: float | None, block: int | None = None,
                 n: int | None = None, m: int | None = None) -> PatternSpec:
    """Check and normalise the arguments of ``prune_mask`` (raises "expected ... got ...")."""
    if isinstance(pattern, str) and pattern in NM_PRESETS:
        n, m = NM_PRESETS[pattern]
        pattern = "nm"
    check_choice("pattern", pattern, PATTERNS + tuple(NM_PRESETS))
    if pattern == "nm":
        m = check_int("m", m, 1, 64)
        n = check_int("n", n, 1, m)
        fixed = 1.0 - n / m
        if sparsity is not None:
            s = check_float("sparsity", sparsity, 0.0, 1.0)
            if abs(s - fixed) > 1e-9:
                raise ValueError(f"sparsity: expected {fixed:g} for {n}:{m} (the pattern fixes "
                                 f"it) or None, got {sparsity!r}")
        return PatternSpec("nm", fixed, n=n, m=m)
    s = check_float("sparsity", sparsity, 0.0, 1.0)
    if pattern == "block":
        return PatternSpec("block", s, block=check_int("block", block, 1, 4096))
    return PatternSpec("unstructured", s)


def _as_matrix(weight: Any) -> tuple[np.ndarray, tuple[int, ...], str]:
    """Magnitudes as a float64 (rows, cols) matrix, the original shape, and its kind."""
    kind = "numpy"
    if type(weight).__module__.startswith("torch"):
        kind = "torch"
        arr = weight.detach().abs().to("cpu").double().numpy()
    else:
        arr = np.abs(np.asarray(weight, dtype=np.float64))
    shape = tuple(arr.shape)
    if arr.ndim == 0 or arr.size == 0:
        raise ValueError(f"weight: expected a non-empty array of 1 or more dimensions, got shape {shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("weight: expected finite values, got NaN or inf")
    mat = arr.reshape(1, -1) if arr.ndim == 1 else arr.reshape(shape[0], -1)
    return mat, shape, kind


def _back(mask: np.ndarray, shape: tuple[int, ...], kind: str, like: Any):
    mask = mask.reshape(shape)
    if kind == "torch":
        import torch

        return torch.from_numpy(mask).to(like.device)
    return mask


def _keep_count(size: int, sparsity: float) -> int:
    return int(round((1.0 - sparsity) * size))


def _top_k_flat(scores: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the k largest scores (ties go to the lower index).

    The k-th largest score by selection (np.partition, linear time), then every score
    above it and the first ties at it: the mask a stable sort gives, without sorting
    (a full sort of 2048^2 scores took seconds)."""
    flat = scores.ravel()
    if k <= 0 or k >= flat.size:
        return np.full(scores.shape, k > 0, dtype=bool)
    kth = np.partition(flat, flat.size - k)[flat.size - k]
    keep = flat > kth
    keep[np.flatnonzero(flat == kth)[:k - int(keep.sum())]] = True
    return keep.reshape(scores.shape)


def _nm_keep(groups: np.ndarray, n: int) -> np.ndarray:
    """Keep the n largest of each group along the last axis (ties go to the lower index).

    groups: (..., m). An entry's rank in its group is how many entries beat it: larger,
    or equal and earlier; it is kept when its rank is below n. For small m that is m^2
    whole-array comparisons (fast); a stable argsort per group otherwise (the same mask).
    """
    m = groups.shape[-1]
    if m > 8:
        order = np.argsort(-groups, axis=-1, kind="stable")[..., :n]
        mask = np.zeros(groups.shape, dtype=bool)
        np.put_along_axis(mask, order, True, axis=-1)
        return mask
    rank = np.zeros(groups.shape, dtype=np.int8)
    for j in range(m):
        for i in range(m):
            if i != j:  # an earlier equal entry beats entry j, a later one does not
                rank[..., j] += groups[..., i] >= groups[..., j] if i < j else groups[..., i] > groups[..., j]
    return rank < n


def _block_scores(mat: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean |w| per b x b tile and the tile sizes, both (ceil(rows/b), ceil(cols/b))."""
    rows, cols = mat.shape
    br, bc = -(-rows // b), -(-cols // b)
    if rows % b == 0 and cols % b == 0:  # whole tiles: no padded copies (same sums)
        return mat.reshape(br, b, bc, b).sum(axis=(1, 3), dtype=np.float64) / (b * b), np.full((br, bc), float(b * b))
    padded = np.zeros((br * b, bc * b))
    padded[:rows, :cols] = mat
    sums = padded.reshape(br, b, bc, b).sum(axis=(1, 3))
    ones = np.zeros_like(padded)
    ones[:rows, :cols] = 1.0
    sizes = ones.reshape(br, b, bc, b).sum(axis=(1, 3))
    return sums / sizes, sizes


def _blocks_to_keep(scores: np.ndarray, sizes: np.ndarray, target: int) -> np.ndarray:
    """Tiles in order of score, as many as bring the kept count closest to ``target``."""
    order = np.argsort(-scores.ravel(), kind="stable")
    kept = np.concatenate([[0.0], np.cumsum(sizes.ravel()[order])])
    count = int(np.argmin(np.abs(kept - target)))  # first (smallest) count on ties
    keep = np.zeros(scores.size, dtype=bool)
    keep[order[:count]] = True
    return keep.reshape(scores.shape)


def prune_mask(weight: Any, pattern: str, sparsity: float | None, block: int | None = None,
               n: int | None = None, m: int | None = None):
    """Boolean keep-mask of ``weight`` pruned by magnitude to ``pattern``.

    weight: numpy array or torch tensor, shape (rows, cols) or (out, ...) seen as
    (out, prod(rest)); 1-D is one row. pattern: "unstructured", "block" (needs
    ``block``), "nm" (needs ``n`` and ``m``), or a preset "2:4", "1:4", "4:8".
    sparsity: fraction of zeros in [0, 1]; for N:M it must be None or ``1 - n/m``.
    Returns a bool mask of weight's shape and kind (True = kept).
    """
    spec = pattern_spec(pattern, sparsity, block, n, m)
    if type(weight).__module__.startswith("torch"):
        return _prune_mask_torch(weight, spec)
    mat, shape, kind = _as_matrix(weight)
    rows, cols = mat.shape
    if spec.kind == "unstructured":
        mask = _top_k_flat(mat, _keep_count(mat.size, spec.sparsity))
    elif spec.kind == "block":
        b = spec.block
        scores, sizes = _block_scores(mat, b)
        tiles = _blocks_to_keep(scores, sizes, _keep_count(mat.size, spec.sparsity))
        mask = np.repeat(np.repeat(tiles, b, axis=0), b, axis=1)[:rows, :cols]
    else:
        if cols % spec.m:
            raise ValueError(f"weight: expected the last dimension (as a matrix, {cols}) to be "
                             f"divisible by m={spec.m} for {spec.n}:{spec.m}, got shape {shape}")
        mask = _nm_keep(mat.reshape(rows, cols // spec.m, spec.m), spec.n).reshape(rows, cols)
    return _back(mask, shape, kind, weight)


def _prune_mask_torch(weight, spec: PatternSpec):
    """``prune_mask`` on a torch tensor, on its own device (same rules, same tie-breaking).

    Kept on the tensor's device so a (16384, 16384) GPU matrix never visits the host.
    """
    import torch

    shape = tuple(weight.shape)
    if weight.dim() == 0 or weight.numel() == 0:
        raise ValueError(f"weight: expected a non-empty array of 1 or more dimensions, got shape {shape}")
    mat = weight.detach().abs()
    if mat.dtype in (torch.float16, torch.bfloat16) or not mat.is_floating_point():
        mat = mat.float()  # exact for half types: the ordering is the one numpy sees
    if not bool(torch.isfinite(mat).all()):
        raise ValueError("weight: expected finite values, got NaN or inf")
    mat = mat.reshape(1, -1) if mat.dim() == 1 else mat.reshape(shape[0], -1)
    rows, cols = mat.shape
    dev = mat.device
    if spec.kind == "unstructured":
        k = _keep_count(mat.numel(), spec.sparsity)
        keep = torch.zeros(mat.numel(), dtype=torch.bool, device=dev)
        if k > 0:
            order = torch.sort(-mat.reshape(-1), stable=True).indices
            keep[order[:k]] = True
        return keep.reshape(shape)
    if spec.kind == "block":
        b = spec.block
        br, bc = -(-rows // b), -(-cols // b)
        padded = torch.zeros(br * b, bc * b, dtype=torch.float64, device=dev)
        padded[:rows, :cols] = mat
        sums = padded.reshape(br, b, bc, b).sum(dim=(1, 3))
        ones = torch.zeros_like(padded)
        ones[:rows, :cols] = 1.0
        sizes = ones.reshape(br, b, bc, b).sum(dim=(1, 3))
        order = torch.sort(-(sums / sizes).reshape(-1), stable=True).indices
        kept = torch.cat([torch.zeros(1, dtype=torch.float64, device=dev),
                          torch.cumsum(sizes.reshape(-1)[order], 0)])
        count = int(torch.argmin((kept - _keep_count(mat.numel(), spec.sparsity)).abs()))
        tiles = torch.zeros(br * bc, dtype=torch.bool, device=dev)
        tiles[order[:count]] = True
        tiles = tiles.reshape(br, bc)
        mask = tiles.repeat_interleave(b, 0).repeat_interleave(b, 1)[:rows, :cols]
        return mask.reshape(shape)
    if cols % spec.m:
        raise ValueError(f"weight: expected the last dimension (as a matrix, {cols}) to be "
                         f"divisible by m={spec.m} for {spec.n}:{spec.m}, got shape {shape}")
    groups = mat.reshape(rows, cols // spec.m, spec.m)
    order = torch.sort(-groups, dim=-1, stable=True).indices[..., :spec.n]
    mask = torch.zeros(groups.shape, dtype=torch.bool, device=dev)
    mask.scatter_(-1, order, True)
    return mask.reshape(shape)


def prune_mask_reference(weight: Any, pattern: str, sparsity: float | None,
                         block: int | None = None, n: int | None = None, m: int | None = None):
    """Slow loop version of ``prune_mask`` (numpy in, numpy out); tests hold them equal."""
    spec = pattern_spec(pattern, sparsity, block, n, m)
    mat, shape, _ = _as_matrix(weight)
    rows, cols = mat.shape
    mask = np.zeros((rows, cols), dtype=bool)
    if spec.kind == "unstructured":
        k = _keep_count(mat.size, spec.sparsity)
        items = sorted(((-mat[i, j], i * cols + j) for i in range(rows) for j in range(cols)))
        for _, flat in items[:k]:
            mask[flat // cols, flat % cols] = True
    elif spec.kind == "block":
        b = spec.block
        tiles = []
        for ti, r0 in enumerate(range(0, rows, b)):
            for tj, c0 in enumerate(range(0, cols, b)):
                tile = mat[r0:r0 + b, c0:c0 + b]
                tiles.append((-tile.mean(), len(tiles), r0, c0, tile.size))
        tiles.sort()
        target = _keep_count(mat.size, spec.sparsity)
        best, best_err, total = 0, abs(target), 0
        for count, t in enumerate(tiles, start=1):
            total += t[4]
            if abs(total - target) < best_err:
                best, best_err = count, abs(total - target)
        for _, _, r0, c0, _ in tiles[:best]:
            mask[r0:r0 + b, c0:c0 + b] = True
    else:
        if cols % spec.m:
            raise ValueError(f"weight: expected the last dimension divisible by m={spec.m}, "
                             f"got shape {shape}")
        for i in range(rows):
            for g in range(0, cols, spec.m):
                group = sorted((-mat[i, g + j], j) for j in range(spec.m))
                for _, j in group[:spec.n]:
                    mask[i, g + j] = True
    return mask.reshape(shape)


# ------------------------------------------------------------------ constraint checks

def _np_mask(mask: Any) -> np.ndarray:
    if type(mask).__module__.startswith("torch"):
        mask = mask.detach().to("cpu").numpy()
    mask = np.asarray(mask, dtype=bool)
    return mask.reshape(1, -1) if mask.ndim == 1 else mask.reshape(mask.shape[0], -1)


def mask_sparsity(mask: Any) -> float:
    """Fraction of zeros (False) in ``mask``."""
    m = _np_mask(mask)
    return float(1.0 - m.mean())


def nm_violations(mask: Any, n: int, m: int) -> int:
    """How many groups of ``m`` along the last dimension do not hold exactly ``n`` kept entries."""
    mat = _np_mask(mask)
    if mat.shape[1] % m:
        raise ValueError(f"mask: expected the last dimension divisible by {m}, got {mat.shape}")
    counts = mat.reshape(mat.shape[0], -1, m).sum(axis=-1)
    return int((counts != n).sum())


def block_violations(mask: Any, block: int) -> int:
    """How many ``block x block`` tiles are partly kept (neither all True nor all False)."""
    mat = _np_mask(mask).astype(np.float64)
    sums, sizes = _block_scores(mat, block)
    return int(((sums > 0) & (sums < 1)).sum())


def density_grid(mask: Any, max_cells: int = 128) -> tuple[np.ndarray, int]:
    """Mask aggregated for drawing: fraction kept per ``f x f`` cell, at most ``max_cells`` a side.

    mask: (rows, cols). Returns (grid, f) with grid (ceil(rows/f), ceil(cols/f)) in [0, 1];
    f = 1 (the mask itself as 0/1) when it already fits.
    """
    mat = _np_mask(mask).astype(np.float64)
    max_cells = check_int("max_cells", max_cells, 1)
    f = max(1, -(-max(mat.shape) // max_cells))
    if f == 1:
        return mat, 1
    grid, _ = _block_scores(mat, f)  # mean of 0/1 over each cell = fraction kept
    return grid, f


# ------------------------------------------------------------------ accuracy experiment

ACCURACY_MODELS = ("mlp", "cnn")
# (pattern, sparsity, block, n, m): the matched-sparsity grid of the accuracy comparison.
DEFAULT_ACCURACY_GRID: tuple[tuple, ...] = tuple(
    [("unstructured", s, None, None, None) for s in (0.5, 0.75, 0.9)]
    + [("block", s, b, None, None) for b in (4, 16) for s in (0.5, 0.75, 0.9)]
    + [("nm", None, None, 2, 4), ("nm", None, None, 1, 4)]
)


def build_model(name: str):
    """A small torch model for 8x8 digits; input (batch, 64), output logits (batch, 10).

    mlp: 64 -> 128 -> 64 -> 10. cnn: conv 1->16 3x3, conv 16->32 3x3, pool 2, fc 512 -> 64 -> 10.
    """
    import torch.nn as nn

    check_choice("model", name, ACCURACY_MODELS)
    if name == "mlp":
        return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                             nn.Linear(64, 10))
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))


def prunable_weights(model) -> list:
    """The weights pruning touches: every Linear/Conv2d except the first conv and the classifier.

    The first conv (9 inputs per filter) and the last layer are left dense, as is usual
    (and 9 is not a multiple of 4, so N:M could not apply there anyway).
    """
    import torch.nn as nn

    layers = [mod for mod in model.modules() if isinstance(mod, (nn.Linear, nn.Conv2d))]
    layers = layers[:-1]
    if layers and isinstance(layers[0], nn.Conv2d):
        layers = layers[1:]
    return [mod.weight for mod in layers]


def _train(model, x, y, epochs: int, lr: float, seed: int, masks=None, batch: int = 64) -> None:
    """Adam on cross-entropy, minibatches in a seeded order; ``masks`` held after every step.

    x: (N, 64) on the model's device, y: (N,). torch.optim is imported here, not at module
    level: its first import pulls in torch._dynamo (seconds on a busy CPU), which only a
    training job (a forked child) should pay, never the web process's page import.
    """
    import torch
    from torch.optim import Adam

    gen = torch.Generator().manual_seed(seed)
    opt = Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    weights = prunable_weights(model) if masks else []
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
        for start in range(0, x.shape[0], batch):
            idx = perm[start:start + batch]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
            if masks:  # hold the pattern: pruned weights stay exactly zero
                with torch.no_grad():
                    for w, mk in zip(weights, masks):
                        w.mul_(mk)


def _accuracy(model, x, y) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def accuracy_plan_size(models: Sequence[str], grid: Sequence[tuple]) -> int:
    """Rows ``accuracy_rows`` will yield: one dense row plus one per grid entry, per model."""
    return len(models) * (1 + len(grid))


# The page's pattern choices: label -> (kind, block or (n, m)); N:M fix their own sparsity.
ACCURACY_PATTERNS = {"unstructured": ("unstructured", None), "block 4x4": ("block", 4),
                     "block 16x16": ("block", 16), "2:4": ("nm", (2, 4)), "1:4": ("nm", (1, 4)),
                     "4:8": ("nm", (4, 8))}
ACCURACY_SPARSITIES = (0.5, 0.75, 0.9)  # offered for unstructured and block
# (lo, hi) of every integer the accuracy job takes; the page's number boxes read these.
ACCURACY_LIMITS = {"epochs": (1, 100), "finetune_epochs": (0, 50), "seeds": (1, 10)}


def accuracy_grid(patterns: Sequence[str], sparsities: Sequence[float]) -> tuple[tuple, ...]:
    """Pattern labels (ACCURACY_PATTERNS) x sparsities -> (pattern, sparsity, block, n, m) entries;
    an N:M label gives one entry at its own sparsity."""
    if not patterns:
        raise ValueError("patterns: expected at least one pattern ticked, got none")
    grid = []
    for label in patterns:
        kind, arg = ACCURACY_PATTERNS[check_choice("pattern", label, ACCURACY_PATTERNS)]
        if kind == "nm":
            grid.append(("nm", None, None, *arg))
            continue
        if not sparsities:
            raise ValueError("sparsities: expected at least one sparsity ticked, got none")
        grid += [(kind, check_float("sparsity", s, 0.0, 0.999), arg, None, None) for s in sorted(sparsities)]
    return tuple(grid)


@dataclass(frozen=True)
class AccuracySpec:
    """One accuracy job: every model x grid entry, trained once per seed (0, 1, ...).

    Checked once here ("expected ... got ..."); ``total`` is the number of rows it yields.
    """

    models: tuple[str, ...]
    grid: tuple[tuple, ...]
    epochs: int = 15
    finetune_epochs: int = 3
    seeds: int = 1

    def __post_init__(self) -> None:
        check_choices("models", self.models, ACCURACY_MODELS, "model", expected="MLP and/or CNN ticked")
        if not self.grid:
            raise ValueError("patterns: expected at least one pattern ticked, got none")
        for p, s, b, n, m in self.grid:
            pattern_spec(p, s, b, n, m)
        check_fields(self, ACCURACY_LIMITS, {"finetune_epochs": "fine-tune epochs"})

    @property
    def total(self) -> int:
        return self.seeds * accuracy_plan_size(self.models, self.grid)

    def params(self) -> dict:
        return {"models": list(self.models), "grid": [list(g) for g in self.grid],
                "epochs": self.epochs, "finetune_epochs": self.finetune_epochs, "seeds": self.seeds}


def accuracy_spec(models, patterns, sparsities, epochs, finetune_epochs, seeds=1) -> AccuracySpec:
    """The page's widget values -> an AccuracySpec (ValueError "expected ... got ...")."""
    return AccuracySpec(models=tuple(models or ()), grid=accuracy_grid(patterns, sparsities),
                        epochs=epochs, finetune_epochs=finetune_epochs, seeds=seeds)


def accuracy_spec_rows(spec: AccuracySpec, device: str = "cpu",
                       device_name: str | None = None) -> Iterator[dict]:
    """Every row of ``spec``: ``accuracy_rows`` for seeds 0 .. seeds - 1, one after another."""
    for seed in range(spec.seeds):
        yield from accuracy_rows(models=spec.models, grid=spec.grid, epochs=spec.epochs,
                                 finetune_epochs=spec.finetune_epochs, seed=seed, device=device,
                                 device_name=device_name)


def accuracy_rows(models: Sequence[str] = ACCURACY_MODELS, grid: Sequence[tuple] = DEFAULT_ACCURACY_GRID,
                  epochs: int = 15, finetune_epochs: int = 3, lr: float = 3e-3,
                  seed: int = 0, threads: int | None = 1, device: str = "cpu",
                  device_name: str | None = None) -> Iterator[dict]:
    """Train, prune to each pattern at matched sparsity, fine-tune; yield one row each.

    For every model: a "dense" row, then per (pattern, sparsity, block, n, m) in
    ``grid`` a row with the accuracy right after pruning, after ``finetune_epochs``
    with the mask held, and the drop against dense in percentage points. Data: the
    lab's one digits split (``engine.data.digits_split``, the same test set for every
    seed); ``seed`` sets the initial weights and the batch order. Runs on ``device``
    ("cpu" or "cuda": call inside a job, it may initialise CUDA) and every row names
    it (``device``, ``device_name``); on the CPU with ``threads`` torch threads (one by
    default: on a shared machine more threads are slower).
    """
    if threads and device == "cpu":
        with torch_threads(check_int("threads", threads, 1, 256)):
            yield from _accuracy_rows(models, grid, epochs, finetune_epochs, lr, seed, device, device_name)
    else:
        yield from _accuracy_rows(models, grid, epochs, finetune_epochs, lr, seed, device, device_name)


def _accuracy_rows(models, grid, epochs, finetune_epochs, lr, seed, device, device_name) -> Iterator[dict]:
    import torch

    from engine.data import digits_split
    from engine.runtime.device import runtime_device_name

    for name in models:
        check_choice("model", name, ACCURACY_MODELS)
    epochs = check_int("epochs", epochs, *ACCURACY_LIMITS["epochs"])
    finetune_epochs = check_int("finetune_epochs", finetune_epochs, *ACCURACY_LIMITS["finetune_epochs"])
    specs = [pattern_spec(p, s, b, n, m) for p, s, b, n, m in grid]
    dev = torch.device(check_choice("device", device, ("cpu", "cuda")))
    where = {"device": dev.type, "device_name": device_name or runtime_device_name(dev)}

    x_tr, x_te, y_tr, y_te = (torch.from_numpy(a).to(dev) for a in digits_split())
    for name in models:
        torch.manual_seed(seed)
        dense = build_model(name).to(dev)
        t0 = time.perf_counter()
        _train(dense, x_tr, y_tr, epochs, lr, seed)
        dense_acc = _accuracy(dense, x_te, y_te)
        n_prunable = sum(w.numel() for w in prunable_weights(dense))
        yield {"model": name, "pattern": "dense", "target_sparsity": 0.0, "sparsity": 0.0,
               "acc_dense": dense_acc, "acc_pruned": dense_acc, "acc_finetuned": dense_acc,
               "drop_pts": 0.0, "prunable_weights": n_prunable, "epochs": epochs,
               "finetune_epochs": 0, "seed": seed, **where,
               "seconds": round(time.perf_counter() - t0, 3)}
        state = {k: v.clone() for k, v in dense.state_dict().items()}
        for spec in specs:
            t0 = time.perf_counter()
            model = build_model(name).to(dev)
            model.load_state_dict(state)
            weights = prunable_weights(model)
            masks = []
            with torch.no_grad():
                for w in weights:
                    mk = prune_mask(w, spec.kind, None if spec.kind == "nm" else spec.sparsity,
                                    block=spec.block, n=spec.n, m=spec.m).to(w.dtype)
                    w.mul_(mk)
                    masks.append(mk)
            kept = sum(float(mk.sum()) for mk in masks)
            acc_pruned = _accuracy(model, x_te, y_te)
            _train(model, x_tr, y_tr, finetune_epochs, lr / 3, seed + 1, masks=masks)
            acc_ft = _accuracy(model, x_te, y_te)
            yield {"model": name, "pattern": spec.label, "target_sparsity": round(spec.sparsity, 4),
                   "sparsity": round(1.0 - kept / n_prunable, 4),
                   "acc_dense": dense_acc, "acc_pruned": acc_pruned, "acc_finetuned": acc_ft,
                   "drop_pts": round(100.0 * (dense_acc - acc_ft), 2),
                   "prunable_weights": n_prunable, "epochs": epochs,
                   "finetune_epochs": finetune_epochs, "seed": seed, **where,
                   "seconds": round(time.perf_counter() - t0, 3)}


# ------------------------------------------------------------------ one matrix, three patterns

def random_weight(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """A (rows, cols) float64 matrix of standard normal weights (the page's sample matrix)."""
    rows = check_int("rows", rows, 1, 8192)
    cols = check_int("cols", cols, 1, 8192)
    return np.random.default_rng(check_int("seed", seed, 0)).standard_normal((rows, cols))


def compare_patterns(weight: np.ndarray, sparsity: float, block: int,
                     nm: str = "2:4") -> tuple[dict[str, np.ndarray], list[dict]]:
    """Prune one matrix as unstructured, block and N:M; masks by label and a row per pattern.

    weight: (rows, cols). Rows: pattern, sparsity asked, sparsity achieved, kept entries,
    fraction of sum(w^2) kept (how much of the matrix survives), constraint violations.
    """
    check_choice("N:M pattern", nm, NM_PRESETS)
    n, m = NM_PRESETS[nm]
    specs = [pattern_spec("unstructured", sparsity), pattern_spec("block", sparsity, block),
             pattern_spec("nm", None, n=n, m=m)]
    w2 = np.square(np.asarray(weight, dtype=np.float64))
    energy = float(w2.sum()) or 1.0
    masks: dict[str, np.ndarray] = {}
    rows = []
    for spec in specs:
        mask = prune_mask(weight, spec.kind, None if spec.kind == "nm" else spec.sparsity,
                          block=spec.block, n=spec.n, m=spec.m)
        masks[spec.label] = mask
        if spec.kind == "block":
            violations = block_violations(mask, spec.block)
        elif spec.kind == "nm":
            violations = nm_violations(mask, spec.n, spec.m)
        else:
            violations = 0
        rows.append({"pattern": spec.label, "sparsity_asked": round(spec.sparsity, 4),
                     "sparsity": round(mask_sparsity(mask), 4), "kept": int(mask.sum()),
                     "energy_kept": round(float(w2.sum(where=mask)) / energy, 4),  # no masked copy
                     "violations": violations})
    return masks, rows


VIEW_SIZES = (64, 128, 256, 512, 1024, 2048)  # the page's sample matrices (n x n)
VIEW_MAX_CELLS = 128  # overview heatmaps: at most this many cells a side
VIEW_ZOOM = 32  # the zoomed corner: this many entries a side, drawn exactly


@dataclass(frozen=True)
class PatternView:
    """What the pattern figure draws, small enough to send: for each pattern (``labels``)
    an overview of at most VIEW_MAX_CELLS a side (the kept |w| when the matrix fits,
    ``factor == 1``; else the fraction kept per factor x factor cell) and the kept |w| of
    the top-left ``zoom`` x ``zoom`` corner, all float32; and one row per pattern
    (compare_patterns)."""

    size: int
    labels: tuple[str, ...]
    overview: tuple[np.ndarray, ...]
    factor: int
    zoom: tuple[np.ndarray, ...]
    w_max: float
    rows: tuple[dict, ...]


@pure_cache
def _pattern_view(size: int, sparsity: float, block: int, nm: str, seed: int) -> PatternView:
    weight = random_weight(size, size, seed=seed)
    masks, rows = compare_patterns(weight, sparsity, block, nm)
    labels = tuple(masks)
    absw = np.abs(weight)
    grids, factor = [], 1
    for lab in labels:
        grid, factor = density_grid(masks[lab], VIEW_MAX_CELLS)
        grids.append((absw * masks[lab] if factor == 1 else grid).astype(np.float32))
    z = min(VIEW_ZOOM, size)
    zoom = tuple((absw[:z, :z] * masks[lab][:z, :z]).astype(np.float32) for lab in labels)
    return PatternView(size, labels, tuple(grids), factor, zoom, float(absw.max()), tuple(rows))


def pattern_view(size: int, sparsity: Any, block: int, nm: str, seed: int = 0) -> PatternView:
    """The page's sample matrix (size x size standard normal, ``seed``) pruned as
    unstructured, block and N:M, reduced for drawing (PatternView). Checked here, then
    computed once per distinct input and kept in the lab's bounded cache of pure results."""
    size = check_choice("matrix size", check_int("matrix size", size, 1, max(VIEW_SIZES)), VIEW_SIZES)
    sparsity = check_float("sparsity", sparsity, 0.0, 1.0)
    block = check_choice("block size", check_int("block size", block, 1, max(BLOCK_SIZES)), BLOCK_SIZES)
    check_choice("N:M pattern", nm, NM_PRESETS)
    return _pattern_view(size, round(sparsity, 6), block, nm, check_int("seed", seed, 0))
