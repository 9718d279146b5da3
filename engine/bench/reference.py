"""The one registry of committed reference runs (benchmarks/results/**.csv).

    for ref in references("paradox"):               # newest first, by the run's own date
        ref.name, ref.device_name, ref.dims, ref.dtypes, ref.methods, ref.date
        frame = ref.frame()                          # typed rows (schema of the kind)
    for match in comparable("paradox", device_name="CPU: x", dims={"rows": 512, "k": 1},
                            dtype="float32", method="eager per call"):
        match.same, match.label      # "H100 80GB HBM3, n = 8192 · this CPU, n = 512"

Each CSV under the results folder is read once (per change of the folder) and listed
under the kind its header shows (``KINDS``: the columns that identify it, and for
sweeps with a ``sweep`` column, its value). Device, shapes, dtypes, timing method and
date come from the CSV's own columns, else from the ``device.txt`` beside it; never from
file times (they mean nothing after a git clone). Files of no known kind (summaries,
tuning tables, explorations with other columns) are not listed.

The folder is ``benchmarks/results`` of the checkout, or ``$SPARSITY_LAB_RESULTS``
(tests point it at a temporary folder with one fixture).
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from engine.bench.measurement import WALL_CLOCK, normalise_method
from engine.bench.schema import SCHEMAS, read_rows_csv
from engine.validate import check_float

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RESULTS = ROOT / "benchmarks" / "results"
RESULTS_ENV = "SPARSITY_LAB_RESULTS"
MAX_REFERENCE_BYTES = 20 * 2**20


def results_dir() -> Path:
    """The folder of committed runs ($SPARSITY_LAB_RESULTS, else benchmarks/results)."""
    return Path(os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS)


@dataclass(frozen=True)
class Kind:
    """How to recognise one kind of run and read what/how it measured from its columns.

    marker: columns every CSV of the kind has; sweep: the value of its "sweep" column
    (None: it has none); device / date: columns tried in order; dims: shape columns;
    symbols: how a dim is written in labels (None: left out of labels); method: the
    column naming the timing method (None with ``fixed_method``).
    """

    name: str
    title: str
    page: str
    marker: frozenset
    dims: tuple[str, ...]
    sweep: str | None = None
    device: tuple[str, ...] = ("device_name", "device")
    date: tuple[str, ...] = ("measured_at", "date_utc", "date")
    method: str | None = "method"
    fixed_method: str = ""
    symbols: dict = field(default_factory=dict)
    absent: frozenset = frozenset()  # columns a CSV of the kind never has


_SWEEP_COLUMNS = frozenset({"sweep", "spec_key", "speedup", "backend", "sparsity"})
KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("paradox", "sparsity paradox", "/paradox", _SWEEP_COLUMNS, ("rows", "cols", "k"), sweep="paradox",
         symbols={"rows": "n", "cols": None}),
    Kind("structured", "structured sparsity (blocks, 2:4)", "/structured-sparsity", _SWEEP_COLUMNS | {"part"},
         ("rows", "cols", "k", "block"), sweep="structured", symbols={"rows": "n", "cols": None}),
    Kind("lab-bsr", "lab-bsr kernel benchmark", "/structured-sparsity",
         frozenset({"nnz_blocks", "ms", "speedup_vs_torch_bsr", "timing"}), ("n", "k", "block"),
         method="timing"),  # device: "device_name" (Measurement rows), else the older "device"
    Kind("lab-bsr-percall", "lab-bsr per call and kernel-only", "/structured-sparsity",
         frozenset({"method", "timing", "ms", "speedup_vs_dense", "density", "n", "k", "block"}),
         ("n", "k", "block"), method="timing",
         absent=frozenset({"nnz_blocks", "fraction_of_ceiling"})),
    Kind("attention", "masked attention", "/attention", frozenset({"sweep", "seq_len", "mask", "impl", "kernel_ms"}),
         ("seq_len", "batch", "heads", "head_dim"), sweep="attention", symbols={"seq_len": "S"}),
    Kind("moe", "mixture of experts", "/moe", frozenset({"variant", "batch", "time_ms", "ratio_vs_dense_1x"}),
         ("batch", "d_model", "d_ff", "experts", "k"), device=("device",), method="timer",
         symbols={"d_model": "d", "d_ff": "h", "experts": "E"}),
    Kind("isomorphism", "convolution as a sparse matrix", "/isomorphism",
         frozenset({"matrix_over_native", "channels", "image", "batch"}),
         ("channels", "batch", "image")),
    Kind("paper", "the paper's training runs", "/paper", frozenset({"task", "variant", "epoch", "epoch_s"}),
         ("batch_size",), device=("device",), method=None, fixed_method=WALL_CLOCK),
    Kind("structured-matrices", "structured matrices", "/structured-matrices",
         frozenset({"family", "theoretical_speedup", "speedup_vs_dense", "batch"}), ("n", "batch")),
    Kind("structured-accuracy", "what each sparsity pattern costs in accuracy", "/structured-sparsity",
         frozenset({"pattern", "acc_dense", "acc_finetuned", "drop_pts"}), ("prunable_weights",),
         method=None, fixed_method=WALL_CLOCK, symbols={"prunable_weights": None}),
)}


def _values(series: pd.Series, limit: int = 50) -> tuple:
    vals = []
    for v in series.dropna().unique()[:limit]:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        vals.append(v.item() if hasattr(v, "item") else v)
    return tuple(sorted(vals, key=lambda x: (str(type(x)), x)))


def short_device(name: str) -> str:
    """ "NVIDIA H100 80GB HBM3" -> "H100 80GB HBM3"; "CPU: Intel Xeon" -> "CPU"."""
    name = str(name or "").strip()
    if name.lower().startswith("cpu"):
        return "CPU"
    return name.replace("NVIDIA ", "") or "unknown device"


@dataclass(frozen=True)
class Reference:
    """One committed run: where it is, what kind, and what and how it measured."""

    kind: str
    path: Path
    name: str                      # path relative to the results folder
    device_name: str
    dims: tuple[tuple[str, tuple], ...]
    dtypes: tuple[str, ...]
    methods: tuple[str, ...]
    date: str
    rows: int

    @property
    def shape(self) -> dict[str, tuple]:
        return dict(self.dims)

    @property
    def label(self) -> str:
        """"H100 80GB HBM3, 2026-11-22" (device and the run's date)."""
        date = self.date[:10] if self.date else "undated"
        return f"{short_device(self.device_name)}, {date}"

    @property
    def description(self) -> str:
        """"benchmarks/results/<file>, measured on <device> (<date>, N rows)": whose rows they are."""
        return (f"benchmarks/results/{self.name}, measured on {self.device_name or 'unknown device'} "
                f"({self.date or 'undated'}, {self.rows} rows)")

    def frame(self) -> pd.DataFrame:
        """The rows, typed by the kind's schema when it has one (engine/bench/schema.py)."""
        text = self.path.read_text(encoding="utf-8")
        if self.kind in SCHEMAS:
            return read_rows_csv(text, SCHEMAS[self.kind])
        return pd.read_csv(io.StringIO(text))

    def records(self) -> list[dict]:
        """The rows as dicts, empty cells as None."""
        frame = self.frame()
        return frame.astype(object).where(frame.notna(), None).to_dict("records")


@lru_cache(maxsize=4096)
def _run_date(text: str) -> str:
    stamp = pd.to_datetime(text.split(" (")[0], errors="coerce", utc=True)
    return "" if pd.isna(stamp) else stamp.strftime("%Y-%m-%d %H:%M")


def run_date(text) -> str:
    """A run's date as "YYYY-MM-DD HH:MM" (UTC when the text says), "" when unreadable; the
    CSVs write "2026-11-30T09:40:53+00:00", "2026-11-30 12:46 UTC", "2026-11-22T06:34Z"."""
    text = str(text or "").strip().replace(" UTC", "+00:00")
    return _run_date(text) if text else ""


def _device_txt(folder: Path) -> tuple[str, str]:
    """(date, device) from a device.txt beside the CSV: its first line is the date, the
    second starts with the GPU's name (as nvidia-smi prints it)."""
    for path in (folder / "device.txt", *sorted(folder.glob("*device.txt"))):
        try:
            lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        except OSError:
            continue
        if lines:
            date = run_date(lines[0].split(" ")[0])
            dev = lines[1 if date else 0].split(",")[0] if len(lines) > (1 if date else 0) else ""
            return date, dev
    return "", ""


def kind_of(header: list[str], first_row: dict) -> Kind | None:
    """The kind a CSV's header (and its first row's "sweep") shows; None for none."""
    cols = set(header)
    best = None
    for kind in KINDS.values():
        if not kind.marker <= cols or kind.absent & cols:
            continue
        if kind.sweep is not None and first_row.get("sweep") != kind.sweep:
            continue
        if best is None or len(kind.marker) > len(best.marker):
            best = kind
    return best


def read_reference(path: Path, root: Path) -> Reference | None:
    """The Reference for one CSV, or None when it is of no known kind (or unreadable)."""
    try:
        if path.stat().st_size > MAX_REFERENCE_BYTES:
            return None
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            first = next(reader, {}) or {}
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    kind = kind_of(header, first)
    if kind is None:
        return None
    try:
        frame = pd.read_csv(path, low_memory=False)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    txt_date, txt_device = _device_txt(path.parent)
    return describe(kind, frame, path=path, name=path.relative_to(root).as_posix(), device_name=txt_device,
                    date=txt_date)


def describe(kind: Kind, frame: pd.DataFrame, path: Path | None = None, name: str = "", device_name: str = "",
             date: str = "") -> Reference:
    """What the rows ``frame`` of ``kind`` measured (device, shapes, dtypes, timing method,
    date) as a Reference, read from its own columns; ``device_name`` / ``date`` when the
    rows name none. /runs describes a stored run (or part of one) this way to compare it."""
    device = next((str(v) for c in kind.device if c in frame for v in frame[c].dropna()[:1]), "") or device_name
    when = next((d for c in kind.date if c in frame
                 for d in [max((run_date(v) for v in frame[c].dropna().unique()), default="")] if d), "")
    methods = (tuple(sorted({normalise_method(m) for m in frame[kind.method].dropna()} - {""}))
               if kind.method and kind.method in frame else ())
    return Reference(kind=kind.name, path=path or Path(name or "."), name=name, device_name=device,
                     dims=tuple((d, _values(frame[d])) for d in kind.dims if d in frame),
                     dtypes=tuple(sorted(str(v) for v in frame["dtype"].dropna().unique())) if "dtype" in frame else (),
                     methods=methods or ((kind.fixed_method,) if kind.fixed_method else ()),
                     date=when or date, rows=len(frame))


def folder_signature(root: Path) -> tuple:
    """What the cache of one folder depends on: the path, size and change time of every CSV
    and of every ``device.txt`` (device names and dates in labels come from it)."""
    if not root.is_dir():
        return ()
    out = []
    for p in sorted([*root.rglob("*.csv"), *root.rglob("device.txt")]):
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((str(p), st.st_size, st.st_mtime_ns))
    return tuple(out)


@lru_cache(maxsize=8)
def _registry(root: str, signature: tuple) -> tuple[Reference, ...]:
    base = Path(root)
    refs = [read_reference(Path(p), base) for p, _s, _m in signature]
    return tuple(r for r in refs if r is not None)


def registry(root: Path | None = None) -> tuple[Reference, ...]:
    """Every committed run of a known kind under the results folder, each once."""
    base = Path(root) if root is not None else results_dir()
    return _registry(str(base), folder_signature(base))


def references(kind: str | None = None, root: Path | None = None) -> list[Reference]:
    """The runs of one kind (all kinds with None), newest first by their own date."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    refs = [r for r in registry(root) if kind is None or r.kind == kind]
    return sorted(refs, key=lambda r: (r.date, r.name), reverse=True)


def newest(kind: str, root: Path | None = None) -> Reference | None:
    """The newest committed run of ``kind`` by its own date, None when there is none."""
    refs = references(kind, root)
    return refs[0] if refs else None


def find(name: str, kind: str | None = None, root: Path | None = None) -> Reference:
    """The listed run called ``name`` (its path relative to the results folder, or the
    absolute path of a listed file); ValueError for anything not listed."""
    for ref in references(kind, root):
        if name in (ref.name, str(ref.path)):
            return ref
    where = f"a committed {kind} run" if kind else "a committed run"
    raise ValueError(f"reference: expected {where} under {root or results_dir()}, got {name!r}")


def _fmt(values) -> str:
    vals = list(values)
    text = ", ".join(str(v) for v in vals[:3])
    return text + (", ..." if len(vals) > 3 else "")


def _dims_text(kind: Kind, dims: dict, keys) -> str:
    parts = []
    for d in keys:
        if d not in dims or kind.symbols.get(d, d) is None:
            continue
        vals = dims[d] if isinstance(dims[d], (tuple, list, set)) else (dims[d],)
        parts.append(f"{kind.symbols.get(d, d)} = {_fmt(vals)}")
    return ", ".join(parts)


def local_device_label(device_name: str) -> str:
    """How the device a page runs on is named beside a reference: "this CPU", "this H200"."""
    return "this " + short_device(device_name) if device_name else "this device"


@dataclass(frozen=True)
class Match:
    """A reference and where it differs from the local spec (empty when like for like)."""

    reference: Reference
    mismatches: tuple[str, ...]    # "device", dim names, "dtype", "method"
    local: dict

    @property
    def same(self) -> bool:
        return not self.mismatches

    def _sides(self) -> tuple[str, str]:
        kind = KINDS.get(self.reference.kind)
        ref, loc = self.reference, self.local
        dims = [m for m in self.mismatches if kind and m in kind.dims]
        device = loc.get("device_name", "")
        left, right = [short_device(ref.device_name)], [loc.get("name") or local_device_label(device)]
        if "device" in self.mismatches and short_device(ref.device_name) == short_device(device):
            # two CPU models (both short to "CPU"): named in full
            left, right = [str(ref.device_name)], [device if loc.get("name") else f"this {device}"]
        if dims:
            left.append(_dims_text(kind, ref.shape, dims))
            right.append(_dims_text(kind, loc.get("dims", {}), dims))
        if "dtype" in self.mismatches:
            left.append(_fmt(ref.dtypes))
            right.append(str(loc.get("dtype")))
        if "method" in self.mismatches:
            left.append(_fmt(ref.methods) or "method not recorded")
            right.append(str(loc.get("method")))
        return ", ".join(p for p in left if p), ", ".join(p for p in right if p)

    @property
    def reference_text(self) -> str:
        """The reference's side: "H100 80GB HBM3, n = 8192"."""
        return self._sides()[0]

    @property
    def local_text(self) -> str:
        """The local side: "this CPU, n = 512"."""
        return self._sides()[1]

    @property
    def label(self) -> str:
        """"H100 80GB HBM3, n = 8192 · this CPU, n = 512" (what differs, both sides);
        for a like-for-like run "same device, shape, dtype and method"."""
        if self.same:
            return f"{short_device(self.reference.device_name)}: same device, shape, dtype and method"
        left, right = self._sides()
        return f"{left} · {right}"

    @property
    def unlike_text(self) -> str:
        """The note's sentence for a mismatched pair (no final stop): "Not like for like:
        H100 80GB HBM3, n = 8192 · this CPU, n = 512. Compare the shapes of the curves, not
        their values"."""
        return f"Not like for like: {self.label}. Compare the shapes of the curves, not their values"


def same_device(a, b) -> bool:
    """Whether two device names name the same device: the same GPU model, or the same CPU
    model ("CPU: AMD EPYC" and "CPU: Intel Xeon" are two devices, though both short to "CPU")."""
    if short_device(a) != short_device(b):
        return False
    return short_device(a) != "CPU" or str(a).strip().lower() == str(b).strip().lower()


def compare(ref: Reference, device_name: str | None = None, dims: dict | None = None,
            dtype: str | None = None, method: str | None = None, local_name: str | None = None) -> Match:
    """Where ``ref`` differs from a local spec (each of device, dims, dtype, method given).

    ``local_name``: how labels name the local side's device (default "this CPU", ...);
    /runs compares two stored runs and names the second by its device, not "this"."""
    miss = []
    if device_name is not None and not same_device(device_name, ref.device_name):
        miss.append("device")
    shape = ref.shape
    for d, v in (dims or {}).items():
        want = set(v) if isinstance(v, (tuple, list, set)) else {v}
        if d in shape and not want & set(shape[d]):
            miss.append(d)
    if dtype is not None and ref.dtypes and dtype not in ref.dtypes:
        miss.append("dtype")
    if method is not None and normalise_method(method) not in ref.methods:
        miss.append("method")
    return Match(ref, tuple(miss), {"device_name": device_name or "", "dims": dict(dims or {}),
                                    "dtype": dtype, "method": method, "name": local_name})


def comparable(kind: str, device_name: str | None = None, dims: dict | None = None, dtype: str | None = None,
               method: str | None = None, root: Path | None = None) -> list[Match]:
    """Every reference of ``kind`` with its mismatches against the local spec: like-for-like
    ones first, then by fewest mismatches, then newest."""
    matches = [compare(r, device_name, dims, dtype, method) for r in references(kind, root)]
    order = {id(m): i for i, m in enumerate(matches)}  # references() is newest first already
    return sorted(matches, key=lambda m: (len(m.mismatches), order[id(m)]))


def parse_float_list(what: str, text: str, lo: float, hi: float, max_items: int = 30) -> tuple[float, ...]:
    """"0.5, 0.9 0.99" -> (0.5, 0.9, 0.99); ValueError "what: expected ... got ..." otherwise."""
    if text is None or not str(text).strip():
        raise ValueError(f"{what}: expected a list of numbers in [{lo}, {hi}], got nothing")
    parts = [p for p in str(text).replace(",", " ").replace(";", " ").split() if p]
    if len(parts) > max_items:
        raise ValueError(f"{what}: expected at most {max_items} values, got {len(parts)}")
    values = []
    for p in parts:
        try:
            v = float(p.rstrip("%")) / (100.0 if p.endswith("%") else 1.0)
        except ValueError:
            raise ValueError(f"{what}: expected numbers in [{lo}, {hi}], got {p!r}") from None
        values.append(check_float(what, v, lo=lo, hi=hi))
    return tuple(sorted(set(values)))
