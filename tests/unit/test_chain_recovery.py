"""engine.chain.recovery: OMP where pinv fails, Tropp's certificate, the phase map."""
from itertools import combinations

import numpy as np
import pytest

from engine.chain.generator import make_chain
from engine.chain.recovery import (coherence, exact_recovery_coefficient, omp, phase_transition_cells,
                                   phase_transition_rows, relative_error)
from engine.chain.scanner import SCAN_PRESETS, agreement, recovery, scan


def _known_case():
    """F = 6 outputs, K = 24 entries, 3 nonzeros: one seeded gaussian operator where OMP
    succeeds (at this size it does for about 1 gaussian draw in 5: see the phase map)."""
    A = np.random.default_rng(1).normal(size=(6, 24))
    support = [3, 11, 19]
    x = np.zeros(24)
    x[support] = [1.5, -0.8, 1.1]
    return A, x, support


def test_omp_recovers_a_3_sparse_vector_from_6_outputs_where_pinv_fails():
    A, x, support = _known_case()
    y = A @ x
    # the 3-sparse solution is unique: no other support of 3 columns fits y
    fits = [S for S in combinations(range(24), 3)
            if np.linalg.norm(A[:, S] @ np.linalg.lstsq(A[:, S], y, rcond=None)[0] - y) < 1e-9]
    assert fits == [tuple(support)]
    got = omp(A, y, 3)
    assert relative_error(x, got)[0] < 1e-10
    assert list(np.flatnonzero(got)) == support
    pinv = np.linalg.pinv(A) @ y  # minimum norm: spread over all 24 entries
    assert relative_error(x, pinv)[0] > 0.3
    assert np.count_nonzero(np.abs(pinv) > 1e-6) > 3
    np.testing.assert_allclose(A @ pinv, y, atol=1e-10)  # fits y, and is still wrong
    # Tropp's certificate is sufficient, not necessary: it does not hold here
    assert exact_recovery_coefficient(A, support) >= 1


def test_erc_and_coherence_on_orthonormal_columns():
    Q = np.linalg.qr(np.random.default_rng(0).normal(size=(8, 5)))[0]
    assert coherence(Q) < 1e-12 and exact_recovery_coefficient(Q, [0, 2]) < 1e-12
    dup = np.column_stack([Q[:, 0], Q[:, 0], Q[:, 1]])
    assert coherence(dup) == pytest.approx(1.0)
    assert exact_recovery_coefficient(dup, [0, 1]) == float("inf")


def test_omp_batch_and_zero_outputs():
    A, x, _ = _known_case()
    Y = np.stack([A @ x, np.zeros(6)])
    out = omp(A, Y, 3)
    assert out.shape == (2, 24) and not out[1].any()
    np.testing.assert_allclose(out[0], omp(A, Y[0], 3))
    with pytest.raises(ValueError, match="expected finite outputs of shape"):
        omp(A, np.ones(5), 3)


def test_the_scanner_omp_mode_recovers_the_sparse_preset_where_pinv_cannot():
    chain = make_chain(**SCAN_PRESETS["sparse recovery (F < K)"])
    assert chain.spec.n_harmonics < chain.spec.k
    Y = chain.forward_all()["assemble"]
    x = chain.forward_all()["sparse"]
    err_omp = relative_error(x, scan(chain, Y, "omp").columns["sparse"])
    err_pinv = relative_error(x, scan(chain, Y, "pinv").columns["sparse"])
    assert (err_omp < 1e-8).all() and (err_pinv > 0.1).all()
    assert recovery(chain, "omp")["correct"].all()
    table = agreement(chain, "omp")
    assert (table["verdict"] != "exceeds its bound").all()


def test_phase_transition_rows_cover_the_map_and_show_omp_beats_pinv_below_K():
    rows = list(phase_transition_rows(k=8, trials=6, seed=1))
    assert [(r["nonzeros"], r["outputs"]) for r in rows] == phase_transition_cells(8)
    by = {(r["nonzeros"], r["outputs"]): r for r in rows}
    # pinv only succeeds with as many outputs as entries; OMP needs far fewer for 1 nonzero
    assert all(r["pinv_success_rate"] == 0 for r in rows if r["outputs"] < 8)
    assert by[(1, 8)]["pinv_success_rate"] == 1.0
    assert by[(1, 3)]["omp_success_rate"] == 1.0
    assert rows == list(phase_transition_rows(k=8, trials=6, seed=1))  # seeded
    with pytest.raises(ValueError, match="trials: expected an integer in"):
        next(phase_transition_rows(k=8, trials=0))
