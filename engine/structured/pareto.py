"""Error against parameter count: every configuration of every structured family and
magnitude-pruned sparse at the same counts (``pareto_rows``), and each family's best
operator within a parameter budget (``fits_at_budget``)."""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engine.runtime.cache import pure_cache
from engine.structured.operators import (FAMILIES, FAMILY_LABELS, Butterfly, Circulant, LowRank,
                                         MagnitudeSparse, Monarch, StructuredMatrix, Toeplitz,
                                         check_square, few_threads, is_pow2, relative_error)
from engine.validate import check_choice, check_int

def lowrank_ranks(n: int) -> list[int]:
    return [r for r in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if r <= n // 2]


def budget_config(family: str, n: int, budget: int | None) -> dict | None:
    """The configuration ``fit_family`` picks for ``family`` at size n within ``budget``
    parameters: {"rank": r}, {"nblocks": b}, {"nnz": k} or {} (butterfly, circulant,
    Toeplitz have one configuration); None when no configuration fits the budget."""
    check_choice("family", family, FAMILIES)
    if family == "lowrank":
        rank = min(int(budget // (2 * n)), n) if budget is not None else 1
        return {"rank": rank} if rank >= 1 else None
    if family == "monarch":
        ok = [b for b in Monarch.valid_blocks(n) if budget is None or 2 * n * n // b <= budget]
        return {"nblocks": min(ok)} if ok else None
    if family == "sparse":
        return {"nnz": n * n if budget is None else min(int(budget), n * n)}
    fixed = {"butterfly": 2 * n * int(math.log2(n)) if is_pow2(n) else None,
             "circulant": n, "toeplitz": 2 * n - 1}[family]
    return None if fixed is None or (budget is not None and fixed > budget) else {}


def fit_family(A: np.ndarray, family: str, budget: int | None = None, *, rank: int | None = None,
               nblocks: int | None = None, butterfly_steps: int = 100) -> StructuredMatrix | None:
    """The best operator of ``family`` for A within ``budget`` parameters (None: no
    configuration of the family fits the budget). rank / nblocks pick a configuration."""
    check_choice("family", family, FAMILIES)
    A = check_square(A)
    n = A.shape[0]
    given = {"lowrank": rank, "monarch": nblocks}.get(family)
    config = budget_config(family, n, budget) if given is None else {}
    if config is None:
        return None
    if family == "lowrank":
        return LowRank.fit(A, config.get("rank", rank))
    if family == "monarch":
        return Monarch.fit(A, config.get("nblocks", nblocks))
    if family == "sparse":
        return MagnitudeSparse.fit(A, config["nnz"])
    if family == "butterfly":
        return Butterfly.fit(A, steps=butterfly_steps)
    return Circulant.fit(A) if family == "circulant" else Toeplitz.fit(A)


def _same_config(op: StructuredMatrix, family: str, config: dict) -> bool:
    """Whether ``op`` is the configuration ``config`` of ``family`` (budget_config)."""
    if op.family != family:
        return False
    if family == "lowrank":
        return op.rank == config["rank"]
    if family == "monarch":
        return op.b == config["nblocks"]
    return family in ("butterfly", "circulant", "toeplitz")


def lowrank_factors(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(U S, V) of A's SVD up to the largest rank of ``lowrank_ranks``: LowRank(US[:, :r],
    V[:, :r]) is the best rank-r approximation (LowRank.fit) for every r there."""
    A = check_square(A)
    top = max(lowrank_ranks(A.shape[0]), default=0)
    with few_threads():
        u, s, vh = np.linalg.svd(A)  # once, for every rank
    return u[:, :top] * s[:top], vh[:top].T.copy()


def lowrank_operators(factors: tuple[np.ndarray, np.ndarray]) -> list[StructuredMatrix]:
    """Low-rank at each rank of ``lowrank_ranks`` from ``lowrank_factors`` (no new SVD)."""
    US, V = factors
    return [LowRank(US[:, :r], V[:, :r]) for r in lowrank_ranks(US.shape[0])]


def fitted_operators(A: np.ndarray, butterfly: StructuredMatrix | None = None,
                     butterfly_steps: int = 100, factors: tuple[np.ndarray, np.ndarray] | None = None,
                     ) -> list[StructuredMatrix]:
    """Every configuration of every structured family fitted to A (n, n): low-rank at
    each rank of ``lowrank_ranks`` (one SVD, or ``factors`` from lowrank_factors), Monarch
    at each valid block count, the butterfly (``butterfly`` when already fitted: it is the
    slow fit), circulant, Toeplitz. The butterfly's descent runs in a second thread beside
    the SVDs (both release the GIL; one thread each, see few_threads)."""
    A = check_square(A)
    n = A.shape[0]
    with ThreadPoolExecutor(max_workers=1) as pool:
        descent = (pool.submit(_butterfly_fit, A, butterfly_steps)
                   if butterfly is None and is_pow2(n) else None)
        ops = lowrank_operators(factors if factors is not None else lowrank_factors(A))
        with few_threads():
            ops += [Monarch.fit(A, b) for b in Monarch.valid_blocks(n)]
            if is_pow2(n):
                ops.append(butterfly if butterfly is not None else descent.result())
            ops += [Circulant.fit(A), Toeplitz.fit(A)]
    return ops


def _butterfly_fit(A: np.ndarray, steps: int) -> StructuredMatrix:
    with few_threads():
        return Butterfly.fit(A, steps=steps)


def pareto_rows(A: np.ndarray, butterfly: StructuredMatrix | None = None,
                butterfly_steps: int = 100, ops: list[StructuredMatrix] | None = None) -> list[dict]:
    """Relative Frobenius error against parameter count: every configuration of every
    family, and magnitude-pruned sparse at each of those counts.

    Returns rows {family, label, config, params, share_of_dense, flops_per_vector, rel_error}.
    ``butterfly``: an already fitted butterfly for A (fitting it is the slow part);
    ``ops``: fitted_operators(A) when already computed.
    """
    A = check_square(A)
    n = A.shape[0]
    if ops is None:
        ops = fitted_operators(A, butterfly, butterfly_steps)
    with few_threads():
        rows = [_row(A, op) for op in ops]
        for count in sorted({r["params"] for r in rows}):
            rows.append(_row(A, MagnitudeSparse.fit(A, min(count, n * n))))
    return rows


def _row(A: np.ndarray, op: StructuredMatrix) -> dict:
    n = A.shape[0]
    return {"family": op.family, "label": FAMILY_LABELS[op.family], "config": op.config,
            "params": int(op.n_params), "share_of_dense": op.n_params / (n * n),
            "flops_per_vector": float(op.flops(1)), "rel_error": relative_error(A, op.to_dense())}


def fits_at_budget(A: np.ndarray, budget: int, fitted: Sequence[StructuredMatrix] = ()) -> list[dict]:
    """Each family's best operator within ``budget`` parameters.

    Returns [{family, label, op (or None), config, params, rel_error, note}] in FAMILIES order;
    op is None (with a note giving the smallest size) when the family cannot fit.
    ``fitted``: operators already fitted to A (fitted_operators); a family's pick is taken
    from them when it is there (the same configuration fit_family would fit), else fitted.
    """
    A = check_square(A)
    n = A.shape[0]
    budget = check_int("budget", budget, 1, n * n)
    out = []
    with few_threads():
        for fam in FAMILIES:
            config = budget_config(fam, n, budget)
            reuse = [op for op in fitted if config is not None and _same_config(op, fam, config)]
            op = reuse[0] if reuse else fit_family(A, fam, budget)
            row = {"family": fam, "label": FAMILY_LABELS[fam], "op": op}
            if op is None:
                row.update(config="", params=None, rel_error=None,
                           note=f"over budget: needs at least {smallest_params(fam, n):,} parameters")
            else:
                row.update(config=op.config, params=int(op.n_params), rel_error=relative_error(A, op.to_dense()),
                           note="")
            out.append(row)
    return out


def smallest_params(family: str, n: int) -> int:
    """The fewest parameters any configuration of ``family`` stores at size n."""
    check_choice("family", family, FAMILIES)
    if family == "lowrank":
        return 2 * n
    if family == "monarch":
        blocks = Monarch.valid_blocks(n)
        return 2 * n * n // max(blocks) if blocks else n * n
    if family == "butterfly":
        return 2 * n * int(math.log2(n)) if is_pow2(n) else n * n
    return {"circulant": n, "toeplitz": 2 * n - 1, "sparse": 1}[family]


# ------------------------------------------------- what the page draws, computed once
HEATMAP_PIXELS = 128  # approximations larger than this are drawn as block means
BUDGET_EXPONENTS = range(1, 9)  # the budget slider: n^2 / 2^k parameters
SIZE_EXPONENTS = range(6, 10)  # the size slider: n = 2^k


def butterfly_steps(n: int) -> int:
    """Gradient-descent steps for the butterfly fit: fewer at n = 512 to keep the page quick."""
    return 100 if n <= 256 else 30


def budget_params(n: int, exponent: int) -> int:
    """Budget slider value k -> n^2 / 2^k parameters."""
    return max(1, (n * n) >> exponent)


def block_means(M: np.ndarray, pixels: int = HEATMAP_PIXELS) -> np.ndarray:
    """Real part, block means down to at most ``pixels`` per side, as float32."""
    R = np.real(np.asarray(M))
    n = R.shape[0]
    if n > pixels and n % pixels == 0:
        f = n // pixels
        R = R.reshape(pixels, f, pixels, f).mean(axis=(1, 3))
    return R.astype(np.float32)


# Bytes per matrix entry at the peak of ``analysis`` + ``budget_view`` (complex128 for
# the DFT): the target, the SVD's three factors, every fitted operator's dense form and
# its error, and the butterfly fit's float32 autograd graph; measured at n = 512: under
# 200 (kernel 52 MB).
ANALYSIS_BYTES_PER_ENTRY = 256


def view_inputs(target, size_log2, budget_exp) -> tuple[str, int, int]:
    """The page's widgets -> (target, n, budget exponent), checked once ("expected ...
    got ...") and refused when the analysis at n would pass the memory budget."""
    from engine.structured.targets import TARGETS
    from engine.validate import check_budget

    target = check_choice("target", target, TARGETS)
    n = 2 ** check_int("size (log2 n)", size_log2, min(SIZE_EXPONENTS), max(SIZE_EXPONENTS))
    k = check_int("budget", budget_exp, min(BUDGET_EXPONENTS), max(BUDGET_EXPONENTS))
    check_budget(f"fits at n = {n}", ANALYSIS_BYTES_PER_ENTRY * n * n)
    return target, n, k


@dataclass(frozen=True)
class Analysis:
    """A target, the fits worth keeping (the slow butterfly fit, and the SVD factors that
    give low-rank at every rank) and its Pareto rows. The other families refit in a few
    ms, so they are not kept: a cached entry stays small (it is written and read whole)."""

    target: object  # engine.structured.targets.Target
    butterfly: StructuredMatrix | None
    factors: tuple[np.ndarray, np.ndarray]  # lowrank_factors(target.matrix)
    rows: tuple[dict, ...]

    def fitted(self) -> list[StructuredMatrix]:
        """The kept fits as operators (for fits_at_budget): low-rank at each rank, the butterfly."""
        return lowrank_operators(self.factors) + ([self.butterfly] if self.butterfly is not None else [])


@pure_cache
def analysis(target: str, n: int) -> Analysis:
    """The target ``target`` at size n, its fits and pareto_rows: computed once per
    (target, n) and kept in the lab's bounded cache of pure results."""
    from engine.structured.targets import make_target

    tg = make_target(target, n)
    ops = fitted_operators(tg.matrix, butterfly_steps=butterfly_steps(n))
    top = max((op for op in ops if op.family == "lowrank"), key=lambda op: op.rank)
    bfly = next((op for op in ops if op.family == "butterfly"), None)
    # top.U, top.V are lowrank_factors(A): every lower rank is a view of them
    return Analysis(tg, bfly, (top.U, top.V), tuple(pareto_rows(tg.matrix, ops=ops)))


@dataclass(frozen=True)
class BudgetView:
    """What /structured-matrices shows at one (target, n, budget): the table rows of each
    family's best fit within the budget, and the heatmap panels (title, matrix as block
    means or None when over budget): target, each fit, the best fit's error."""

    n: int
    budget: int
    table: tuple[dict, ...]
    panels: tuple[tuple[str, np.ndarray | None], ...]

    @property
    def cell(self) -> int:
        """Entries a side that one heatmap cell averages (1: drawn entry by entry)."""
        return self.n // self.panels[0][1].shape[0]


@pure_cache
def budget_view(target: str, n: int, exponent: int) -> BudgetView:
    """Each family's best operator for the target within n^2 / 2^exponent parameters,
    as table rows and heatmap panels (computed once per input, cached)."""
    a = analysis(target, n)
    A = a.target.matrix
    budget = budget_params(n, exponent)
    fits = fits_at_budget(A, budget, fitted=a.fitted())  # no slow fit twice
    table = tuple({"family": f["label"], "relative error": f["rel_error"], "params": f["params"],
                   "configuration": f["config"] or "-",
                   "share of dense": None if f["params"] is None else f["params"] / (n * n),
                   "note": f["note"]} for f in fits)
    panels = [(f"target: {a.target.label.split(' (')[0]}", block_means(A))]
    panels += [(f["label"].split(" (")[0] + (f" ({f['rel_error']:.3f})" if f["op"] else " (over budget)"),
                block_means(f["op"].to_dense()) if f["op"] else None) for f in fits]
    ok = [f for f in fits if f["op"] is not None]
    best = min(ok, key=lambda f: f["rel_error"]) if ok else None
    panels.append(("error of the best family", None if best is None else block_means(A - best["op"].to_dense())))
    return BudgetView(n, budget, table, tuple(panels))
