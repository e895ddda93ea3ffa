"""Benchmarks, research questions, recipes and release tooling of HRINetSlicer (not shipped)."""
