"""Bounded load test on loopback: N concurrent clients moving sliders for T seconds.

1. Starts the app under gunicorn on a free loopback port (own cache folder).
2. Opens every page once in headless Chromium and records the callback requests the
   browser really sends (the same callbacks a slider move triggers), leaving out
   background jobs.
3. N client threads replay those requests for T seconds, each with integer inputs
   moved by -1/0/+1 (a slider step), and record status and latency.
Prints and writes (with --out) requests, throughput, p50/p95/p99 latency and errors.

    .venv/bin/python benchmarks/load_test.py --clients 50 --seconds 30 --out benchmarks/results/load.md
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def run_load(url: str, payloads: list[dict], clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop_at:
            body = json.dumps(_jitter(rng.choice(payloads), rng)).encode()
            req = urllib.request.Request(url + "/_dash-update-component", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    resp.read()
                    ok = resp.status in (200, 204)
                    err = "" if ok else f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                ok, err = exc.code in (204,), f"HTTP {exc.code}"
            except OSError as exc:
                ok, err = False, type(exc).__name__
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                if not ok:
                    errors.append(err)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t_start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t_start
    lat = sorted(latencies)

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")

    return {"clients": clients, "seconds": round(wall, 1), "requests": len(lat),
            "requests_per_s": round(len(lat) / wall, 1), "p50_ms": round(pct(0.50), 1),
            "p95_ms": round(pct(0.95), 1), "p99_ms": round(pct(0.99), 1),
            "mean_ms": round(statistics.fmean(lat) * 1000, 1) if lat else None,
            "errors": len(errors), "error_kinds": sorted(set(errors))[:10],
            "distinct_callbacks": len({p["output"] for p in payloads})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not (1 <= args.clients <= 200 and 1 <= args.seconds <= 120):
        ap.error("expected 1..200 clients and 1..120 seconds (the test is bounded)")
    cache = Path(tempfile.mkdtemp(prefix="lab-load-"))
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    cmd = [gunicorn, "app:server", "-b", "127.0.0.1:{port}", "-w", str(args.workers),
           "--threads", str(args.threads), "--no-control-socket", "--timeout", "120"]
    proc, url = start_app(cache, command=cmd)
    try:
        payloads = record_payloads(url)
        result = run_load(url, payloads, args.clients, args.seconds)
    finally:
        stop_process(proc)
    result.update(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  server=f"gunicorn -w {args.workers} --threads {args.threads}",
                  machine=f"{platform.machine()}, {__import__('os').cpu_count()} cores")
    print(json.dumps(result, indent=2))
    if args.out:
        lines = ["# Load test (loopback)", "",
                 f"`python benchmarks/load_test.py --clients {args.clients} --seconds {args.seconds:g}`"
                 f" on {result['machine']}, {result['date']}, server `{result['server']}`.", "",
                 "Each client replays, for the whole time, callback requests recorded from a real "
                 "browser loading every page (background jobs left out), with integer inputs moved "
                 "by one step at random.", "",
                 "| " + " | ".join(k for k in result if k not in ("error_kinds",)) + " |",
                 "|" + "---|" * (len(result) - 1),
                 "| " + " | ".join(str(v) for k, v in result.items() if k != "error_kinds") + " |", ""]
        if result["error_kinds"]:
            lines.append("Error kinds: " + ", ".join(result["error_kinds"]))
        args.out.write_text("\n".join(lines) + "\n")
    sys.exit(1 if result["errors"] else 0)


if __name__ == "__main__":
    main()
