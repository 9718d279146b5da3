"""A user's own matrix: load and validate it, store it by content hash, describe its structure.

    loaded = load_matrix_bytes("bcsstk01.mtx", data)        # or load_matrix_file(path)
    loaded.matrix                                           # scipy.sparse.csr_array, float64
    info = store_matrix(loaded)                             # {"hash", "name", "facts", ...}
    A = load_stored(info["hash"])
    fill_in_table(A)                                        # BSR fill-in, as stored and after RCM

Formats: Matrix Market ``.mtx`` (scipy.io.mmread: coordinate or array; real, integer
or pattern; general, symmetric or skew-symmetric), ``.npz`` from
scipy.sparse.save_npz (np.load with allow_pickle=False), ``.npy`` (allow_pickle=False)
and ``.safetensors`` (a 2-D tensor chosen by name). Nothing is ever unpickled.

Every file is judged from its header first (shape, entry count, dtype), so a matrix
over the memory budget (engine.validate.check_budget, $SPARSITY_LAB_MEMORY_BUDGET_MB)
is refused before anything large is allocated. Refusals raise ValueError reading
"expected ... got ..."; nothing is stored on a refusal.

Explicitly stored zeros are dropped (they are not non-zeros), duplicates summed, and
pattern matrices get value 1. The content hash is taken over the canonical CSR form
(shape, row pointers, column indices, float64 values), so the same matrix read from
an .mtx or an .npz has the same hash on every machine.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import struct
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee

from engine.validate import check_budget, check_choice, check_int

SUFFIXES = (".mtx", ".npz", ".npy", ".safetensors")
BLOCK_SIZES = (16, 32, 64, 128)
SPY_CELLS = 512          # the spy plot is drawn from at most SPY_CELLS x SPY_CELLS cells
MAX_DIM = 2**31 - 1      # scipy's int32 index range; larger is refused from the header
# Bytes one stored entry costs while loading (row + col int64, value float64, and the
# COO -> CSR copy); dense entries cost 8 (float64) plus the boolean non-zero mask.
ENTRY_LOAD_BYTES = 48
DENSE_LOAD_BYTES = 17
# safetensors dtype -> numpy-readable or not; BF16 goes through torch.
SAFETENSORS_DTYPES = ("F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8")


@dataclass
class LoadedMatrix:
    """A validated matrix: canonical CSR float64 plus where it came from."""

    name: str
    source_format: str
    matrix: sp.csr_array
    source_dtype: str
    tensor: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def content_hash(self) -> str:
        return content_hash(self.matrix)


# -- header checks ---------------------------------------------------------------
def _fail(what: str, expected: str, got: Any) -> ValueError:
    return ValueError(f"{what}: expected {expected}, got {got}")


def _check_shape(what: str, shape: tuple) -> tuple[int, int]:
    if len(shape) != 2:
        raise _fail(what, "a 2-D matrix", f"{len(shape)} dimensions (shape {tuple(shape)})")
    m, n = (int(v) for v in shape)
    if m < 1 or n < 1 or m > MAX_DIM or n > MAX_DIM:
        raise _fail(what, f"each dimension in [1, {MAX_DIM}]", f"shape {m} x {n}")
    return m, n


def _budget_sparse(what: str, m: int, n: int, entries: int) -> None:
    check_budget(f"{what} ({m} x {n}, {entries} stored entries)",
                 entries * ENTRY_LOAD_BYTES + (m + 1) * 8 * 2)


def _budget_dense(what: str, m: int, n: int, itemsize: int) -> None:
    check_budget(f"{what} ({m} x {n} dense)", m * n * (itemsize + DENSE_LOAD_BYTES))


MM_FORMATS = ("coordinate", "array")
MM_FIELDS = ("real", "integer", "pattern")
MM_SYMMETRY = ("general", "symmetric", "skew-symmetric")


def mtx_header(data: bytes) -> dict:
    """Parse a Matrix Market banner and size line without reading the entries.

    Returns {"format", "field", "symmetry", "rows", "cols", "entries"} where
    entries is the number of stored entries the file claims (M*N for array).
    """
    stream = io.BytesIO(data)
    banner = stream.readline(1024).decode("latin-1").strip()
    parts = banner.split()
    if len(parts) != 5 or parts[0].lower() != "%%matrixmarket" or parts[1].lower() != "matrix":
        raise _fail("Matrix Market header", "a first line like '%%MatrixMarket matrix coordinate "
                    "real general'", repr(banner[:80]))
    fmt, fld, sym = (p.lower() for p in parts[2:])
    check_choice("Matrix Market format", fmt, MM_FORMATS)
    if fld == "complex":
        raise _fail("Matrix Market field (dtype)", "one of real, integer, pattern", "complex")
    check_choice("Matrix Market field (dtype)", fld, MM_FIELDS)
    if sym == "hermitian":
        raise _fail("Matrix Market symmetry", "one of " + ", ".join(MM_SYMMETRY), "hermitian")
    check_choice("Matrix Market symmetry", sym, MM_SYMMETRY)
    if fmt == "array" and fld == "pattern":
        raise _fail("Matrix Market header", "a real or integer field for the array format", "pattern")
    size_line = ""
    for _ in range(100000):  # comments may come before the size line
        raw = stream.readline(4096)
        if not raw:
            break
        line = raw.decode("latin-1").strip()
        if line and not line.startswith("%"):
            size_line = line
            break
    want = 3 if fmt == "coordinate" else 2
    fields = size_line.split()
    if len(fields) != want or not all(f.isdigit() for f in fields):
        raise _fail("Matrix Market size line", f"{want} non-negative integers "
                    f"({'rows cols entries' if want == 3 else 'rows cols'})", repr(size_line[:80]))
    m, n = _check_shape("Matrix Market size", (int(fields[0]), int(fields[1])))
    entries = int(fields[2]) if fmt == "coordinate" else m * n
    if fmt == "coordinate" and entries > m * n:
        raise _fail("Matrix Market entries", f"at most rows x cols = {m * n}", entries)
    return {"format": fmt, "field": fld, "symmetry": sym, "rows": m, "cols": n, "entries": entries,
            "body_offset": stream.tell()}


def _npy_header(stream) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of an .npy stream from its header, the data left unread."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    except ValueError as exc:
        raise _fail(".npy header", "a NumPy array header (np.save)", str(exc)[:120]) from None
    return tuple(shape), np.dtype(dtype)


def _check_numeric(what: str, dtype: np.dtype) -> None:
    if dtype.hasobject or dtype.kind not in "fiub":
        raise _fail(f"{what} dtype", "a real number type (float, int, uint or bool)",
                    f"{dtype} (objects are never unpickled)" if dtype.hasobject else str(dtype))


def npy_header(data: bytes) -> dict:
    shape, dtype = _npy_header(io.BytesIO(data))
    _check_numeric(".npy", dtype)
    m, n = _check_shape(".npy shape", shape)
    return {"rows": m, "cols": n, "dtype": str(dtype), "itemsize": dtype.itemsize}


def npz_header(data: bytes) -> dict:
    """Shape, format and stored-entry count of a scipy.sparse.save_npz file, from headers."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise _fail(".npz", "a zip archive written by scipy.sparse.save_npz", "not a zip file") from None
    names = set(zf.namelist())
    if "format.npy" not in names or "shape.npy" not in names:
        raise _fail(".npz members", "format.npy and shape.npy (scipy.sparse.save_npz)",
                    ", ".join(sorted(names)[:8]) or "none")
    headers = {}
    for member in names:
        with zf.open(member) as fh:
            headers[member] = _npy_header(fh)
    for member, (_shape, dtype) in headers.items():
        if dtype.hasobject:
            raise _fail(f".npz member {member} dtype", "a numeric array", "objects (never unpickled)")
    with zf.open("shape.npy") as fh:
        shape_arr = np.load(fh, allow_pickle=False)
    with zf.open("format.npy") as fh:
        fmt = np.load(fh, allow_pickle=False).item()
    fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    check_choice(".npz sparse format", fmt, ("csr", "csc", "coo", "bsr", "dia"))
    m, n = _check_shape(".npz shape", tuple(int(v) for v in np.ravel(shape_arr)))
    if "data.npy" not in headers:
        raise _fail(".npz members", "data.npy", "none")
    data_shape, data_dtype = headers["data.npy"]
    _check_numeric(".npz data", data_dtype)
    entries = int(np.prod(data_shape)) if data_shape else 0
    return {"rows": m, "cols": n, "format": fmt, "entries": entries, "dtype": str(data_dtype)}


def safetensors_header(data: bytes) -> dict:
    """The tensors of a .safetensors file {name: {"dtype", "shape"}}, from its JSON header."""
    if len(data) < 8:
        raise _fail(".safetensors header", "an 8-byte length then a JSON header", f"{len(data)} bytes")
    (length,) = struct.unpack("<Q", data[:8])
    if length < 2 or 8 + length > len(data) or length > 100 * 2**20:
        raise _fail(".safetensors header length", f"at most the file size ({len(data) - 8} bytes)", length)
    try:
        header = json.loads(data[8:8 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(".safetensors header", "JSON", f"{type(exc).__name__}") from None
    if not isinstance(header, dict):
        raise _fail(".safetensors header", "a JSON object", type(header).__name__)
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(meta, dict) or "dtype" not in meta or "shape" not in meta:
            raise _fail(f".safetensors tensor {name!r}", "dtype and shape", repr(meta)[:80])
        out[name] = {"dtype": str(meta["dtype"]), "shape": [int(v) for v in meta["shape"]]}
    if not out:
        raise _fail(".safetensors", "at least one tensor", "none")
    return out


def safetensors_choices(data: bytes) -> list[dict]:
    """Every tensor with whether it can be loaded: {"name", "dtype", "shape", "reason"}."""
    out = []
    for name, meta in safetensors_header(data).items():
        reason = None
        if len(meta["shape"]) != 2:
            reason = f"expected 2 dimensions, got {len(meta['shape'])}"
        elif meta["dtype"] not in SAFETENSORS_DTYPES:
            reason = f"expected a dtype in {', '.join(SAFETENSORS_DTYPES)}, got {meta['dtype']}"
        out.append({"name": name, **meta, "reason": reason})
    return out


# -- loading ---------------------------------------------------------------------
def suffix_of(name: str) -> str:
    suffix = Path(str(name)).suffix.lower()
    if suffix not in SUFFIXES:
        raise _fail("file type", "one of " + ", ".join(SUFFIXES), repr(suffix or name))
    return suffix


def _check_finite(what: str, values: np.ndarray) -> None:
    if values.size and not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise _fail(f"{what} values", "finite numbers", f"{bad} NaN or inf entries")


def _canonical(a, what: str) -> sp.csr_array:
    csr = sp.csr_array(a, dtype=np.float64)
    csr.sum_duplicates()
    _check_finite(what, csr.data)
    csr.eliminate_zeros()
    csr.sort_indices()
    csr.indptr = csr.indptr.astype(np.int64)
    csr.indices = csr.indices.astype(np.int64)
    return csr


def _from_dense(arr: np.ndarray, what: str) -> sp.csr_array:
    if arr.ndim != 2:
        raise _fail(what, "a 2-D matrix", f"{arr.ndim} dimensions")
    if arr.dtype.kind == "f":
        _check_finite(what, arr)
    return _canonical(sp.csr_array(arr.astype(np.float64, copy=False)), what)


def load_mtx(data: bytes, name: str = "matrix.mtx") -> LoadedMatrix:
    head = mtx_header(data)
    m, n, entries = head["rows"], head["cols"], head["entries"]
    if head["format"] == "array":
        _budget_dense("Matrix Market array", m, n, 8)
    else:
        stored = entries * (2 if head["symmetry"] != "general" else 1)
        _budget_sparse("Matrix Market coordinate", m, n, stored)
    try:
        raw = scipy.io.mmread(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - any parse failure is a malformed file
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail("Matrix Market body", f"{entries} entries as the header says", text[:160]) from None
    if sp.issparse(raw):
        matrix = _canonical(raw, "Matrix Market")
    else:
        matrix = _from_dense(np.asarray(raw), "Matrix Market")
    if matrix.shape != (m, n):
        raise _fail("Matrix Market shape", f"{m} x {n} as in the header", f"{matrix.shape}")
    return LoadedMatrix(name, "mtx", matrix, f"{head['field']} {head['symmetry']} {head['format']}")


def load_npy(data: bytes, name: str = "matrix.npy") -> LoadedMatrix:
    head = npy_header(data)
    _budget_dense(".npy", head["rows"], head["cols"], head["itemsize"])
    arr = np.load(io.BytesIO(data), allow_pickle=False)
    return LoadedMatrix(name, "npy", _from_dense(arr, ".npy"), head["dtype"])


def load_npz(data: bytes, name: str = "matrix.npz") -> LoadedMatrix:
    head = npz_header(data)
    m, n = head["rows"], head["cols"]
    if head["format"] in ("bsr", "dia"):  # data holds whole blocks / diagonals
        _budget_dense(f".npz ({head['format']})", 1, head["entries"], 8)
    _budget_sparse(".npz", m, n, head["entries"])
    try:
        raw = sp.load_npz(io.BytesIO(data))  # np.load(..., allow_pickle=False) inside
    except Exception as exc:  # noqa: BLE001
        raise _fail(".npz body", "arrays as written by scipy.sparse.save_npz",
                    f"{type(exc).__name__}: {str(exc)[:120]}") from None
    return LoadedMatrix(name, "npz", _canonical(raw, ".npz"), head["dtype"])


def load_safetensors(data: bytes, name: str = "weights.safetensors",
                     tensor: str | None = None) -> LoadedMatrix:
    choices = safetensors_choices(data)
    usable = [c for c in choices if c["reason"] is None]
    if tensor is None:
        if not usable:
            raise _fail(".safetensors", "a 2-D tensor of a number dtype",
                        "; ".join(f"{c['name']}: {c['reason']}" for c in choices[:5]))
        chosen = usable[0]
    else:
        by_name = {c["name"]: c for c in choices}
        if tensor not in by_name:
            raise _fail(".safetensors tensor", "one of " + ", ".join(list(by_name)[:20]), repr(tensor))
        chosen = by_name[tensor]
        if chosen["reason"]:
            raise _fail(f".safetensors tensor {tensor!r}", chosen["reason"].split(", got")[0]
                        .removeprefix("expected "), chosen["reason"].split(", got ")[-1])
    m, n = _check_shape(f".safetensors tensor {chosen['name']!r}", tuple(chosen["shape"]))
    _budget_dense(f".safetensors tensor {chosen['name']!r}", m, n, 8)
    from safetensors import safe_open

    with tempfile.NamedTemporaryFile(suffix=".safetensors") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            with safe_open(tmp.name, framework="pt") as fh:
                t = fh.get_tensor(chosen["name"])
        except Exception as exc:  # noqa: BLE001
            raise _fail(".safetensors body", "tensor bytes matching the header",
                        f"{type(exc).__name__}: {str(exc)[:120]}") from None
    arr = t.double().numpy() if t.is_floating_point() else t.numpy()
    loaded = LoadedMatrix(name, "safetensors", _from_dense(arr, f"tensor {chosen['name']!r}"),
                          chosen["dtype"], tensor=chosen["name"])
    if len(choices) > 1:
        loaded.notes.append(f"tensor {chosen['name']!r} of {len(choices)} in the file")
    return loaded


def load_matrix_bytes(name: str, data: bytes, tensor: str | None = None) -> LoadedMatrix:
    """Validate and load ``data`` (a file's bytes); the format comes from ``name``'s suffix."""
    suffix = suffix_of(name)
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise _fail("file", "a non-empty file", f"{len(data or b'')} bytes")
    base = Path(str(name)).name
    if suffix == ".mtx":
        return load_mtx(bytes(data), base)
    if suffix == ".npy":
        return load_npy(bytes(data), base)
    if suffix == ".npz":
        return load_npz(bytes(data), base)
    return load_safetensors(bytes(data), base, tensor)


def max_upload_bytes() -> int:
    """Largest file the page accepts: the memory budget, at most 256 MB."""
    from engine.validate import memory_budget_bytes

    return int(min(memory_budget_bytes(), 256 * 2**20))


def check_file_size(what: str, nbytes: int) -> int:
    limit = max_upload_bytes()
    if nbytes > limit:
        raise _fail(what, f"a file of at most {limit / 2**20:.0f} MB", f"{nbytes / 2**20:.1f} MB")
    return int(nbytes)


def load_matrix_file(path: str | os.PathLike, tensor: str | None = None) -> LoadedMatrix:
    """Load a file from disk (the CLI); size checked before reading it."""
    p = Path(path)
    suffix_of(p.name)
    if not p.is_file():
        raise _fail("matrix file", "an existing file", str(p))
    check_budget(f"matrix file {p.name}", p.stat().st_size)
    return load_matrix_bytes(p.name, p.read_bytes(), tensor)


# -- facts and structure -----------------------------------------------------------
def content_hash(a: sp.csr_array) -> str:
    """sha256 over shape, indptr, indices (int64) and values (float64) of canonical CSR."""
    h = hashlib.sha256()
    h.update(np.asarray(a.shape, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(a.indptr, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(a.indices, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(a.data, dtype=np.float64).tobytes())
    return h.hexdigest()


def _row_col(a: sp.csr_array) -> tuple[np.ndarray, np.ndarray]:
    rows = np.repeat(np.arange(a.shape[0], dtype=np.int64), np.diff(a.indptr))
    return rows, a.indices.astype(np.int64, copy=False)


def is_symmetric(a: sp.csr_array) -> bool:
    if a.shape[0] != a.shape[1]:
        return False
    diff = (a - a.T.tocsr())
    return diff.count_nonzero() == 0


def facts(a: sp.csr_array) -> dict:
    """Shape, nnz, density, row-length statistics, bandwidth, symmetry (JSON-able)."""
    m, n = a.shape
    lengths = np.diff(a.indptr)
    rows, cols = _row_col(a)
    offsets = cols - rows
    nnz = int(a.nnz)
    return {
        "rows": int(m), "cols": int(n), "nnz": nnz, "density": nnz / (m * n),
        "row_nnz_min": int(lengths.min()), "row_nnz_mean": float(lengths.mean()),
        "row_nnz_max": int(lengths.max()), "row_nnz_std": float(lengths.std()),
        "empty_rows": int((lengths == 0).sum()),
        "bandwidth": int(np.abs(offsets).max()) if nnz else 0,
        "lower_bandwidth": int(max(0, -offsets.min())) if nnz else 0,
        "upper_bandwidth": int(max(0, offsets.max())) if nnz else 0,
        "symmetric": bool(is_symmetric(a)),
    }


FACT_LABELS = {
    "rows": "rows", "cols": "columns", "nnz": "non-zeros", "density": "density (nnz / (rows x cols))",
    "row_nnz_min": "non-zeros per row: min", "row_nnz_mean": "non-zeros per row: mean",
    "row_nnz_max": "non-zeros per row: max", "row_nnz_std": "non-zeros per row: std",
    "empty_rows": "empty rows", "bandwidth": "bandwidth max |i - j|",
    "lower_bandwidth": "lower bandwidth", "upper_bandwidth": "upper bandwidth",
    "symmetric": "symmetric (A = A^T exactly)",
}


def spy_cells(a: sp.csr_array, cells: int = SPY_CELLS) -> dict:
    """Density per cell on a grid of at most ``cells`` x ``cells`` (each cell a rectangle
    of rows x cols entries): {"density": (gr, gc) float array, "row_edges", "col_edges"}."""
    cells = check_int("spy cells", cells, lo=1, hi=4096)
    m, n = a.shape
    gr, gc = min(cells, m), min(cells, n)
    rows, cols = _row_col(a)
    ri = rows * gr // m
    ci = cols * gc // n
    counts = np.bincount(ri * gc + ci, minlength=gr * gc).reshape(gr, gc).astype(np.float64)
    row_edges = (np.arange(gr + 1) * m + gr - 1) // gr   # first row of each cell, then m
    col_edges = (np.arange(gc + 1) * n + gc - 1) // gc
    area = np.diff(row_edges)[:, None] * np.diff(col_edges)[None, :]
    return {"density": counts / np.maximum(area, 1), "row_edges": row_edges, "col_edges": col_edges}


def row_length_histogram(a: sp.csr_array, bins: int = 40) -> dict:
    """Histogram of non-zeros per row: {"edges", "counts"} (integer-aligned bins)."""
    lengths = np.diff(a.indptr)
    hi = int(lengths.max()) if lengths.size else 0
    width = max(1, math.ceil((hi + 1) / bins))
    edges = np.arange(0, hi + width + 1, width)
    counts, edges = np.histogram(lengths, bins=edges)
    return {"edges": edges, "counts": counts}


def bandwidth_profile(a: sp.csr_array, bins: int = SPY_CELLS) -> dict:
    """Per group of rows (at most ``bins`` groups): the farthest non-zero left and right of
    the diagonal (column - row), in entries: {"row_start", "lower", "upper"}."""
    m = a.shape[0]
    g = min(bins, m)
    rows, cols = _row_col(a)
    off = cols - rows
    group = rows * g // m
    lower = np.zeros(g, dtype=np.int64)
    upper = np.zeros(g, dtype=np.int64)
    if a.nnz:
        np.maximum.at(lower, group, np.maximum(-off, 0))
        np.maximum.at(upper, group, np.maximum(off, 0))
    starts = (np.arange(g) * m + g - 1) // g
    return {"row_start": starts, "lower": lower, "upper": upper}


def rcm_permutation(a: sp.csr_array) -> tuple[np.ndarray, np.ndarray]:
    """Reverse Cuthill-McKee orders (row_order, col_order).

    Square: one order from the symmetrised pattern A + A^T, applied to rows and columns
    (P A P^T, so a symmetric matrix stays symmetric). Rectangular: the order of the
    bipartite graph [[0, A], [A^T, 0]], split into a row order and a column order.
    """
    m, n = a.shape
    pattern = sp.csr_array((np.ones(a.nnz), a.indices, a.indptr), shape=a.shape)
    if m == n:
        sym = (pattern + pattern.T).tocsr()
        perm = np.asarray(reverse_cuthill_mckee(sp.csr_matrix(sym), symmetric_mode=True), dtype=np.int64)
        return perm, perm
    big = sp.bmat([[None, pattern], [pattern.T, None]], format="csr")
    perm = np.asarray(reverse_cuthill_mckee(sp.csr_matrix(big), symmetric_mode=True), dtype=np.int64)
    return perm[perm < m], perm[perm >= m] - m


def permute(a: sp.csr_array, row_order: np.ndarray, col_order: np.ndarray) -> sp.csr_array:
    """B[i, j] = A[row_order[i], col_order[j]] (canonical CSR)."""
    b = a[row_order][:, col_order]
    return _canonical(b, "reordered")


def reordered(a: sp.csr_array) -> sp.csr_array:
    """A after reverse Cuthill-McKee (see :func:`rcm_permutation`)."""
    r, c = rcm_permutation(a)
    return permute(a, r, c)


def bsr_tiles(a: sp.csr_array, block: int) -> int:
    """Number of distinct (block x block) tiles holding at least one non-zero (the shape
    padded up to a multiple of ``block``)."""
    block = check_int("block", block, lo=1, hi=4096)
    rows, cols = _row_col(a)
    nbc = -(-a.shape[1] // block)
    return int(np.unique((rows // block) * nbc + cols // block).size)


def fill_in(a: sp.csr_array, block: int) -> float:
    """Exact BSR fill-in: stored zeros per non-zero = (tiles * block^2 - nnz) / nnz."""
    if a.nnz == 0:
        return float("nan")
    return (bsr_tiles(a, block) * block * block - a.nnz) / a.nnz


def fill_in_table(a: sp.csr_array, blocks=BLOCK_SIZES, reordered_matrix: sp.csr_array | None = None) -> list[dict]:
    """One row per block size: tiles and fill-in as stored and after RCM reordering."""
    b = reordered_matrix if reordered_matrix is not None else reordered(a)
    m, n = a.shape
    out = []
    for block in blocks:
        t0, t1 = bsr_tiles(a, block), bsr_tiles(b, block)
        out.append({
            "block": int(block),
            "divides shape": bool(m % block == 0 and n % block == 0),
            "tiles": t0, "fill-in (zeros per nnz)": fill_in(a, block),
            "tiles after RCM": t1, "fill-in after RCM": fill_in(b, block),
        })
    return out


# -- writing -----------------------------------------------------------------------
def to_mtx_bytes(a: sp.csr_array, comment: str = "") -> bytes:
    """The matrix as Matrix Market coordinate real general text."""
    buf = io.BytesIO()
    scipy.io.mmwrite(buf, sp.coo_matrix(a), comment=comment, field="real", symmetry="general")
    return buf.getvalue()


# -- storage by content hash ---------------------------------------------------------
def matrix_dir() -> Path:
    from engine.runtime.store import cache_dir

    path = cache_dir() / "matrices"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_hash(h: Any) -> str:
    if not isinstance(h, str) or len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
        raise _fail("matrix hash", "64 hex digits (sha256)", repr(h)[:80])
    return h


def store_matrix(loaded: LoadedMatrix, folder: Path | None = None) -> dict:
    """Store once by content hash (matrix as .npz, facts as .json); returns the info dict.
    A matrix already stored keeps its first record (its name is added to ``names``)."""
    folder = folder or matrix_dir()
    h = loaded.content_hash
    meta_path = folder / f"{h}.json"
    if meta_path.exists():
        info = json.loads(meta_path.read_text())
        if loaded.name not in info.get("names", []):
            info.setdefault("names", []).append(loaded.name)
            _write_atomic(meta_path, json.dumps(info, indent=1).encode())
        return info
    buf = io.BytesIO()
    sp.save_npz(buf, loaded.matrix, compressed=True)
    _write_atomic(folder / f"{h}.npz", buf.getvalue())
    info = {"hash": h, "name": loaded.name, "names": [loaded.name], "source_format": loaded.source_format,
            "source_dtype": loaded.source_dtype, "tensor": loaded.tensor, "notes": loaded.notes,
            "stored_at": time.strftime("%Y-%m-%d %H:%M:%S"), "facts": facts(loaded.matrix)}
    _write_atomic(meta_path, json.dumps(info, indent=1).encode())
    return info


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def stored_info(h: str, folder: Path | None = None) -> dict:
    path = (folder or matrix_dir()) / f"{_check_hash(h)}.json"
    if not path.exists():
        raise _fail("matrix", "a stored matrix hash", h[:12])
    return json.loads(path.read_text())


def load_stored(h: str, folder: Path | None = None) -> sp.csr_array:
    path = (folder or matrix_dir()) / f"{_check_hash(h)}.npz"
    if not path.exists():
        raise _fail("matrix", "a stored matrix hash", h[:12])
    return sp.csr_array(sp.load_npz(path))


def stored_matrices(folder: Path | None = None) -> list[dict]:
    """Every stored matrix's info, newest first."""
    out = []
    for p in (folder or matrix_dir()).glob("*.json"):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(out, key=lambda i: i.get("stored_at", ""), reverse=True)


# -- everything the page draws, once per matrix ------------------------------------------
def _summary(a: sp.csr_array, b: sp.csr_array) -> dict:
    prof, prof_b = bandwidth_profile(a), bandwidth_profile(b)
    prof.update(upper_rcm=prof_b["upper"], lower_rcm=prof_b["lower"])
    return {"facts": facts(a), "facts_rcm": facts(b), "spy": spy_cells(a), "spy_rcm": spy_cells(b),
            "hist": row_length_histogram(a), "profile": prof,
            "fill": fill_in_table(a, reordered_matrix=b),
            "tiles": {s: bsr_tiles(a, s) for s in BLOCK_SIZES},
            "tiles_rcm": {s: bsr_tiles(b, s) for s in BLOCK_SIZES}}


def _cached_summary():
    from engine.runtime.cache import pure_cache

    @pure_cache
    def structure_summary(h: str) -> dict:
        """Facts, spy cells (as stored and after RCM), row histogram, bandwidth profile and
        fill-in table of the stored matrix ``h`` (content-addressed, so pure in ``h``)."""
        a = load_stored(h)
        return _summary(a, reordered(a))

    return structure_summary


structure_summary = _cached_summary()
