"""engine.chain.training: the trained chain lowers its loss, keeps R's support, still equals its graph."""
import numpy as np
import pytest

from engine.chain.generator import make_chain, pipeline_graph_difference
from engine.chain.graph import reverse_scan_difference
from engine.chain.training import TARGETS, TrainRun, parse_custom, targets_for, trained_chain

SMALL = dict(n_phases=6, n_patterns=3, k=10, nnz_per_row=2, hidden=8, n_harmonics=6, seed=1)


@pytest.mark.parametrize("target", ["major triad", "arpeggio", "octaves"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "identity"])
def test_training_lowers_the_loss_and_keeps_the_support_of_R(target, activation):
    start = make_chain(**SMALL, activation=activation)
    run = TrainRun(start, targets_for(start, target), steps=150, lr=0.05)
    rows = list(run.rows())
    assert [r["step"] for r in rows] == list(range(151))
    assert rows[-1]["loss"] < 0.2 * rows[0]["loss"], (rows[0]["loss"], rows[-1]["loss"])
    trained = run.chain
    assert np.array_equal(trained.R != 0, start.R != 0)          # the same dice
    assert not np.allclose(trained.R, start.R) and not np.allclose(trained.W, start.W)
    # the pipeline and the graph still agree, forwards and backwards
    assert pipeline_graph_difference(trained).max() <= 1e-12
    assert max(reverse_scan_difference(trained, trained.forward_all()["assemble"]).values()) <= 1e-9
    # and the loss is what the pipeline gives
    y = trained.forward_all()["assemble"]
    per_pattern = {int(p): y[t] for t, p in enumerate(trained.lut)}
    tg = targets_for(start, target)
    loss = np.mean([np.sum((per_pattern[p] - tg[p]) ** 2) for p in range(3)])
    assert loss == pytest.approx(rows[-1]["loss"], rel=0.05, abs=1e-9)


def test_training_is_deterministic_and_the_triad_lands_on_harmonics_4_5_6():
    a, la = trained_chain(dict(SMALL), "major triad", 200, 0.05)
    b, lb = trained_chain(dict(SMALL), "major triad", 200, 0.05)
    assert la == lb and np.array_equal(a.W, b.W)
    y = a.forward_all()["assemble"]
    loud = np.argsort(-np.abs(y), axis=1)[:, :3]
    assert all(set(row) == {3, 4, 5} for row in loud)


def test_custom_targets_and_bad_input():
    chain = make_chain(**SMALL)
    t = targets_for(chain, "custom", "1 0 0 0 0 0; 0 0 0 0 0 1")
    assert t.shape == (3, 6) and t[2, 0] == 1 and t[1, 5] == 1  # rows cycle over patterns
    with pytest.raises(ValueError, match="expected 6 finite amplitudes"):
        parse_custom("1 2 3", 6)
    with pytest.raises(ValueError, match="expected numbers, got 'a b'"):
        parse_custom("a b", 6)
    with pytest.raises(ValueError, match="target: expected one of"):
        targets_for(chain, "chord")
    with pytest.raises(ValueError, match="expected at least 6 harmonics"):
        targets_for(make_chain(n_harmonics=4), "major triad")
    with pytest.raises(ValueError, match="steps: expected an integer in"):
        TrainRun(chain, targets_for(chain, "octaves"), steps=0)
    assert set(TARGETS) == {"major triad", "arpeggio", "octaves", "custom"}


def test_importing_training_leaves_torch_optim_for_the_job():
    """torch.optim.Adam is imported inside the training run (its first step pulls in
    torch._dynamo, seconds): importing the module, as the pages do, does not."""
    import subprocess
    import sys

    code = ("import sys, engine.chain.training as t; "
            "print('torch._dynamo' in sys.modules, 'Adam' in vars(t))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False"]


def test_a_finished_job_run_is_read_back_without_training_again(tmp_path, monkeypatch):
    from engine.chain import training
    from engine.chain.generator import make_chain

    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    params = {"n_phases": 4, "n_patterns": 2, "k": 6, "nnz_per_row": 2, "hidden": 4, "n_harmonics": 6}
    start = make_chain(**params)
    run = training.TrainRun(start, training.targets_for(start, "major triad", ""), 5, 0.05)
    list(run.rows())
    training.remember_trained(run, params, "major triad")
    monkeypatch.setattr(training.TrainRun, "run", lambda self: pytest.fail("trained a second time"))
    chain, losses = training.cached_trained_chain(params, "major triad", 5, 0.05)
    assert losses == run.losses and (chain.R == run.chain.R).all()
