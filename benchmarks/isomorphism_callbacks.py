"""Time every /isomorphism callback at the layout's defaults, called as plain functions
(first call, then the median of 3 more), on this machine.

    python3 benchmarks/isomorphism_callbacks.py

The page's small inline timing (engine.layers.lowering.INLINE_BUDGET_S per timed path)
runs in the request path of each tab's ``time_*`` callback, beside the pure panel.
"""
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import app  # noqa
    from pages import isomorphism as iso
    from dash.development.base_component import Component

    def defaults():
        vals = {}
        def walk(c):
            if isinstance(c, Component):
                cid = getattr(c, "id", None)
                if isinstance(cid, str) and hasattr(c, "value"):
                    vals[cid] = c.value
                for ch in (c.children if isinstance(getattr(c, "children", None), list) else [getattr(c, "children", None)]):
                    walk(ch)
            elif isinstance(c, (list, tuple)):
                for ch in c: walk(ch)
        walk(iso.layout())
        return vals
    V = defaults()
    def vals(states): return [V[s.component_id] for s in states]
    calls = {
     "update_conv": lambda: iso.update_conv(*vals(iso.CONV_STATES)),
     "update_conv_row": lambda: iso.update_conv_row(0, *vals(iso.CONV_STATES)),
     "update_pool": lambda: iso.update_pool(*vals(iso.POOL_STATES)),
     "update_rnn": lambda: iso.update_rnn(*vals(iso.RNN_STATES)),
     "update_attn": lambda: iso.update_attn(*vals(iso.ATTN_STATES)),
     "time_conv": lambda: iso.time_conv(*vals(iso.CONV_STATES)),
     "time_pool": lambda: iso.time_pool(*vals(iso.POOL_STATES)),
     "time_rnn": lambda: iso.time_rnn(*vals(iso.RNN_STATES)),
     "time_attn": lambda: iso.time_attn(*vals(iso.ATTN_STATES)),
     "attn_token_range": lambda: iso.attn_token_range(V[iso.wid("attn", "t_len")]),
     "draw_sweep(no rows)": lambda: iso.draw_sweep([], []),
     "draw_sweep(ref)": lambda: iso.draw_sweep([], ["ref"]),
    }
    for name, fn in calls.items():
        t0 = time.perf_counter(); fn(); first = time.perf_counter() - t0
        ts = []
        for _ in range(3):
            t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
        print(f"{name:24s} first {first*1e3:8.1f} ms   then median {statistics.median(ts)*1e3:8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
