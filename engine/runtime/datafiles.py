"""The one data folder that file fields may read from.

A path typed into a page (the /paper MNIST folder or text file) is resolved inside
``$SPARSITY_LAB_DATA_DIR`` (default ``./data`` in the project): relative paths are taken
from there, and anything that resolves outside it (``/etc/passwd``, ``../..``, a symlink
out) is refused. Errors quote only what was typed: they never list a directory or show
where the lab is installed.

    resolve("text file", "books/alice.txt")          # <data folder>/books/alice.txt
    resolve("MNIST folder", "mnist", folder=True)    # <data folder>/mnist
"""
from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "SPARSITY_LAB_DATA_DIR"
_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """The data folder: $SPARSITY_LAB_DATA_DIR, or ``data/`` in the project."""
    raw = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(raw).expanduser() if raw else _ROOT / "data"


def resolve(what: str, raw: str, folder: bool = False) -> Path:
    """``raw`` as an existing file (or folder) inside the data folder, else ValueError."""
    text = str(raw).strip()
    if not text or "\x00" in text or len(text) > 1000:
        raise ValueError(f"{what}: expected a path inside the data folder ({DATA_DIR_ENV}), got {text[:80]!r}")
    base = data_dir().resolve()
    candidate = Path(text).expanduser()
    full = (candidate if candidate.is_absolute() else base / candidate).resolve()
    if full != base and base not in full.parents:
        raise ValueError(f"{what}: expected a path inside the data folder ({DATA_DIR_ENV}), got {text!r}")
    kind = "folder" if folder else "file"
    if not (full.is_dir() if folder else full.is_file()):
        raise ValueError(f"{what}: expected an existing {kind} inside the data folder ({DATA_DIR_ENV}), "
                         f"got {text!r}")
    return full
