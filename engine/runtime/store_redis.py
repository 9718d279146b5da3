"""The run store on Redis, for a team sharing one lab across hosts.

Chosen by ``RunStore()`` when ``SPARSITY_LAB_REDIS_URL`` is set, so the web process
and Celery workers on other hosts read and write the same runs. Same API as the
diskcache store; rows are stored as JSON (numpy scalars become numbers).
"""
from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pandas as pd

PREFIX = "sparsity-lab"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


class RedisRunStore:
    def __init__(self, url: str):
        import redis

        self._r = redis.Redis.from_url(url, decode_responses=True)
        self.path = url

    def _key(self, *parts: str) -> str:
        return ":".join((PREFIX,) + parts)

    def create_run(self, kind: str, params: dict | None = None, meta: dict | None = None) -> str:
        if not kind or not isinstance(kind, str):
            raise ValueError(f"run kind: expected a non-empty string, got {kind!r}")
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        record = {"run_id": run_id, "kind": kind, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "status": "running", "params": dict(params or {}), **dict(meta or {})}
        pipe = self._r.pipeline()
        pipe.set(self._key("meta", run_id), json.dumps(record, default=_jsonable))
        pipe.rpush(self._key("runs"), run_id)
        pipe.execute()
        return run_id

    def append(self, run_id: str, row: dict) -> int:
        self._meta(run_id)
        return int(self._r.rpush(self._key("rows", run_id), json.dumps(dict(row), default=_jsonable)))

    def finish(self, run_id: str, status: str = "done", **extra: Any) -> None:
        from engine.runtime.store import RUN_STATUSES

        if status not in RUN_STATUSES:
            raise ValueError(f"run status: expected one of {RUN_STATUSES}, got {status!r}")
        record = self._meta(run_id)
        record.update(status=status, finished=time.strftime("%Y-%m-%d %H:%M:%S"), **extra)
        self._r.set(self._key("meta", run_id), json.dumps(record, default=_jsonable))

    def delete(self, run_id: str) -> None:
        self._meta(run_id)
        pipe = self._r.pipeline()
        pipe.delete(self._key("meta", run_id), self._key("rows", run_id))
        pipe.lrem(self._key("runs"), 0, run_id)
        pipe.execute()

    def _meta(self, run_id: str) -> dict:
        raw = self._r.get(self._key("meta", run_id))
        if raw is None:
            raise KeyError(f"run id: expected a stored run, got {run_id!r}")
        record = json.loads(raw)
        record["n_rows"] = int(self._r.llen(self._key("rows", run_id)))
        return record

    def meta(self, run_id: str) -> dict:
        return self._meta(run_id)

    def list_runs(self, kind: str | None = None) -> list[dict]:
        out = []
        for run_id in reversed(self._r.lrange(self._key("runs"), 0, -1)):
            try:
                record = self._meta(run_id)
            except KeyError:
                continue
            if kind is None or record["kind"] == kind:
                out.append(record)
        return out

    def rows(self, run_id: str) -> list[dict]:
        self._meta(run_id)
        return [json.loads(r) for r in self._r.lrange(self._key("rows", run_id), 0, -1)]

    def first_row(self, run_id: str) -> dict | None:
        """The run's first stored row (or None), without reading the others."""
        self._meta(run_id)
        raw = self._r.lindex(self._key("rows", run_id), 0)
        return None if raw is None else json.loads(raw)

    def frame(self, run_id: str) -> pd.DataFrame:
        return pd.DataFrame(self.rows(run_id))

    def beat(self, name: str, ttl: float = 30.0) -> None:
        """Stamp ``name`` with the time now; Redis drops it after ``ttl`` s."""
        self._r.set(self._key("beat", name), repr(time.time()), px=int(ttl * 1000))

    def last_beat(self, name: str) -> float | None:
        raw = self._r.get(self._key("beat", name))
        return None if raw is None else float(raw)

    def close(self) -> None:
        self._r.close()
