"""/attention, /moe and /structured-matrices: every callback and job at its widget limits
(and past them) under a small memory budget, in a fresh process.

Each callback and job plan estimates its allocation from the spec first and is refused
against SPARSITY_LAB_MEMORY_BUDGET_MB ("expected at most ... MB ..."); what is accepted
must then stay under the budget plus MARGIN_MB. Peak memory is the process's own
high-water mark (VmHWM in /proc/self/status), reset before each call through
/proc/self/clear_refs, minus the resident set before the call. A job is driven through
its first rows (every weight and input is allocated before the first row), and the
/attention and /moe sweeps also through every row of the largest work the budget admits
(a sweep's largest allocation is its last sequence length or batch).
"""
import json
import os
import subprocess
import sys

from tests.apphelpers import ROOT

BUDGET_MB = 128
MARGIN_MB = 96      # allocator slack, plotly figure objects and torch's per-op workspaces

CODE = r"""
import dataclasses, itertools, json
import app  # noqa: F401  (registers the pages)
from engine.attention import masks as M, views as V
from engine.moe import example, params, timing, training
from engine.structured import pareto, sweep
from engine.validate import check_budget
from pages import attention as at, moe, structured_matrices as sm

def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith(key + ":"))

def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS

results = {}
def run(name, fn, *args, rows=0):
    reset_peak()
    before = status("VmRSS")
    try:
        out = fn(*args)
        if rows:
            out = list(itertools.islice(out.rows, rows))
        text, ok = str(out), True
    except ValueError as exc:
        text, ok = str(exc), False
    results[name] = {"grew_mb": status("VmHWM") - before, "refused": (not ok) or "msg-error" in text,
                     "budget": "expected at most" in text}

P = {n: V.PARAM_LIMITS[n][1] for n in V.PARAM_NAMES}
DEFAULT = [M.DEFAULT_PARAMS[n] for n in V.PARAM_NAMES]
TOP = [P[n] for n in V.PARAM_NAMES]
OVER = [P[n] + 1 for n in V.PARAM_NAMES]
R = example.ROUTING_LIMITS
ROUTING_TOP = [R["tokens"][1], R["experts"][1], R["k"][1], R["capacity_factor"][1], R["d_model"][1],
               R["temperature"][1], R["skew"][1], R["jitter"][1], [], R["seed"][1], R["d_ff"][1]]
CFG_TOP = [params.CONFIG_LIMITS[f][1] for f in params.CONFIG_FIELDS]
T = training.TRAIN_LIMITS

# warm-up at the defaults: libraries, thread pools, allocator arenas
at.draw_mask("longformer", 512, 32, *DEFAULT); at.draw_weights("longformer", 512, 32, *DEFAULT)
moe.update_routing(64, 8, 2, 1.25, 64, 1.0, 0, 0, [], 0, 256)
list(itertools.islice(moe.plan_training(4, 2, 0.1, 1).rows, 1))
list(itertools.islice(moe.plan_sweep(16, 2, "8/2", "float32", "cpu").rows, 1))
sm.update_analysis("kernel", 6, 2)
list(itertools.islice(sm.plan_sweep(256, [1], ["float32"], 4, 4).rows, 1))

# /attention: every mask at the longest sequence and smallest block, all parameters at their maxima
for kind in M.MASK_KINDS:
    run(f"attention mask {kind} S=4096", at.draw_mask, kind, 4096, 8, *TOP)
    run(f"attention weights {kind} S=4096", at.draw_weights, kind, 4096, 8, *TOP)
run("attention mask S=2048", at.draw_mask, "bigbird", 2048, 8, *TOP)
run("attention mask S=1024", at.draw_mask, "bigbird", 1024, 8, *TOP)
run("attention mask S=8192 (past)", at.draw_mask, "bigbird", 8192, 8, *DEFAULT)
run("attention mask params past", at.draw_mask, "bigbird", 512, 8, *OVER)
run("attention weights params past", at.draw_weights, "bigbird", 512, 8, *OVER)
run("attention sweep at its limits", at.plan_sweep, list(V.SWEEP_SEQS), [k for k in V.SWEEP_MASKS
    if k not in ("full", "causal")], [], 128, *TOP)
run("attention sweep past", at.plan_sweep, [2 * max(V.SWEEP_SEQS)], ["bigbird"], [], 128, *DEFAULT)
run("attention sweep S=4096 bigbird", at.plan_sweep, [4096], ["bigbird"], [], 128, *DEFAULT, rows=2)
# the longest sequence the budget admits, every row (its largest allocation is its last length)
run("attention sweep S=1024 bigbird, all rows", at.plan_sweep, [1024], ["bigbird"], [], 128, *DEFAULT, rows=10**6)

# /moe
run("moe routing at its limits", moe.update_routing, *ROUTING_TOP)
run("moe routing past", moe.update_routing, R["tokens"][1] + 8, *ROUTING_TOP[1:])
run("moe params at their limits", moe.update_params, *CFG_TOP, ["gated"], R["d_model"][1], R["d_ff"][1],
    R["experts"][1], R["k"][1])
run("moe training at its limits", moe.plan_training, T["experts"][1], T["k"][1], T["alpha"][1],
    T["epochs"][1], rows=2)
run("moe training past", moe.plan_training, T["experts"][1] + 1, 2, 0.1, 1)
S = timing.SWEEP_LIMITS
run("moe sweep at its limits", moe.plan_sweep, S["d_model"][1], S["max_batch"][1], timing.EXPERT_CHOICES[-1],
    "float32", "cpu")
run("moe sweep d=128 batch 256", moe.plan_sweep, 128, 256, "8/2", "float32", "cpu", rows=5)
# the widest model and largest batch the budget admits (d = 256, batch 256: the page's plan
# accepts it), every variant at that batch alone, so the sweep's largest allocation is reached
WIDE = timing.SweepSpec.from_widgets(256, 256, "8/2", "float32", "cpu", min_run_time=0.005)
check_budget("timing sweep", WIDE.memory_bytes("cpu"))
WIDEST = dataclasses.replace(WIDE, batches=(256,))
run("moe sweep d=256 batch 256, its largest rows", lambda: list(timing.timing_sweep_rows(WIDEST)))
results["moe sweep d=256 batch 256, its largest rows"]["estimate_mb"] = WIDEST.memory_bytes("cpu") / 2**20
run("moe sweep past", moe.plan_sweep, S["d_model"][1] + 8, 16, "8/2", "float32", "cpu")

# /structured-matrices
top = max(pareto.SIZE_EXPONENTS)
for target in ("kernel", "dft", "conv", "gaussian"):
    run(f"sm analysis {target} n={2 ** top}", sm.update_analysis, target, top, min(pareto.BUDGET_EXPONENTS))
    run(f"sm analysis {target} n={2 ** top}, last budget", sm.update_analysis, target, top, max(pareto.BUDGET_EXPONENTS))
run("sm analysis past", sm.update_analysis, "kernel", top + 1, 2)
run("sm sweep at its limits", sm.plan_sweep, max(sweep.SWEEP_SIZES), list(sweep.BATCHES), list(sweep.DTYPES),
    sweep.RANK_LIMITS[1], 64)
run("sm sweep n=1024 batch 1024", sm.plan_sweep, 1024, [1024], ["float32"], 32, 16, rows=8)
run("sm sweep past", sm.plan_sweep, 16384, [1], ["float32"], 32, 16)
print(json.dumps(results))
"""


def test_every_callback_at_its_limits_stays_under_the_budget():
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update(PYTHONPATH=str(ROOT), SPARSITY_LAB_MEMORY_BUDGET_MB=str(BUDGET_MB), SPARSITY_LAB_FORCE_CPU="1",
               SPARSITY_LAB_PURE_CACHE_MB="0", SPARSITY_LAB_CACHE=os.environ.get("SPARSITY_LAB_CACHE", "/tmp"),
               OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", CODE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    grew = {k: round(v["grew_mb"]) for k, v in results.items() if not v["refused"]}
    assert max(grew.values()) < BUDGET_MB + MARGIN_MB, grew
    refused = {k for k, v in results.items() if v["refused"]}
    past = {k for k in results if "past" in k}
    assert past <= refused, past - refused                      # past the widgets: refused
    over_budget = {k for k, v in results.items() if v["budget"]}
    # at the widgets' limits the biggest work is refused by its estimate, before allocating ...
    assert {"attention mask bigbird S=4096", "attention sweep at its limits",
            "moe sweep at its limits", "sm sweep at its limits"} <= over_budget, over_budget
    # ... and what fits the budget is computed
    assert {"attention mask S=1024", "moe routing at its limits", "moe training at its limits",
            "sm analysis kernel n=512", "sm sweep n=1024 batch 1024",
            "moe sweep d=128 batch 256", "attention weights bigbird S=4096", "attention sweep S=1024 bigbird, all rows",
            "moe sweep d=256 batch 256, its largest rows"}.isdisjoint(refused), refused
    # the MoE estimate covers what its largest rows really allocate
    widest = results["moe sweep d=256 batch 256, its largest rows"]
    assert widest["grew_mb"] <= widest["estimate_mb"] + MARGIN_MB, widest
