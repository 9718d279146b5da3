"""benchmarks/settle_test.py against the real app, so the browser benchmark cannot rot: one
control of each kind /moe has (slider, number box, checklist, dropdown), at its defaults and
at its largest sizes, once each; plus its pure helpers on a table of cases."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.settle_test import TARGET_MS, control_ids, next_number, verdict

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")

NUMBER_CASES = [  # (widget, direction) -> (next value, direction walked)
    ({"value": 3, "min": 1, "max": 8, "step": "1"}, 1, (4, 1)),
    ({"value": 8, "min": 1, "max": 8, "step": "1"}, 1, (7, -1)),   # at its max: steps back
    ({"value": 1, "min": 1, "max": 8, "step": "1"}, -1, (2, 1)),
    ({"value": 16, "min": 16, "max": None, "step": "2"}, 1, (18, 1)),
    ({"value": 0.5, "min": 0, "max": None, "step": "any"}, 1, (0.55, 1)),
    ({"value": None, "min": 0, "max": 10, "step": "1"}, 1, (1, 1)),
]


@pytest.mark.parametrize("info, direction, expected", NUMBER_CASES)
def test_next_number_walks_within_min_and_max(info, direction, expected):
    assert next_number(info, direction) == expected


def test_controls_are_values_of_callbacks_that_are_not_jobs():
    deps = [{"inputs": [{"id": "a", "property": "value"}, {"id": "b", "property": "n_clicks"}]},
            {"inputs": [{"id": "job-x", "property": "value"}], "background": True},
            {"inputs": [{"id": '{"i":1}', "property": "value"}, {"id": "a", "property": "value"}]}]
    assert control_ids(deps) == ["a"]


def test_verdict_judges_each_control_by_its_median():
    fast = {"control": "f", "median_ms": TARGET_MS["defaults"] - 1, "max_ms": 900}
    slow = {"control": "s", "median_ms": TARGET_MS["largest"] + 1, "max_ms": 700}
    v = verdict([{"page": "/p", "mode": "defaults", "controls": [fast]},
                 {"page": "/p", "mode": "largest", "controls": [slow]}])
    assert v["defaults"]["holds"] and v["defaults"]["over_by_max"] == ["/p f"]
    assert not v["largest"]["holds"] and v["largest"]["over_by_median"] == ["/p s"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium at /usr/bin/chromium")
def test_settle_script_times_each_kind_of_control_on_moe(tmp_path):
    out = tmp_path / "settle.md"
    controls = "moe-tokens,moe-seed,moe-dropless,moe-cfg-preset"
    cmd = [sys.executable, "benchmarks/settle_test.py", "--pages", "/moe", "--controls", controls,
           "--repeats", "1", "--quiet-ms", "150", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    env = report["environment"]
    assert env["commit"] and env["load_average_before"] and env["load_average_after"]
    assert env["browser"].startswith("Chromium")
    pages = {(r["page"], r["mode"]): r for r in report["pages"]}
    assert set(pages) == {("/moe", "defaults"), ("/moe", "largest")}
    largest = pages["/moe", "largest"]["set"]
    assert largest["moe-tokens"] == "512", largest  # the slider's max, read from the widget
    for (_, mode), result in pages.items():
        assert not result["console_errors"], result["console_errors"]
        got = {c["control"]: c for c in result["controls"]}
        assert set(got) == set(controls.split(",")), result["skipped"]
        assert {c["kind"] for c in got.values()} == {"slider", "number", "checklist", "dropdown"}
        for c in got.values():
            # every change went to the server and came back painted, and was timed
            assert c["callbacks"] >= 1 and c["bytes"] > 0 and c["failed"] == 0, c
            assert 0 < c["server_ms"] <= c["median_ms"] < 30_000, c
        assert got["moe-tokens"]["change"] == ("64 -> 72" if mode == "defaults" else "512 -> 504")
    text = out.read_text()
    assert "## /moe (largest)" in text and "## Targets" in text and "load average" in text
