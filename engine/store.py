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

import io
import os
import time
import uuid
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

CACHE_ENV = "SPARSITY_LAB_CACHE"
REDIS_URL_ENV = "SPARSITY_LAB_REDIS_URL"
DEFAULT_CACHE = Path(".cache") / "sparsity-lab"
RUN_STATUSES = ("running", "done", "cancelled", "error", "imported")
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
    ``SPARSITY_LAB_REDIS_URL`` is set (engine/store_redis.py), so Celery workers on
    other hosts share the runs.
    """

    def __new__(cls, folder: str | Path | None = None):
        url = os.environ.get(REDIS_URL_ENV)
        if folder is None and url and cls is RunStore:
            from engine.store_redis import RedisRunStore

            return RedisRunStore(url)
        return super().__new__(cls)

    def __init__(self, folder: str | Path | None = None):
        import diskcache

        root = Path(folder) if folder is not None else cache_dir()
        self.path = root / "runs"
        self._cache = diskcache.Cache(str(self.path))

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

    def frame(self, run_id: str) -> pd.DataFrame:
        return pd.DataFrame(self.rows(run_id))

    def close(self) -> None:
        self._cache.close()


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy where text cells that a spreadsheet would run as a formula are quoted.

    Numbers are left alone (a negative number is data, not a formula).
    """
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v
            )
    return out


def to_csv_text(rows: pd.DataFrame | Iterable[dict]) -> str:
    """CSV text of a table, safe to open in a spreadsheet."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    buf = io.StringIO()
    neutralise_formulas(frame).to_csv(buf, index=False)
    return buf.getvalue()
