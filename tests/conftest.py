"""Shared fixtures. Browser fixtures live in tests/browser/conftest.py."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Keep tests off any GPU and away from the developer's own cache.
os.environ.setdefault("SPARSITY_LAB_FORCE_CPU", "1")
