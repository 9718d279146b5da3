"""Shared fixtures. Browser fixtures live in tests/browser/conftest.py."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Keep tests off any GPU and away from the developer's own cache.
os.environ.setdefault("SPARSITY_LAB_FORCE_CPU", "1")


import pytest  # noqa: E402


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    """An empty folder of committed runs that the reference registry
    (engine.bench.reference) reads instead of benchmarks/results/."""
    from engine.bench.reference import RESULTS_ENV

    folder = tmp_path / "results"
    folder.mkdir()
    monkeypatch.setenv(RESULTS_ENV, str(folder))
    return folder
