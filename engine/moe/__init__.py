"""Mixture of Experts: routing, capacity, balancing, the batched layer and its timing (``layer``)."""
