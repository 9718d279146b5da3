"""Bounded load test on loopback: one client, then N concurrent clients moving sliders.

1. Starts the app under gunicorn on a loopback port (own cache folder).
2. Opens every page once in headless Chromium and records the callback requests the
   browser really sends (the same callbacks a slider move triggers), leaving out
   background jobs.
3. Single client: replays every recorded request ``--rounds`` times, one at a time, the
   first round as recorded and later ones with integer inputs moved by -1/0/+1 (a slider
   step).
4. Load: N client threads replay random requests, jittered the same way, for T seconds.
For both it reports requests, errors, p50/p95/max latency, the largest response and how
many answers came from the response cache of pure callbacks (``X-Sparsity-Lab-Cache: hit``),
in total and per callback (the callback's output id), and writes them (with --out) with the
machine, its load average, the package versions and the date.

    .venv/bin/python benchmarks/load_test.py --clients 50 --seconds 30 --out benchmarks/results/load.md
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.pure_callback import CACHE_HEADER  # noqa: E402
from tests.apphelpers import start_app, stop_process  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-quic"]


def record_payloads(url: str) -> list[dict]:
    """Callback requests the browser sends while every page loads (no background jobs)."""
    from playwright.sync_api import sync_playwright

    with urllib.request.urlopen(url + "/_dash-dependencies") as resp:
        deps = json.loads(resp.read())
    background = {d["output"] for d in deps if d.get("background")}
    with urllib.request.urlopen(url + "/") as resp:
        html = resp.read().decode()
    paths = sorted({p.split('"')[0] for p in html.split('href="')[1:] if p.startswith("/")} | {"/"})
    seen: list[dict] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})

        def on_request(req):
            if req.url.startswith(url + "/_dash-update-component") and "cacheKey" not in req.url:
                body = req.post_data_json
                if body and body.get("output") not in background:
                    seen.append(body)

        page.on("request", on_request)
        for path in ("/", "/generator", "/scanner", "/isomorphism", "/paper", "/paradox",
                     "/structured-sparsity", "/moe", "/attention", "/structured-matrices", "/runs"):
            page.goto(url + path)
            page.wait_for_timeout(2500)
        browser.close()
    return [b for b in seen if b.get("output") != "_pages_content.children"] or seen


def _jitter(payload: dict, rng: random.Random) -> dict:
    out = json.loads(json.dumps(payload))
    for item in out.get("inputs", []) + out.get("state", []):
        value = item.get("value") if isinstance(item, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 2:
            item["value"] = value + rng.choice((-1, 0, 1))
    return out


def post(url: str, payload: dict) -> tuple[float, int, str, bool]:
    """One callback request: (seconds, response bytes, error or "", answered from the cache)."""
    body = json.dumps(payload).encode()
    req = urllib.request.Request(url + "/_dash-update-component", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    size, err, hit = 0, "", False
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            size = len(resp.read())
            hit = resp.headers.get(CACHE_HEADER) == "hit"
            if resp.status not in (200, 204):
                err = f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        err = "" if exc.code == 204 else f"HTTP {exc.code}"
    except OSError as exc:
        err = type(exc).__name__
    return time.perf_counter() - t0, size, err, hit


def pct(sorted_values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of an already sorted list."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summarise(samples: list[tuple[str, float, int, str, bool]], wall: float) -> dict:
    """Totals and per-callback p50/p95/max (ms), largest response (bytes) and cache hits."""
    def stats(rows):
        lat = sorted(r[1] for r in rows)
        return {"requests": len(rows), "errors": sum(1 for r in rows if r[3]),
                "p50_ms": round(pct(lat, 0.50) * 1000, 1), "p95_ms": round(pct(lat, 0.95) * 1000, 1),
                "max_ms": round(lat[-1] * 1000, 1) if lat else None,
                "largest_bytes": max((r[2] for r in rows), default=0),
                "cache_hits": sum(1 for r in rows if r[4])}

    per: dict[str, list] = {}
    for row in samples:
        per.setdefault(row[0], []).append(row)
    total = stats(samples)
    total.update(seconds=round(wall, 1), requests_per_s=round(len(samples) / wall, 1) if wall else None,
                 error_kinds=sorted({r[3] for r in samples if r[3]})[:10], distinct_callbacks=len(per))
    callbacks = sorted(((name, stats(rows)) for name, rows in per.items()),
                       key=lambda item: -item[1]["p95_ms"])
    return {"total": total, "callbacks": dict(callbacks)}


def run_single(url: str, payloads: list[dict], rounds: int) -> dict:
    """Every recorded request, one at a time, ``rounds`` times (later rounds jittered)."""
    rng = random.Random(0)
    samples = []
    t_start = time.monotonic()
    for r in range(rounds):
        for payload in payloads:
            body = payload if r == 0 else _jitter(payload, rng)
            samples.append((payload["output"], *post(url, body)))
    return summarise(samples, time.monotonic() - t_start)


def run_load(url: str, payloads: list[dict], clients: int, seconds: float) -> dict:
    samples: list[tuple[str, float, int, str, bool]] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop_at:
            payload = rng.choice(payloads)
            answer = post(url, _jitter(payload, rng))
            with lock:
                samples.append((payload["output"], *answer))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t_start, cpu_start = time.monotonic(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = summarise(samples, time.monotonic() - t_start)
    # the clients run on the server's machine: say how much of its CPU they took
    result["total"].update(clients=clients, client_cpu_s=round(time.process_time() - cpu_start, 1))
    return result


def environment(args) -> dict:
    """Machine, load, versions and date, written beside the numbers."""
    import os
    import subprocess
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in ("dash", "plotly", "flask", "numpy", "scipy", "torch", "gunicorn", "diskcache"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{cpu}, {os.cpu_count()} cores", "python": platform.python_version(),
            "versions": versions, "commit": commit or "unknown",
            # settle_test.py shares this and has no --url: it always starts its own server
            "server": getattr(args, "url", None) or f"gunicorn -w {args.workers} --threads {args.threads}",
            "load_average_before": [round(x, 2) for x in os.getloadavg()]}


def short_name(output: str) -> str:
    """``..a.figure...b.data..`` (a multi-output callback) -> ``a.figure (+1 more)``."""
    parts = [p for p in output.strip(".").split("...") if p]
    if len(parts) <= 1:
        return output
    return f"{parts[0]} (+{len(parts) - 1} more)"


def markdown(env: dict, args, single: dict | None, load: dict | None) -> str:
    cmd = (f"python benchmarks/load_test.py --rounds {args.rounds} --clients {args.clients}"
           f" --seconds {args.seconds:g}" + (f" --label {args.label}" if args.label else ""))
    lines = [f"# Load test (loopback){': ' + args.label if args.label else ''}", "",
             f"`{cmd}`, {env['date']}, commit `{env['commit']}`, server `{env['server']}`.", "",
             f"- machine: {env['machine']}; load average (1/5/15 min) before: "
             f"{env['load_average_before']}, after: {env['load_average_after']}",
             f"- Python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
             "- requests: callback requests recorded from a real browser loading every page "
             "(background jobs left out); later rounds and the load clients move integer inputs "
             "by one step at random.", ""]
    if env["load_average_before"][0] > 1.0:
        lines += [f"The machine was busy (load {env['load_average_before'][0]} on "
                  f"{env['machine'].rsplit(', ', 1)[-1]} before the run; other work was running "
                  "beside it): latencies are upper bounds for this machine, not its quiet figures.",
                  ""]
    for title, result in (("Single client, one request at a time", single),
                          (f"{args.clients} clients for {args.seconds:g} s", load)):
        if result is None:
            continue
        t = result["total"]
        lines += [f"## {title}", "",
                  "| requests | req/s | errors | p50 ms | p95 ms | max ms | largest response (bytes) "
                  "| cache hits |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| {t['requests']} | {t['requests_per_s']} | {t['errors']} | {t['p50_ms']} | "
                  f"{t['p95_ms']} | {t['max_ms']} | {t['largest_bytes']:,} | {t['cache_hits']} |", ""]
        if t["error_kinds"]:
            lines += ["Error kinds: " + ", ".join(t["error_kinds"]), ""]
        if "client_cpu_s" in t:
            cores = int(env["machine"].rsplit(", ", 1)[-1].split()[0])
            lines += [f"The {t['clients']} clients (one Python process on the same machine) used "
                      f"{t['client_cpu_s']} CPU-seconds of the {cores * t['seconds']:g} its {cores} cores "
                      "had in that time.", ""]
        lines += ["Per callback (slowest p95 first):", "",
                  "| callback output | requests | errors | p50 ms | p95 ms | max ms | largest (bytes) "
                  "| cache hits |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, c in result["callbacks"].items():
            lines.append(f"| `{short_name(name)}` | {c['requests']} | {c['errors']} | {c['p50_ms']} | "
                         f"{c['p95_ms']} | {c['max_ms']} | {c['largest_bytes']:,} | {c['cache_hits']} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50, help="load clients (0: single client only)")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rounds", type=int, default=3, help="single-client rounds (0: skip)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--port", type=int, default=None, help="loopback port (default: a free one)")
    ap.add_argument("--label", default="", help="a word for the title, e.g. before / after")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--save-payloads", type=Path, help="write the recorded requests here (JSON), e.g. to profile")
    ap.add_argument("--url", help="test this running server (e.g. one started under a profiler) instead of "
                                  "starting gunicorn; --workers and --threads then only label the results")
    args = ap.parse_args()
    if not (0 <= args.clients <= 200 and 1 <= args.seconds <= 120 and 0 <= args.rounds <= 20):
        ap.error("expected 0..200 clients, 1..120 seconds and 0..20 rounds (the test is bounded)")
    import os

    env = environment(args)
    cache = Path(tempfile.mkdtemp(prefix="lab-load-"))
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    cmd = [gunicorn, "app:server", "-b", "127.0.0.1:{port}", "-w", str(args.workers),
           "--threads", str(args.threads), "--no-control-socket", "--timeout", "120"]
    proc, url = (None, args.url.rstrip("/")) if args.url else start_app(cache, command=cmd, port=args.port)
    single = load = None
    try:
        payloads = record_payloads(url)
        if args.save_payloads:
            args.save_payloads.write_text(json.dumps(payloads))
        if args.rounds:
            single = run_single(url, payloads, args.rounds)
        if args.clients:
            load = run_load(url, payloads, args.clients, args.seconds)
    finally:
        if proc is not None:
            stop_process(proc)
    env["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result = {"environment": env, "single": single, "load": load}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(markdown(env, args, single, load))
    errors = sum(r["total"]["errors"] for r in (single, load) if r)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
