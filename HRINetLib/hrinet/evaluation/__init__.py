"""Scoring synthesised slices against the truth: metrics and the evaluation protocols (no torch)."""
