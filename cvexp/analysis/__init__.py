"""Plots, tables and analyses written into run directories (plain matplotlib/numpy, no Hydra)."""

import matplotlib

matplotlib.use("Agg")  # headless: every figure goes to a file
