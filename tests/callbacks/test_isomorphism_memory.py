"""/isomorphism's callbacks at their widget limits (and past them) under a small memory budget.

Each callback and the .mtx download estimate their allocation from the spec first, so a
run at the limits must stay under SPARSITY_LAB_MEMORY_BUDGET_MB plus a stated margin:
peak RSS is read in a fresh process, after warm-up calls at the defaults.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUDGET_MB = 64
MARGIN_MB = 64      # allocator slack, plotly figure objects and the table payloads

CODE = r"""
import json, resource
import app  # noqa: F401
from engine.layers import explore as ex
from pages import isomorphism as iso

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

DEFAULTS = {"conv": ["digit", 0, 16, 1, 1, 3, 1, 1, 1], "pool": ["avg", 16, 1, 2, 2, 0],
            "rnn": [12, 4, 2, 0.9, 1.0], "attn": [4, 3, 2, 0, []]}
def at_limit(tab, extra=0):
    vals = list(DEFAULTS[tab])
    names = list(ex.SPECS[tab].__dataclass_fields__)
    for i, n in enumerate(names):
        if n in ex.LIMITS[tab] and n != "digit":
            vals[i] = ex.LIMITS[tab][n][1] + extra
        if n in ex.FLOAT_LIMITS:
            vals[i] = ex.FLOAT_LIMITS[n][1]
    return vals
CALLS = {"conv": iso.update_conv, "pool": iso.update_pool, "rnn": iso.update_rnn, "attn": iso.update_attn}
TIMES = {"conv": iso.time_conv, "pool": iso.time_pool, "rnn": iso.time_rnn, "attn": iso.time_attn}
for tab, fn in CALLS.items():
    fn(*DEFAULTS[tab])
    TIMES[tab](*DEFAULTS[tab])
    try:
        ex.mtx_text(ex.spec_from_widgets(tab, DEFAULTS[tab]), tab)
    except ValueError:
        pass
base = peak_mb()
refused = {}
for tab, fn in CALLS.items():
    for extra in (0, 10**6):
        vals = at_limit(tab, extra)
        out = fn(*vals)
        refused[f"{tab}+{extra}"] = "Cannot compute" in str(out[-1].children) and TIMES[tab](*vals) == ([], [], [])
        try:
            ex.mtx_text(ex.spec_from_widgets(tab, vals), tab)
            refused[f"{tab}+{extra} mtx"] = False
        except ValueError:
            refused[f"{tab}+{extra} mtx"] = True
print(json.dumps({"base": base, "peak": peak_mb(), "refused": refused}))
"""


def test_callbacks_at_their_limits_stay_under_the_budget():
    env = {**os.environ, "SPARSITY_LAB_MEMORY_BUDGET_MB": str(BUDGET_MB), "SPARSITY_LAB_FORCE_CPU": "1"}
    proc = subprocess.run([sys.executable, "-c", CODE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    grew = result["peak"] - result["base"]
    assert grew < BUDGET_MB + MARGIN_MB, result
    refused = result["refused"]
    assert all(refused[k] for k in refused if "+1000000" in k), refused      # past the widgets: refused
    assert refused["conv+0"] and not refused["rnn+0"] and not refused["attn+0"], refused
