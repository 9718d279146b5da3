"""Loading, validating, storing and describing a user's matrix (engine.sparse.user_matrix)."""
from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from engine.sparse import user_matrix as um


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path / "cache"))


def _stored_files():
    return sorted(p.name for p in um.matrix_dir().iterdir())


# -- Matrix Market files written here -------------------------------------------------
PATTERN_SYM = b"""%%MatrixMarket matrix coordinate pattern symmetric
% a comment line
4 4 4
1 1
2 1
4 2
3 3
"""
INTEGER_GENERAL = b"""%%MatrixMarket matrix coordinate integer general
3 4 3
1 4 7
2 2 -3
3 1 5
"""
ARRAY_REAL = b"""%%MatrixMarket matrix array real general
2 3
1.5
0
0
2.5
-1
0
"""  # column-major: [[1.5, 0, -1], [0, 2.5, 0]]
REAL_SYM = b"""%%MatrixMarket matrix coordinate real symmetric
3 3 3
1 1 2.0
3 1 -1.0
2 2 4.0
"""


def test_pattern_symmetric_mtx_mirrors_entries_with_value_one():
    loaded = um.load_matrix_bytes("p.mtx", PATTERN_SYM)
    want = np.zeros((4, 4))
    for i, j in ((0, 0), (1, 0), (3, 1), (2, 2)):
        want[i, j] = want[j, i] = 1.0
    np.testing.assert_array_equal(loaded.matrix.toarray(), want)
    f = um.facts(loaded.matrix)
    assert f["nnz"] == 6 and f["symmetric"] is True and f["bandwidth"] == 2
    assert f["row_nnz_max"] == 2 and f["empty_rows"] == 0
    assert loaded.source_dtype == "pattern symmetric coordinate"


def test_integer_mtx_rectangular():
    a = um.load_matrix_bytes("i.mtx", INTEGER_GENERAL).matrix
    assert a.shape == (3, 4)
    want = np.zeros((3, 4))
    want[0, 3], want[1, 1], want[2, 0] = 7, -3, 5
    np.testing.assert_array_equal(a.toarray(), want)
    f = um.facts(a)
    assert f["symmetric"] is False and f["upper_bandwidth"] == 3 and f["lower_bandwidth"] == 2


def test_array_mtx_is_column_major_and_drops_zeros():
    a = um.load_matrix_bytes("a.mtx", ARRAY_REAL).matrix
    np.testing.assert_array_equal(a.toarray(), [[1.5, 0, -1], [0, 2.5, 0]])
    assert a.nnz == 3


def test_real_symmetric_mtx_matches_scipy():
    a = um.load_matrix_bytes("s.mtx", REAL_SYM).matrix
    np.testing.assert_array_equal(a.toarray(), scipy.io.mmread(io.BytesIO(REAL_SYM)).toarray())
    assert um.facts(a)["symmetric"]


@pytest.mark.parametrize("text, words", [
    (b"%%MatrixMarket matrix coordinate real general\n3 3\n1 1 1\n", "size line"),
    (b"%%MatrixMarket tensor coordinate real general\n3 3 1\n1 1 1\n", "header"),
    (b"hello\n", "header"),
    (b"%%MatrixMarket matrix coordinate complex general\n2 2 1\n1 1 1 0\n", "complex"),
    (b"%%MatrixMarket matrix coordinate real general\n3 3 4\n1 1 1\n2 2 2\n", "body"),
    (b"%%MatrixMarket matrix coordinate real general\n3 3 1\n1 1 nan\n", "NaN or inf"),
])
def test_malformed_mtx_is_refused_and_nothing_stored(text, words):
    with pytest.raises(ValueError, match="expected") as err:
        um.load_matrix_bytes("bad.mtx", text)
    assert words in str(err.value)
    assert _stored_files() == []


def test_header_claiming_a_billion_squared_is_refused_from_the_header(monkeypatch):
    # only the header exists: if mmread were reached it would fail on the body instead
    text = b"%%MatrixMarket matrix coordinate real general\n1000000000 1000000000 1000000000\n1 1 1\n"
    with pytest.raises(ValueError) as err:
        um.load_matrix_bytes("huge.mtx", text)
    msg = str(err.value)
    assert "expected at most" in msg and "1000000000 x 1000000000" in msg
    called = []
    monkeypatch.setattr(um.scipy.io, "mmread", lambda *a, **k: called.append(1))
    with pytest.raises(ValueError):
        um.load_matrix_bytes("huge.mtx", text)
    assert called == []  # refused before reading the body
    assert _stored_files() == []


def test_budget_env_lowers_the_limit(monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_MEMORY_BUDGET_MB", "1")
    text = b"%%MatrixMarket matrix array real general\n400 400\n" + b"1\n" * 160000
    with pytest.raises(ValueError, match="SPARSITY_LAB_MEMORY_BUDGET_MB"):
        um.load_matrix_bytes("big.mtx", text)


# -- .npy -----------------------------------------------------------------------------
def _npy(arr, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def test_npy_object_array_is_refused_without_unpickling(monkeypatch):
    data = _npy(np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    loads = []
    monkeypatch.setattr(np, "load", lambda *a, **k: loads.append(k))
    with pytest.raises(ValueError, match="expected a real number type") as err:
        um.load_matrix_bytes("obj.npy", data)
    assert "object" in str(err.value)
    assert loads == []  # never handed to np.load at all
    assert _stored_files() == []


def test_npy_three_dims_nan_and_complex_refused():
    with pytest.raises(ValueError, match="expected a 2-D matrix, got 3 dimensions"):
        um.load_matrix_bytes("t.npy", _npy(np.zeros((2, 2, 2))))
    bad = np.eye(3)
    bad[1, 2] = np.inf
    with pytest.raises(ValueError, match="1 NaN or inf entries"):
        um.load_matrix_bytes("n.npy", _npy(bad))
    with pytest.raises(ValueError, match="complex128"):
        um.load_matrix_bytes("c.npy", _npy(np.eye(2, dtype=complex)))


def test_npy_dense_loads_and_hash_matches_mtx_of_same_matrix():
    dense = np.array([[1.5, 0, -1], [0, 2.5, 0]])
    a = um.load_matrix_bytes("x.npy", _npy(dense.astype(np.float32)))
    b = um.load_matrix_bytes("x.mtx", ARRAY_REAL)
    assert a.content_hash == b.content_hash
    np.testing.assert_array_equal(a.matrix.toarray(), dense)


# -- .npz -----------------------------------------------------------------------------
def test_npz_roundtrip_and_pickle_free(tmp_path):
    m = sp.random(50, 40, density=0.1, format="csr", random_state=0)
    buf = io.BytesIO()
    sp.save_npz(buf, m)
    loaded = um.load_matrix_bytes("m.npz", buf.getvalue())
    np.testing.assert_allclose(loaded.matrix.toarray(), m.toarray())
    head = um.npz_header(buf.getvalue())
    assert head["rows"] == 50 and head["cols"] == 40 and head["entries"] == m.nnz
    with pytest.raises(ValueError, match="zip"):
        um.load_matrix_bytes("m.npz", b"not a zip")


# -- .safetensors -----------------------------------------------------------------------
def test_safetensors_several_tensors_chosen_by_name():
    import torch
    from safetensors.torch import save

    w = torch.zeros(8, 16)
    w[torch.arange(8), torch.arange(8) * 2] = torch.arange(1, 9, dtype=torch.float32)
    data = save({"layer.weight": w.to(torch.bfloat16), "layer.bias": torch.ones(16),
                 "conv": torch.ones(2, 3, 4), "head": torch.eye(4)})
    choices = {c["name"]: c for c in um.safetensors_choices(data)}
    assert set(choices) == {"layer.weight", "layer.bias", "conv", "head"}
    assert choices["layer.bias"]["reason"].startswith("expected 2 dimensions, got 1")
    assert choices["conv"]["reason"].startswith("expected 2 dimensions, got 3")
    assert choices["layer.weight"]["reason"] is None and choices["layer.weight"]["dtype"] == "BF16"
    got = um.load_matrix_bytes("w.safetensors", data, tensor="layer.weight")
    assert got.tensor == "layer.weight" and got.matrix.shape == (8, 16)
    np.testing.assert_array_equal(got.matrix.toarray(), w.numpy())
    head = um.load_matrix_bytes("w.safetensors", data, tensor="head").matrix
    np.testing.assert_array_equal(head.toarray(), np.eye(4))
    with pytest.raises(ValueError, match="expected 2 dimensions, got 3"):
        um.load_matrix_bytes("w.safetensors", data, tensor="conv")
    with pytest.raises(ValueError, match="expected one of"):
        um.load_matrix_bytes("w.safetensors", data, tensor="nope")


def test_safetensors_bad_header_refused():
    with pytest.raises(ValueError, match="header length"):
        um.load_matrix_bytes("w.safetensors", struct.pack("<Q", 10**9) + b"{}")
    with pytest.raises(ValueError, match="JSON"):
        um.load_matrix_bytes("w.safetensors", struct.pack("<Q", 4) + b"{{{{")
    with pytest.raises(ValueError, match="expected one of .mtx"):
        um.load_matrix_bytes("w.pkl", b"\x80\x04")


# -- storage ---------------------------------------------------------------------------
def test_store_once_by_hash_with_facts():
    loaded = um.load_matrix_bytes("p.mtx", PATTERN_SYM)
    info = um.store_matrix(loaded)
    assert info["hash"] == loaded.content_hash and info["facts"]["nnz"] == 6
    files = _stored_files()
    assert files == sorted([f"{info['hash']}.json", f"{info['hash']}.npz"])
    again = um.store_matrix(um.load_matrix_bytes("copy.mtx", PATTERN_SYM))
    assert _stored_files() == files and again["names"] == ["p.mtx", "copy.mtx"]
    np.testing.assert_array_equal(um.load_stored(info["hash"]).toarray(), loaded.matrix.toarray())
    assert json.loads((um.matrix_dir() / f"{info['hash']}.json").read_text())["name"] == "p.mtx"
    with pytest.raises(ValueError, match="64 hex"):
        um.load_stored("../../etc/passwd")


# -- structure -------------------------------------------------------------------------
def _scrambled_band(n=256, half=3, seed=0):
    band = sp.diags([1.0 + i for i in range(2 * half + 1)], range(-half, half + 1), shape=(n, n))
    p = np.random.default_rng(seed).permutation(n)
    return sp.csr_array(band.tocsr()[p][:, p]), p


def test_fill_in_is_exact_against_a_brute_force_count():
    a = sp.csr_array(sp.random(100, 70, density=0.05, format="csr", random_state=3))
    for block in (16, 32):
        d = a.toarray() != 0
        pad = np.zeros((-(-100 // block) * block, -(-70 // block) * block), bool)
        pad[:100, :70] = d
        tiles = pad.reshape(pad.shape[0] // block, block, -1, block).any(axis=(1, 3)).sum()
        assert um.bsr_tiles(a, block) == tiles
        assert um.fill_in(a, block) == pytest.approx((tiles * block * block - a.nnz) / a.nnz)


def test_rcm_recovers_a_scrambled_band():
    a, _ = _scrambled_band()
    assert um.facts(a)["bandwidth"] > 100
    b = um.reordered(a)
    assert um.facts(b)["bandwidth"] <= 6 and b.nnz == a.nnz
    table = {r["block"]: r for r in um.fill_in_table(a, reordered_matrix=b)}
    assert table[16]["fill-in after RCM"] < table[16]["fill-in (zeros per nnz)"] / 5
    # the same multiset of values survives the permutation
    np.testing.assert_array_equal(np.sort(a.data), np.sort(b.data))


def test_rcm_rectangular_gives_row_and_column_orders():
    a = sp.csr_array(sp.random(40, 90, density=0.05, format="csr", random_state=1))
    r, c = um.rcm_permutation(a)
    assert sorted(r.tolist()) == list(range(40)) and sorted(c.tolist()) == list(range(90))
    b = um.permute(a, r, c)
    np.testing.assert_array_equal(b.toarray(), a.toarray()[r][:, c])


def test_spy_cells_conserve_nonzeros_and_cap_the_grid():
    a = sp.csr_array(sp.random(1500, 700, density=0.01, format="csr", random_state=2))
    s = um.spy_cells(a)
    assert s["density"].shape == (512, 512)
    area = np.diff(s["row_edges"])[:, None] * np.diff(s["col_edges"])[None, :]
    assert (s["density"] * area).sum() == pytest.approx(a.nnz)
    assert s["density"].max() <= 1.0
    small = um.spy_cells(sp.csr_array(np.eye(5)))
    np.testing.assert_array_equal(small["density"], np.eye(5))


def test_row_histogram_and_bandwidth_profile():
    a, _ = _scrambled_band(n=64)
    h = um.row_length_histogram(a)
    assert h["counts"].sum() == 64
    lengths = np.diff(a.indptr)
    assert h["counts"][np.searchsorted(h["edges"], 7, side="right") - 1] == (lengths == 7).sum()
    prof = um.bandwidth_profile(um.reordered(a))
    assert prof["upper"].max() <= 6 and prof["lower"].max() <= 6 and len(prof["row_start"]) == 64


def test_reordered_mtx_download_reads_back():
    a, _ = _scrambled_band(n=50)
    b = um.reordered(a)
    back = um.load_matrix_bytes("r.mtx", um.to_mtx_bytes(b, comment="reordered"))
    assert back.content_hash == um.content_hash(b)
