"""Metrics accumulated during training and evaluation: one confusion matrix per stage, scored
with the conventions of the official tools (classification: torchmetrics/scikit-learn;
segmentation: cityscapesScripts)."""
