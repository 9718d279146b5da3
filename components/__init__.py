"""Reusable UI pieces: plain functions returning Dash components."""
