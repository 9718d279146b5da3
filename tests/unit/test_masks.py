"""engine.attention.masks: predicates, combinators, dense and block materialisation, counts."""
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.attention import masks as M

# (kind, seq_len, params, block) -- every zoo mask, at lengths that do and do not divide the block
CASES = [(kind, s, {"w": 5, "d": 3, "g": 2, "r": 2, "seed": 1, "p": 7, "docs": 3}, b)
         for kind in M.MASK_KINDS for s, b in ((48, 8), (37, 8))]

# (mask, S, expected kept pairs)
COUNTS = [
    (M.full(), 20, 400),
    (M.causal(), 20, 20 * 21 // 2),
    (M.sliding_window(4), 20, sum(min(i + 1, 4) for i in range(20))),
    (M.sliding_window(3, two_sided=True), 10, sum(min(i + 3, 10) - max(0, i - 2) for i in range(10))),
    (M.dilated(3, 2), 12, sum(len([j for j in range(0, i + 1) if (i - j) % 2 == 0 and i - j < 6])
                              for i in range(12))),
    (M.global_tokens(2), 10, 100 - 8 * 8),
    (M.prefix_lm(4), 10, 10 * 11 // 2 + sum(4 - min(i + 1, 4) for i in range(10))),
    (M.document((3, 5, 2)), 10, 9 + 25 + 4),
]


def brute_force(mask: M.Mask, s: int) -> torch.Tensor:
    """The predicate called once per (q, kv) with scalar tensors, as FlexAttention's vmap does."""
    zero = torch.tensor(0)
    return torch.tensor([[bool(mask(zero, zero, torch.tensor(i), torch.tensor(j))) for j in range(s)]
                         for i in range(s)])


def brute_block_states(dense: torch.Tensor, block: int) -> torch.Tensor:
    s_q, s_k = dense.shape
    nq, nk = -(-s_q // block), -(-s_k // block)
    out = torch.zeros((nq, nk), dtype=torch.int8)
    for i, j in itertools.product(range(nq), range(nk)):
        tile = dense[i * block:(i + 1) * block, j * block:(j + 1) * block]
        out[i, j] = 0 if not tile.any() else (2 if tile.all() else 1)
    return out


@pytest.mark.parametrize("kind,s,params,block", CASES)
def test_broadcast_predicate_equals_scalar_calls(kind, s, params, block):
    mask = M.build_mask(kind, s, params, block)
    assert torch.equal(M.materialize(mask, s), brute_force(mask, s))


@pytest.mark.parametrize("kind,s,params,block", CASES)
def test_block_mask_marks_exactly_the_blocks_with_a_kept_entry(kind, s, params, block):
    dense = M.materialize(M.build_mask(kind, s, params, block), s)
    blocks = M.block_mask(dense, block)
    assert torch.equal(blocks, brute_block_states(dense, block))


@pytest.mark.parametrize("mask,s,expected", COUNTS, ids=[c[0].name for c in COUNTS])
def test_kept_pairs(mask, s, expected):
    assert int(M.materialize(mask, s).sum()) == expected


@settings(max_examples=40, deadline=None)
@given(q=st.integers(1, 40), kv=st.integers(1, 40), block=st.integers(1, 12),
       p=st.floats(0, 1), seed=st.integers(0, 10_000))
def test_block_mask_of_random_dense_masks(q, kv, block, p, seed):
    gen = torch.Generator().manual_seed(seed)
    dense = torch.rand((q, kv), generator=gen) < p
    blocks = M.block_mask(dense, block)
    assert torch.equal(blocks, brute_block_states(dense, block))
    # covering: expanding the non-empty blocks back to tokens contains every kept entry
    cover = (blocks != M.BLOCK_EMPTY).repeat_interleave(block, 0).repeat_interleave(block, 1)[:q, :kv]
    assert not (dense & ~cover).any()


def test_bigbird_is_the_union_of_its_parts():
    s, block = 96, 8
    bb = M.bigbird(w=6, g=3, r=2, seed=4, seq_len=s, block=block)
    parts = [M.sliding_window(6, two_sided=True), M.global_tokens(3), M.random_keys(2, 4, s, block)]
    union = torch.zeros((s, s), dtype=torch.bool)
    for part in parts:
        union |= M.materialize(part, s)
    assert torch.equal(M.materialize(bb, s), union)
    assert [p.name for p in bb.parts] == [p.name for p in parts]
    assert bb.combine == "or" and bb.name.startswith("bigbird(")


def test_longformer_is_window_or_global():
    s = 40
    lf = M.longformer(5, 2)
    expected = M.materialize(M.sliding_window(5, two_sided=True), s) | M.materialize(M.global_tokens(2), s)
    assert torch.equal(M.materialize(lf, s), expected)


def test_and_or_masks():
    s = 30
    causal, window = M.materialize(M.causal(), s), M.materialize(M.sliding_window(4, two_sided=True), s)
    both = M.and_masks(M.causal(), M.sliding_window(4, two_sided=True))
    either = M.or_masks(M.causal(), M.sliding_window(4, two_sided=True))
    assert torch.equal(M.materialize(both, s), causal & window)
    assert torch.equal(M.materialize(either, s), causal | window)
    # a causal two-sided window is the causal sliding window
    assert torch.equal(M.materialize(both, s), M.materialize(M.sliding_window(4), s))
    assert both.name == "and(causal, sliding_window(w=4, two-sided))"
    with pytest.raises(ValueError, match="expected at least one mask"):
        M.or_masks()


def test_random_keys_reproducible_and_bounded():
    s, r, block = 64, 3, 8
    a = M.materialize(M.random_keys(r, 7, s, block), s)
    b = M.materialize(M.random_keys(r, 7, s, block), s)
    c = M.materialize(M.random_keys(r, 8, s, block), s)
    assert torch.equal(a, b) and not torch.equal(a, c)
    blocks = M.block_mask(a, block)
    assert (blocks == M.BLOCK_PARTIAL).sum() == 0  # whole blocks: block-sparse
    per_row = (blocks != M.BLOCK_EMPTY).sum(dim=1)
    assert per_row.min() >= 1 and per_row.max() <= r


def test_document_split_and_mask():
    lengths = M.split_lengths(100, 5, seed=3)
    assert len(lengths) == 5 and sum(lengths) == 100 and min(lengths) >= 1
    dense = M.materialize(M.document(lengths), 100)
    assert int(dense.sum()) == sum(n * n for n in lengths)


def test_causal_detection_and_empty_rows():
    assert M.is_causal_mask(M.materialize(M.causal(), 17))
    assert not M.is_causal_mask(M.materialize(M.prefix_lm(3), 17))
    for kind in M.MASK_KINDS:
        st_ = M.mask_stats(M.build_mask(kind, 64), 64, 16)
        assert st_.empty_rows == 0, kind


def test_stats_and_flops():
    s, w, block = 1024, 32, 64
    st_ = M.mask_stats(M.sliding_window(w), s, block)
    nnz = sum(min(i + 1, w) for i in range(s))
    assert st_.nnz == nnz
    assert st_.speedup_vs_causal == pytest.approx(s * (s + 1) / 2 / nnz)
    assert st_.speedup_vs_dense == pytest.approx(s * s / nnz)
    # a window narrower than a block touches the diagonal block and the one before it
    nb = s // block
    assert st_.blocks_partial + st_.blocks_full == nb + (nb - 1)
    assert st_.block_speedup_vs_causal == pytest.approx((nb * (nb + 1) / 2) / (2 * nb - 1))
    assert M.attention_flops(nnz, 64, batch=2, heads=3) == 4 * nnz * 64 * 6
    causal = M.mask_stats(M.causal(), 64, 16)
    assert causal.speedup_vs_causal == 1 and causal.blocks_full == 4 * 3 / 2 and causal.blocks_partial == 4


def test_downsample_pools_to_fractions():
    dense = M.materialize(M.causal(), 1000)
    pooled, factor = M.downsample(dense, max_cells=250)
    assert factor == 4 and pooled.shape == (250, 250)
    assert pooled[0, 0] == pytest.approx((1 + 2 + 3 + 4) / 16)
    assert pooled[10, 200] == 0 and pooled[200, 10] == 1


@pytest.mark.parametrize("call,text", [
    (lambda: M.sliding_window(0), "window w: expected an integer in [1, 65536], got 0"),
    (lambda: M.dilated(4, 0), "dilation d: expected"),
    (lambda: M.global_tokens(-1), "global tokens g: expected"),
    (lambda: M.build_mask("nope", 16), "mask: expected one of"),
    (lambda: M.materialize(M.causal(), 0), "query length: expected"),
    (lambda: M.block_mask(torch.ones(4, 4), 2), "expected a 2-D bool tensor"),
    (lambda: M.document(()), "expected at least one length"),
])
def test_bad_inputs_name_what_they_got(call, text):
    with pytest.raises(ValueError, match=text.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        call()


def test_flex_block_mask_agrees_with_ours():
    pytest.importorskip("torch.nn.attention.flex_attention")
    from engine.attention.attend import make_block_mask

    s, block = 128, 16
    for mask in (M.causal(), M.bigbird(8, 2, 1, 0, s, block)):
        ours = M.block_mask(M.materialize(mask, s), block) != M.BLOCK_EMPTY
        theirs = make_block_mask(mask, s, "cpu", block).to_dense()[0, 0].bool()
        assert torch.equal(ours, theirs), mask.name


PRIMITIVES = [M.causal(), M.sliding_window(3), M.sliding_window(4, two_sided=True), M.dilated(2, 3),
              M.global_tokens(2), M.prefix_lm(5), M.full()]


@settings(max_examples=25, deadline=None)
@given(picks=st.lists(st.integers(0, len(PRIMITIVES) - 1), min_size=1, max_size=3),
       use_and=st.booleans(), s=st.integers(1, 24))
def test_combinations_equal_the_elementwise_logic_of_their_parts(picks, use_and, s):
    parts = [PRIMITIVES[i] for i in picks]
    combined = (M.and_masks if use_and else M.or_masks)(*parts)
    dense = [p.to_dense(s) for p in parts]
    expected = dense[0]
    for d in dense[1:]:
        expected = (expected & d) if use_and else (expected | d)
    assert torch.equal(combined.to_dense(s), expected)
    assert combined.parts == tuple(parts)


def _chapter_loop_keys(seq_len: int, window_size: int) -> list[list[int]]:
    """The keys each query sees in the chapter's sliding_window_attention loop, transcribed:
    start = max(0, i - window_size); end = i + 1; k = K[start:end]."""
    out = []
    for i in range(seq_len):
        start = max(0, i - window_size)
        end = i + 1
        out.append(list(range(start, end)))
    return out


@pytest.mark.parametrize("w", [1, 4, 7])
def test_sliding_window_is_one_key_shorter_than_the_chapters_loop(w):
    s = 24
    ours = M.materialize(M.sliding_window(w), s)
    theirs = _chapter_loop_keys(s, w)
    # ours: w keys counting the query itself; the chapter's window_size = w is our w + 1
    assert [torch.nonzero(ours[i]).flatten().tolist() for i in range(s)] == _chapter_loop_keys(s, w - 1)
    plus_one = M.materialize(M.sliding_window(w + 1), s)
    assert [torch.nonzero(plus_one[i]).flatten().tolist() for i in range(s)] == theirs
    if w == 4:  # the docstring's example: query 10
        assert torch.nonzero(ours[10]).flatten().tolist() == [7, 8, 9, 10]
        assert theirs[10] == [6, 7, 8, 9, 10]


def test_sliding_window_docstring_says_how_it_differs_from_the_chapter():
    doc = M.sliding_window.__doc__
    assert "as in the chapter's loop" not in doc and "w + 1" in doc
