"""The lab's own GPU kernels (Triton), each with a plain-torch reference beside it.

* ``engine.sparse.kernels.bsr_matmul``: lab-bsr, block-sparse (BSR) x dense.

Importing this package never imports triton; the kernels load it on first use.
"""
