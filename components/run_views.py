"""What /runs writes around its comparison plot: each run's legend title (device, every
way the two runs differ, whose rows) and the notes under the plot (which op and dtype are
drawn, like for like or not, why a run adds nothing). The comparison itself is
engine.bench.run_compare."""
from __future__ import annotations

import pandas as pd

from components.layout import message
from engine.bench.reference import short_device
from engine.bench.run_compare import other_values, slice_text, why_not_drawn


def whose(meta: dict) -> str:
    """Whose rows a run's are: "reference, 2026-11-22" or "run c1d8b3" (imported ones say so)."""
    if meta.get("status") == "committed reference":
        return f"committed reference, {str(meta.get('created') or 'undated')[:10]}"
    return f"{'imported ' if meta.get('status') == 'imported' else ''}run {str(meta['run_id'])[-6:]}"


def run_labels(frames: list[tuple[dict, pd.DataFrame]], match, slices: list[dict]) -> list[str]:
    """The legend group title of each run: its device (and, when the two differ, every way
    they differ: shape, dtype, timing method, from ``match``; the op when the runs draw
    different ones) and whose rows they are."""
    ops = {s.get("op") for s in slices}
    sides = []
    for i, ((meta, _f), s) in enumerate(zip(frames, slices)):
        device = short_device(meta.get("device_name")) if meta.get("device_name") else meta.get("kind", "")
        if match is not None and not match.same:
            device = match.reference_text if i == 0 else match.local_text
        op = f", {s['op']}" if len(ops) > 1 and s.get("op") else ""
        sides.append(f"{device}{op} ({whose(meta)}{', opened' if i == 0 and len(frames) > 1 else ''})")
    return sides


def compare_note(frames, drawn, slices, match, figure, labels, x, y, filtered):
    """The sentences under the plot: which op and dtype are drawn, whether the two runs are
    like for like (every mismatch named), and why a run adds nothing to the plot."""
    out = []
    shown = {slice_text(s) for s in slices if s}
    others = other_values([f for _m, f in frames], slices)
    if shown and not filtered:
        also = "; ".join(f"{col} {', '.join(v)}" for col, v in others.items())
        apart = " or ".join(c for c in ("op", "dtype") if len({s.get(c) for s in slices}) > 1)
        drawn_text = (f"the {shown.copy().pop()} rows only" if len(shown) == 1 else
                      f"the opened run's {slice_text(slices[0])} rows and the compared run's {slice_text(slices[1])} "
                      f"rows (they have no {apart} in common)")
        out.append(message(f"Drawn: {drawn_text}, one op and one dtype per curve"
                           + (f"; the run{'s also have' if len(frames) > 1 else ' also has'} {also}: pick "
                              "them under Filter op / Filter dtype." if also
                              else "."), "info"))
    if len(frames) == 2 and all(len(d) for d in drawn):  # else the run that has nothing is named below
        if match is None:
            kinds = {m["kind"] for m, _f in frames}
            out.append(message(f"Not like for like: a {' run and a '.join(sorted(kinds))} run measure different "
                               "things; nothing is matched between them." if len(kinds) > 1 else
                               "Not like for like: what these runs measured (device, shape, dtype, timing "
                               "method) cannot be read from their rows.", "warn"))
        elif match.same:
            out.append(message(f"Like for like: {match.label}"
                               + (f" ({' and '.join(sorted(shown))} rows)." if shown else "."), "info"))
        else:
            out.append(message(f"{match.unlike_text}.", "warn"))
    groups = {t.legendgroup for t in figure.data}
    for (meta, rows), part, s, label in zip(frames, drawn, slices, labels):
        if label not in groups:
            which = "opened" if meta is frames[0][0] else "compared"
            out.append(message(f"The {which} {meta['kind']} run, {label}, adds nothing to this plot of {y} "
                               f"against {x}: "
                               f"{why_not_drawn(rows, part, s, x, y)}.", "warn"))
    return out
