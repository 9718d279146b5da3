"""engine.sparse.two_four: the torch-2:4 backend's rules, reported instead of raised."""
import pytest
import torch

from engine.sparse.formats import SimpleSpec, get_backend, prune_mask
from engine.sparse.two_four import (NAME, NEEDS_GPU, min_shape, nm_problem,
                                   semi_structured_matmul_reference, semi_structured_shape_problem,
                                   semi_structured_unavailable, to_semi_structured)

# (shape, dtype, expected substring or None)
SHAPE_CASES = [
    ((64, 64), "float16", None),
    ((128, 256), "bfloat16", None),
    ((64, 64), "float32", "unsupported: expected dtype in (float16, bfloat16)"),
    ((100, 64), "float16", "unsupported: expected rows a multiple of"),
    ((64, 8), "float16", "unsupported: expected rows a multiple of"),
    ((64, 64, 2), "float16", "unsupported: expected a 2-D matrix"),
]


@pytest.mark.parametrize("shape,dtype,expected", SHAPE_CASES)
def test_shape_rules_reported_not_raised(shape, dtype, expected):
    reason = semi_structured_shape_problem(shape, dtype)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and reason.startswith(expected)
        assert "got" in reason


def test_min_shape_comes_from_torch():
    rows, cols = min_shape("float16")
    assert rows >= 16 and cols >= 16 and rows % 8 == 0 and cols % 8 == 0


def test_cpu_says_it_needs_an_nvidia_gpu():
    assert semi_structured_unavailable("cpu") == NEEDS_GPU == "unavailable: needs an NVIDIA GPU (sm80+)"
    a = torch.randn(64, 64, dtype=torch.float16)
    with pytest.raises(NotImplementedError, match="needs an NVIDIA GPU"):
        to_semi_structured(a)


def test_registered_backend_reports_device_dtype_and_shape():
    backend = get_backend(NAME)
    assert backend.format == "2:4"
    assert backend.supports(SimpleSpec(device="cuda", dtype="float16", shape=(64, 64))) is None
    assert backend.supports(SimpleSpec(device="cpu", dtype="float16", shape=(64, 64))).startswith(
        "unsupported: expected device in (cuda)")
    assert "multiple of" in backend.supports(SimpleSpec(device="cuda", dtype="float16", shape=(72, 64)))
    assert "expected op in (spmm)" in backend.supports(SimpleSpec(device="cuda", dtype="float16",
                                                                  op="spmv", shape=(64, 64)))


def test_nm_problem_detects_non_24_matrices():
    a = torch.randn(8, 16)
    assert "groups with more" in nm_problem(a)
    assert nm_problem(a * prune_mask(a, "2:4", None)) is None
    assert "divisible by 4" in nm_problem(torch.randn(4, 6))


def test_reference_equals_dense_product():
    a = torch.randn(16, 32)
    a = a * prune_mask(a, "2:4", None)
    x = torch.randn(32, 8)
    assert torch.allclose(semi_structured_matmul_reference(a, x), a @ x, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_24_equals_reference():  # pragma: no cover - runs on the GPU machine only
    if semi_structured_unavailable("cuda"):
        pytest.skip("GPU older than sm80")
    a = torch.randn(128, 128, device="cuda", dtype=torch.float16)
    a = a * prune_mask(a, "2:4", None)
    x = torch.randn(128, 64, device="cuda", dtype=torch.float16)
    y = get_backend(NAME).matmul(to_semi_structured(a), x)
    assert torch.allclose(y.float(), semi_structured_matmul_reference(a, x).float(), atol=0.1, rtol=0.02)
