"""The engine is a pure library, and the web process never touches CUDA."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_importing_every_engine_module_does_not_import_dash():
    code = (
        "import importlib, pkgutil, sys, engine\n"
        "for m in pkgutil.walk_packages(engine.__path__, 'engine.'):\n"
        "    if m.name.endswith('__main__'): continue\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(k for k in sys.modules if k == 'dash' or k.startswith('dash.'))\n"
        "assert not bad, bad\n"
        "print('ok', len([k for k in sys.modules if k.startswith('engine')]))\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_server_process_never_initialises_cuda():
    # Make every CUDA entry point that would create a context fail loudly, then build
    # the app and render every page's layout as the server would.
    code = (
        "import os; os.environ.pop('SPARSITY_LAB_FORCE_CPU', None)\n"
        "import torch\n"
        "def boom(*a, **k): raise RuntimeError('CUDA touched in the server process')\n"
        "torch.cuda._lazy_init = boom\n"
        "torch.cuda.init = boom\n"
        "torch.cuda.is_available = boom\n"
        "torch.cuda.device_count = boom\n"
        "import dash, app\n"
        "for page in dash.page_registry.values():\n"
        "    lay = page['layout']\n"
        "    lay() if callable(lay) else lay\n"
        "app.app.layout()\n"
        "print('ok', len(dash.page_registry))\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok")
