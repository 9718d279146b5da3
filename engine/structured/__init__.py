"""Structured matrices (low-rank, butterfly, Monarch, circulant, Toeplitz): ``operators``."""
