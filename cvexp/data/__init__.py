"""Datasets, LightningDataModules, label tables, demo-data writers and transforms."""
