"""LightningModules: one per task (classification, segmentation)."""
