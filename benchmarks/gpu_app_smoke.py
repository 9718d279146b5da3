"""The whole lab on this host, driven over HTTP the way the browser's renderer drives it.

    python3 benchmarks/gpu_app_smoke.py --out DIR                  # every page with a job
    python3 benchmarks/gpu_app_smoke.py --out DIR --jobs paradox,moe-sweep --celery off

1. Starts the real app (``python app.py``, DiskcacheManager, its own cache folder).
2. For every page with a background job: loads the page (the page-load token
   ``end_id`` from ``_dash-config``, the page's layout through Dash's pages callback,
   whose widget values are the job's inputs), shrinks the sizes (``SMALL``), ticks the
   GPU backends where this host has a GPU (``GPU``), starts the job (signed
   ``cacheKey`` / ``job`` handles back), polls as the renderer does until the result
   arrives, and checks the rows: how many, the device they name, the backends in them
   (lab-bsr, 2:4 and FlexAttention where a GPU supports them).
3. While jobs run, asks ``nvidia-smi --query-compute-apps`` which processes hold a
   CUDA context: the web process must never be one of them (skipped with a note
   where there is no nvidia-smi).
4. Cancels a running paradox job through its Cancel callback (the ``cancelJob``
   handle) once it has rows, and checks that the run store kept them.
5. Repeats 2-4 with Celery + Redis (``--celery on|auto|off``; auto: when a
   redis-server is found, see ``--redis-server``), one Celery worker beside the app.
6. Writes DIR/smoke_report.md and DIR/smoke_report.json; exit status 1 if a check failed.

Needs only the app's own requirements (no browser). tests/integration runs it against
the CPU app with a few small jobs, so the protocol code here cannot rot.
"""
from __future__ import annotations

import argparse
import datetime as dt
import html as htmllib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.apphelpers import free_port, stop_process, wait_for_http  # noqa: E402

# job prefix -> (page path, state id -> value). "min": the smallest option or the
# widget's min; "first": a list of the first option; "all": every option.
JOBS: dict[str, str] = {
    "paradox": "/paradox",
    "ss-time": "/structured-sparsity",
    "ss-acc": "/structured-sparsity",
    "attention": "/attention",
    "iso-sweep": "/isomorphism",
    "moe-train": "/moe",
    "moe-sweep": "/moe",
    "paper-train": "/paper",
    "sm-sweep": "/structured-matrices",
    "gen-train": "/generator",
    "scan-pt": "/scanner",
    "matrix-cal": "/your-matrix",
    "matrix": "/your-matrix",
}
# Jobs that run on the CPU on every host, and why: their rows must name the CPU instead.
CPU_BY_DESIGN = {
    "gen-train": "float64 autograd on a chain of at most 64 x 64 matrices",
    "scan-pt": "numpy + scikit-learn's orthogonal matching pursuit",
}
# Jobs that take a store another callback makes from the widgets: that callback's output,
# and inputs to set beyond the rules above. /paradox's job takes the page's one spec (its
# widgets -> the "spec" callback); /your-matrix's measurement the stored matrix's hash
# (the "use the example matrix" button).
SETUP = {"paradox": ("paradox-spec.data", {}),
         "matrix": ("matrix-hash.data", {"matrix-example": 1})}
SMALL: dict[str, object] = {
    "paradox-size": 256, "paradox-k": 16, "paradox-repeats": 2, "paradox-sparsities": "0.5, 0.9",
    "paradox-block": 16,
    "ss-t-size": "min", "ss-t-k": 16,
    "ss-t-repeats": 2, "ss-t-sparsities": "first",
    "ss-a-models": "first", "ss-a-sparsities": "first",
    "ss-a-epochs": 1, "ss-a-finetune": 0,
    "ss-a-seeds": 1,
    "attention-sweep-seqs": "first",
    "iso-sweep-channels": "first", "iso-sweep-images": "first", "iso-sweep-batches": "first",
    "iso-sweep-repeats": "min",
    "moe-train-epochs": 1, "moe-sweep-d": 32, "moe-sweep-max": 64,
    "paper-epochs": 1, "paper-max-train": 64, "paper-tasks": "first",
    "sm-sweep-n": "min", "sm-sweep-batches": "first",
    "gen-steps": 20, "scan-pt-k": "min", "scan-pt-trials": "min",
    "matrix-k": "min", "matrix-repeats": "min",
}
# on a GPU host: the GPU's own backends and dtypes, so the rows show whether they ran
GPU: dict[str, object] = {
    "paradox-dtype": "float16", "paradox-backends": "all", "paradox-block": 64,
    "paradox-size": 1024, "paradox-k": 64,
    "ss-t-dtype": "float16", "ss-t-size": "min",
    "moe-sweep-device": "cuda", "moe-sweep-dtype": "bfloat16",
}
# job -> backend names its rows must contain on a GPU (where the GPU supports them)
EXPECTED_GPU_BACKENDS = {"paradox": ("lab-bsr",), "ss-time": ("2:4", "lab-bsr"),
                         "attention": ("flex",)}
CANCEL_JOB = "paradox"
CANCEL_SMALL = {"paradox-size": 512, "paradox-repeats": 20, "paradox-sparsities": "0.5, 0.6, 0.7, 0.8, 0.9, 0.95"}
DEVICE_KEYS = ("device", "device_name", "gpu")
BACKEND_KEYS = ("backend", "method", "format", "variant", "impl", "kernel", "pattern")


# ----------------------------------------------------------------------------- HTTP
class Client:
    """One page load: the token from _dash-config, callback requests with it."""

    def __init__(self, url: str, path: str, timeout: float = 60) -> None:
        self.url, self.timeout = url, timeout
        with urllib.request.urlopen(url + path, timeout=timeout) as resp:
            page = resp.read().decode()
        m = re.search(r'<script id="_dash-config" type="application/json">(.*?)</script>', page, re.S)
        if not m:
            raise RuntimeError(f"{path}: no _dash-config in the page")
        self.config = json.loads(htmllib.unescape(m.group(1)))
        self.end_id = self.config.get("end_id")
        with urllib.request.urlopen(url + "/_dash-dependencies", timeout=timeout) as resp:
            self.deps = json.loads(resp.read())

    def post(self, body: dict, **params) -> tuple[int, dict | None]:
        query = {"endId": self.end_id} if self.end_id else {}
        query.update({k: v for k, v in params.items() if v is not None})
        target = self.url + "/_dash-update-component"
        if query:
            target += "?" + urllib.parse.urlencode(query, doseq=True)
        req = urllib.request.Request(target, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
                return resp.status, (json.loads(raw) if raw.strip() else None)
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw)
            except ValueError:
                return err.code, {"error": raw[:300].decode(errors="replace")}

    def dep_with_output(self, needle: str) -> dict:
        for dep in self.deps:
            if needle in dep["output"]:
                return dep
        raise KeyError(needle)


def outputs_of(spec: str):
    if spec.startswith(".."):
        parts = [p for p in spec.strip(".").split("...") if p]
        return [dict(zip(("id", "property"), p.rsplit(".", 1))) for p in parts]
    cid, prop = spec.rsplit(".", 1)
    return {"id": cid, "property": prop}


def page_components(client: Client, path: str) -> dict[str, dict]:
    """id -> props of every component the page's layout holds (Dash's pages callback)."""
    dep = client.dep_with_output("_pages_content.children")
    values = {"pathname": path, "search": "", "hash": "", "href": client.url + path}
    items = [{"id": i["id"], "property": i["property"], "value": values.get(i["property"])}
             for i in dep["inputs"]]
    state = [{"id": s["id"], "property": s["property"], "value": None} for s in dep["state"]]
    status, resp = client.post({"output": dep["output"], "outputs": outputs_of(dep["output"]),
                                "inputs": items, "state": state,
                                "changedPropIds": [f"{i['id']}.{i['property']}" for i in items]})
    if status != 200 or not resp:
        raise RuntimeError(f"{path}: the pages callback answered {status}: {resp}")
    found: dict[str, dict] = {}

    def walk(node):
        if isinstance(node, list):
            for n in node:
                walk(n)
        elif isinstance(node, dict):
            props = node.get("props")
            if isinstance(props, dict):
                if isinstance(props.get("id"), str):
                    found[props["id"]] = props
                for v in props.values():
                    walk(v)
            else:
                for v in node.values():
                    walk(v)

    walk(resp.get("response", resp))
    return found


def option_values(props: dict) -> list:
    out = []
    for o in props.get("options") or []:
        out.append(o["value"] if isinstance(o, dict) else o)
    if not out and "marks" in props and isinstance(props["marks"], dict):
        out = [float(k) for k in props["marks"]]
    return out


def pick(rule, props: dict):
    """A widget value from a rule ("min", "first", "all" or a literal)."""
    if rule in ("min", "first", "all"):
        opts = option_values(props)
        if rule == "all":
            return opts
        if rule == "first":
            if opts:
                return [opts[0]] if isinstance(props.get("value"), list) or props.get("multi") else opts[0]
            value = props.get("value")
            if isinstance(value, str) and "," in value:  # a typed list: its first item
                return value.split(",")[0].strip()
            return value[:1] if isinstance(value, list) else value
        nums = [o for o in opts if isinstance(o, (int, float)) and not isinstance(o, bool)]
        if nums:
            low = min(nums)
            return [low] if isinstance(props.get("value"), list) else low
        return props.get("min", props.get("value"))
    return rule


# ----------------------------------------------------------------------------- CUDA check
def cuda_pids() -> tuple[set[int] | None, str]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None, "no nvidia-smi on this host: the CUDA-context check is skipped"
    try:
        out = subprocess.run([exe, "--query-compute-apps=pid", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"nvidia-smi failed: {exc}"
    return {int(x) for x in out.split() if x.strip().isdigit()}, ""


def gpu_name() -> str:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return ""
    out = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                         text=True, timeout=20).stdout.strip().splitlines()
    return out[0].strip() if out else ""


# ----------------------------------------------------------------------------- one job
def job_states(client: Client, prefix: str) -> tuple[dict, list[dict]]:
    run_id = f"{prefix}-job-run"
    for dep in client.deps:
        if dep.get("background") and any(i["id"] == run_id for i in dep["inputs"]):
            return dep, dep["state"]
    raise KeyError(f"no background callback with input {run_id}")


def chosen_rules(gpu: bool, extra: dict | None = None) -> dict:
    """SMALL, then GPU on a GPU host, then ``extra``: widget id -> rule."""
    return {**SMALL, **(GPU if gpu else {}), **(extra or {})}


def chosen(item: dict, comps: dict, rules: dict):
    """The value to send for a callback's input or state item: its rule's pick, else the layout's."""
    props = comps.get(item["id"], {})
    value = props.get(item["property"])
    if item["id"] in rules and props:
        value = pick(rules[item["id"]], props)
    return value


def start_job(client: Client, prefix: str, comps: dict, gpu: bool, extra: dict | None = None
              ) -> tuple[dict, dict, dict]:
    dep, states = job_states(client, prefix)
    used: dict = {}
    if prefix in SETUP:  # the job's stored input first, made from the widgets
        made, used = setup_input(client, comps, prefix, gpu, extra)
        extra = {**(extra or {}), **made}
    rules = chosen_rules(gpu, extra)
    state_items = []
    for s in states:
        value = chosen(s, comps, rules)
        used.setdefault(s["id"], value)
        state_items.append({"id": s["id"], "property": s["property"], "value": value})
    run_id = f"{prefix}-job-run"
    body = {"output": dep["output"], "outputs": outputs_of(dep["output"]),
            "inputs": [{"id": run_id, "property": "n_clicks", "value": 1}],
            "state": state_items, "changedPropIds": [f"{run_id}.n_clicks"]}
    status, resp = client.post(body)
    if status != 200 or not resp or "cacheKey" not in resp:
        raise RuntimeError(f"{prefix}: starting the job answered {status}: {str(resp)[:300]}")
    return body, resp, used


def setup_input(client: Client, comps: dict, prefix: str, gpu: bool, extra: dict | None = None
                ) -> tuple[dict, dict]:
    """Run the callback that makes a job's stored input (SETUP), with the widget values the
    rules pick -> ({store id: value}, the inputs used)."""
    output, overrides = SETUP[prefix]
    dep = client.dep_with_output(output)
    rules = chosen_rules(gpu, {**overrides, **(extra or {})})
    inputs = [{"id": i["id"], "property": i["property"], "value": chosen(i, comps, rules)}
              for i in dep["inputs"]]
    state = [{"id": x["id"], "property": x["property"], "value": chosen(x, comps, rules)}
             for x in dep["state"]]
    # what "changed": the inputs set for this call (a button), else every widget
    changed = [i for i in inputs if i["id"] in overrides] or inputs
    status, resp = client.post({"output": dep["output"], "outputs": outputs_of(dep["output"]),
                                "inputs": inputs, "state": state,
                                "changedPropIds": [f"{i['id']}.{i['property']}" for i in changed]})
    store, _, field = output.rpartition(".")
    got = ((resp or {}).get("response") or {}).get(store, {}).get(field)
    if status != 200 or not got or (isinstance(got, dict) and got.get("error")):
        raise RuntimeError(f"{prefix}: making its input ({output}) answered {status}: {str(resp)[:300]}")
    return {store: got}, {i["id"]: i["value"] for i in inputs}


def poll(client: Client, prefix: str, body: dict, handles: dict, deadline_s: float,
         web_pid: int, seen: dict, until_rows: int | None = None) -> dict:
    """Poll like the renderer (inputs and state nulled, the handles in the query) until
    the result arrives (or ``until_rows`` rows were streamed); returns what was seen."""
    quiet = json.loads(json.dumps(body))
    for item in quiet["inputs"] + quiet["state"]:
        item["value"] = None
    rows_key = f"{prefix}-job-rows.data"
    rows: list = []
    t0 = time.time()
    result = None
    while time.time() - t0 < deadline_s:
        pids, _ = cuda_pids()
        if pids is not None:
            seen["polls"] += 1
            seen["web_held_cuda"] |= web_pid in pids
            seen["job_pids"] |= pids
        status, resp = client.post(quiet, cacheKey=handles["cacheKey"], job=handles["job"])
        if status not in (200, 202, 204):
            raise RuntimeError(f"{prefix}: polling answered {status}: {str(resp)[:300]}")
        if resp:
            prog = resp.get("progress") or {}
            if isinstance(prog.get(rows_key), list):
                rows = prog[rows_key]
            out = resp.get("response") or {}
            res = (out.get(f"{prefix}-job-result") or {}).get("data")
            if res:
                result = res
                break
        if until_rows is not None and len(rows) >= until_rows:
            break
        time.sleep(0.3)
    return {"result": result, "rows": (result or {}).get("rows", rows) if result else rows,
            "seconds": round(time.time() - t0, 1)}


def summarise_rows(rows: list[dict]) -> tuple[list[str], list[str]]:
    devices, backends = set(), set()
    for r in rows:
        if not isinstance(r, dict):
            continue
        for k in DEVICE_KEYS:
            if r.get(k):
                devices.add(str(r[k]))
        for k in BACKEND_KEYS:
            if isinstance(r.get(k), str) and r[k]:
                backends.add(r[k])
    return sorted(devices), sorted(backends)


def run_job(url: str, prefix: str, gpu: bool, gpu_label: str, web_pid: int,
            deadline_s: float) -> dict:
    path = JOBS[prefix]
    rec = {"job": prefix, "page": path, "ok": False, "checks": []}
    seen = {"polls": 0, "web_held_cuda": False, "job_pids": set()}
    try:
        client = Client(url, path)
        comps = page_components(client, path)
        body, handles, used = start_job(client, prefix, comps, gpu)
        rec["inputs"] = used
        got = poll(client, prefix, body, handles, deadline_s, web_pid, seen)
        result, rows = got["result"], got["rows"]
        rec.update(seconds=got["seconds"], rows=len(rows))
        devices, backends = summarise_rows(rows)
        rec.update(devices=devices, backends=backends)
        if result is None:
            rec["checks"].append(f"no result within {deadline_s:.0f} s")
        elif result.get("status") != "done":
            rec["checks"].append(f"job status {result.get('status')}: {result.get('error')}")
        if not rows:
            rec["checks"].append("no rows")
        if rows and not devices:
            rec["checks"].append("rows name no device")
        if prefix in CPU_BY_DESIGN:
            rec["note"] = f"on the CPU by design: {CPU_BY_DESIGN[prefix]}"
            if devices and not all(d.startswith("CPU") for d in devices):
                rec["checks"].append(f"rows name {devices}, expected the CPU")
        elif gpu and rows:
            if not any(gpu_label in d for d in devices):
                rec["checks"].append(f"rows name {devices}, not the GPU {gpu_label!r}")
            for want in EXPECTED_GPU_BACKENDS.get(prefix, ()):
                if not any(want in b for b in backends):
                    rec["checks"].append(f"expected backend {want!r} in the rows, got {backends}")
        rec["ok"] = not rec["checks"]
    except Exception as exc:  # one job's failure is a finding, not the end of the run
        rec["checks"].append(f"{type(exc).__name__}: {exc}")
    rec["cuda_polls"] = seen["polls"]
    rec["web_held_cuda"] = seen["web_held_cuda"]
    rec["cuda_pids"] = sorted(seen["job_pids"] - {web_pid})
    if seen["web_held_cuda"]:
        rec["ok"] = False
        rec["checks"].append("the web process held a CUDA context")
    return rec


def cancel_check(url: str, gpu: bool, web_pid: int, cache: Path, redis_url: str | None) -> dict:
    """Start a longer paradox job, cancel it once rows stream in, check the store kept them."""
    prefix, path = CANCEL_JOB, JOBS[CANCEL_JOB]
    rec = {"job": f"{prefix} (cancel)", "page": path, "ok": False, "checks": []}
    seen = {"polls": 0, "web_held_cuda": False, "job_pids": set()}
    try:
        client = Client(url, path)
        comps = page_components(client, path)
        body, handles, _ = start_job(client, prefix, comps, gpu, extra=CANCEL_SMALL)
        got = poll(client, prefix, body, handles, 120, web_pid, seen, until_rows=2)
        streamed = len(got["rows"])
        rec["rows_before_cancel"] = streamed
        if got["result"] is not None:
            rec["checks"].append("the job finished before it could be cancelled (make it longer)")
        cancel_id = f"{prefix}-job-cancel"
        dep = client.dep_with_output(f"{cancel_id}.id")
        status, _ = client.post({"output": dep["output"], "outputs": outputs_of(dep["output"]),
                                 "inputs": [{"id": cancel_id, "property": "n_clicks", "value": 1}],
                                 "state": [], "changedPropIds": [f"{cancel_id}.n_clicks"]},
                                cancelJob=handles["job"])
        rec["cancel_status"] = status
        time.sleep(2.0)
        os.environ["SPARSITY_LAB_CACHE"] = str(cache)  # the store the jobs wrote to
        if redis_url:
            os.environ["SPARSITY_LAB_REDIS_URL"] = redis_url
        else:
            os.environ.pop("SPARSITY_LAB_REDIS_URL", None)
        from engine.runtime.store import RunStore

        store = RunStore()
        runs = [r for r in store.list_runs(prefix)]
        kept = max((len(store.rows(r["run_id"])) for r in runs), default=0) if runs else 0
        store.close()
        rec["rows_kept"] = kept
        if status not in (200, 204):
            rec["checks"].append(f"the cancel request answered {status}")
        if streamed < 1:
            rec["checks"].append("no rows streamed before the cancel")
        if kept < streamed:
            rec["checks"].append(f"{streamed} rows streamed but {kept} kept in the run store")
        rec["ok"] = not rec["checks"]
    except Exception as exc:
        rec["checks"].append(f"{type(exc).__name__}: {exc}")
    rec["web_held_cuda"] = seen["web_held_cuda"]
    return rec


# ----------------------------------------------------------------------------- one mode
def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def run_mode(mode: str, jobs: list[str], gpu: bool, gpu_label: str, work: Path,
             redis_server: str | None, deadline_s: float, do_cancel: bool, port: int,
             out: dict, flush=lambda: None) -> dict:
    cache = work / f"cache-{mode}"
    cache.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = dict(os.environ, SPARSITY_LAB_CACHE=str(cache), PYTHONUNBUFFERED="1")
    if not gpu:
        env["SPARSITY_LAB_FORCE_CPU"] = "1"
    procs: list[subprocess.Popen] = []
    out.update({"mode": mode, "jobs": [], "notes": []})
    try:
        if mode == "celery":
            rport = port + 1 if port else free_port()
            procs.append(start([redis_server, "--port", str(rport), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", str(cache)],
                               env, work / "redis.log"))
            env["SPARSITY_LAB_REDIS_URL"] = f"redis://127.0.0.1:{rport}/0"
            time.sleep(0.5)
            procs.append(start([sys.executable, "-m", "celery", "-A", "app:celery_app", "worker",
                                "--loglevel", "INFO", "--concurrency", "1", "--pool", "prefork"],
                               env, work / "celery.log"))
        app = start([sys.executable, "app.py", "--port", str(port)], env, work / f"app-{mode}.log")
        procs.append(app)
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url, app, work / f"app-{mode}.log", seconds=120)
        if mode == "celery":
            time.sleep(3.0)  # the worker connects to the broker
        for prefix in jobs:
            rec = run_job(url, prefix, gpu, gpu_label, app.pid, deadline_s)
            print(f"[{mode}] {prefix}: {'ok' if rec['ok'] else 'FAIL'} {rec.get('rows', 0)} rows "
                  f"{rec.get('seconds', '')} s {rec.get('backends', '')} {rec['checks']}", flush=True)
            out["jobs"].append(rec)
            flush()  # the report so far, in case the run is cut short
        if do_cancel:
            rec = cancel_check(url, gpu, app.pid, cache, env.get("SPARSITY_LAB_REDIS_URL"))
            print(f"[{mode}] cancel: {'ok' if rec['ok'] else 'FAIL'} {rec}", flush=True)
            out["jobs"].append(rec)
        pids, note = cuda_pids()
        if note:
            out["notes"].append(note)
        elif app.pid in pids:
            out["notes"].append("the web process held a CUDA context at the end")
            out["jobs"].append({"job": "web process at the end", "ok": False,
                                "checks": ["holds a CUDA context"]})
    except Exception as exc:
        out["notes"].append(f"{mode} could not run: {type(exc).__name__}: {exc}")
        out["jobs"].append({"job": f"{mode} start", "ok": False, "checks": [str(exc)[:400]]})
    finally:
        for p in reversed(procs):
            stop_process(p)
    for name in [f"app-{mode}.log"] + (["celery.log"] if mode == "celery" else []):
        log = work / name
        if log.exists():
            out.setdefault("log_tails", {})[name] = log.read_text(errors="replace")[-3000:]
    return out


def versions() -> dict:
    info = {"python": platform.python_version(), "machine": platform.machine()}
    for mod in ("torch", "triton", "dash", "plotly", "celery", "redis", "diskcache"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            info[mod] = "not installed"
    return info


def write_report(out_dir: Path, report: dict) -> None:
    (out_dir / "smoke_report.json").write_text(json.dumps(report, indent=1, default=str))
    lines = ["# The lab on this host, driven over HTTP", "",
             f"- date: {report['date']}", f"- device: {report['device']}",
             f"- versions: {', '.join(f'{k} {v}' for k, v in report['versions'].items())}",
             f"- command: `{report['command']}`", ""]
    for mode in report["modes"]:
        lines += [f"## {mode['mode']}", "",
                  "| job | page | ok | rows | s | device in rows | backends in rows | CUDA pids seen (jobs) | web process held CUDA | problems / notes |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for j in mode["jobs"]:
            lines.append("| " + " | ".join(str(x) for x in (
                j.get("job"), j.get("page", ""), "yes" if j.get("ok") else "NO",
                j.get("rows", j.get("rows_kept", "")), j.get("seconds", ""),
                ", ".join(j.get("devices", [])), ", ".join(j.get("backends", []))[:120],
                ", ".join(map(str, j.get("cuda_pids", []))) or ("n/a" if not j.get("cuda_polls") else "none"),
                "yes" if j.get("web_held_cuda") else "no",
                "; ".join(j.get("checks", []) + ([j["note"]] if j.get("note") else [])
                          ).replace("|", "/")[:300])) + " |")
        for n in mode.get("notes", []):
            lines.append(f"\nNote: {n}")
        lines.append("")
    lines.append(f"Result: {'every check passed' if report['ok'] else 'SOME CHECKS FAILED'}.")
    (out_dir / "smoke_report.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--jobs", default=",".join(JOBS), help="job prefixes, comma-separated")
    ap.add_argument("--celery", choices=("auto", "on", "off"), default="auto")
    ap.add_argument("--redis-server", default=os.environ.get("REDIS_SERVER", "redis-server"))
    ap.add_argument("--job-timeout", type=float, default=240.0, help="seconds per job")
    ap.add_argument("--no-cancel", action="store_true")
    ap.add_argument("--cpu", action="store_true", help="treat this host as having no GPU")
    ap.add_argument("--port", type=int, default=0,
                    help="the app's port (Redis gets the next one); 0: any free port")
    args = ap.parse_args(argv)
    jobs = [j for j in args.jobs.split(",") if j]
    unknown = [j for j in jobs if j not in JOBS]
    if unknown:
        ap.error(f"expected jobs from {sorted(JOBS)}, got {unknown}")
    args.out.mkdir(parents=True, exist_ok=True)
    label = "" if args.cpu else gpu_name()
    gpu = bool(label)
    work = Path(tempfile.mkdtemp(prefix="lab-smoke-"))
    report = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "device": label or f"CPU ({platform.processor() or platform.machine()})",
              "versions": versions(), "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
              "modes": []}
    modes = ["diskcache"]
    redis_exe = shutil.which(args.redis_server) or (args.redis_server if Path(args.redis_server).exists() else None)
    if args.celery == "on" or (args.celery == "auto" and redis_exe):
        modes.append("celery")
    for mode in modes:
        if mode == "celery" and not redis_exe:
            report["modes"].append({"mode": "celery", "jobs": [{"job": "celery start", "ok": False,
                                    "checks": [f"no redis-server at {args.redis_server!r}"]}], "notes": []})
            continue
        entry: dict = {}
        report["modes"].append(entry)
        report["ok"] = False

        def flush() -> None:
            write_report(args.out, report)
        run_mode(mode, jobs, gpu, label, work, redis_exe, args.job_timeout, not args.no_cancel,
                 args.port, entry, flush)
    if args.celery == "auto" and "celery" not in modes:
        report["modes"][0]["notes"].append("Celery + Redis not run: no redis-server found")
    report["ok"] = all(j.get("ok") for m in report["modes"] for j in m["jobs"])
    write_report(args.out, report)
    print((args.out / "smoke_report.md").read_text())
    shutil.rmtree(work, ignore_errors=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
