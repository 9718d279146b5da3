"""The backend registry and the matrix generators (engine/sparse/formats.py)."""
from __future__ import annotations

import pytest
import torch

from engine.sparse import formats
from engine.sparse.formats import SimpleSpec, backend_names, generate_matrix, get_backend

BUILTIN = ["torch-dense", "torch-coo", "torch-csr", "torch-bsr", "scipy-csr"]
# (backend, device, dtype, op, supported?)
SUPPORT_CASES = [
    ("torch-dense", "cpu", "float16", "spmv", True),
    ("torch-csr", "cpu", "float32", "spmm", True),
    ("torch-csr", "cpu", "float16", "spmm", False),
    ("torch-bsr", "cpu", "bfloat16", "spmv", False),
    ("torch-csr", "cuda", "float16", "spmm", True),
    ("scipy-csr", "cuda", "float32", "spmm", False),
    ("scipy-csr", "cpu", "float64", "spmv", True),
]
PATTERN_CASES = [("uniform", 0.9), ("powerlaw", 0.9), ("banded", 0.9), ("block", 0.75), ("uniform", 0.5)]


def test_builtin_backends_registered_in_order():
    assert backend_names()[:5] == BUILTIN


@pytest.mark.parametrize("name,device,dtype,op,ok", SUPPORT_CASES)
def test_supports_reports_reason(name, device, dtype, op, ok):
    reason = get_backend(name).supports(SimpleSpec(device=device, dtype=dtype, op=op))
    if ok:
        assert reason is None
    else:
        assert reason.startswith("unsupported: expected") and " got " in reason


def test_bsr_needs_dividing_block():
    reason = get_backend("torch-bsr").supports(SimpleSpec(shape=(100, 100), block=16))
    assert reason is not None and "block" in reason
    assert get_backend("torch-bsr").supports(SimpleSpec(shape=(96, 64), block=16)) is None


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("op", ["spmv", "spmm"])
def test_fast_matches_dense_reference(name, op):
    spec = SimpleSpec(device="cpu", dtype="float64", op=op, shape=(64, 48), block=16)
    a = generate_matrix("block", 64, 48, 0.8, block=16, seed=3, dtype="float64")
    x = torch.randn(48, dtype=torch.float64) if op == "spmv" else torch.randn(48, 5, dtype=torch.float64)
    backend = get_backend(name)
    prepared = backend.prepare(a, spec)
    y = backend.matmul(prepared, backend.prepare_rhs(x))
    y = torch.as_tensor(y)
    torch.testing.assert_close(y, a @ x)
    torch.testing.assert_close(torch.as_tensor(backend.to_dense(prepared)), a)
    assert backend.nbytes(prepared) > 0


def test_register_backend_rejects_duplicates_and_allows_new():
    dense = get_backend("torch-dense")
    with pytest.raises(ValueError, match="already registered"):
        formats.register_backend(formats.Backend(**{**dense.__dict__}))
    extra = formats.Backend(name="test-extra", format="dense", library="torch",
                            dtypes={"cpu": ("float32",)}, prepare=dense.prepare,
                            matmul=dense.matmul, to_dense=dense.to_dense,
                            check=lambda spec: "expected a GPU, got none")
    try:
        formats.register_backend(extra)
        assert "test-extra" in backend_names()
        assert extra.supports(SimpleSpec()) == "unsupported: expected a GPU, got none"
    finally:
        formats.BACKENDS.pop("test-extra", None)


def test_unknown_backend_reason():
    assert formats.unsupported_reason("no-such", SimpleSpec()).startswith("unsupported: expected backend")


@pytest.mark.parametrize("pattern,sparsity", PATTERN_CASES)
def test_generator_hits_sparsity(pattern, sparsity):
    a = generate_matrix(pattern, 256, 256, sparsity, block=16, seed=1)
    assert a.shape == (256, 256)
    assert abs((1 - formats.density_of(a)) - sparsity) < 0.03


def test_generator_patterns_have_their_shape():
    banded = generate_matrix("banded", 64, 64, 0.9, seed=0) != 0
    i, j = torch.nonzero(banded, as_tuple=True)
    assert (i - j).abs().max() <= 4
    block = generate_matrix("block", 64, 64, 0.5, block=8, seed=0) != 0
    tiles = block.reshape(8, 8, 8, 8).permute(0, 2, 1, 3).reshape(64, 64)
    assert bool(((tiles.sum(1) == 0) | (tiles.sum(1) == 64)).all())
    power = (generate_matrix("powerlaw", 256, 256, 0.95, seed=0) != 0).sum(1).float()
    assert power.max() > 4 * power.median()  # a few heavy rows


def test_generator_is_deterministic_and_validates():
    assert torch.equal(generate_matrix("uniform", 16, 16, 0.5, seed=7), generate_matrix("uniform", 16, 16, 0.5, seed=7))
    with pytest.raises(ValueError, match="pattern: expected"):
        generate_matrix("zigzag", 8, 8, 0.5)
    with pytest.raises(ValueError, match="sparsity: expected"):
        generate_matrix("uniform", 8, 8, 1.5)
    with pytest.raises(ValueError, match="block: expected"):
        generate_matrix("block", 10, 10, 0.5, block=4)


def test_estimate_bytes_grows_with_size():
    small = formats.estimate_bytes(128, 128, 1, 0.1, "float32", "csr")
    big = formats.estimate_bytes(8192, 8192, 512, 0.1, "float32", "csr")
    assert big > 1000 * small > 0


# (format, dtype, sparsity above which it stores fewer bytes than dense)
BYTES_BREAK_EVEN = [("csr", "float32", 2 / 3), ("coo", "float32", 0.8), ("csr", "float16", 0.8)]


@pytest.mark.parametrize("fmt,dtype,expected", BYTES_BREAK_EVEN)
def test_bytes_break_even(fmt, dtype, expected):
    assert formats.bytes_break_even(fmt, dtype) == pytest.approx(expected)


def test_storage_bytes_match_real_tensors():
    a = generate_matrix("uniform", 128, 128, 0.9, seed=0)
    density = formats.density_of(a)
    for fmt, backend in (("csr", "torch-csr"), ("coo", "torch-coo"), ("dense", "torch-dense")):
        real = get_backend(backend).nbytes(get_backend(backend).prepare(a, SimpleSpec(shape=(128, 128))))
        assert formats.storage_bytes(fmt, 128, 128, density) == pytest.approx(real, rel=1e-6)
    bsr = get_backend("torch-bsr").nbytes(get_backend("torch-bsr").prepare(a, SimpleSpec(shape=(128, 128), block=16)))
    assert formats.storage_bytes("bsr", 128, 128, density, block=16) == pytest.approx(bsr, rel=0.05)


def test_the_2_4_backend_registers_through_its_register_once():
    from engine.sparse import formats, two_four

    assert two_four.register() is two_four.register() is formats.get_backend("torch-2:4")
    assert formats.backend_names().count("torch-2:4") == 1
