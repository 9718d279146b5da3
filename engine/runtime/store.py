"""Persisted runs: every sweep or training job stores each finished row at once.

A run is a small metadata record plus an ordered list of rows (plain dicts of
JSON-able scalars). Rows are appended one at a time, so a cancelled or crashed job
keeps everything it finished. Storage is a ``diskcache.Cache`` in a folder, safe to
share between the web process and the forked job processes.

    store = RunStore(cache_dir())
    run_id = store.create_run("paradox", params={"n": 1024})
    store.append(run_id, {"sparsity": 0.9, "median_s": 1e-4})
    store.finish(run_id, "done")
    store.frame(run_id)            # -> pandas.DataFrame
"""
from __future__ import annotations

import csv
import io
import math
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

CACHE_ENV = "SPARSITY_LAB_CACHE"
REDIS_URL_ENV = "SPARSITY_LAB_REDIS_URL"
DEFAULT_CACHE = Path(".cache") / "sparsity-lab"
RUN_STATUSES = ("running", "done", "cancelled", "error", "imported", "incomplete", "died")
# Spreadsheet programs run cells that start with these as formulas.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def cache_dir() -> Path:
    """The lab's cache folder: $SPARSITY_LAB_CACHE or ./.cache/sparsity-lab."""
    path = Path(os.environ.get(CACHE_ENV, str(DEFAULT_CACHE)))
    path.mkdir(parents=True, exist_ok=True)
    return path


class RunStore:
    """Runs and their rows in ``<folder>/runs`` (a diskcache).

    ``RunStore()`` with no folder gives the Redis store instead when
    ``SPARSITY_LAB_REDIS_URL`` is set (engine/runtime/store_redis.py), so Celery workers on
    other hosts share the runs.
    """

    def __new__(cls, folder: str | Path | None = None):
        url = os.environ.get(REDIS_URL_ENV)
        if folder is None and url and cls is RunStore:
            from engine.runtime.store_redis import RedisRunStore

            return RedisRunStore(url)
        return super().__new__(cls)

    def __init__(self, folder: str | Path | None = None):
        import diskcache

        root = Path(folder) if folder is not None else cache_dir()
        self.path = root / "runs"
        # Two job processes opening a brand-new cache at once can race in sqlite's
        # set-up ("disk I/O error", "database is locked"); the second try finds it made.
        for attempt in range(20):
            try:
                self._cache = diskcache.Cache(str(self.path))
                break
            except sqlite3.OperationalError:
                if attempt == 19:
                    raise
                time.sleep(0.05 * (attempt + 1))

    # -- writing ---------------------------------------------------------------
    def create_run(self, kind: str, params: dict | None = None, meta: dict | None = None) -> str:
        """Start a run of ``kind`` (a page or sweep name); returns its id."""
        if not kind or not isinstance(kind, str):
            raise ValueError(f"run kind: expected a non-empty string, got {kind!r}")
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        record = {
            "run_id": run_id,
            "kind": kind,
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "status": "running",
            "n_rows": 0,
            "params": dict(params or {}),
            **dict(meta or {}),
        }
        with self._cache.transact():
            self._cache[("meta", run_id)] = record
            ids = self._cache.get("run_ids", [])
            self._cache["run_ids"] = ids + [run_id]
        return run_id

    def append(self, run_id: str, row: dict) -> int:
        """Store one finished row; returns how many rows the run now has."""
        with self._cache.transact():
            record = self._meta(run_id)
            index = record["n_rows"]
            self._cache[("row", run_id, index)] = dict(row)
            record["n_rows"] = index + 1
            self._cache[("meta", run_id)] = record
        return index + 1

    def finish(self, run_id: str, status: str = "done", **extra: Any) -> None:
        if status not in RUN_STATUSES:
            raise ValueError(f"run status: expected one of {RUN_STATUSES}, got {status!r}")
        with self._cache.transact():
            record = self._meta(run_id)
            record["status"] = status
            record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
            record.update(extra)
            self._cache[("meta", run_id)] = record

    def delete(self, run_id: str) -> None:
        with self._cache.transact():
            record = self._meta(run_id)
            for i in range(record["n_rows"]):
                self._cache.delete(("row", run_id, i))
            self._cache.delete(("meta", run_id))
            self._cache["run_ids"] = [r for r in self._cache.get("run_ids", []) if r != run_id]

    # -- reading ---------------------------------------------------------------
    def _meta(self, run_id: str) -> dict:
        record = self._cache.get(("meta", run_id))
        if record is None:
            raise KeyError(f"run id: expected a stored run, got {run_id!r}")
        return dict(record)

    def meta(self, run_id: str) -> dict:
        return self._meta(run_id)

    def list_runs(self, kind: str | None = None) -> list[dict]:
        """Metadata of every stored run, newest first."""
        out = []
        for run_id in reversed(self._cache.get("run_ids", [])):
            record = self._cache.get(("meta", run_id))
            if record is not None and (kind is None or record["kind"] == kind):
                out.append(dict(record))
        return out

    def rows(self, run_id: str) -> list[dict]:
        record = self._meta(run_id)
        rows = (self._cache.get(("row", run_id, i)) for i in range(record["n_rows"]))
        return [r for r in rows if r is not None]

    def first_row(self, run_id: str) -> dict | None:
        """The run's first stored row (or None), without reading the others."""
        self._meta(run_id)
        return self._cache.get(("row", run_id, 0))

    def frame(self, run_id: str) -> pd.DataFrame:
        return pd.DataFrame(self.rows(run_id))

    # -- liveness (engine/runtime/liveness.py) ------------------------------------
    def beat(self, name: str, ttl: float = 30.0) -> None:
        """Stamp ``name`` (e.g. ``run:<id>``) with the time now; it expires after ``ttl`` s."""
        self._cache.set(("beat", name), time.time(), expire=ttl)

    def last_beat(self, name: str) -> float | None:
        return self._cache.get(("beat", name))

    def close(self) -> None:
        self._cache.close()


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy where text cells that a spreadsheet would run as a formula are quoted.

    Numbers are left alone (a negative number is data, not a formula).
    """
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(_quote)
    out.columns = [_quote(c) for c in out.columns]  # header cells too
    return out


def _quote(v):
    return "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v


def to_csv_text(rows: pd.DataFrame | Iterable[dict]) -> str:
    """CSV text of a table, safe to open in a spreadsheet."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    buf = io.StringIO()
    neutralise_formulas(frame).to_csv(buf, index=False)
    return buf.getvalue()


# -- additions for the benchmark pages (issue #4): lookup, dead jobs, CSV import ----
IMPORT_MAX_BYTES = 5 * 2**20
IMPORT_MAX_ROWS = 100_000
IMPORT_MAX_COLUMNS = 200
# Numeric columns with a range: (low, high); None is open. Every int column is >= 0.
IMPORT_RANGES = {"sparsity": (0.0, 1.0), "density": (0.0, 1.0), "block_density": (0.0, 1.0)}
# Text cells starting with these are refused on import (a negative number is data).
IMPORT_FORMULA_PREFIXES = ("=", "+", "@", "\t", "\r")


def find_stored_row(store: "RunStore", key: str, device_name: str | None = None,
                    kind: str | None = None, key_column: str = "spec_key") -> dict | None:
    """The newest stored row whose ``key_column`` equals ``key`` (status "ok" only).

    device_name, when given, must match the row's ``device_name`` too; ``kind``
    limits the search to runs of that kind. Scans runs newest first.
    """
    for record in store.list_runs(kind):
        for row in reversed(store.rows(record["run_id"])):
            if row.get(key_column) != key or row.get("status") not in ("ok", None):
                continue
            if device_name is not None and row.get("device_name") != device_name:
                continue
            return {**row, "source_run": record["run_id"]}
    return None


def mark_dead_runs(store: "RunStore", host: str | None = None) -> list[str]:
    """Mark "running" runs whose job is gone as "died"; returns the ids marked.

    A job records its pid, host and process start time, and beats a heartbeat
    (engine/runtime/liveness.py). A run on this host whose process is gone, a zombie or
    a reused pid, or a run elsewhere whose heartbeat stopped, keeps its finished rows
    and is marked "died" with their count. A run that says too little (no pid, no
    heartbeat) is left as it is. Cancelled runs are marked "cancelled" by the cancel.
    """
    from engine.runtime.liveness import run_alive

    marked = []
    for record in store.list_runs():
        if record.get("status") != "running":
            continue
        if run_alive(store, record, host) is not False:
            continue
        n = record.get("n_rows", 0)
        store.finish(record["run_id"], "died",
                     note=f"the job's process ended before finishing (killed, out of memory or "
                          f"crashed); {n} finished rows kept")
        marked.append(record["run_id"])
    return marked


def mark_cancelled(store: "RunStore", pid: int | None = None, task_id: str | None = None,
                   host: str | None = None) -> list[str]:
    """Mark the "running" runs of the job with ``pid`` on this host (or Celery ``task_id``)
    as "cancelled"; called when Cancel stops the job. Returns the ids marked."""
    from engine.runtime.liveness import host_name

    host = host or host_name()
    marked = []
    for record in store.list_runs():
        if record.get("status") != "running":
            continue
        mine = (task_id is not None and record.get("task_id") == task_id) or (
            pid is not None and record.get("pid") == pid and record.get("host", host) == host)
        if mine:
            store.finish(record["run_id"], "cancelled",
                         note=f"cancelled; {record.get('n_rows', 0)} finished rows kept")
            marked.append(record["run_id"])
    return marked


def csv_header(text: str) -> list[str]:
    """The header cells of CSV text as written (pandas would rename a repeated "op" to "op.1")."""
    first = next(csv.reader(io.StringIO(text.split("\n", 1)[0])), [])
    return [c.strip() for c in first]


def check_header(header: list[str], columns: dict, extra_columns: bool = False) -> None:
    """Refuse too many columns, repeated columns and (unless ``extra_columns``) unknown ones."""
    if len(header) > IMPORT_MAX_COLUMNS:
        raise ValueError(f"columns: expected at most {IMPORT_MAX_COLUMNS}, got {len(header)}")
    seen: set[str] = set()
    repeated = sorted({c for c in header if c in seen or seen.add(c)})
    if repeated:
        raise ValueError(f"columns: expected each column once, got {', '.join(map(repr, repeated[:5]))} "
                         "more than once")
    unknown = [c for c in header if c not in columns]
    if unknown and not extra_columns:
        raise ValueError(f"columns: expected only columns of this kind of run, got unknown "
                         f"{', '.join(repr(c[:40]) for c in unknown[:5])}"
                         + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""))


def _range_problem(col: str, kind: str, num: pd.Series, raw: pd.Series) -> str | None:
    lo, hi = IMPORT_RANGES.get(col, (0, None) if kind == "int" else (None, None))
    bad = num.notna() & (~num.map(lambda v: math.isfinite(v)) | ((num < lo) if lo is not None else False)
                         | ((num > hi) if hi is not None else False))
    if not bad.any():
        return None
    i = int(bad.idxmax())
    where = "a finite number" + (f" in [{lo}, {hi}]" if hi is not None else f" >= {lo}" if lo is not None else "")
    return f"column {col}: expected {where}, got {raw[i]!r} on data row {i + 1}"


def validate_import(text: str | bytes, columns: dict, max_bytes: int = IMPORT_MAX_BYTES,
                    ok_required: Iterable[str] = (), status_column: str = "status",
                    statuses: Iterable[str] | None = None, extra_columns: bool = False) -> pd.DataFrame:
    """Parse and check an imported CSV; return a typed frame or raise ValueError listing problems.

    columns: name -> (type, required) with type "str", "int", "float" or "bool".
    Checks: size limit, at most IMPORT_MAX_COLUMNS columns, each once, none unknown
    (unless ``extra_columns``), parses as CSV, required columns present, numbers parse
    as finite numbers in range (ints >= 0, IMPORT_RANGES), required numbers not empty,
    ``status`` one of ``statuses``, ``ok_required`` columns not empty on rows whose status
    is "ok", no text cell that a spreadsheet would run as a formula. Linear in the cells.
    """
    if isinstance(text, bytes):
        if len(text) > max_bytes:
            raise ValueError(f"file size: expected at most {max_bytes // 2**20} MB, got {len(text) / 2**20:.1f} MB")
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValueError(f"encoding: expected UTF-8 text, got undecodable bytes ({exc.reason})") from None
    if len(text.encode("utf-8")) > max_bytes:
        raise ValueError(f"file size: expected at most {max_bytes // 2**20} MB, got {len(text.encode()) / 2**20:.1f} MB")
    if not text.strip():
        raise ValueError("file: expected CSV text with a header row, got an empty file")
    check_header(csv_header(text.lstrip("\ufeff")), columns, extra_columns)
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001 - pandas raises several parser errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"file: expected a CSV table, got unparseable text ({first})") from None
    if len(frame) == 0:
        raise ValueError("rows: expected at least one data row, got none")
    if len(frame) > IMPORT_MAX_ROWS:
        raise ValueError(f"rows: expected at most {IMPORT_MAX_ROWS}, got {len(frame)}")
    problems: list[str] = []
    missing = [c for c, (_t, req) in columns.items() if req and c not in frame.columns]
    if missing:
        problems.append("columns: expected " + ", ".join(missing) + ", got a file without them")
    out: dict[str, pd.Series] = {}  # columns gathered, one frame built at the end (linear)
    for col in frame.columns:
        raw = frame[col]
        kind, required = columns.get(col, ("str", False))
        if kind in ("int", "float"):
            blank = raw.str.strip().isin(["", "nan", "NaN"])
            num = pd.to_numeric(raw.where(~blank, None), errors="coerce")
            bad = num.isna() & ~blank
            if bad.any():
                i = int(bad.idxmax())
                problems.append(f"column {col}: expected numbers, got {raw[i]!r} on data row {i + 1}"
                                + (f" and {int(bad.sum()) - 1} more" if bad.sum() > 1 else ""))
            if required and blank.any():
                i = int(blank.idxmax())
                problems.append(f"column {col}: expected a number on every row, got an empty value "
                                f"on data row {i + 1}")
            if kind == "int" and num.notna().any():
                frac = num.notna() & (num != num.round())
                if frac.any():
                    i = int(frac.idxmax())
                    problems.append(f"column {col}: expected whole numbers, got {raw[i]!r} on data row {i + 1}")
            problem = _range_problem(col, kind, num, raw)
            if problem:
                problems.append(problem)
            out[col] = num
        elif kind == "bool":
            low = raw.str.strip().str.lower()
            bad = ~low.isin(["true", "false", "1", "0", "", "yes", "no"])
            if bad.any():
                i = int(bad.idxmax())
                problems.append(f"column {col}: expected true/false, got {raw[i]!r} on data row {i + 1}")
            # a blank cell stays blank (None: e.g. no noise verdict on a row that was never
            # timed), never False
            out[col] = low.isin(["true", "1", "yes"]).astype(object).where(low != "", None)
        else:
            if required:
                blank = raw.str.strip() == ""
                if blank.any():
                    i = int(blank.idxmax())
                    problems.append(f"column {col}: expected text on every row, got an empty value on data row {i + 1}")
            formula = raw.str.startswith(IMPORT_FORMULA_PREFIXES) | raw.str.match(r"^-[^0-9.\s]")
            if formula.any():
                i = int(formula.idxmax())
                problems.append(f"column {col}: expected plain text, got a spreadsheet formula "
                                f"{raw[i][:40]!r} on data row {i + 1}")
            out[col] = raw.map(lambda v: v[1:] if v[:2] in ("'=", "'+", "'-", "'@") else v)
    out = pd.DataFrame(out, index=frame.index)
    if status_column in out.columns and statuses is not None:
        allowed = list(statuses)
        bad = ~out[status_column].isin(allowed)
        if bad.any():
            i = int(bad.idxmax())
            problems.append(f"column {status_column}: expected one of {', '.join(allowed)}, "
                            f"got {str(out[status_column][i])[:40]!r} on data row {i + 1}")
    if status_column in out.columns:
        ok = out[status_column].isin(["ok", "reused"])
        for col in ok_required:
            if col in out.columns:
                empty = ok & out[col].isna()
                if empty.any():
                    i = int(empty.idxmax())
                    problems.append(f"column {col}: expected a number on rows with status ok, "
                                    f"got an empty value (NaN) on data row {i + 1}")
    if problems:
        raise ValueError("; ".join(problems[:6]) + (f"; and {len(problems) - 6} more problems" if len(problems) > 6 else ""))
    return out


def import_csv(store: "RunStore", text: str | bytes, kind: str, columns: dict,
               filename: str = "", ok_required: Iterable[str] = (),
               max_bytes: int = IMPORT_MAX_BYTES, statuses: Iterable[str] | None = None,
               extra_columns: bool = False) -> str:
    """Validate ``text`` (see validate_import) and store it as a new run of ``kind``.

    Everything is checked before anything is stored: a bad file raises ValueError
    and leaves the store unchanged. Returns the new run id (status "imported").
    """
    frame = validate_import(text, columns, max_bytes=max_bytes, ok_required=ok_required,
                            statuses=statuses, extra_columns=extra_columns)
    rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
            for r in frame.to_dict("records")]
    devices = sorted({str(r.get("device_name")) for r in rows if r.get("device_name")})
    ops = sorted({str(r.get("op")) for r in rows if r.get("op")})
    run_id = store.create_run(kind, params={"source": "import", "filename": filename},
                              meta={"device_name": ", ".join(devices)[:200], "ops": ops})
    for row in rows:
        store.append(run_id, row)
    store.finish(run_id, "imported")
    return run_id


def stored_rows_by_key(store: "RunStore", device_name: str | None = None, kind: str | None = None,
                       key_column: str = "spec_key") -> dict:
    """{key: newest stored "ok" row} over all runs (of ``kind``), for re-runs to offer."""
    found: dict = {}
    for record in reversed(store.list_runs(kind)):  # oldest first, newer rows overwrite
        for row in store.rows(record["run_id"]):
            key = row.get(key_column)
            if key is None or row.get("status") not in ("ok", None):
                continue
            if device_name is not None and row.get("device_name") != device_name:
                continue
            found[key] = {**row, "source_run": record["run_id"]}
    return found
