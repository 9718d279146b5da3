"""Checks at the engine boundary. Every message reads "expected ... got ..."."""
from __future__ import annotations

from typing import Any, Iterable, Mapping


# A number field (dcc.Input type=number) sends None when it is empty or what was typed
# lies outside its min/max: say that, not "got None".
NO_NUMBER = "no number (the field is empty, or what was typed is out of range)"


def _fail(what: str, expected: str, got: Any) -> None:
    raise ValueError(f"{what}: expected {expected}, got {NO_NUMBER if got is None else repr(got)}")


def _finite_number(what: str, value: Any, kind: str, lo: Any, hi: Any,
                   finite_kind: str | None = None) -> float:
    """``value`` as a finite float; the messages expect ``kind`` (``finite_kind`` for
    NaN or infinity) within [lo, hi]."""
    if isinstance(value, bool) or value is None:
        _fail(what, _range_text(kind, lo, hi), value)
    try:
        out = float(value)
    except (TypeError, ValueError):
        _fail(what, _range_text(kind, lo, hi), value)
    if out != out or out in (float("inf"), float("-inf")):
        _fail(what, _range_text(finite_kind or kind, lo, hi), value)
    return out


def _within(what: str, out: Any, kind: str, lo: Any, hi: Any, value: Any) -> Any:
    if (lo is not None and out < lo) or (hi is not None and out > hi):
        _fail(what, _range_text(kind, lo, hi), value)
    return out


def check_int(what: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """Return ``value`` as an int in [lo, hi]; raise ValueError otherwise."""
    as_float = _finite_number(what, value, "an integer", lo, hi)
    if as_float != int(as_float):
        _fail(what, _range_text("an integer", lo, hi), value)
    return _within(what, int(as_float), "an integer", lo, hi, value)


def check_float(what: str, value: Any, lo: float | None = None, hi: float | None = None) -> float:
    """Return ``value`` as a finite float in [lo, hi]; raise ValueError otherwise."""
    out = _finite_number(what, value, "a number", lo, hi, finite_kind="a finite number")
    return _within(what, out, "a number", lo, hi, value)


def check_choice(what: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``; raise ValueError otherwise."""
    options = list(choices)
    if value not in options:
        _fail(what, "one of " + ", ".join(map(str, options)), value)
    return value


def check_choices(what: str, values: Iterable[Any], choices: Iterable[Any], item: str,
                  expected: str | None = None) -> tuple:
    """Return ``values`` as a tuple of at least one value, each one of ``choices``; raise
    ValueError otherwise, naming the collection (``what``) when it is empty and the value
    (``item``) that is not a choice:

        check_choices("ops", ("spmv",), OPS, "op")   # ("spmv",)
        check_choices("ops", (), OPS, "op")          # ops: expected at least one of spmv, spmm, got none
    """
    options = list(choices)
    values = tuple(values or ())
    if not values:
        raise ValueError(f"{what}: expected {expected or 'at least one of ' + ', '.join(map(str, options))}, "
                         "got none")
    for value in values:
        check_choice(item, value, options)
    return values


def check_fields(spec: Any, limits: Mapping[str, tuple], labels: Mapping[str, str] | None = None) -> None:
    """Check each field of a frozen dataclass ``spec`` named in ``limits`` ({name: (lo, hi)
    or (lo, hi, step)}) and store the checked value back: an integer where lo is an int (on
    the step's grid lo, lo + step, ... when a step is given), a number where lo is a float.
    The message names the field by ``labels`` (default: its name):

        check_fields(self, {"size": (4, 64)}, {"size": "image size"})
        # size=80 -> "image size: expected an integer in [4, 64], got 80"
    """
    for name, (lo, hi, *step) in limits.items():
        label = (labels or {}).get(name, name)
        if isinstance(lo, float):
            object.__setattr__(spec, name, check_float(label, getattr(spec, name), lo, hi))
            continue  # a float's step is the widget's granularity, not a constraint
        value = check_int(label, getattr(spec, name), lo, hi)
        if step and step[0] > 1 and (value - lo) % step[0]:
            raise ValueError(f"{label}: expected an integer in [{lo}, {hi}] in steps of {step[0]} "
                             f"({lo}, {lo + step[0]}, ...), got {value}")
        object.__setattr__(spec, name, value)


def _range_text(kind: str, lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f"{kind} in [{lo}, {hi}]"
    if lo is not None:
        return f"{kind} >= {lo}"
    if hi is not None:
        return f"{kind} <= {hi}"
    return kind


MEMORY_BUDGET_ENV = "SPARSITY_LAB_MEMORY_BUDGET_MB"
DEFAULT_MEMORY_BUDGET_MB = 4096


def memory_budget_bytes() -> int:
    """What one request may allocate: $SPARSITY_LAB_MEMORY_BUDGET_MB (default 4096 MB)."""
    import os

    raw = os.environ.get(MEMORY_BUDGET_ENV, "")
    if not raw:
        return DEFAULT_MEMORY_BUDGET_MB * 2**20
    mb = check_float(MEMORY_BUDGET_ENV, raw, lo=1)
    return int(mb * 2**20)


def check_budget(what: str, nbytes: float) -> int:
    """Refuse, before allocating, work whose estimated footprint exceeds the budget."""
    budget = memory_budget_bytes()
    if nbytes > budget:
        raise ValueError(
            f"{what}: expected at most {budget / 2**20:.0f} MB of memory "
            f"(the lab's budget, {MEMORY_BUDGET_ENV}), got an estimated {nbytes / 2**20:.0f} MB")
    return int(nbytes)


# Every file a page accepts, as "module:NAME": NAME holds its largest legal size in bytes,
# or is a function returning it. A page that adds an upload adds its limit here, so the
# request cap stays above it.
UPLOAD_LIMITS = ("engine.runtime.store:IMPORT_MAX_BYTES",
                 "engine.sparse.user_matrix:max_upload_bytes")
# Room beside the file in a callback request: the JSON around it and the page's other state.
REQUEST_SLACK_BYTES = 4 * 2**20


def largest_upload_bytes() -> int:
    """The largest file any page accepts (bytes)."""
    import importlib

    sizes = []
    for entry in UPLOAD_LIMITS:
        module, name = entry.split(":")
        limit = getattr(importlib.import_module(module), name)
        sizes.append(int(limit() if callable(limit) else limit))
    return max(sizes)


def max_request_bytes() -> int:
    """The cap on a request body: the largest upload, base64-encoded as dcc.Upload sends
    it (4/3), plus slack. Flask refuses larger bodies with 413 before reading them."""
    return -(-largest_upload_bytes() * 4 // 3) + REQUEST_SLACK_BYTES


_PROJECT_ROOT = str(__import__("pathlib").Path(__file__).resolve().parents[1])


def relative_paths(text: str) -> str:
    """``text`` with the project's install path removed (``/srv/lab/benchmarks/x`` ->
    ``benchmarks/x``) and a cache folder outside it shown as ``$SPARSITY_LAB_CACHE``,
    so messages never disclose where the lab is installed."""
    import os

    if _PROJECT_ROOT + os.sep in text:
        text = text.replace(_PROJECT_ROOT + os.sep, "")
    cache = os.environ.get("SPARSITY_LAB_CACHE")
    if cache:
        absolute = os.path.abspath(cache)
        if absolute in text and not absolute.startswith(_PROJECT_ROOT + os.sep):
            text = text.replace(absolute, "$SPARSITY_LAB_CACHE")
    return text
