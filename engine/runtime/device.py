"""What hardware the engine will use, found without touching CUDA in this process.

The web process must never create a CUDA context: Dash's DiskcacheManager forks a
child per background job and CUDA cannot be re-initialised in a forked child. So
``describe_device`` asks ``nvidia-smi`` (a separate process) and reads package
versions from metadata; only code running *inside* a job calls ``job_device``.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import metadata

# If anything in this process does ask torch whether CUDA exists, let it ask NVML
# (which does not poison fork) instead of the CUDA runtime.
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")


@dataclass(frozen=True)
class DeviceInfo:
    kind: str  # "cuda" or "cpu"
    name: str  # "NVIDIA H100 80GB HBM3" or the CPU's model
    memory_gib: float  # GPU memory, or host memory for the CPU
    count: int  # GPUs found (0 on a CPU machine)
    driver: str
    torch_version: str
    cpu_cores: int

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def label(self) -> str:
        if self.kind == "cuda":
            return f"{self.name} ({self.memory_gib:.0f} GiB)"
        return f"CPU: {self.name} ({self.cpu_cores} cores)"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _query_nvidia_smi() -> list[tuple[str, float, str]]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            try:
                gpus.append((parts[0], float(parts[1]) / 1024.0, parts[2]))
            except ValueError:
                continue
    return gpus


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _host_memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return 0.0


@lru_cache(maxsize=1)
def describe_device() -> DeviceInfo:
    """The device jobs will run on, found without initialising CUDA here."""
    gpus = [] if os.environ.get("SPARSITY_LAB_FORCE_CPU") else _query_nvidia_smi()
    torch_version = package_version("torch")
    cores = os.cpu_count() or 1
    if gpus:
        name, mem, driver = gpus[0]
        return DeviceInfo("cuda", name, mem, len(gpus), driver, torch_version, cores)
    return DeviceInfo("cpu", _cpu_name(), _host_memory_gib(), 0, "", torch_version, cores)


def job_device(requested: str = "auto"):
    """The torch.device a job should use. Call only inside a job (it may init CUDA).

    requested: "auto" (GPU when there is one), "cuda" or "cpu".
    """
    import torch

    if requested not in ("auto", "cuda", "cpu"):
        raise ValueError(f"device: expected one of auto, cuda, cpu, got {requested!r}")
    if requested == "cpu" or os.environ.get("SPARSITY_LAB_FORCE_CPU"):
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        raise ValueError("device: expected a CUDA GPU, got none on this machine")
    return torch.device("cpu")


def cpu_device_name() -> str:
    """The name rows of work done on this machine's CPU carry ("CPU: <model>")."""
    return "CPU: " + _cpu_name()


def runtime_device_name(device) -> str:
    """Human name of a torch.device (call inside a job)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_device_name()
