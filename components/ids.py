"""Component ids, built once per page by one helper, never retyped as string literals.

    ID = page_ids("attention", "mask", "seq", "token_map")
    dcc.Dropdown(id=ID.mask)                 # "attention-mask"
    Input(ID.token_map, "figure")            # "attention-token-map"
    ID.of("w")                               # a name chosen at run time: "attention-w"

A misspelt ``ID.tokn_map`` raises AttributeError when the page is imported, where a
retyped string would only fail silently in the browser. Underscores become hyphens.
"""
from __future__ import annotations

from types import SimpleNamespace


def id_of(prefix: str, name: str) -> str:
    """The id of ``name`` under ``prefix``: ``id_of("moe", "expert_rows") == "moe-expert-rows"``."""
    return f"{prefix}-{name.replace('_', '-')}"


class PageIds(SimpleNamespace):
    """The ids of one page (or panel): an attribute per declared name."""

    def __init__(self, prefix: str, names: tuple[str, ...]):
        super().__init__(**{n: id_of(prefix, n) for n in names})

    def of(self, name: str) -> str:
        """The id of a declared name given as a string (``ID.of("w")``); KeyError if undeclared."""
        value = vars(self).get(name)
        if value is None:
            raise KeyError(f"id: expected one of {', '.join(self.names())}, got {name!r}")
        return value

    def names(self) -> list[str]:
        return list(vars(self))


def page_ids(prefix: str, *names: str) -> PageIds:
    """``PageIds`` for ``names`` under ``prefix`` (see the module docstring)."""
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"page_ids: expected distinct names, got {dupes} twice")
    return PageIds(prefix, names)
