"""engine.layers.paper: the sparse models are the native models computed another way."""
import math
import time

import numpy as np
import pytest
import torch

from engine.layers import paper as pp

# (task, native builder, sparse builder, input builder)
D64 = torch.float64


def _vision(mode):
    torch.manual_seed(0)
    native = pp.NativeCNN((8, 8)).to(D64)
    return native, pp.SparseCNN(native, mode).to(D64), torch.rand(5, 1, 8, 8, dtype=D64), torch.randint(0, 10, (5,))


def _rnn(mode):
    torch.manual_seed(0)
    native = pp.NativeLinearRNN(1, 6).to(D64)
    return native, pp.SparseLinearRNN(native, 7, mode).to(D64), torch.randn(5, 7, 1, dtype=D64), torch.randn(5, dtype=D64)


def _text(mode):
    torch.manual_seed(0)
    native = pp.NativeAttentionLM(11, context=4, d=3, d_v=2).to(D64)
    return native, pp.TensorAttentionLM(native, mode).to(D64), torch.randint(0, 11, (5, 4)), torch.randint(0, 11, (5, 4))


PAIRS = [("vision", _vision), ("timeseries", _rnn), ("text", _text)]


@pytest.mark.parametrize("task, make", PAIRS)
@pytest.mark.parametrize("mode", ["tied", "free"])
def test_sparse_model_forward_equals_native_for_the_same_weights(task, make, mode):
    native, sparse, x, _y = make(mode)
    np.testing.assert_allclose(sparse(x).detach().numpy(), native(x).detach().numpy(), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("task, make", PAIRS)
def test_one_training_step_changes_native_and_tied_identically(task, make):
    native, tied, x, y = make("tied")
    before = {k: v.detach().clone() for k, v in native.named_parameters()}
    for model in (native, tied):
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        loss = pp.loss_fn(task, model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    tied_params = dict(tied.named_parameters())
    renames = {"conv1.weight": "weight1", "conv1.bias": "bias1", "conv2.weight": "weight2",
               "conv2.bias": "bias2", "emb.weight": "emb.weight"}
    changed = 0
    for name, p in native.named_parameters():
        q = tied_params[renames.get(name, name)]
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), atol=1e-9, err_msg=name)
        changed += int(not torch.equal(p.detach(), before[name]))
    assert changed == len(before)           # the step moved every parameter, identically in both
    np.testing.assert_allclose(tied(x).detach().numpy(), native(x).detach().numpy(), atol=1e-9)


def test_free_model_has_more_parameters_and_diverges_after_a_step():
    native, free, x, y = _vision("free")
    assert pp.parameter_count(free) > 5 * pp.parameter_count(native)
    for model in (native, free):
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        loss = pp.loss_fn("vision", model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float((free(x) - native(x)).detach().abs().max()) > 1e-4


def test_sparse_cnn_gradients_reach_the_kernels():
    native, tied, x, y = _vision("tied")
    pp.loss_fn("vision", tied(x), y).backward()
    pp.loss_fn("vision", native(x), y).backward()
    np.testing.assert_allclose(tied.weight1.grad.numpy(), native.conv1.weight.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(tied.weight2.grad.numpy(), native.conv2.weight.grad.numpy(), atol=1e-12)


def test_tiny_training_run_converges_quickly():
    spec = pp.PaperSpec(tasks=("vision",), variants=("tied",), epochs=4, max_train=320, lr=2e-2,
                        batch_size=32, device="cpu")
    started = time.process_time()       # CPU seconds: the 2-core dev box is shared, wall time is not ours
    rows = list(pp.train_rows(spec))
    assert time.process_time() - started < 45
    assert len(rows) == spec.total_rows == 8
    native = [r for r in rows if r["variant"] == "native"]
    tied = [r for r in rows if r["variant"] == "tied"]
    assert native[-1]["train_loss"] < 0.6 * native[0]["train_loss"]       # it learns
    assert native[-1]["metric"] > 50.0                                    # well above 10 % chance
    assert max(r["max_abs_diff_vs_native"] for r in tied) < 1e-3          # tied tracks native
    summary = pp.summarise(rows)[0]
    assert summary["native_epoch_of_best"] in range(1, 5)
    assert "weight-tied sparse model equals" in pp.verdict(rows)[0][1]


def test_timeseries_and_text_data_ship_offline():
    spec = pp.PaperSpec(tasks=("timeseries", "text"), max_train=64)
    ts = pp.load_timeseries(spec)
    assert ts.x_train.shape[1:] == (24, 1) and len(ts.x_train) == 64 and len(ts.x_test) > 50
    assert "CO2" in ts.dataset
    text = pp.load_text(spec)
    assert text.x_train.shape == (64, 8) and text.info["vocab"] <= 64
    assert torch.equal(text.x_train[0, 1:], text.y_train[0, :-1])          # next-character targets


def test_mnist_from_a_tiny_idx_file(tmp_path):
    rng = np.random.default_rng(0)

    def write(name, arr, code):
        header = bytes([0, 0, code, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
        (tmp_path / name).write_bytes(header + arr.astype(np.uint8).tobytes())

    write("train-images-idx3-ubyte", rng.integers(0, 256, (12, 8, 8)), 0x08)
    write("train-labels-idx1-ubyte", rng.integers(0, 10, 12), 0x08)
    write("t10k-images-idx3-ubyte", rng.integers(0, 256, (4, 8, 8)), 0x08)
    write("t10k-labels-idx1-ubyte", rng.integers(0, 10, 4), 0x08)
    data = pp.load_vision(pp.PaperSpec(mnist_dir=str(tmp_path)))
    assert data.x_train.shape == (12, 1, 8, 8) and data.x_test.shape == (4, 1, 8, 8)
    assert float(data.x_train.max()) <= 1.0 and "MNIST" in data.dataset
    with pytest.raises(ValueError, match="expected a header"):
        (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
        pp.read_idx(tmp_path / "bad")


@pytest.mark.parametrize("kwargs, match", [
    (dict(tasks=()), "tasks: expected at least one"),
    (dict(tasks=("audio",)), "task: expected one of"),
    (dict(epochs=0), "epochs: expected an integer"),
    (dict(lr=5.0), "learning rate: expected a number"),
    (dict(mnist_dir="/no/such/folder"), "MNIST folder: expected an existing folder"),
])
def test_spec_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pp.PaperSpec(**kwargs)


def test_spec_always_trains_native_first():
    spec = pp.PaperSpec(variants=("free",), epochs=3, tasks=("vision", "text"))
    assert spec.variants == ("native", "free") and spec.total_rows == 12


def test_paper_numbers_are_theirs_and_marked_when_lost():
    mnist = next(r for r in pp.PAPER_RESULTS if r["dataset"] == "MNIST")
    assert (mnist["native"], mnist["sparse"], mnist["native_epoch"], mnist["sparse_epoch"]) == (90.6, 92.48, 46, 38)
    assert sum(r["native"] is None for r in pp.PAPER_RESULTS) == 7


def test_attention_layout_matches_the_lowering_tensor():
    """The training model's tensor is engine.layers.lowering's causal tensor (scale and 1/(t+1) folded in)."""
    from engine.layers import lowering as low

    torch.manual_seed(1)
    native = pp.NativeAttentionLM(7, context=3, d=2, d_v=2).to(D64)
    tied = pp.TensorAttentionLM(native, "tied").to(D64)
    x = native.emb(torch.tensor([[1, 4, 2]])).detach()[0].numpy()
    want = native.attention(torch.as_tensor(x)[None]).detach()[0].numpy()
    ref = low.linear_attention_reference(native.w_q.detach().numpy(), native.w_k.detach().numpy(),
                                         native.w_v.detach().numpy(), x, causal=True, scale=1 / math.sqrt(2))
    np.testing.assert_allclose(want, ref / np.arange(1, 4)[:, None], atol=1e-12)
    np.testing.assert_allclose(tied.attention(torch.as_tensor(x)[None]).detach()[0].numpy(), want, atol=1e-12)
