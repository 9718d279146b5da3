"""lab-bsr as a PyTorch op and a layer.

* ``torch.ops.sparsity_lab.bsr_mm(crow, col, values, b, n_cols)``, registered by
  ``register()`` on first use (``BlockSparseLinear`` calls it): Y = A @ B with A
  given by its BSR tensors (int32 ``crow`` [R + 1], int32 ``col`` [nnz], ``values``
  [nnz, b, b]) and ``n_cols`` its column count. A ``torch.library.custom_op`` with a
  fake implementation (shapes only), so it traces under ``torch.compile`` (one opaque
  node, no graph break) and is captured in CUDA graphs. The real implementation finds
  the ``BsrMatrix`` of these tensors (with its cached plans and launch) in a small
  registry keyed by their storage, building it on the first call.
* ``BlockSparseLinear.from_linear(linear, block, sparsity)``: a dense ``nn.Linear``
  pruned by block magnitude (``engine.sparse.pruning.prune_mask``, pattern "block")
  and stored as BSR; ``forward(x)`` = x @ W_pruned^T + bias through the op.
  Inference only: the op has no backward.

The weight W [out, in] is the sparse left operand, so the layer computes
Y^T = W @ X^T. X^T is made contiguous (one copy, skipped when X is already the
transpose of a contiguous tensor) and Y is returned as the transpose of the kernel's
output, a view; a second BlockSparseLinear fed that view (or an elementwise op of it)
needs no copy at all.
"""
from __future__ import annotations

import torch
from torch import nn

from engine.sparse.kernels.bsr_cache import BoundedCache
from engine.sparse.kernels.bsr_matrix import BsrMatrix

OP_NAME = "sparsity_lab::bsr_mm"
REGISTRY_SIZE = 64  # matrices whose plans the op keeps (least recently used dropped)
OP_MATRICES = BoundedCache("lab-bsr op matrices", REGISTRY_SIZE)


def _key(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, n_cols: int) -> tuple:
    return (values.device, values.data_ptr(), col.data_ptr(), crow.data_ptr(),
            tuple(values.shape), int(col.numel()), int(crow.numel()), n_cols, values.dtype)


def matrix_for(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor,
               n_cols: int) -> BsrMatrix:
    """The ``BsrMatrix`` over exactly these tensors (no copy), built once and kept in
    the registry; an entry holds its tensors, so their storage cannot be reused by
    another matrix while it is there."""
    key = _key(crow, col, values, n_cols)
    mat = OP_MATRICES.get(key)
    if mat is None:
        if values.dim() != 3 or values.shape[1] != values.shape[2]:
            raise ValueError(f"values: expected [nnz, b, b] square blocks, got "
                             f"{tuple(values.shape)}")
        block = int(values.shape[1])
        mat = BsrMatrix(crow, col, values, ((int(crow.numel()) - 1) * block, int(n_cols)), block)
        OP_MATRICES.put(key, mat)
    return mat


def clear_registry() -> None:
    """Forget every matrix the op has seen (their plans and launches)."""
    OP_MATRICES.clear()


def _bsr_mm(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, b: torch.Tensor,
            n_cols: int) -> torch.Tensor:
    """Y = A @ B, A in BSR (see the module docstring), B dense [n_cols, k]."""
    from engine.sparse.kernels.bsr_matmul import bsr_matmul

    return bsr_matmul(matrix_for(crow, col, values, n_cols), b, autotune=False)


def _bsr_mm_fake(crow, col, values, b, n_cols):
    torch._check(b.dim() == 2, lambda: f"b: expected a 2-D tensor, got {b.dim()} dims")
    torch._check(b.shape[0] == n_cols, lambda: f"b: expected {n_cols} rows, got {b.shape[0]}")
    rows = (crow.shape[0] - 1) * values.shape[1]
    return b.new_empty((rows, b.shape[1]))


_OP: list = []  # the registered op, once register() ran


def register():
    """Register ``torch.ops.sparsity_lab.bsr_mm`` (a ``torch.library.custom_op`` with
    its fake implementation) on first use, once per process; later calls return the
    same op. ``BlockSparseLinear`` calls it when built; importing this module registers
    nothing."""
    if not _OP:
        op = torch.library.custom_op(OP_NAME, mutates_args=())(_bsr_mm)
        op.register_fake(_bsr_mm_fake)
        _OP.append(op)
    return _OP[0]


class BlockSparseLinear(nn.Module):
    """y = x @ W^T + bias with W [out, in] block-sparse (BSR, square ``block`` blocks),
    computed by lab-bsr. Build it from a dense layer with ``from_linear``."""

    def __init__(self, matrix: BsrMatrix, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        register()  # the op forward() calls (and torch.compile traces)
        self.out_features, self.in_features = matrix.shape
        self.block = matrix.block
        self.register_buffer("crow", matrix.crow)
        self.register_buffer("col", matrix.col)
        self.register_buffer("values", matrix.values)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.sparsity = 1.0 - matrix.density

    @classmethod
    def from_linear(cls, linear: nn.Linear, block: int, sparsity: float) -> "BlockSparseLinear":
        """Keep the ``block`` x ``block`` tiles of ``linear.weight`` with the largest mean
        |w| (``prune_mask(..., "block", sparsity)``), store them as BSR."""
        from engine.sparse.pruning import prune_mask

        if not isinstance(linear, nn.Linear):
            raise ValueError(f"linear: expected a torch.nn.Linear, got {type(linear).__name__}")
        w = linear.weight.detach()
        out_f, in_f = w.shape
        if out_f % block or in_f % block:
            raise ValueError(f"linear: expected in and out features divisible by the block "
                             f"{block}, got {in_f} and {out_f}")
        mask = prune_mask(w, "block", sparsity, block=block)
        keep = mask.reshape(out_f // block, block, in_f // block, block).any(dim=3).any(dim=1)
        matrix = BsrMatrix.from_dense(w * mask, block, keep=keep)
        return cls(matrix, linear.bias)

    def matrix(self) -> BsrMatrix:
        """The weight as the op sees it (built once per storage)."""
        return matrix_for(self.crow, self.col, self.values, self.in_features)

    def dense_weight(self) -> torch.Tensor:
        """W [out, in] with zeros where no block is stored."""
        return self.matrix().to_dense()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        y_t = torch.ops.sparsity_lab.bsr_mm(self.crow, self.col, self.values,
                                            x2.t().contiguous(), self.in_features)
        y = y_t.t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"block={self.block}, sparsity={self.sparsity:.3f}, bias={self.bias is not None}")
