"""Control to settled figure, in headless Chromium: how long each page's controls take.

1. Starts the app under gunicorn on a loopback port (own cache folder), like
   ``benchmarks/load_test.py``.
2. Opens each page at 1280 x 900 and waits until it settles: no ``_dash-update-component``
   request in flight, no element with ``data-dash-is-loading="true"``, then one more
   animation frame (what the callbacks drew has been painted), unchanged for
   ``--quiet-ms`` (a chained callback that starts in that window counts).
3. For every user control whose ``value`` is an input of a callback that is not a
   background job (sliders, number boxes, radio items, checklists, dropdowns; text boxes,
   uploads and job Run / Cancel buttons are left out), changes it by one step the way a
   person does (slider: arrow key to the next step or mark; number: +step within
   min / max; radio / dropdown: the next option; checklist: toggle one option)
   and times from the key or pointer event to settled (a number box: its + / - button). ``--repeats`` changes per control
   walk on (a slider steps on, and back down at its end), so a repeat is a new value
   rather than one the pure-result cache already holds (two-option controls must revisit).
4. Two modes: ``defaults`` (the page as it opens) and ``largest`` (the size-like
   controls set to the largest value the rendered widget allows first; /generator and
   /scanner through their URL query, see ``LARGEST``).

It writes a markdown table per page (control, mode, median / max ms, callbacks fired,
bytes received), the slowest controls overall, whether the targets hold (every control
settles within 300 ms at defaults and 600 ms at the largest sizes, judged on each
control's median; the max is shown beside it), and the machine, its load average before
and after, the versions, the commit and the date; the JSON goes beside the markdown.

    .venv/bin/python benchmarks/settle_test.py --repeats 3 --out benchmarks/results/settle.md
    .venv/bin/python benchmarks/settle_test.py --pages /moe,/runs --modes defaults --repeats 1

Measure on a quiet machine (``uptime``): other work on the cores shows up in every number.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Error as PlaywrightError  # noqa: E402

from benchmarks.load_test import CHROMIUM, FLAGS, environment, short_name  # noqa: E402
from tests.apphelpers import start_app, stop_process  # noqa: E402

PAGES = ("/generator", "/scanner", "/isomorphism", "/paper", "/paradox", "/structured-sparsity",
         "/moe", "/attention", "/structured-matrices", "/runs", "/your-matrix")
TARGET_MS = {"defaults": 300, "largest": 600}
MODES = tuple(TARGET_MS)
CHAIN_LARGEST = "?preset=dense&n_phases=64&n_patterns=32&k=64&nnz_per_row=8&hidden=32&n_harmonics=16"
# "largest": a URL query, or the size-like controls to put at the widget's largest value
# (slider / number: its max; dropdown: the option with the largest number in its label).
LARGEST: dict[str, str | tuple[str, ...]] = {
    "/generator": CHAIN_LARGEST,
    "/scanner": CHAIN_LARGEST,
    "/isomorphism": ("iso-conv-size", "iso-conv-cin", "iso-conv-cout", "iso-conv-kernel",
                     "iso-pool-size", "iso-pool-channels", "iso-rnn-t-len", "iso-rnn-hidden",
                     "iso-rnn-d", "iso-attn-t-len", "iso-attn-d", "iso-attn-d-v"),
    "/paradox": ("paradox-size", "paradox-k", "paradox-block"),
    "/structured-sparsity": ("ss-size",),
    "/moe": ("moe-tokens", "moe-experts", "moe-k", "moe-d", "moe-h"),
    "/attention": ("attention-seq",),
    "/structured-matrices": ("sm-size",),
}

# Installed before Dash loads: counts callback requests (in flight, fired, bytes, failed)
# and stamps the first key / pointer event after __labArm() as the start of a change.
MONITOR_JS = r"""
(() => {
  const L = window.__lab = {inflight: 0, calls: [], t0: null, armed: false};
  const fetch0 = window.fetch;
  window.fetch = function (input, init) {
    const url = typeof input === 'string' ? input : (input && input.url) || '';
    if (!url.includes('_dash-update-component')) return fetch0.apply(this, arguments);
    let output = '?';
    try { output = JSON.parse(init.body).output; } catch (e) {}
    const call = {output, start: performance.now(), ms: null, app_ms: null, bytes: 0, failed: false};
    L.calls.push(call); L.inflight++;
    const p = fetch0.apply(this, arguments);
    p.then(r => { call.failed = r.status >= 400;
                  const st = /app;dur=([0-9.]+)/.exec(r.headers.get('server-timing') || '');
                  call.app_ms = st ? +st[1] : null;
                  return r.clone().arrayBuffer(); })
     .then(b => { call.bytes = b.byteLength; }, () => { call.failed = true; })
     .finally(() => { call.ms = performance.now() - call.start; L.inflight--; });
    return p;
  };
  // the browser's main thread: tasks over 50 ms (drawing figures, the Dash renderer)
  L.long = [];
  try {
    new PerformanceObserver(list => { for (const e of list.getEntries()) L.long.push(e); })
      .observe({type: 'longtask', buffered: true});
  } catch (e) {}
  const stamp = () => { if (L.armed) { L.armed = false; L.t0 = performance.now(); } };
  for (const ev of ['keydown', 'pointerdown', 'mousedown'])
    window.addEventListener(ev, stamp, true);
  window.__labArm = () => { L.armed = true; L.t0 = null; L.from = L.calls.length; };
  const busy = () => L.inflight > 0 ||
      document.querySelector('[data-dash-is-loading="true"]') !== null ||
      document.getElementById('react-entry-point') === null;
  // resolves once nothing has been busy for quietMs; settledAt is the second clean frame
  // after the last busy one (the first clean frame's paint is done by then)
  window.__labSettle = (quietMs, timeoutMs) => new Promise(resolve => {
    const start = performance.now();
    let clean = 0, settledAt = null;
    const done = (at, timeout) => resolve({t0: L.t0, settled: at, timeout,
        long_ms: L.long.filter(e => L.t0 !== null && e.startTime >= L.t0 && e.startTime < at)
                       .reduce((sum, e) => sum + e.duration, 0),
        calls: L.calls.slice(L.from || 0).map(({output, ms, app_ms, bytes, failed}) =>
                                                ({output, ms, app_ms, bytes, failed}))});
    const frame = () => {
      const now = performance.now();
      if (busy()) { clean = 0; settledAt = null; }
      else if (++clean === 2) settledAt = now;
      if (settledAt !== null && now - settledAt >= quietMs) return done(settledAt, false);
      if (now - start > timeoutMs) return done(now, true);
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  });
})();
"""

# What a control is and where it stands, read from the rendered widget.
DESCRIBE_JS = r"""
(id) => {
  const e = document.getElementById(id);
  if (!e) return null;
  const box = e.getBoundingClientRect();
  const visible = box.width > 0 && box.height > 0 && getComputedStyle(e).visibility !== 'hidden';
  const thumb = e.querySelector('[role=slider]');
  if (thumb) return {kind: 'slider', visible, min: +thumb.getAttribute('aria-valuemin'),
                     max: +thumb.getAttribute('aria-valuemax'),
                     value: +thumb.getAttribute('aria-valuenow')};
  if (e.tagName === 'INPUT') return {kind: e.type === 'number' ? 'number' : 'text:' + e.type,
      visible, min: e.min === '' ? null : +e.min, max: e.max === '' ? null : +e.max,
      step: e.step, value: e.value === '' ? null : +e.value};
  const boxes = [...e.querySelectorAll('input[type=radio], input[type=checkbox]')];
  if (e.classList.contains('dash-radioitems') || e.classList.contains('dash-checklist'))
    return {kind: e.classList.contains('dash-radioitems') ? 'radio' : 'checklist', visible,
            options: boxes.map(b => b.value), checked: boxes.map(b => b.checked),
            disabled: boxes.map(b => b.disabled)};
  if (e.classList.contains('dash-dropdown'))
    return {kind: 'dropdown', visible, value: e.innerText.trim(),
            disabled: e.disabled || e.getAttribute('aria-disabled') === 'true'};
  return {kind: 'other:' + e.tagName.toLowerCase(), visible};
}
"""

DROPDOWN_OPTIONS = ".dash-dropdown-content .dash-dropdown-option"


def control_ids(deps: list[dict]) -> list[str]:
    """Ids whose ``value`` is an input of a callback that is not a background job."""
    ids: dict[str, None] = {}
    for dep in deps:
        if dep.get("background"):
            continue
        for item in dep["inputs"]:
            if item["property"] == "value" and not item["id"].startswith("{"):
                ids.setdefault(item["id"], None)
    return list(ids)


def next_number(info: dict, direction: int) -> tuple[float, int]:
    """The number box's next value one step on (back at its max / min): (value, direction)."""
    value = info["value"] if info["value"] is not None else (info["min"] or 0)
    step = info["step"]
    delta = float(step) if step not in ("", "any", None) else max(abs(value) * 0.1, 0.01)
    for d in (direction, -direction):
        new = value + d * delta
        if (info["max"] is None or new <= info["max"]) and (info["min"] is None or new >= info["min"]):
            return (int(new) if float(new).is_integer() else round(new, 6)), d
    return value, direction


def _settle(page, quiet_ms: float, timeout_ms: float) -> dict:
    return page.evaluate("([q, t]) => window.__labSettle(q, t)", [quiet_ms, timeout_ms])


def change(page, cid: str, info: dict, direction: int, k: int) -> tuple[str, int] | None:
    """Change the control one step as a person would, the event stamped as t0.
    Returns ("from -> to", the direction walked), or None when it cannot be changed."""
    el = page.locator(f"#{cid}")
    kind = info["kind"]
    if kind == "slider":
        at_end = info["value"] >= info["max"] if direction > 0 else info["value"] <= info["min"]
        direction = -direction if at_end else direction
        thumb = el.locator("[role=slider]")
        thumb.focus()
        page.evaluate("() => window.__labArm()")
        thumb.press("ArrowRight" if direction > 0 else "ArrowLeft")
        return f"{info['value']:g} -> {float(thumb.get_attribute('aria-valuenow')):g}", direction
    if kind == "number":
        new, direction = next_number(info, direction)
        # Dash's number box has its own -/+ buttons: one click is one step, sent at once
        # (typing waits for Enter, blur or the box's debounce)
        stepper = el.locator("xpath=..").locator(
            ".dash-stepper-increment" if direction > 0 else ".dash-stepper-decrement")
        if stepper.count() and stepper.is_enabled():
            page.evaluate("() => window.__labArm()")
            stepper.click()
            return f"{info['value']} -> {el.input_value()}", direction
        el.fill(str(new))
        page.evaluate("() => window.__labArm()")
        el.press("Enter")
        return f"{info['value']} -> {new}", direction
    if kind in ("radio", "checklist"):
        n = len(info["options"])
        if kind == "radio":
            current = info["checked"].index(True) if True in info["checked"] else -1
            i = (current + 1) % n
        else:
            i = k % n
        if info["disabled"][i] or (kind == "radio" and i == current):
            return None
        page.evaluate("() => window.__labArm()")
        el.locator("label").nth(i).click()
        if kind == "radio":
            return f"{info['options'][current] if current >= 0 else ''} -> {info['options'][i]}", direction
        return f"{'-' if info['checked'][i] else '+'}{info['options'][i]}", direction
    if kind == "dropdown":
        if info["disabled"]:
            return None
        el.click()
        options = page.locator(DROPDOWN_OPTIONS)
        try:
            options.first.wait_for(timeout=3000)
        except PlaywrightError:  # no options (nothing stored yet)
            page.keyboard.press("Escape")
            return None
        selected = page.locator(DROPDOWN_OPTIONS + "[aria-selected=true]")
        labels = options.all_inner_texts()
        current = labels.index(selected.first.inner_text()) if selected.count() else -1
        i = (current + 1) % len(labels)
        if len(labels) < 2 and current == 0:
            page.keyboard.press("Escape")
            return None
        page.evaluate("() => window.__labArm()")
        options.nth(i).click()
        if page.locator(DROPDOWN_OPTIONS).count():
            page.keyboard.press("Escape")  # a multi-select stays open
        return f"{info['value'][:30]} -> {labels[i].strip()[:30]}", direction
    return None


def set_largest(page, cid: str, info: dict) -> str | None:
    """Put a size-like control at its largest allowed value; what it was set to."""
    el = page.locator(f"#{cid}")
    if info["kind"] == "slider":
        el.locator("[role=slider]").focus()
        el.locator("[role=slider]").press("End")
        return f"{info['max']:g}"
    if info["kind"] == "number" and info["max"] is not None:
        el.fill(str(int(info["max"]) if float(info["max"]).is_integer() else info["max"]))
        el.press("Enter")
        return f"{info['max']:g}"
    if info["kind"] == "dropdown":
        el.click()
        options = page.locator(DROPDOWN_OPTIONS)
        options.first.wait_for(timeout=5000)
        labels = options.all_inner_texts()

        def size(label: str) -> float:
            digits = "".join(c if c.isdigit() else " " for c in label).split()
            return max((float(d) for d in digits), default=-1)

        i = max(range(len(labels)), key=lambda j: size(labels[j]))
        options.nth(i).click()
        return labels[i].strip()
    return None


def sample(settled: dict, what: str) -> dict:
    """One change: ms from the event to settled, and the callback requests it caused
    (``server_ms``: the longest request, sent to answered, which includes server time)."""
    calls = settled["calls"]
    t0 = settled["t0"] if settled["t0"] is not None else settled["settled"]
    longest = max(calls, key=lambda c: c["ms"] or 0, default=None)
    return {"ms": round(settled["settled"] - t0, 1), "change": what, "callbacks": len(calls),
            "bytes": sum(c["bytes"] for c in calls), "failed": sum(c["failed"] for c in calls),
            "timeout": settled["timeout"],
            "server_ms": round(longest["ms"] or 0, 1) if longest else 0.0,
            # the app's own time on that request (its Server-Timing header): the rest of
            # server_ms is the wait for a worker, the transfer and the browser reading it
            "app_ms": round(longest["app_ms"] or 0, 1) if longest else 0.0,
            "browser_long_ms": round(settled.get("long_ms") or 0, 1),
            "slowest_callback": short_name(longest["output"]) if longest else ""}


def wait_rendered(page, ids: list[str], quiet_ms: float, timeout_ms: float) -> None:
    """Settle, then wait until the number of these controls in the page stops changing
    (React draws a component once its code has arrived, which no callback shows)."""
    _settle(page, quiet_ms, timeout_ms)
    deadline, last, stable = time.monotonic() + timeout_ms / 1000, -1, 0
    while stable < 3 and time.monotonic() < deadline:
        count = page.evaluate("ids => ids.filter(id => document.getElementById(id)).length", ids)
        stable, last = (stable + 1 if count == last else 0), count
        page.wait_for_timeout(150)
    _settle(page, quiet_ms, timeout_ms)


def open_page(page, url: str, ids: list[str], quiet_ms: float) -> float:
    """Load the page and wait until it settles with its controls drawn; the load time in ms."""
    t = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("#_pages_content > *", state="attached", timeout=60_000)
    try:  # Dash fetches its components' code when they first render
        page.wait_for_load_state("networkidle", timeout=30_000)
    except PlaywrightError:
        pass  # something keeps polling; the waits below still hold
    wait_rendered(page, ids, quiet_ms, 60_000)
    return (time.perf_counter() - t) * 1000


KINDS = ("slider", "number", "radio", "checklist", "dropdown")
TABS = ".tab-container > .tab"  # dcc.Tabs: a tab's controls are in the page only while it is open


def measure_control(page, cid: str, repeats: int, quiet_ms: float, timeout_ms: float) -> dict | str:
    """``repeats`` one-step changes of one control: its samples and summary, or why not."""
    samples, direction, what, kind = [], 1, "", ""
    for k in range(repeats):
        info = page.evaluate(DESCRIBE_JS, cid)
        kind = info["kind"]
        page.evaluate("() => window.__labArm()")
        try:
            done = change(page, cid, info, direction, k)
        except PlaywrightError as exc:  # say why, and go on with the next control
            page.keyboard.press("Escape")
            return f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
        if done is None:
            break
        what, direction = done
        samples.append(sample(_settle(page, quiet_ms, timeout_ms), what))
    if not samples:
        return "cannot step (no other option, or disabled)"
    ms = [x["ms"] for x in samples]
    return {"control": cid, "kind": kind, "change": what, "samples": samples,
            "median_ms": round(statistics.median(ms), 1), "max_ms": max(ms),
            "callbacks": max(x["callbacks"] for x in samples),
            "bytes": max(x["bytes"] for x in samples),
            "server_ms": round(statistics.median(x["server_ms"] for x in samples), 1),
            "app_ms": round(statistics.median(x["app_ms"] for x in samples), 1),
            "browser_long_ms": round(statistics.median(x["browser_long_ms"] for x in samples), 1),
            "slowest_callback": max(samples, key=lambda x: x["server_ms"])["slowest_callback"],
            "failed": sum(x["failed"] for x in samples),
            "timeouts": sum(x["timeout"] for x in samples)}


def visit_tabs(page, ids: list[str], repeats: int, quiet_ms: float, timeout_ms: float,
               to_set: list[str], set_now: dict, result: dict) -> None:
    """Each tab of the loaded page in turn (the page itself when it has none): its size-like
    controls to their largest (``to_set``), then every control not yet measured."""
    closed_tabs = page.eval_on_selector_all(
        TABS, "tabs => tabs.filter(t => !t.classList.contains('tab--selected')).map(t => t.id)")
    for tab in [None] + closed_tabs:
        if tab:
            page.click(f"#{tab}")
            wait_rendered(page, ids, quiet_ms, timeout_ms)
        for cid in [c for c in to_set if c not in set_now]:
            info = page.evaluate(DESCRIBE_JS, cid)
            if info and info["visible"]:
                set_now[cid] = set_largest(page, cid, info) or f"cannot ({info['kind']})"
                _settle(page, quiet_ms, timeout_ms)
        for cid in ids:
            if any(c["control"] == cid for c in result["controls"]):
                continue
            info = page.evaluate(DESCRIBE_JS, cid)
            if not info:
                continue
            if not info["visible"] or info["kind"] not in KINDS:
                result["skipped"].setdefault(cid, "hidden" if not info["visible"] else info["kind"])
                continue
            measured = measure_control(page, cid, repeats, quiet_ms, timeout_ms)
            if isinstance(measured, str):
                result["skipped"][cid] = measured
            else:
                result["skipped"].pop(cid, None)
                result["controls"].append(measured)


def measure_page(browser, base: str, path: str, mode: str, ids: list[str], repeats: int,
                 quiet_ms: float, timeout_ms: float) -> dict:
    """Every control of one page in one mode, tab by tab: per control its samples and summary."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(MONITOR_JS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    largest = LARGEST.get(path, ())
    query = largest if isinstance(largest, str) else ""
    to_set = [] if isinstance(largest, str) or mode != "largest" else list(largest)
    result = {"page": path, "mode": mode, "set": {}, "controls": [], "skipped": {}}
    try:
        # a control hidden by another one's change (a mask's own parameters) gets a second
        # chance on a fresh load of the page; one hidden at the page's start stays hidden
        for _ in range(2):
            load_ms = open_page(page, base + path + (query if mode == "largest" else ""), ids,
                                quiet_ms)
            result.setdefault("load_ms", round(load_ms))
            set_now: dict[str, str] = {}
            visit_tabs(page, ids, repeats, quiet_ms, timeout_ms, to_set, set_now, result)
            result["set"] = result["set"] or set_now
            if "hidden" not in result["skipped"].values():
                break
        result["set"].update({cid: "not found" for cid in to_set if cid not in result["set"]})
    finally:
        result["console_errors"] = errors[:10]
        context.close()
    return result


def verdict(results: list[dict]) -> dict:
    """Per mode: does every control's median settle within the target, and the misses."""
    out = {}
    for mode, target in TARGET_MS.items():
        rows = [(r["page"], c) for r in results if r["mode"] == mode for c in r["controls"]]
        if not rows:
            continue
        miss = [f"{p} {c['control']}" for p, c in rows if c["median_ms"] > target]
        miss_max = [f"{p} {c['control']}" for p, c in rows if c["max_ms"] > target]
        out[mode] = {"target_ms": target, "controls": len(rows), "holds": not miss,
                     "over_by_median": miss, "over_by_max": miss_max}
    return out


def markdown(env: dict, args, results: list[dict], slowest: int = 15) -> str:
    cmd = (f"python benchmarks/settle_test.py --repeats {args.repeats} --modes {','.join(args.modes)}"
           + (f" --pages {','.join(args.pages)}" if tuple(args.pages) != PAGES else "")
           + (f" --controls {args.controls}" if args.controls else ""))
    lines = ["# Control to settled figure (headless Chromium)", "",
             f"`{cmd}`, {env['date']}, commit `{env['commit']}`, server `{env['server']}`, "
             f"{env['browser']}.", "",
             f"- machine: {env['machine']}; load average (1/5/15 min) before: "
             f"{env['load_average_before']}, after: {env['load_average_after']}",
             f"- Python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
             "- settled: no callback request in flight, no element with "
             "`data-dash-is-loading=\"true\"`, then one more animation frame, timed from the key or "
             f"pointer event of the change (quiet window {args.quiet_ms:g} ms, not counted); "
             "callbacks and bytes are the most one change of the control caused; the longest "
             "request (sent to answered: server time plus transfer) and its callback's output "
             "id say how much of the time is the server's; its app ms is the app's own time on "
             "that request (its `Server-Timing` header: the rest is the wait, the transfer and the "
             "browser reading it) and browser long tasks ms the main thread's tasks over 50 ms "
             "during the change (drawing figures, the Dash renderer).", ""]
    if env["load_average_before"][0] > 1.0:
        lines += [f"The machine was busy (load {env['load_average_before'][0]} before the run): "
                  "these are upper bounds for it, not its quiet figures.", ""]
    lines += ["## Targets", "", "| mode | target (median per control) | controls | holds | "
              "over by median | over by max |", "|---|---|---|---|---|---|"]
    for mode, v in verdict(results).items():
        lines.append(f"| {mode} | {v['target_ms']} ms | {v['controls']} | "
                     f"{'yes' if v['holds'] else 'no'} | {len(v['over_by_median'])} | "
                     f"{len(v['over_by_max'])} |")
    rows = sorted(((r["page"], r["mode"], c) for r in results for c in r["controls"]),
                  key=lambda row: -row[2]["median_ms"])
    lines += ["", f"## Slowest {min(slowest, len(rows))} controls", "",
              "| page | control | mode | change | median ms | max ms | callbacks | bytes | "
              "longest request ms | its app ms | its callback (output) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for path, mode, c in rows[:slowest]:
        lines.append(f"| {path} | `{c['control']}` | {mode} | {c['change']} | {c['median_ms']} | "
                     f"{c['max_ms']} | {c['callbacks']} | {c['bytes']:,} | {c['server_ms']} | "
                     f"{c['app_ms']} | `{c['slowest_callback']}` |")
    for r in results:
        lines += ["", f"## {r['page']} ({r['mode']})", "",
                  f"Load to settled: {r.get('load_ms', '?')} ms."
                  + (" Set first: " + ", ".join(f"`{k}` = {v}" for k, v in r["set"].items()) + "."
                     if r["set"] else "")
                  + (f" URL query: `{LARGEST[r['page']]}`." if r["mode"] == "largest"
                     and isinstance(LARGEST.get(r["page"]), str) else ""), "",
                  "| control | kind | change (last) | median ms | max ms | callbacks | bytes "
                  "received | longest request ms | its app ms | browser long tasks ms | failed |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for c in r["controls"]:
            lines.append(f"| `{c['control']}` | {c['kind']} | {c['change']} | {c['median_ms']} | "
                         f"{c['max_ms']} | {c['callbacks']} | {c['bytes']:,} | {c['server_ms']} | "
                         f"{c['app_ms']} | {c['browser_long_ms']} | "
                         f"{c['failed'] + c['timeouts']} |")
        if r["skipped"]:
            lines += ["", "Not measured: " + ", ".join(f"`{k}` ({v})" for k, v in r["skipped"].items())]
        if r["console_errors"]:
            lines += ["", "Console errors: " + "; ".join(r["console_errors"])]
    return "\n".join(lines) + "\n"


def dependencies(url: str, rounds: int = 3, width: int = 8, seconds: float = 60) -> list[dict]:
    """The app's callbacks, once ``rounds`` rounds of ``width`` concurrent answers in a row all
    list some. A gunicorn worker answers an empty list while another of its threads is still
    setting Dash up (Dash marks its setup done when it starts it), so a fresh server is
    asked, on every worker, until it has settled."""
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    def fetch(_) -> list[dict]:
        with urllib.request.urlopen(url + "/_dash-dependencies", timeout=30) as resp:
            return json.loads(resp.read())

    deadline, streak = time.monotonic() + seconds, 0
    with ThreadPoolExecutor(width) as pool:
        while time.monotonic() < deadline:
            answers = list(pool.map(fetch, range(width)))
            streak = streak + 1 if all(answers) else 0
            if streak >= rounds:
                return answers[0]
            time.sleep(0.05 if all(answers) else 0.5)
    raise RuntimeError(f"{url}/_dash-dependencies: expected the callbacks, got an empty list "
                       f"for {seconds:g} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", default=",".join(PAGES), help="comma-separated routes")
    ap.add_argument("--modes", default=",".join(MODES), help="defaults,largest")
    ap.add_argument("--controls", default="", help="comma-separated ids (default: every control)")
    ap.add_argument("--repeats", type=int, default=3, help="changes per control")
    ap.add_argument("--quiet-ms", type=float, default=300, help="idle this long counts as settled")
    ap.add_argument("--timeout-ms", type=float, default=30_000, help="per change")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--port", type=int, default=None, help="loopback port (default: a free one)")
    ap.add_argument("--out", type=Path, help="FILE.md; the JSON goes beside it (FILE.json)")
    args = ap.parse_args()
    args.pages = tuple(p.strip() for p in args.pages.split(",") if p.strip())
    args.modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if not all(p.startswith("/") for p in args.pages) or not set(args.modes) <= set(MODES) \
            or not 1 <= args.repeats <= 20:
        ap.error(f"expected routes starting with /, modes in {MODES} and 1..20 repeats, "
                 f"got {args.pages}, {args.modes}, {args.repeats}")
    from playwright.sync_api import sync_playwright

    env = environment(args)
    from importlib import metadata

    env["versions"]["playwright"] = metadata.version("playwright")
    cache = Path(tempfile.mkdtemp(prefix="lab-settle-"))
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    cmd = [gunicorn, "app:server", "-b", "127.0.0.1:{port}", "-w", str(args.workers),
           "--threads", str(args.threads), "--no-control-socket", "--timeout", "120"]
    proc, url = start_app(cache, command=cmd, port=args.port)
    results = []
    try:
        ids = control_ids(dependencies(url))
        wanted = [c.strip() for c in args.controls.split(",") if c.strip()]
        if wanted:
            unknown = sorted(set(wanted) - set(ids))
            if unknown:
                raise SystemExit(f"--controls: expected ids of controls ({len(ids)} listed by "
                                 f"{url}/_dash-dependencies), got {unknown}")
            ids = wanted
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            env["browser"] = f"Chromium {browser.version} (Playwright)"
            for path in args.pages:
                for mode in args.modes:
                    if mode == "largest" and path not in LARGEST:
                        continue  # nothing size-like: the defaults are its largest
                    results.append(measure_page(browser, url, path, mode, ids, args.repeats,
                                                args.quiet_ms, args.timeout_ms))
                    print(f"{path} {mode}: {len(results[-1]['controls'])} controls", file=sys.stderr)
            browser.close()
    finally:
        stop_process(proc)
    env["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report = {"environment": env, "targets": verdict(results), "pages": results}
    text = markdown(env, args, results)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    bad = sum(c["failed"] + c["timeouts"] for r in results for c in r["controls"])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
