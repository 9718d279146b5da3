"""The seven-column generator: a clock tick turned into a harmonic waveform.

One chain of explicit matrices, drawn two ways (the DRT generator deck):

    column      value                         shape   operation
    1 clock     e_t   one-hot phase             (T,)    the clock ticks t = 0, 1, ..., T-1
    2 lookup    e_p = L e_t                     (P,)    lookup table t -> pattern p (L: P x T, 0/1)
    3 select    r   = S e_p,  S = R^T           (K,)    one-hot pick of row p of the routing matrix R (P x K)
    4 sparse    x   = r on its support          (K,)    the row kept as (index, value) pairs: the "dice"
    5 activation a  = sigma(x) on the support   (K,)    element-wise; zero stays zero
    6 propagate h   = W a                       (H,)    dense propagation W (H x K)
    7 assemble  y   = M h                       (F,)    mixing M (F x H) into F harmonic amplitudes

The waveform is ``sum_f y_f sin(2 pi (f+1) f0 t)``. Column four holds the same numbers
as column three: the pick produces a dense-indexed row, the sparse vector keeps only
its nonzeros. The activation is applied to the nonzeros only (the deck: "zero stays
zero; only the nonzeros change"); for relu, tanh and identity that is the plain
element-wise map, for sigmoid it keeps the off-support entries at 0 instead of 0.5.

The same chain as a seven-layer graph (``Chain.to_graph``): a node per vector entry,
an edge per nonzero matrix entry carrying its weight. ``graph_forward`` evaluates it
by message passing over the edge list (only nonzero nodes send; a node of the
activation layer that received a message applies sigma), with no matrix product, so
``max |pipeline - graph|`` is a computed check, not an identity.

    chain = make_chain("balanced", n_phases=16, n_patterns=8, k=24, nnz_per_row=3,
                       hidden=12, n_harmonics=6, activation="tanh", seed=0)
    cols = chain.forward(3)            # {"clock": (16,), ..., "assemble": (6,)}
    allc = chain.forward_all()         # {"clock": (16, 16), ..., "assemble": (16, 6)}
    graph_forward(chain.to_graph(), 3)["assemble"]   # equals cols["assemble"]
"""
from __future__ import annotations

import io
import math
import wave
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from engine.validate import check_choice, check_fields, check_float, check_int

COLUMNS = ("clock", "lookup", "select", "sparse", "activation", "propagate", "assemble")
COLUMN_TITLES = {
    "clock": "1 clock",
    "lookup": "2 lookup",
    "select": "3 select",
    "sparse": "4 sparse vector",
    "activation": "5 activation",
    "propagate": "6 propagate (W)",
    "assemble": "7 assemble (M)",
}
PRESETS = ("concentrated", "balanced", "dense", "random")
WEIGHTS = ("gaussian", "orthogonal")


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * v))  # stable for large |v|


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda v: np.maximum(v, 0.0),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "identity": lambda v: np.asarray(v, dtype=float).copy(),
}

LIMITS = {  # what the page and the engine accept (small enough to draw every node)
    "n_phases": (1, 256),
    "n_patterns": (1, 64),
    "k": (1, 128),
    "hidden": (1, 128),
    "n_harmonics": (1, 32),
}


@dataclass(frozen=True)
class ChainSpec:
    """The parameters of a chain; validated on construction ("expected ... got ...")."""

    preset: str = "balanced"
    n_phases: int = 16
    n_patterns: int = 8
    k: int = 24
    nnz_per_row: int = 3
    hidden: int = 12
    n_harmonics: int = 6
    activation: str = "tanh"
    seed: int = 0
    weights: str = "gaussian"

    @property
    def row_nnz(self) -> int:
        """Nonzeros in each routing row: every one of the K entries for the dense preset
        (the deck's dense pattern has the highest nonzero count), else ``nnz_per_row``."""
        return self.k if self.preset == "dense" else self.nnz_per_row

    def __post_init__(self) -> None:
        check_choice("preset", self.preset, PRESETS)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_choice("weights", self.weights, WEIGHTS)
        check_fields(self, LIMITS)
        object.__setattr__(self, "seed", check_int("seed", self.seed, 0, 2**32 - 1))
        nnz = check_int("nnz_per_row", self.nnz_per_row, 1)
        if nnz > self.k:
            raise ValueError(f"nnz_per_row: expected at most K = {self.k} nonzeros per row "
                             f"(K >= nonzeros per row), got {nnz}")
        object.__setattr__(self, "nnz_per_row", nnz)
        if self.weights == "orthogonal":
            nnz = self.row_nnz
            if self.n_patterns * nnz > self.k:
                dense = " (the dense preset fills all K)" if self.preset == "dense" else ""
                raise ValueError(
                    f"orthogonal weights: expected n_patterns * nnz_per_row <= K so the routing "
                    f"rows can have disjoint supports, got {self.n_patterns} * {nnz} > "
                    f"{self.k}{dense}")
            if not (self.k <= self.hidden <= self.n_harmonics):
                raise ValueError(
                    "orthogonal weights: expected K <= hidden <= n_harmonics (W and M with "
                    f"orthonormal columns), got K={self.k}, hidden={self.hidden}, "
                    f"n_harmonics={self.n_harmonics}")


def _routing_values(preset: str, rng: np.random.Generator, nnz: int) -> np.ndarray:
    """Values of one routing row's nonzeros, (nnz,), never exactly zero, random signs."""
    signs = rng.choice([-1.0, 1.0], size=nnz)
    if preset == "concentrated":  # one or two heavy entries, the rest light
        mags = rng.uniform(0.03, 0.12, size=nnz)
        heavy = min(nnz, int(rng.integers(1, 3)))
        mags[:heavy] = rng.uniform(1.2, 2.0, size=heavy)
    elif preset == "balanced":  # roughly uniform magnitudes
        mags = rng.uniform(0.9, 1.1, size=nnz)
    elif preset == "dense":  # every entry nonzero, each small
        mags = rng.uniform(0.15, 0.35, size=nnz)
    else:  # seeded random: gaussian values, kept away from zero
        mags = np.abs(rng.normal(0.0, 1.0, size=nnz)) + 0.05
    return signs * mags


def _orthonormal_columns(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal columns (rows >= cols), via QR."""
    q, r = np.linalg.qr(rng.normal(size=(rows, cols)))
    return q * np.sign(np.diag(r))


@dataclass
class Chain:
    """The explicit matrices of one chain (numpy float64).

    lut: (T,) int pattern per phase;  R: (P, K) routing matrix (``spec.row_nnz`` per row);
    W: (H, K) dense propagation;  M: (F, H) output mixing.
    """

    spec: ChainSpec
    lut: np.ndarray
    R: np.ndarray
    W: np.ndarray
    M: np.ndarray
    _graph: "Graph | None" = field(default=None, repr=False, compare=False)

    # -- shapes ---------------------------------------------------------------------------
    @property
    def sizes(self) -> dict[str, int]:
        """Length of each column's vector."""
        s = self.spec
        return {"clock": s.n_phases, "lookup": s.n_patterns, "select": s.k, "sparse": s.k,
                "activation": s.k, "propagate": s.hidden, "assemble": s.n_harmonics}

    @property
    def L(self) -> np.ndarray:
        """The lookup table as a 0/1 matrix, (P, T): ``e_p = L e_t``."""
        out = np.zeros((self.spec.n_patterns, self.spec.n_phases))
        out[self.lut, np.arange(self.spec.n_phases)] = 1.0
        return out

    @property
    def S(self) -> np.ndarray:
        """The selection matrix S = R^T, (K, P): ``S e_p`` is row p of R."""
        return self.R.T

    @property
    def support_mask(self) -> np.ndarray:
        """(K,) bool: entries that some routing row uses (column four's possible dice)."""
        return np.any(self.R != 0, axis=0)

    def __repr__(self) -> str:
        s = self.spec
        nnz = int(np.count_nonzero(self.R))
        return (f"Chain(preset={s.preset!r}, T={s.n_phases}, P={s.n_patterns}, K={s.k}, "
                f"H={s.hidden}, F={s.n_harmonics}, activation={s.activation!r}, "
                f"R nnz={nnz} density={nnz / self.R.size:.3f}, weights={s.weights!r})")

    # -- the pipeline (matrix code) ---------------------------------------------------------
    def _activate(self, x: np.ndarray) -> np.ndarray:
        act = ACTIVATIONS[self.spec.activation](x)
        return np.where(x != 0, act, 0.0)

    def forward(self, phase: int) -> dict[str, np.ndarray]:
        """Every column's values at one phase: {column: (size,)} in ``COLUMNS`` order."""
        t = check_int("phase", phase, 0, self.spec.n_phases - 1)
        e_t = np.zeros(self.spec.n_phases)
        e_t[t] = 1.0
        e_p = self.L @ e_t
        r = self.S @ e_p
        x = np.where(self.support_mask, r, 0.0)
        a = self._activate(x)
        h = self.W @ a
        y = self.M @ h
        return dict(zip(COLUMNS, (e_t, e_p, r, x, a, h, y)))

    def forward_all(self) -> dict[str, np.ndarray]:
        """Every column for every phase at once: {column: (T, size)}."""
        e_t = np.eye(self.spec.n_phases)
        e_p = (self.L @ e_t).T                      # (T, P)
        r = e_p @ self.R                             # (T, K) = (S e_p)^T per phase
        x = np.where(self.support_mask[None, :], r, 0.0)
        a = self._activate(x)
        h = a @ self.W.T
        y = h @ self.M.T
        return dict(zip(COLUMNS, (e_t, e_p, r, x, a, h, y)))

    def patterns(self) -> np.ndarray:
        """(T,) the pattern id of every phase."""
        return self.lut.copy()

    # -- the graph ---------------------------------------------------------------------------
    def to_graph(self) -> "Graph":
        """The chain as a seven-layer graph: one node per entry, one edge per nonzero."""
        if self._graph is None:
            self._graph = _build_graph(self)
        return self._graph

    # -- tables --------------------------------------------------------------------------------
    def phase_table(self) -> pd.DataFrame:
        """One row per phase: phase, pattern, nnz, support, act_k (K), y_f (F), max |pipe - graph|."""
        cols = self.forward_all()
        diff = pipeline_graph_difference(self)
        rows = []
        for t in range(self.spec.n_phases):
            x = cols["sparse"][t]
            support = np.flatnonzero(x)
            row = {"phase": t, "pattern": int(self.lut[t]), "nnz": int(support.size),
                   "support": " ".join(str(i) for i in support)}
            row.update({f"act_{k}": float(v) for k, v in enumerate(cols["activation"][t])})
            row.update({f"y_{f + 1}": float(v) for f, v in enumerate(cols["assemble"][t])})
            row["max_abs_pipeline_minus_graph"] = float(diff[t])
            rows.append(row)
        return pd.DataFrame(rows)

    def cost_table(self) -> pd.DataFrame:
        """Per column: dense multiply-adds vs the work actually done with the zeros skipped."""
        s = self.spec
        T, P, K, H, F, nnz = s.n_phases, s.n_patterns, s.k, s.hidden, s.n_harmonics, s.row_nnz
        rows = [
            ("clock", "phase counter t", "-", 1, 1, "one increment per tick"),
            ("lookup", "e_p = L e_t", f"P x T = {P * T}", P * T, 1,
             "table read: O(1) instead of a one-hot mat-vec"),
            ("select", "r = S e_p (row p of R)", f"K x P = {K * P}", K * P, 1,
             "one-hot pick: O(1), a row pointer, no multiply-adds"),
            ("sparse", "keep the nonzeros of r", f"K = {K}", K, nnz, "only the dice are stored"),
            ("activation", f"{s.activation} element-wise", f"K = {K}", K, nnz,
             "zero stays zero: only nonzeros change"),
            ("propagate", "h = W a", f"H x K = {H * K}", H * K, H * nnz,
             "sparse input: H x nnz multiply-adds"),
            ("assemble", "y = M h", f"F x H = {F * H}", F * H, F * H, "h is dense: no saving"),
        ]
        frame = pd.DataFrame(rows, columns=["column", "operation", "dense_formula", "dense_ops",
                                            "actual_ops", "note"])
        frame["saving"] = frame["dense_ops"] / frame["actual_ops"]
        return frame


def make_chain(preset: str = "balanced", n_phases: int = 16, n_patterns: int = 8, k: int = 24,
               nnz_per_row: int = 3, hidden: int = 12, n_harmonics: int = 6,
               activation: str = "tanh", seed: int = 0, weights: str = "gaussian") -> Chain:
    """Build a chain from a pattern-dictionary preset; all randomness from ``seed``.

    preset: concentrated (one or two heavy entries per row), balanced (roughly uniform),
    dense (every one of the K entries nonzero and small: the most nonzeros, the lowest
    magnitudes; ``nnz_per_row`` does not apply), random (seeded gaussian).
    weights="orthogonal" gives W and M orthonormal columns and R orthonormal rows (disjoint
    supports), so the transposes invert the linear part exactly (the scanner's
    well-conditioned preset).
    """
    spec = ChainSpec(preset, n_phases, n_patterns, k, nnz_per_row, hidden, n_harmonics,
                     activation, seed, weights)
    rng = np.random.default_rng(spec.seed)
    P, K, nnz = spec.n_patterns, spec.k, spec.row_nnz
    lut = np.arange(spec.n_phases) % P  # one full clock cycle passes the whole dictionary
    R = np.zeros((P, K))
    if spec.weights == "orthogonal":
        cols = rng.permutation(K)[: P * nnz].reshape(P, nnz)
    else:
        cols = np.stack([rng.choice(K, size=nnz, replace=False) for _ in range(P)])
    for p in range(P):
        R[p, cols[p]] = _routing_values(spec.preset, rng, nnz)
    if spec.weights == "orthogonal":
        R /= np.linalg.norm(R, axis=1, keepdims=True)
        W = _orthonormal_columns(spec.hidden, K, rng)
        M = _orthonormal_columns(spec.n_harmonics, spec.hidden, rng)
    else:
        W = rng.normal(0.0, 1.0 / math.sqrt(K), size=(spec.hidden, K))
        M = rng.normal(0.0, 1.0 / math.sqrt(spec.hidden), size=(spec.n_harmonics, spec.hidden))
    return Chain(spec, lut, R, W, M)


def chain_from_dict(params: dict) -> Chain:
    """``make_chain(**params)`` keeping only the keys it knows (for stores and URLs)."""
    known = ChainSpec.__dataclass_fields__
    return make_chain(**{k: v for k, v in dict(params or {}).items() if k in known})


# -- the graph and its message passing ---------------------------------------------------------
@dataclass(frozen=True)
class Graph:
    """Seven layers of nodes and a weighted edge list.

    layers: ((name, size), ...) in ``COLUMNS`` order; node ids run layer after layer
    (``offsets[i]`` is the first id of layer i). Edges: src, dst (node ids), weight, and
    the layer index of the destination (1..6). ``activation`` names sigma, applied at the
    nodes of layer ``activation_layer`` that received a message.
    """

    layers: tuple[tuple[str, int], ...]
    offsets: tuple[int, ...]
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    edge_layer: np.ndarray
    activation: str
    activation_layer: int
    # what ``graph_forward`` and ``engine.chain.graph`` derive from these fields, computed once
    # per graph (pages ask for every phase several times); a replaced graph starts empty
    _derived: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_nodes(self) -> int:
        return self.offsets[-1] + self.layers[-1][1]

    @property
    def n_edges(self) -> int:
        return int(self.src.size)

    def node_id(self, layer: str, index: int) -> int:
        return self.offsets[COLUMNS.index(layer)] + index

    def __repr__(self) -> str:
        sizes = ", ".join(f"{n}={s}" for n, s in self.layers)
        return f"Graph({sizes}; {self.n_nodes} nodes, {self.n_edges} edges)"


def _build_graph(chain: Chain) -> Graph:
    sizes = chain.sizes
    layers = tuple((name, sizes[name]) for name in COLUMNS)
    offsets = tuple(int(v) for v in np.concatenate([[0], np.cumsum([s for _, s in layers])[:-1]]))
    off = dict(zip(COLUMNS, offsets))
    src, dst, w, lay = [], [], [], []

    def add(from_layer: str, to_layer: str, i, j, weights) -> None:
        """Edges from entry i of one layer to entry j of the next (arrays), in that order."""
        src.append(off[from_layer] + np.asarray(i, dtype=np.int64))
        dst.append(off[to_layer] + np.asarray(j, dtype=np.int64))
        w.append(np.broadcast_to(np.asarray(weights, dtype=float), src[-1].shape))
        lay.append(np.full(src[-1].shape, COLUMNS.index(to_layer), dtype=np.int64))

    T = chain.spec.n_phases
    add("clock", "lookup", np.arange(T), chain.lut, 1.0)
    ps, ks = np.nonzero(chain.R)
    add("lookup", "select", ps, ks, chain.R[ps, ks])
    used = np.flatnonzero(chain.support_mask)
    add("select", "sparse", used, used, 1.0)
    add("sparse", "activation", used, used, 1.0)
    hs, ks = np.nonzero(chain.W)
    add("activation", "propagate", ks, hs, chain.W[hs, ks])
    fs, hs = np.nonzero(chain.M)
    add("propagate", "assemble", hs, fs, chain.M[fs, hs])
    return Graph(layers, offsets, np.concatenate(src), np.concatenate(dst), np.concatenate(w),
                 np.concatenate(lay), chain.spec.activation, COLUMNS.index("activation"))


def graph_forward(graph: Graph, phase: int) -> dict[str, np.ndarray]:
    """Message passing over the edge list, layer by layer: {column: (size,)}.

    Node values start at zero except the clock node of ``phase`` (1). For each layer,
    every edge whose source is nonzero sends ``weight * value`` to its destination, and
    the destination sums what it received (no matrix product anywhere). Each phase is
    passed once per graph (kept in it); every call returns fresh arrays.
    """
    T = graph.layers[0][1]
    t = check_int("phase", phase, 0, T - 1)
    done = graph._derived.setdefault("forward", {})
    if t not in done:
        done[t] = _messages(graph, t)
    return {name: v.copy() for name, v in done[t].items()}


def _messages(graph: Graph, t: int) -> dict[str, np.ndarray]:
    """``graph_forward``'s message passing for phase ``t``, uncached."""
    value = np.zeros(graph.n_nodes)
    received = np.zeros(graph.n_nodes, dtype=bool)
    value[graph.offsets[0] + t] = 1.0
    sigma = ACTIVATIONS[graph.activation]
    for layer in range(1, len(graph.layers)):
        on = (graph.edge_layer == layer) & (value[graph.src] != 0)
        s, d, w = graph.src[on], graph.dst[on], graph.weight[on]
        np.add.at(value, d, w * value[s])      # each message added to its destination
        received[d] = True
        if layer == graph.activation_layer:
            lo = graph.offsets[layer]
            hi = lo + graph.layers[layer][1]
            hit = received[lo:hi]
            value[lo:hi][hit] = sigma(value[lo:hi][hit])
    return {name: value[o:o + n].copy() for (name, n), o in zip(graph.layers, graph.offsets)}


def pipeline_graph_difference(chain: Chain) -> np.ndarray:
    """(T,) max over all columns of |pipeline - graph| at every phase."""
    pipe = chain.forward_all()
    graph = chain.to_graph()
    out = np.zeros(chain.spec.n_phases)
    for t in range(chain.spec.n_phases):
        g = graph_forward(graph, t)
        out[t] = max(float(np.max(np.abs(pipe[c][t] - g[c]))) for c in COLUMNS)
    return out


# -- audio -----------------------------------------------------------------------------------
def waveform(amplitudes, f0: float = 220.0, sample_rate: int = 8000,
             seconds: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(t, s): times (n,) in seconds and ``sum_f y_f sin(2 pi (f+1) f0 t)`` (n,)."""
    y = np.asarray(amplitudes, dtype=float).ravel()
    if y.size == 0 or not np.all(np.isfinite(y)):
        raise ValueError(f"amplitudes: expected a non-empty vector of finite numbers, got {y!r}")
    f0 = check_float("f0", f0, 1.0, 4000.0)
    sample_rate = check_int("sample_rate", sample_rate, 1000, 96000)
    seconds = check_float("seconds", seconds, 0.001, 10.0)
    t = np.arange(int(round(sample_rate * seconds))) / sample_rate
    harmonics = np.arange(1, y.size + 1)[:, None]
    return t, y @ np.sin(2 * np.pi * harmonics * f0 * t[None, :])


def to_wav_bytes(amplitudes, f0: float = 220.0, sample_rate: int = 8000,
                 seconds: float = 0.5) -> bytes:
    """A mono 16-bit PCM WAV of the waveform, peak-normalised to 0.9 (silence if all zero).

    A short fade in and out (5 ms) avoids clicks when phases play one after another.
    """
    _, s = waveform(amplitudes, f0, sample_rate, seconds)
    peak = float(np.max(np.abs(s))) if s.size else 0.0
    if peak > 0:
        s = 0.9 * s / peak
    ramp = min(s.size // 2, int(0.005 * sample_rate))
    if ramp > 0:
        env = np.linspace(0.0, 1.0, ramp)
        s[:ramp] *= env
        s[-ramp:] *= env[::-1]
    pcm = np.round(s * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(int(sample_rate))
        wav.writeframes(pcm.tobytes())
    return buf.getvalue()
