"""The matrices the /structured-matrices page approximates: random Gaussian, a smooth
kernel (Toeplitz and numerically low-rank), the unitary DFT, a 3x3 convolution as a
matrix, and the hidden weight of a small MLP trained on scikit-learn's digits."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data import DIGITS_SPLIT_SEED, digits_split
from engine.structured.operators import few_threads, is_pow2
from engine.validate import check_choice, check_int

TARGETS = {
    "gaussian": "Random Gaussian",
    "kernel": "Smooth kernel (Gaussian RBF on a grid)",
    "dft": "DFT (unitary, complex)",
    "conv": "Convolution matrix (3x3 conv on an image of n pixels)",
    "digits": "Trained weight (digits MLP, hidden n x n layer)",
}
SIZES = (64, 128, 256, 512)


def dft_matrix(n: int, normalized: bool = True) -> np.ndarray:
    """F[j, k] = exp(-2 pi i j k / n) (/ sqrt n): (n, n) complex."""
    j = np.arange(n)
    F = np.exp(-2j * np.pi * np.outer(j, j) / n)
    return F / math.sqrt(n) if normalized else F


def hadamard_matrix(n: int) -> np.ndarray:
    """Sylvester Hadamard matrix / sqrt(n): (n, n)."""
    if not is_pow2(n):
        raise ValueError(f"n: expected a power of 2, got {n}")
    i = np.arange(n)
    parity = np.vectorize(lambda v: bin(v).count("1") & 1)(np.bitwise_and.outer(i, i))
    return (1 - 2 * parity) / math.sqrt(n)


def gaussian_matrix(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, n)) / math.sqrt(n)


def kernel_matrix(n: int, length_scale: float = 0.1) -> np.ndarray:
    """K[i, j] = exp(-(x_i - x_j)^2 / (2 l^2)) on n equispaced points of [0, 1].

    Stationary on a uniform grid, so exactly Toeplitz, and numerically low-rank."""
    x = np.linspace(0.0, 1.0, n)
    return np.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * length_scale ** 2))


def conv_matrix(n: int, seed: int = 0) -> np.ndarray:
    """A 3x3 convolution (zero padding 1) on an h x w one-channel image (h w = n, h the
    largest power of 2 with h <= w), as the (n, n) matrix that engine.layers.lowering builds."""
    h, w = conv_image_shape(n)
    try:
        from engine.layers import lowering
    except ImportError as exc:
        raise ValueError(f"conv target: expected engine.layers.lowering (conv2d_as_sparse), got {exc}") from exc
    import torch

    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(1, 1, 3, 3, generator=g)
    M = lowering.conv2d_as_sparse(weight.numpy(), (h, w), padding=1)
    return np.asarray(M.toarray(), dtype=np.float64)


def conv_image_shape(n: int) -> tuple[int, int]:
    """(h, w) with h w = n: h the largest power of 2 with h^2 <= n (n = 128 -> 8 x 16)."""
    h = 1
    while (2 * h) ** 2 <= n and n % (2 * h) == 0:
        h *= 2
    if n % h:
        raise ValueError(f"conv target: expected n with a power-of-2 factor, got {n}")
    return h, n // h


@dataclass(frozen=True)
class DigitsWeight:
    weight: np.ndarray  # (n, n) hidden-to-hidden weight
    test_accuracy: float
    seconds: float
    cached: bool


def digits_weight(n: int, seed: int = 0, folder: str | Path | None = None, epochs: int = 30) -> DigitsWeight:
    """Train a 64-n-n-10 MLP on scikit-learn's digits (bundled, no download; engine.data's
    one split, test accuracy on its test set) and return its hidden (n, n) weight; cached
    as .npz in ``folder`` (default: the lab's cache)."""
    n = check_int("n", n, 8, 4096)
    if folder is None:
        from engine.runtime.store import cache_dir

        folder = cache_dir() / "structured"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"digits_mlp_n{n}_seed{seed}_e{epochs}_split{DIGITS_SPLIT_SEED}.npz"
    if path.exists():
        z = np.load(path)
        return DigitsWeight(z["weight"], float(z["acc"]), float(z["seconds"]), True)
    import torch

    started = time.time()
    x_train, x_test, y_train, y_test = digits_split()  # the lab's one split (engine.data)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, n), torch.nn.ReLU(), torch.nn.Linear(n, n),
                                torch.nn.ReLU(), torch.nn.Linear(n, 10))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    Xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    cut = len(Xt)
    with few_threads():  # small batches: one thread beats an oversubscribed pool
        for _ in range(epochs):
            perm = torch.randperm(cut)
            for k in range(0, cut, 128):
                idx = perm[k:k + 128]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(Xt[idx]), yt[idx]).backward()
                opt.step()
        with torch.no_grad():
            pred = model(torch.from_numpy(x_test)).argmax(1).numpy()
    acc = float((pred == y_test).mean())
    W = model[2].weight.detach().numpy().astype(np.float64)
    seconds = time.time() - started
    np.savez(path, weight=W, acc=acc, seconds=seconds)
    return DigitsWeight(W, acc, seconds, False)


@dataclass(frozen=True)
class Target:
    name: str
    label: str
    matrix: np.ndarray
    note: str


def make_target(name: str, n: int, seed: int = 0, folder: str | Path | None = None) -> Target:
    """The (n, n) target matrix ``name`` (one of TARGETS)."""
    check_choice("target", name, TARGETS)
    n = check_int("n", n, 4, 4096)
    if name == "gaussian":
        return Target(name, TARGETS[name], gaussian_matrix(n, seed), "i.i.d. N(0, 1/n) entries")
    if name == "kernel":
        return Target(name, TARGETS[name], kernel_matrix(n), "length scale 0.1 on n equispaced points")
    if name == "dft":
        return Target(name, TARGETS[name], dft_matrix(n), "complex: heatmaps show the real part")
    if name == "conv":
        h, w = conv_image_shape(n)
        return Target(name, TARGETS[name], conv_matrix(n, seed),
                      f"3x3 kernel, zero padding 1, {h}x{w} image, built by engine.layers.lowering.conv2d_as_sparse")
    d = digits_weight(n, seed, folder)
    how = "loaded from cache" if d.cached else f"trained in {d.seconds:.1f} s"
    return Target(name, TARGETS[name], d.weight, f"64-{n}-{n}-10 MLP, test accuracy {d.test_accuracy:.1%}, {how}")
