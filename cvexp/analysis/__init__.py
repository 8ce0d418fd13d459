"""Plots, tables and analyses written into run directories (plain matplotlib/numpy, no Hydra).

Importing them leaves the caller's matplotlib backend alone; the entry points choose the headless
one (cvexp.engine.entry.entry_point, cvexp.report)."""
