"""The seed paper's experiment: native models and their sparse-matrix forms trained side by side.

arXiv 2506.01966 (section 7) reports that "sparse-isomorphic matrix formulations match
or exceed native model performance while converging in comparable or fewer epochs".
This module rebuilds the experiment on data that ships with installed packages
(nothing is downloaded) so anyone can rerun it:

* vision: a small CNN on scikit-learn's 8x8 handwritten digits (or MNIST from local
  IDX files), native ``F.conv2d`` vs the convolutions as sparse matrices
  (``engine.layers.lowering.conv2d_pattern``): **tied** (the matrix's nonzeros are gathered
  from the kernel's parameters: the true isomorphism) and **free** (every band entry
  its own parameter: the paper's "spatially varying kernels");
* timeseries: a linear RNN forecasting statsmodels' CO2 (or sunspots) series, native
  step-by-step loop vs the block lower-triangular matrix L (tied: built from W_ih,
  W_hh; free: every block entry a parameter);
* text: a character language model whose mixing layer is single-head linear
  attention, native ``(XWq)(XWk)^T(XWv)`` vs the third-order tensor acting on the
  lifted input x⊗x⊗x (tied / free).

Within a seed every variant of a task starts from the same initial weights (the sparse
models copy the native model's), sees the same batches in the same order, and uses
torch.optim.Adam with the same learning rate; each task runs ``spec.seeds`` seeds (3 by
default) on the same data split, and the summaries give mean and standard deviation over
them. ``train_rows(spec)`` yields one result row per (seed, epoch, variant), so a
background job can stream and store them.

Held-out data: digits use the lab's one split (``engine.data``); the series is split in
time; the text is split by source module (whole stdlib modules are held out, and a test
line that also occurs in training is dropped), and the run reports how many test windows
occur verbatim in training beside what a module left out of training shows by chance.

Epoch times: each (task, variant, seed) is one ``Measurement`` (wall clock, one run per
epoch, after one warm-up step); a time ratio in the verdict uses only non-noisy ones, and
only when they are most of the seeds (``enough_steady``).
"""
from __future__ import annotations

import gzip
import inspect
import math
import os
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.bench.measurement import NOISY_LABEL, WALL_CLOCK, Measurement, Task
from engine.layers import lowering as low
from engine.validate import check_budget, check_choice, check_choices, check_float, check_int

TASKS = ("vision", "timeseries", "text")
VARIANTS = ("native", "tied", "free")
METRICS = {"vision": ("accuracy", "max"), "timeseries": ("mse", "min"), "text": ("perplexity", "min")}
VARIANT_LABELS = {"native": "native torch layers", "tied": "sparse matrix, weight-tied",
                  "free": "sparse matrix, free entries"}
# each task's metric with its unit, as the tables name it (one row per task or model)
METRIC_UNITS = {"accuracy": "accuracy (%)", "mse": "MSE (standardised units²)",
                "perplexity": "perplexity (per character)"}


def enough_steady(steady: int, seeds: int) -> bool:
    """Whether ``steady`` of ``seeds`` seeds with steady epoch times (both models) are enough
    to state a time ratio: more than half of the seeds, so a ratio never rests on one steady
    seed among noisy ones (1 of 1 is enough; 1 of 2 or 1 of 3 is not)."""
    return steady > 0 and 2 * steady > seeds

# The paper's own results table (theirs, for context). Metric values the extracted
# text lost are None; the epochs survived. Accuracy in percent.
_PAPER_COLUMNS = ("field", "dataset", "metric", "native", "native_epoch", "sparse", "sparse_epoch")
_PAPER_ROWS = (
    ("image", "MNIST", "accuracy %", 90.6, 46, 92.48, 38),
    ("image", "CIFAR-10", "accuracy %", None, 70, None, 67),
    ("image", "CIFAR-100", "accuracy %", 28.14, 59, 29.21, 64),
    ("image", "Tiny ImageNet", "accuracy %", None, 20, None, 22),
    ("time series", "ETTh1", "AMSE", None, 100, None, 94),
    ("time series", "Electricity LD", "AMSE", None, 20, None, 22),
    ("text", "AG News", "accuracy %", None, 5, None, 5),
    ("text", "WikiText-2", "perplexity", None, 26, None, 24),
    ("text", "Penn Treebank", "perplexity", None, 54, None, 56),
)
PAPER_RESULTS = [dict(zip(_PAPER_COLUMNS, row)) for row in _PAPER_ROWS]

# The text task's held-out set: whole modules, never seen in training (see ``split_held_out``).
TEXT_TEST_MODULES = ("textwrap", "fractions", "heapq")
MODULE_MAX_CHARS = 4500      # per module: the training text stays near 120k characters
FILE_GROUPS = 10             # a user's text file is cut into this many blocks of lines; the last is held out
TEXT_MAX_CHARS = 400_000     # characters read from a user's text file
SEEDS_MAX = 10
EPOCH_METHOD = WALL_CLOCK    # an epoch is timed once, by the wall clock; its epochs are the runs

STDLIB_MODULES = ("collections", "functools", "itertools", "json", "os", "re", "string", "textwrap",
                  "typing", "argparse", "pathlib", "random", "statistics", "csv", "datetime", "logging",
                  "shutil", "subprocess", "tempfile", "threading", "unittest", "heapq", "bisect",
                  "contextlib", "dataclasses", "fractions", "decimal", "inspect", "pickle", "zipfile")


@dataclass(frozen=True)
class PaperSpec:
    """One rerun of the experiment.

    tasks: subset of TASKS; variants: subset of VARIANTS (native is always trained,
    the others are compared with it); max_train: cap on training examples (None: all);
    seeds: how many seeds (seed, seed + 1, ...) each task is trained with: they vary the
    initial weights and the batch order, never the data split. mnist_dir / text_path:
    relative to the data folder (``engine.runtime.datafiles``), checked and resolved here.
    """

    tasks: tuple = ("vision",)
    variants: tuple = VARIANTS
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    seeds: int = 3
    max_train: int | None = None
    device: str = "auto"
    series: str = "co2"
    context: int = 8
    mnist_dir: str | None = None
    text_path: str | None = None
    dtype: str = "float32"

    def __post_init__(self):
        tasks = tuple(self.tasks) if not isinstance(self.tasks, str) else (self.tasks,)
        check_choices("tasks", tasks, TASKS, "task")
        variants = tuple(self.variants) if not isinstance(self.variants, str) else (self.variants,)
        for v in variants:
            check_choice("variant", v, VARIANTS)
        if "native" not in variants:
            variants = ("native",) + variants
        object.__setattr__(self, "tasks", tasks)
        object.__setattr__(self, "variants", tuple(v for v in VARIANTS if v in variants))
        check_int("epochs", self.epochs, 1, 500)
        check_int("batch size", self.batch_size, 1, 4096)
        check_float("learning rate", self.lr, 1e-6, 1.0)
        check_int("seed", self.seed, 0, 2**31 - 1)
        check_int("seeds", self.seeds, 1, SEEDS_MAX)
        if self.max_train is not None:
            check_int("max training examples", self.max_train, 8, 10**7)
        check_choice("device", self.device, ("auto", "cpu", "cuda"))
        check_choice("series", self.series, ("co2", "sunspots"))
        check_int("text context", self.context, 2, 16)
        check_choice("dtype", self.dtype, ("float32", "float64"))
        from engine.runtime import datafiles

        if self.mnist_dir:
            folder = datafiles.resolve("MNIST folder", self.mnist_dir, folder=True)
            check_budget("MNIST folder", MNIST_BYTES_PER_FILE_BYTE * mnist_bytes(folder))
            object.__setattr__(self, "mnist_dir", str(folder))
        if self.text_path:
            path = datafiles.resolve("text file", self.text_path)
            check_budget("text file", TEXT_BYTES_PER_CHAR * min(path.stat().st_size, TEXT_MAX_CHARS * 4))
            object.__setattr__(self, "text_path", str(path))

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @property
    def seed_list(self) -> tuple[int, ...]:
        return tuple(range(self.seed, self.seed + self.seeds))

    @property
    def total_rows(self) -> int:
        return self.epochs * len(self.tasks) * len(self.variants) * self.seeds


# ------------------------------------------------------------------ data


@dataclass
class TaskData:
    name: str
    dataset: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    info: dict = field(default_factory=dict)


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST's format; .gz allowed) as a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"IDX file: expected a header starting with two zero bytes, got {data[:4]!r} in {path}")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise ValueError(f"IDX file: expected a known type code, got {data[2]:#x} in {path}")
    ndim = data[3]
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=dtypes[data[2]], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"IDX file: expected {int(np.prod(shape))} values for shape {shape}, got {arr.size}")
    return arr.reshape(shape)


MNIST_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
# reading an IDX file holds its bytes, the uint8 array, float32 images and their tensors
MNIST_BYTES_PER_FILE_BYTE = 16
TEXT_BYTES_PER_CHAR = 48     # the text, its ids (int64), windows and targets, the n-gram sets


def _candidates(folder: Path, stem: str) -> list[Path]:
    dotted = stem.replace("-idx", ".idx")
    return [folder / n for n in (stem, stem + ".gz", dotted, dotted + ".gz")]


def _find(folder: Path, stem: str) -> Path:
    for path in _candidates(folder, stem):
        if path.is_file():
            return path
    raise ValueError(f"MNIST folder: expected a file {stem}[.gz] in the folder, got none by that name")


def _unpacked_size(path: Path) -> int:
    """Bytes the file holds once read: a .gz file's size from its trailer (ISIZE, mod 2**32)."""
    if path.suffix != ".gz":
        return path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(-4, os.SEEK_END)
        return max(int.from_bytes(fh.read(4), "little"), path.stat().st_size)


def mnist_bytes(folder: Path) -> int:
    """Bytes the four IDX files hold once read, from their sizes alone (before reading)."""
    return sum(_unpacked_size(_find(folder, stem)) for stem in MNIST_STEMS)


def load_vision(spec: PaperSpec) -> TaskData:
    """Digits (the lab's one split, ``engine.data.digits_split``) or MNIST from local IDX files."""
    if spec.mnist_dir:
        folder = Path(spec.mnist_dir)
        xtr = read_idx(_find(folder, "train-images-idx3-ubyte")).astype(np.float32) / 255.0
        ytr = read_idx(_find(folder, "train-labels-idx1-ubyte")).astype(np.int64)
        xte = read_idx(_find(folder, "t10k-images-idx3-ubyte")).astype(np.float32) / 255.0
        yte = read_idx(_find(folder, "t10k-labels-idx1-ubyte")).astype(np.int64)
        dataset = f"MNIST (IDX files in {folder.name})"
    else:
        from engine.data import digits_split

        xtr, xte, ytr, yte = digits_split()
        xtr, xte = xtr.reshape(-1, 8, 8), xte.reshape(-1, 8, 8)
        dataset = "scikit-learn digits (8x8)"
    if spec.max_train:
        xtr, ytr = xtr[:spec.max_train], ytr[:spec.max_train]
    return TaskData("vision", dataset, torch.as_tensor(xtr)[:, None], torch.as_tensor(ytr),
                    torch.as_tensor(xte)[:, None], torch.as_tensor(yte),
                    {"input_hw": tuple(xtr.shape[1:]), "classes": 10})


def load_series_values(name: str = "co2") -> np.ndarray:
    """statsmodels' packaged CO2 (weekly ppm, resampled to monthly means) or sunspots (yearly)."""
    try:
        from statsmodels.datasets import co2, sunspots
    except ImportError as exc:  # pinned in requirements.txt; say so if it is missing
        raise ValueError(f"time series: expected statsmodels to be installed, got {exc}") from exc
    if name == "co2":
        frame = co2.load_pandas().data
        series = frame["co2"].resample("MS").mean().interpolate()
    else:
        series = sunspots.load_pandas().data["SUNACTIVITY"]
    return series.to_numpy(dtype=np.float64)


def load_timeseries(spec: PaperSpec, window: int = 24) -> TaskData:
    """Windows of ``window`` standardised values -> the next value; chronological 80/20 split."""
    values = load_series_values(spec.series)
    n_train_values = int(0.8 * len(values))
    mean, std = values[:n_train_values].mean(), values[:n_train_values].std()
    z = (values - mean) / std
    if spec.series == "co2":
        z = np.diff(values) / np.diff(values[:n_train_values]).std()   # month-on-month change
        z = z - z[:n_train_values].mean()
    xs = np.stack([z[i:i + window] for i in range(len(z) - window)])[:, :, None]
    ys = z[window:]
    split = int(0.8 * len(xs))
    xtr, ytr, xte, yte = xs[:split], ys[:split], xs[split:], ys[split:]
    if spec.max_train:
        xtr, ytr = xtr[-spec.max_train:], ytr[-spec.max_train:]
    name = ("statsmodels CO2 (Mauna Loa, monthly change)" if spec.series == "co2"
            else "statsmodels sunspots (yearly)")
    f32 = torch.float32
    return TaskData("timeseries", name, torch.as_tensor(xtr, dtype=f32), torch.as_tensor(ytr, dtype=f32),
                    torch.as_tensor(xte, dtype=f32), torch.as_tensor(yte, dtype=f32),
                    {"window": window, "predict_zero_mse": float(np.mean(yte ** 2))})


def _own_docs(name: str) -> list[str]:
    """The docstrings a module defines: its own and those of the public members it defines
    (a member imported from another module, or a constant whose doc is its type's, is skipped)."""
    import importlib

    try:
        mod = importlib.import_module(name)
    except ImportError:
        return []
    docs = [inspect.getdoc(mod) or ""]
    for attr in sorted(dir(mod)):
        obj = getattr(mod, attr, None)
        if attr.startswith("_") or not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        if (getattr(obj, "__module__", None) or "").split(".")[0] != name:
            continue
        doc = inspect.getdoc(obj)
        if doc and len(doc) > 40:
            docs.append(doc)
    return docs


def stdlib_docstrings_by_module(max_chars: int = MODULE_MAX_CHARS) -> dict[str, str]:
    """Per standard-library module of STDLIB_MODULES, the docstrings it defines (at most
    ``max_chars`` each, cut at a line end); a docstring already seen in an earlier module is dropped."""
    seen: set[str] = set()
    out: dict[str, str] = {}
    for name in STDLIB_MODULES:
        parts = []
        for doc in _own_docs(name):
            if doc and doc not in seen:
                seen.add(doc)
                parts.append(doc)
        text = "\n".join(parts)
        if len(text) > max_chars:
            text = text[:text.rfind("\n", 0, max_chars) + 1 or max_chars]
        if text:
            out[name] = text
    return out


def stdlib_docstrings(max_chars: int = 120_000) -> str:
    """All of ``stdlib_docstrings_by_module`` joined, at most ``max_chars``."""
    return "\n".join(stdlib_docstrings_by_module().values())[:max_chars]


def text_groups(spec: "PaperSpec") -> tuple[dict[str, str], tuple[str, ...], str]:
    """The text's source groups, the held-out ones and the data set's name.

    Stdlib docstrings: one group per module; TEXT_TEST_MODULES are held out. A user's file:
    ``FILE_GROUPS`` contiguous blocks of lines; the last block is held out.
    """
    if not spec.text_path:
        return stdlib_docstrings_by_module(), TEXT_TEST_MODULES, "Python stdlib docstrings"
    text = read_text_file(spec.text_path)
    lines = text.splitlines(keepends=True)
    size = -(-len(lines) // FILE_GROUPS)
    groups = {f"lines {i * size + 1}-{min((i + 1) * size, len(lines))}": "".join(lines[i * size:(i + 1) * size])
              for i in range(FILE_GROUPS) if lines[i * size:(i + 1) * size]}
    return groups, (list(groups)[-1],), f"text file {Path(spec.text_path).name}"


def _line_key(line: str) -> str:
    return " ".join(line.split())


def split_held_out(groups: dict[str, str], test_names: tuple[str, ...]) -> tuple[str, str, int]:
    """(training text, test text, test lines dropped): the test groups keep only the lines
    (compared without surrounding white space) that occur nowhere in the training groups."""
    train = "\n".join(t for n, t in groups.items() if n not in test_names)
    train_lines = {_line_key(l) for l in train.splitlines() if _line_key(l)}
    kept, dropped = [], 0
    for name in test_names:
        for line in groups.get(name, "").splitlines():
            if _line_key(line) and _line_key(line) in train_lines:
                dropped += 1
            else:
                kept.append(line)
    return train, "\n".join(kept), dropped


def _windows(text: str, width: int, step: int) -> list[str]:
    return [text[i:i + width] for i in range(0, len(text) - width + 1, step)]


def window_overlap(test: str, train: str, context: int) -> float:
    """Fraction of the test windows (``context`` characters and the next one, as the model
    sees them) that occur verbatim anywhere in the training text."""
    wins = _windows(test, context + 1, context)
    if not wins:
        return float("nan")
    seen = set(_windows(train, context + 1, 1))
    return sum(w in seen for w in wins) / len(wins)


def chance_overlap(groups: dict[str, str], test_names: tuple[str, ...], context: int) -> float:
    """The overlap independent text of the same kind shows by chance: each training group in
    turn is held out (its lines that occur elsewhere dropped) and its windows are looked up
    in the other training groups; the mean over groups, weighted by windows."""
    train = {n: t for n, t in groups.items() if n not in test_names}
    if len(train) < 2:
        return float("nan")
    width = context + 1
    owners: dict[str, int] = {}
    line_owners: dict[str, int] = {}
    for text in train.values():
        for w in set(_windows(text, width, 1)):
            owners[w] = owners.get(w, 0) + 1
        for key in {_line_key(l) for l in text.splitlines() if _line_key(l)}:
            line_owners[key] = line_owners.get(key, 0) + 1
    hits = total = 0
    for text in train.values():
        own_lines = {_line_key(l) for l in text.splitlines() if _line_key(l)}
        own = set(_windows(text, width, 1))
        held = "\n".join(l for l in text.splitlines()
                         if not _line_key(l) or line_owners[_line_key(l)] - (_line_key(l) in own_lines) == 0)
        for w in _windows(held, width, context):
            total += 1
            hits += owners.get(w, 0) - (w in own) > 0
    return hits / total if total else float("nan")


def read_text_file(path: str | Path) -> str:
    """At most TEXT_MAX_CHARS characters of a UTF-8 file (never the whole of a large file)."""
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        return fh.read(TEXT_MAX_CHARS)


def build_vocab(text: str, max_size: int = 64) -> list[str]:
    """The most frequent characters (ties by code point); index 0 is the unknown '\\x00'."""
    counts: dict[str, int] = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    top = sorted(counts, key=lambda c: (-counts[c], c))[:max_size - 1]
    return ["\x00"] + sorted(top)


def _encode(text: str, index: dict, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows of t characters (x) and the same shifted by one (y)."""
    ids = np.array([index.get(c, 0) for c in text], dtype=np.int64)
    n = max((len(ids) - 1) // t, 0)
    return ids[:n * t].reshape(n, t), ids[1:n * t + 1].reshape(n, t)


def load_text(spec: PaperSpec) -> TaskData:
    """Character windows of length context+1 from stdlib docstrings (or the user's file).

    Held out by source: whole modules (TEXT_TEST_MODULES; for a file, its last block of
    lines), and a test line that also occurs in training is dropped. ``info`` reports the
    measured share of test windows that occur verbatim in training beside the share a
    module left out of training shows with the rest (what text of this kind shares by chance).
    """
    groups, test_names, dataset = text_groups(spec)
    train, test, dropped = split_held_out(groups, test_names)
    t = spec.context
    vocab = build_vocab(train)
    index = {c: i for i, c in enumerate(vocab)}
    xtr, ytr = _encode(train, index, t)
    xte, yte = _encode(test, index, t)
    if len(xtr) < 20 or len(xte) < 4:
        raise ValueError(f"text: expected at least {20 * t + 1} training and {4 * t + 1} held-out characters, "
                         f"got {len(train)} and {len(test)}")
    xte, yte = xte[:1024], yte[:1024]
    if spec.max_train:
        xtr, ytr = xtr[:spec.max_train], ytr[:spec.max_train]
    overlap = window_overlap(test[:1024 * t + 1], train, t)
    info = {"vocab": len(vocab), "chars": len(train) + len(test), "context": t, "test_groups": list(test_names),
            "train_groups": len(groups) - len(test_names), "test_lines_dropped": dropped,
            "test_window_overlap": overlap, "chance_window_overlap": chance_overlap(groups, test_names, t)}
    return TaskData("text", dataset, torch.as_tensor(xtr), torch.as_tensor(ytr), torch.as_tensor(xte),
                    torch.as_tensor(yte), info)


def load_task(task: str, spec: PaperSpec) -> TaskData:
    return {"vision": load_vision, "timeseries": load_timeseries, "text": load_text}[task](spec)


# ------------------------------------------------------------------ sparse helpers


def _spmm(indices: torch.Tensor, values: torch.Tensor, shape: tuple[int, int], dense: torch.Tensor) -> torch.Tensor:
    """(sparse COO from indices, values) @ dense; differentiable in values and dense.

    indices: (2, nnz) sorted row-major without duplicates; dense: (shape[1], B).
    """
    a = torch.sparse_coo_tensor(indices, values, shape, is_coalesced=True, check_invariants=False)
    return torch.sparse.mm(a, dense)


def _coo_from_csr(indptr: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    return torch.as_tensor(np.stack([rows, cols]), dtype=torch.int64)


# ------------------------------------------------------------------ vision


class NativeCNN(nn.Module):
    """conv(1->c1, 3x3, pad 1) -> ReLU -> avgpool 2 -> conv(c1->c2) -> ReLU -> avgpool 2 -> linear.

    x: (B, 1, H, W) with H, W divisible by 4 -> logits (B, classes).
    """

    def __init__(self, input_hw=(8, 8), c1: int = 8, c2: int = 16, classes: int = 10):
        super().__init__()
        self.input_hw = tuple(input_hw)
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        h, w = self.input_hw
        self.fc = nn.Linear(c2 * (h // 4) * (w // 4), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(F.relu(self.conv1(x)), 2)
        x = F.avg_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


class SparseCNN(nn.Module):
    """The same CNN with every convolution and pooling a sparse matrix on the flattened input.

    mode "tied": the conv matrices' nonzeros are gathered from kernel parameters
    (C_out, C_in, 3, 3) every forward, so gradients land on the kernels: the same model
    as ``NativeCNN``. mode "free": each stored entry is its own parameter (initialised
    from the same kernel), a locally connected layer with the convolution's pattern.
    """

    def __init__(self, native: NativeCNN, mode: str = "tied"):
        super().__init__()
        check_choice("mode", mode, ("tied", "free"))
        self.mode = mode
        h, w = native.input_hw
        self.shapes = []
        for i, (conv, hw) in enumerate(((native.conv1, (h, w)), (native.conv2, (h // 2, w // 2))), start=1):
            pat = low.conv2d_pattern(conv.weight.shape, hw, padding=1)
            self.register_buffer(f"idx{i}", _coo_from_csr(pat.indptr, pat.cols))
            self.register_buffer(f"kidx{i}", torch.as_tensor(pat.kernel_index))
            weight = conv.weight.detach().clone()
            if mode == "tied":
                setattr(self, f"weight{i}", nn.Parameter(weight))
            else:
                setattr(self, f"values{i}", nn.Parameter(weight.reshape(-1)[torch.as_tensor(pat.kernel_index)]))
            setattr(self, f"bias{i}", nn.Parameter(conv.bias.detach().clone()))
            pool = low.avgpool2d_as_sparse(conv.weight.shape[0], hw, 2, 2).tocsr()
            self.register_buffer(f"pidx{i}", _coo_from_csr(pool.indptr, pool.indices))
            self.register_buffer(f"pval{i}", torch.as_tensor(pool.data, dtype=torch.float32))
            self.shapes.append((pat.shape, pool.shape, pat.out_chw))
        self.fc = nn.Linear(native.fc.in_features, native.fc.out_features)
        self.fc.load_state_dict(native.fc.state_dict())

    def conv_values(self, i: int) -> torch.Tensor:
        if self.mode == "tied":
            return getattr(self, f"weight{i}").reshape(-1)[getattr(self, f"kidx{i}")]
        return getattr(self, f"values{i}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        z = x.reshape(batch, -1).T                                      # (C*H*W, B)
        for i, (cshape, pshape, (c_out, h_out, w_out)) in enumerate(self.shapes, start=1):
            z = _spmm(getattr(self, f"idx{i}"), self.conv_values(i).to(z.dtype), cshape, z)
            z = F.relu(z + getattr(self, f"bias{i}").repeat_interleave(h_out * w_out)[:, None])
            z = _spmm(getattr(self, f"pidx{i}"), getattr(self, f"pval{i}").to(z.dtype), pshape, z)
        return self.fc(z.T)


# ------------------------------------------------------------------ time series


class NativeLinearRNN(nn.Module):
    """h_t = W_ih x_t + W_hh h_(t-1) (no nonlinearity), forecast = w_out . h_T + b.

    x: (B, T, d) -> (B,).
    """

    def __init__(self, d: int = 1, hidden: int = 16):
        super().__init__()
        g = 1.0 / math.sqrt(hidden)
        self.w_ih = nn.Parameter(torch.empty(hidden, d).uniform_(-g, g))
        self.w_hh = nn.Parameter(torch.empty(hidden, hidden).uniform_(-g, g))
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[0], self.w_ih.shape[0])
        for t in range(x.shape[1]):
            h = x[:, t] @ self.w_ih.T + h @ self.w_hh.T
        return self.out(h)[:, 0]


def _rnn_layout(t_len: int, hidden: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """COO (2, nnz) of the block lower-triangular L, row-major, and the source index of each
    entry in the stacked powers P (T, h, d): entry (t*h+i, s*d+j) = P[t-s, i, j]."""
    t_idx, s_idx = np.tril_indices(t_len)
    i = np.arange(hidden)[None, :, None]
    j = np.arange(d)[None, None, :]
    rows = (t_idx[:, None, None] * hidden + i + 0 * j).ravel()
    cols = (s_idx[:, None, None] * d + j + 0 * i).ravel()
    src = (((t_idx - s_idx)[:, None, None] * hidden + i) * d + j).ravel()
    order = np.lexsort((cols, rows))
    return np.stack([rows[order], cols[order]]), src[order]


class SparseLinearRNN(nn.Module):
    """The linear RNN as one block lower-triangular sparse matrix L on the flattened window.

    tied: L's block (t, s) = W_hh^(t-s) W_ih rebuilt from the two weight matrices each
    forward (the isomorphism); free: every entry of every block its own parameter.
    """

    def __init__(self, native: NativeLinearRNN, t_len: int, mode: str = "tied"):
        super().__init__()
        check_choice("mode", mode, ("tied", "free"))
        self.mode, self.t_len = mode, t_len
        hidden, d = native.w_ih.shape
        self.hidden, self.d = hidden, d
        idx, src = _rnn_layout(t_len, hidden, d)
        self.register_buffer("idx", torch.as_tensor(idx, dtype=torch.int64))
        self.register_buffer("src", torch.as_tensor(src, dtype=torch.int64))
        if mode == "tied":
            self.w_ih = nn.Parameter(native.w_ih.detach().clone())
            self.w_hh = nn.Parameter(native.w_hh.detach().clone())
        else:
            self.values = nn.Parameter(self._tied_values(native.w_ih.detach(), native.w_hh.detach()).clone())
        self.out = nn.Linear(hidden, 1)
        self.out.load_state_dict(native.out.state_dict())

    def _tied_values(self, w_ih: torch.Tensor, w_hh: torch.Tensor) -> torch.Tensor:
        powers = [w_ih]
        for _ in range(1, self.t_len):
            powers.append(w_hh @ powers[-1])
        return torch.stack(powers).reshape(-1)[self.src]

    def matrix_values(self) -> torch.Tensor:
        return self._tied_values(self.w_ih, self.w_hh) if self.mode == "tied" else self.values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        shape = (self.t_len * self.hidden, self.t_len * self.d)
        hs = _spmm(self.idx, self.matrix_values().to(x.dtype), shape, x.reshape(batch, -1).T)  # (T*h, B)
        return self.out(hs[-self.hidden:].T)[:, 0]


# ------------------------------------------------------------------ text


class NativeAttentionLM(nn.Module):
    """Character LM: embedding -> causal single-head linear attention -> logits.

    out_t = 1/(t+1) * sum_(s<=t) (q_t . k_s / sqrt(d)) v_s (no softmax);
    logits_t = W_o out_t + W_r x_t + b (the W_r path is a bigram shortcut).
    idx: (B, T) int64 -> logits (B, T, vocab).
    """

    def __init__(self, vocab: int, context: int = 8, d: int = 8, d_v: int = 8):
        super().__init__()
        self.context, self.d, self.d_v = context, d, d_v
        self.emb = nn.Embedding(vocab, d)
        g = 1.0 / math.sqrt(d)
        self.w_q = nn.Parameter(torch.empty(d, d).uniform_(-g, g))
        self.w_k = nn.Parameter(torch.empty(d, d).uniform_(-g, g))
        self.w_v = nn.Parameter(torch.empty(d, d_v).uniform_(-g, g))
        self.head = nn.Linear(d_v, vocab)
        self.skip = nn.Linear(d, vocab, bias=False)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        t_len = x.shape[1]
        scores = (x @ self.w_q) @ (x @ self.w_k).transpose(1, 2) / math.sqrt(self.d)
        mask = torch.tril(torch.ones(t_len, t_len, device=x.device, dtype=x.dtype))
        mask = mask / torch.arange(1, t_len + 1, device=x.device, dtype=x.dtype)[:, None]
        return (scores * mask) @ (x @ self.w_v)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.emb(idx)
        return self.head(self.attention(x)) + self.skip(x)


def _attention_layout(t_len: int, d: int, d_v: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-major COO (2, nnz) of the causal tensor as a (T*d_v, N^3) matrix, the index of each
    entry's core value in (a, b, c, o), and its mask weight 1/(t+1)."""
    pairs = np.array([(t, s) for t in range(t_len) for s in range(t + 1)], dtype=np.int64)
    a, b, c, o = (z.ravel() for z in np.meshgrid(np.arange(d), np.arange(d), np.arange(d), np.arange(d_v),
                                                  indexing="ij"))
    t, s = pairs[:, :1], pairs[:, 1:]
    n = t_len * d
    row = (t * d_v + o[None]).ravel()
    col = (((t * d + a[None]) * n + (s * d + b[None])) * n + (s * d + c[None])).ravel()
    core = np.broadcast_to(((a * d + b) * d + c) * d_v + o, (len(pairs), a.size)).ravel()
    weight = np.broadcast_to(1.0 / (t + 1), (len(pairs), a.size)).ravel()
    order = np.lexsort((col, row))
    return np.stack([row[order], col[order]]), core[order], weight[order]


class TensorAttentionLM(nn.Module):
    """The same LM with the attention as a third-order tensor on the lifted input x⊗x⊗x.

    The tensor T (T*d_v, N, N, N), N = T*d, is stored as a sparse (T*d_v, N^3) matrix;
    tied: its nonzeros are scale/(t+1) * (W_q W_k^T)[a, b] W_v[c, o] gathered from the
    three weight matrices every forward; free: each nonzero its own parameter.
    """

    def __init__(self, native: NativeAttentionLM, mode: str = "tied"):
        super().__init__()
        check_choice("mode", mode, ("tied", "free"))
        self.mode = mode
        self.context, self.d, self.d_v = native.context, native.d, native.d_v
        idx, core, weight = _attention_layout(self.context, self.d, self.d_v)
        self.register_buffer("idx", torch.as_tensor(idx))
        self.register_buffer("core_idx", torch.as_tensor(core))
        self.register_buffer("mask_w", torch.as_tensor(weight, dtype=torch.float64) / math.sqrt(self.d))
        self.emb = nn.Embedding.from_pretrained(native.emb.weight.detach().clone(), freeze=False)
        if mode == "tied":
            for name in ("w_q", "w_k", "w_v"):
                setattr(self, name, nn.Parameter(getattr(native, name).detach().clone()))
        else:
            with torch.no_grad():
                self.values = nn.Parameter(self._tied_values(native.w_q, native.w_k, native.w_v).clone())
        self.head = nn.Linear(self.d_v, native.head.out_features)
        self.head.load_state_dict(native.head.state_dict())
        self.skip = nn.Linear(self.d, native.head.out_features, bias=False)
        self.skip.load_state_dict(native.skip.state_dict())

    def _tied_values(self, w_q, w_k, w_v) -> torch.Tensor:
        core = (w_q @ w_k.T)[:, :, None, None] * w_v[None, None]          # (a, b, c, o)
        return core.reshape(-1)[self.core_idx] * self.mask_w.to(core.dtype)

    def tensor_values(self) -> torch.Tensor:
        return self._tied_values(self.w_q, self.w_k, self.w_v) if self.mode == "tied" else self.values

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        batch, t_len, d = x.shape
        if t_len != self.context:
            raise ValueError(f"sequence length: expected {self.context}, got {t_len}")
        flat = x.reshape(batch, -1)                                        # (B, N)
        lifted = (flat[:, :, None, None] * flat[:, None, :, None] * flat[:, None, None, :]).reshape(batch, -1)
        n3 = lifted.shape[1]
        out = _spmm(self.idx, self.tensor_values().to(x.dtype), (t_len * self.d_v, n3), lifted.T)
        return out.T.reshape(batch, t_len, self.d_v)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.emb(idx)
        return self.head(self.attention(x)) + self.skip(x)


# ------------------------------------------------------------------ training


def build_models(task: str, data: TaskData, variants: tuple, seed: int, context: int = 8) -> dict[str, nn.Module]:
    """One model per variant, all starting from the native model's initial weights."""
    torch.manual_seed(seed)
    if task == "vision":
        native = NativeCNN(data.info["input_hw"])
        make = {"tied": lambda: SparseCNN(native, "tied"), "free": lambda: SparseCNN(native, "free")}
    elif task == "timeseries":
        native = NativeLinearRNN(1, 16)
        t_len = data.x_train.shape[1]
        make = {"tied": lambda: SparseLinearRNN(native, t_len, "tied"),
                "free": lambda: SparseLinearRNN(native, t_len, "free")}
    else:
        native = NativeAttentionLM(data.info["vocab"], context)
        make = {"tied": lambda: TensorAttentionLM(native, "tied"), "free": lambda: TensorAttentionLM(native, "free")}
    models = {"native": native}
    for v in variants:
        if v != "native":
            models[v] = make[v]()
    return models


def loss_fn(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if task == "vision":
        return F.cross_entropy(out, y)
    if task == "timeseries":
        return F.mse_loss(out, y)
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def evaluate(task: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int | None = None) -> dict:
    """Mean test loss and the task's metric (accuracy %, MSE, perplexity)."""
    batch = batch or (64 if task == "text" else 512)   # the lifted text input is N^3 per sequence
    model.eval()
    total, n, correct = 0.0, 0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb, yb = x[i:i + batch], y[i:i + batch]
            out = model(xb)
            count = yb.numel()
            total += float(loss_fn(task, out, yb)) * count
            n += count
            if task == "vision":
                correct += int((out.argmax(1) == yb).sum())
    model.train()
    mean = total / max(n, 1)
    metric = {"vision": 100.0 * correct / max(n, 1), "timeseries": mean, "text": math.exp(min(mean, 50))}[task]
    return {"test_loss": mean, "metric": metric}


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def train_rows(spec: PaperSpec) -> Iterator[dict]:
    """Train every (task, seed, variant) for spec.epochs; yield one row per epoch and variant.

    Runs where it is called (a background job): the device is resolved here. Within a
    seed, the variants share the initial weights, the batch order and the optimiser; the
    seeds (``spec.seed_list``) vary those, never the data split.
    """
    for task in spec.tasks:
        for _seed, rows in task_seeds(spec, task):
            yield from rows


def task_seeds(spec: PaperSpec, task: str) -> Iterator[tuple[int, Iterator[dict]]]:
    """``(seed, rows)`` for each of ``spec.seed_list`` on ``task``, its data loaded once.

    ``rows`` yields that seed's rows as ``train_rows`` does; a caller with a time budget per
    seed (``benchmarks/gpu_paper.py``) may stop one and go on to the next seed.
    """
    from engine.runtime.device import job_device, runtime_device_name

    dev = job_device(spec.device)
    dev_name = runtime_device_name(dev)
    dtype = torch.float64 if spec.dtype == "float64" else torch.float32
    data = load_task(task, spec)
    leak = {k: data.info[k] for k in ("test_window_overlap", "chance_window_overlap") if k in data.info}

    def rows(seed: int) -> Iterator[dict]:
        for row in _train_seed(spec, task, data, seed, dev, dtype):
            row.update(device=dev_name, **leak)
            yield row

    for seed in spec.seed_list:
        yield seed, rows(seed)


def _train_seed(spec: PaperSpec, task: str, data: TaskData, seed: int, dev, dtype) -> Iterator[dict]:
    models = build_models(task, data, spec.variants, seed, spec.context)
    opts = {}
    for v, m in models.items():
        m.to(dev, dtype)
        opts[v] = torch.optim.Adam(m.parameters(), lr=spec.lr)
    cast = (lambda t: t.to(dev, dtype) if t.is_floating_point() else t.to(dev))
    xtr, ytr, xte, yte = (cast(t) for t in (data.x_train, data.y_train, data.x_test, data.y_test))
    probe = xte[:64]
    for model in models.values():          # warm-up (kernels, allocator) so epoch 1 times fairly
        loss_fn(task, model(xtr[:spec.batch_size]), ytr[:spec.batch_size]).backward()
        model.zero_grad(set_to_none=True)
    gen = torch.Generator().manual_seed(seed)
    metric_name, _better = METRICS[task]
    for epoch in range(1, spec.epochs + 1):
        order = torch.randperm(len(xtr), generator=gen).to(dev)
        for v, model in models.items():
            t0 = time.perf_counter()
            total, count = 0.0, 0
            for i in range(0, len(order), spec.batch_size):
                sel = order[i:i + spec.batch_size]
                loss = loss_fn(task, model(xtr[sel]), ytr[sel])
                opts[v].zero_grad(set_to_none=True)
                loss.backward()
                opts[v].step()
                total += float(loss.detach()) * len(sel)
                count += len(sel)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            epoch_s = time.perf_counter() - t0
            ev = evaluate(task, model, xte, yte)
            row = {"task": task, "dataset": data.dataset, "variant": v, "seed": seed, "epoch": epoch,
                   "train_loss": total / max(count, 1), "test_loss": ev["test_loss"],
                   "metric_name": metric_name, "metric": ev["metric"], "epoch_s": epoch_s,
                   "params": parameter_count(model), "n_train": len(xtr), "n_test": len(xte),
                   "dtype": spec.dtype, "lr": spec.lr, "batch_size": spec.batch_size,
                   "method": EPOCH_METHOD, "device_type": dev.type, "torch": torch.__version__}
            # native trains first each epoch, so both have taken the same steps here
            row["max_abs_diff_vs_native"] = 0.0 if v == "native" else probe_diff(model, models["native"], probe)
            yield row


def probe_diff(model: nn.Module, native: nn.Module, probe: torch.Tensor) -> float:
    """Max |model(probe) - native(probe)| (evaluation mode, no gradient)."""
    with torch.no_grad():
        a, b = model.eval()(probe), native.eval()(probe)
    model.train()
    native.train()
    return float((a - b).abs().max())


# ------------------------------------------------------------------ results in the paper's form


def _sd(values: list[float]) -> float:
    """Sample standard deviation; NaN for fewer than two values."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def epoch_measurement(g) -> Measurement:
    """The epoch times of one (task, variant, seed) as a Measurement (wall clock, one run per epoch)."""
    first = g.iloc[0]
    name = str(first.get("device", ""))
    device = str(first.get("device_type", "") or ("cpu" if "cpu" in name.lower() or not name else "cuda"))
    task = Task(op=f"{first['task']} training epoch", backend=str(first["variant"]),
                dims={"n_train": int(first.get("n_train", 0) or 0), "batch_size": int(first.get("batch_size", 0) or 0)},
                dtype=str(first.get("dtype", "")), device=device, device_name=name,
                versions={"torch_version": str(first.get("torch", ""))})
    return Measurement.from_times(task, g["epoch_s"].astype(float).tolist(), method=WALL_CLOCK, warmup=1)


def _per_seed(grp, variant: str, better: str) -> dict[int, dict]:
    out = {}
    for seed, g in grp[grp["variant"] == variant].groupby("seed", sort=True):
        g = g.sort_values("epoch")
        best_i = g["metric"].idxmax() if better == "max" else g["metric"].idxmin()
        out[int(seed)] = {"best": float(g.loc[best_i, "metric"]), "epoch": int(g.loc[best_i, "epoch"]),
                          "final": float(g["metric"].iloc[-1]), "params": int(g["params"].iloc[0]),
                          "time": epoch_measurement(g), "diff": float(g["max_abs_diff_vs_native"].max())}
    return out


def summarise(rows: list[dict]) -> list[dict]:
    """One record per task: per variant, mean and spread over seeds of the best metric, the
    epoch of best and the final metric; parameters; median seconds per epoch; and, against
    native, the epoch-time ratio over the seeds whose epoch times are not noisy (both models)."""
    import pandas as pd

    frame = pd.DataFrame(rows or [])
    if frame.empty:
        return []
    if "seed" not in frame:
        frame["seed"] = 0
    out = []
    for task, grp in frame.groupby("task", sort=False):
        name, better = METRICS[task]
        rec = {"task": task, "dataset": grp["dataset"].iloc[0], "metric": name,
               "epochs_run": int(grp["epoch"].max()), "seeds": int(grp["seed"].nunique())}
        for k in ("test_window_overlap", "chance_window_overlap"):
            if k in grp and grp[k].notna().any():
                rec[k] = float(grp[k].dropna().iloc[0])
        native = _per_seed(grp, "native", better)
        for v in VARIANTS:
            seeds = native if v == "native" else _per_seed(grp, v, better)
            if not seeds:
                continue
            vals = list(seeds.values())
            best = [r["best"] for r in vals]
            rec.update({f"{v}_best_mean": float(np.mean(best)), f"{v}_best_sd": _sd(best),
                        f"{v}_epoch_of_best_mean": float(np.mean([r["epoch"] for r in vals])),
                        f"{v}_final_mean": float(np.mean([r["final"] for r in vals])),
                        f"{v}_params": vals[0]["params"], f"{v}_seeds": len(vals),
                        f"{v}_s_per_epoch": float(np.median([r["time"].median_s for r in vals])),
                        f"{v}_rel_iqr": float(np.mean([r["time"].relative_iqr for r in vals])),
                        f"{v}_noisy_seeds": sum(r["time"].noisy for r in vals)})
            if v != "native":
                steady = [r["time"].median_s / native[sd]["time"].median_s for sd, r in seeds.items()
                          if sd in native and not r["time"].noisy and not native[sd]["time"].noisy
                          and native[sd]["time"].median_s > 0]
                rec.update({f"{v}_time_ratio_mean": float(np.mean(steady)) if steady else float("nan"),
                            f"{v}_time_ratio_sd": _sd(steady), f"{v}_time_ratio_seeds": len(steady),
                            f"{v}_time_ratio_enough": enough_steady(len(steady), len(vals)),
                            f"{v}_max_abs_diff_vs_native": max(r["diff"] for r in vals)})
        out.append(rec)
    return out


def paper_form(rows: list[dict], summary: list[dict] | None = None) -> list[dict]:
    """The paper's table layout: per dataset, each model's best metric (mean and standard
    deviation over seeds) and the mean epoch it was reached. ``summary``: ``summarise(rows)``
    when the caller has it already."""
    out = []
    for rec in summarise(rows) if summary is None else summary:
        row = {"dataset": rec["dataset"], "metric": METRIC_UNITS.get(rec["metric"], rec["metric"]),
               "seeds": rec["seeds"]}
        for v in VARIANTS:
            if f"{v}_best_mean" in rec:
                row[v] = rec[f"{v}_best_mean"]                   # mean over seeds
                row[f"{v} sd"] = rec[f"{v}_best_sd"]
                row[f"{v} epoch"] = rec[f"{v}_epoch_of_best_mean"]
        out.append(row)
    return out


def cost_table(rows: list[dict], summary: list[dict] | None = None) -> list[dict]:
    """Per task and model: parameters, seconds per epoch (median), how steady the epoch times
    were, the time ratio to native over the steady seeds (blank when most seeds were not
    steady: ``enough_steady``), max |output - native|, and the final metric with its unit
    ("metric": "accuracy (%)", "MSE (standardised units²)", ...)."""
    out = []
    for rec in summarise(rows) if summary is None else summary:
        for v in VARIANTS:
            if f"{v}_best_mean" not in rec:
                continue
            enough = v == "native" or rec.get(f"{v}_time_ratio_enough", False)
            out.append({"task": rec["task"], "model": v, "params": rec[f"{v}_params"],
                        "s/epoch": rec[f"{v}_s_per_epoch"],               # median over seeds
                        "IQR/median": rec[f"{v}_rel_iqr"],                # of the epoch times, mean over seeds
                        "noisy seeds": f"{rec[f'{v}_noisy_seeds']} of {rec[f'{v}_seeds']}",
                        "x native": rec.get(f"{v}_time_ratio_mean", 1.0) if enough else float("nan"),
                        "x native sd": rec.get(f"{v}_time_ratio_sd", float("nan")) if enough else float("nan"),
                        "x native from": (None if v == "native" else
                                          f"{rec[f'{v}_time_ratio_seeds']} of {rec[f'{v}_seeds']} seeds"),
                        "max |diff|": rec.get(f"{v}_max_abs_diff_vs_native", 0.0),
                        "metric": METRIC_UNITS.get(rec["metric"], rec["metric"]),
                        "final": rec[f"{v}_final_mean"]})
    return out


def _pm(rec: dict, v: str, unit: str) -> str:
    sd = rec[f"{v}_best_sd"]
    spread = f" ± {sd:.2g}" if math.isfinite(sd) else ""
    return f"{rec[f'{v}_best_mean']:.4g}{spread}{unit}"


def _time_text(rec: dict, v: str) -> str:
    """The epoch-time ratio, from steady seeds only and only when most seeds were steady
    (``enough_steady``); otherwise why it is not given."""
    n, total = rec[f"{v}_time_ratio_seeds"], rec[f"{v}_seeds"]
    if not n:
        return (f"its time per epoch is not compared: the epoch times were {NOISY_LABEL} in every seed; "
                f"more epochs give a steadier median")
    if not enough_steady(n, total):
        return (f"its time per epoch is not compared: only {n} of {total} seeds had steady epoch times "
                f"(both models), too few to rest a ratio on; the others were {NOISY_LABEL}, and more epochs "
                f"give a steadier median")
    sd = rec[f"{v}_time_ratio_sd"]
    spread = f" ± {sd:.2g}" if math.isfinite(sd) else ""
    return (f"it took {rec[f'{v}_time_ratio_mean']:.2g}x{spread} native's time per epoch "
            f"({n} of {total} seeds with steady epoch times)")


def verdict(rows: list[dict], tied_tolerance: float = 1e-3,
            summary: list[dict] | None = None) -> list[tuple[str, str]]:
    """Plain sentences on what the run shows: (kind, text) with kind ok, warn or info.

    Metrics are means ± standard deviation over the seeds; a time ratio uses only seeds
    whose epoch times are not noisy."""
    lines = []
    for rec in summarise(rows) if summary is None else summary:
        task, name = rec["task"], rec["metric"]
        unit = " %" if name == "accuracy" else ""
        if "native_best_mean" not in rec:
            continue
        seeds = f"over {rec['seeds']} seed{'s' if rec['seeds'] > 1 else ''}"
        if "test_window_overlap" in rec:
            ov, ch = rec["test_window_overlap"], rec.get("chance_window_overlap", float("nan"))
            near = math.isfinite(ch) and ov <= ch + 0.1
            lines.append(("info" if near else "warn",
                          f"{task}: held out by source ({rec['dataset']}: whole modules or the last block of "
                          f"lines, lines seen in training dropped): {100 * ov:.0f} % of test windows occur "
                          f"verbatim in the training text, against {100 * ch:.0f} % for a module left out of "
                          f"training (what text of this kind shares by chance)."))
        if "tied_best_mean" in rec:
            diff = rec["tied_max_abs_diff_vs_native"]
            same = diff <= tied_tolerance
            how = ("equals the native model up to float error" if same else
                   "starts equal to the native model and drifts from it as float rounding compounds over "
                   "the Adam steps")
            lines.append(("ok" if same else "warn",
                          f"{task}: the weight-tied sparse model {how} (max |output difference| over the run "
                          f"{diff:.2g}); best {name} {_pm(rec, 'tied', unit)} at epoch "
                          f"{rec['tied_epoch_of_best_mean']:.3g} vs native {_pm(rec, 'native', unit)} at epoch "
                          f"{rec['native_epoch_of_best_mean']:.3g} ({seeds}). It is the same function computed "
                          f"another way, so it cannot be better or worse except by rounding; "
                          f"{_time_text(rec, 'tied')}."))
        if "free_best_mean" in rec:
            fb, nb = rec["free_best_mean"], rec["native_best_mean"]
            spread = np.nansum([rec["free_best_sd"], rec["native_best_sd"]])
            better = (fb > nb) if METRICS[task][1] == "max" else (fb < nb)
            how = ("within the spread over seeds" if rec["seeds"] > 1 and abs(fb - nb) <= spread
                   else "better" if better else "not better")
            lines.append(("info",
                          f"{task}: the free sparse model (each stored entry its own parameter) reached {name} "
                          f"{_pm(rec, 'free', unit)} at epoch {rec['free_epoch_of_best_mean']:.3g} vs native "
                          f"{_pm(rec, 'native', unit)} ({seeds}; {how}; difference {fb - nb:+.4g}) with "
                          f"{rec['free_params']:,} parameters instead of {rec['native_params']:,} "
                          f"({rec['free_params'] / max(rec['native_params'], 1):.1f}x); {_time_text(rec, 'free')}. "
                          f"It is a different, larger model (not the isomorphism)."))
    return lines
