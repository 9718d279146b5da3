"""Neural-network layers as sparse matrices (``lowering``) and the paper's side-by-side training (``paper``)."""
