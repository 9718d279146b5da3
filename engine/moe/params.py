"""Total vs active parameters: a decoder-only MoE transformer (``param_count``, the
Mixtral 8x7B preset) and one MoE FFN layer (``layer_params``)."""
from __future__ import annotations

from dataclasses import dataclass

from engine.validate import check_int


# The calculator's number boxes (lo, hi); top-k is at most experts, KV heads at most heads.
CONFIG_LIMITS = {"d_model": (1, 1 << 20), "d_ff": (1, 1 << 22), "n_layers": (1, 10_000),
                 "experts": (1, 4096), "k": (1, 4096), "n_heads": (1, 4096), "n_kv_heads": (1, 4096),
                 "vocab": (1, 10**7)}
CONFIG_LABELS = {"d_model": "model width", "d_ff": "FFN width", "n_layers": "layers",
                 "experts": "experts", "k": "top-k", "n_heads": "heads", "n_kv_heads": "KV heads",
                 "vocab": "vocabulary"}
CONFIG_FIELDS = tuple(CONFIG_LIMITS)


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
        for name, (lo, hi) in CONFIG_LIMITS.items():
            hi = {"k": self.experts, "n_kv_heads": self.n_heads}.get(name, hi)
            check_int(CONFIG_LABELS[name], getattr(self, name), lo, hi)


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


DENSE_7B_LIKE = MoEConfig("Mistral-7B-like dense", d_model=4096, d_ff=14336, n_layers=32, experts=1,
                          k=1, vocab=32000, n_heads=32, n_kv_heads=8)
CALCULATOR_PRESETS = {"Mixtral 8x7B": MIXTRAL_8X7B, "Mistral-7B-like dense (1 expert)": DENSE_7B_LIKE}
# The chapter's figures, as the chapter gives them (not counted here)
CHAPTER_ROWS = ({"config": "Mixtral 8x7B (chapter)", "total": 46.7e9, "active": 12.9e9},
                {"config": "dense 70B (chapter)", "total": 70e9, "active": 70e9})


@dataclass(frozen=True)
class ParamsView:
    """The calculator's output: rows (raw counts, the CSV), table (billions, as shown),
    plotted (whole models only), note (the sliders' layer), error (the user's config)."""

    rows: tuple
    table: tuple
    plotted: tuple
    note: str
    error: str | None


def _count_row(name: str, total: float, active: float) -> dict:
    return {"config": name, "total": total, "active": active, "active_fraction": round(active / total, 4)}


def params_view(values: dict, gated: bool, layer: tuple) -> ParamsView:
    """Count the user's config (``values``: CONFIG_FIELDS -> number), Mixtral, the
    chapter's two figures and the routing sliders' layer ``layer = (d, h, E, k)``."""
    rows, error = [], None
    try:
        mine = param_count(MoEConfig("your config (counted)", **{f: values.get(f) for f in CONFIG_FIELDS},
                                     gated=bool(gated)))
        rows.append(_count_row(mine["config"], mine["total"], mine["active"]))
    except ValueError as exc:
        error = str(exc)
    mix = param_count(MIXTRAL_8X7B)
    rows.append(_count_row("Mixtral 8x7B (counted)", mix["total"], mix["active"]))
    rows += [_count_row(r["config"], r["total"], r["active"]) for r in CHAPTER_ROWS]
    whole = [r for r in rows if not (error is None and r["config"] == "Mixtral 8x7B (counted)")]
    try:
        one = layer_params(*layer)
    except ValueError as exc:
        note = f"Routing sliders' layer not counted: {exc}"
    else:
        rows.append(_count_row(one["config"], one["total"], one["active"]))
        note = (f"The routing sliders' layer holds {one['total']:,} parameters "
                f"({one['bytes_bf16_total'] / 2**20:.1f} MiB in bf16) and uses "
                f"{one['active']:,} per token.")
    table = tuple({"config": r["config"], "total (B)": round(r["total"] / 1e9, 4),
                   "active (B)": round(r["active"] / 1e9, 4), "active fraction": r["active_fraction"]}
                  for r in rows)
    return ParamsView(tuple(rows), table, tuple(whole), note, error)
