"""Every metric name the project logs, reports or monitors, defined once.

Names are `<stage>/<metric>`; configs refer to them as plain strings (`monitor: val/f1_macro`)
and tests/unit/test_configs.py::test_metric_names_in_configs_are_defined checks that each such string is defined here.
"""

from __future__ import annotations

TRAIN, VAL, TEST = "train", "val", "test"
STAGES = (TRAIN, VAL, TEST)

# classification
LOSS = "loss"
ACC = "acc"
F1_MACRO = "f1_macro"
F1_WEIGHTED = "f1_weighted"
F1_MACRO_BEST = "f1_macro_best"
RECALL_MACRO = "recall_macro"  # mean per-class recall (balanced accuracy), test stage only
# per-class scalars: `test/f1/<class>`, `test/recall/<class>` (per_class())
F1 = "f1"
RECALL = "recall"
# segmentation
MIOU = "miou"
PIXEL_ACC = "pixel_acc"
MEAN_PRECISION = "mean_precision"
MEAN_RECALL = "mean_recall"
MEAN_F1 = "mean_f1"
MIOU_BEST = "miou_best"

CLASSIFICATION_METRICS = (LOSS, ACC, F1_MACRO, F1_WEIGHTED)
SEGMENTATION_METRICS = (LOSS, MIOU, PIXEL_ACC, MEAN_PRECISION, MEAN_RECALL, MEAN_F1)


def name(stage: str, metric: str) -> str:
    """`name("val", "f1_macro") -> "val/f1_macro"`."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    return f"{stage}/{metric}"


def per_class(stage: str, metric: str, class_name: str) -> str:
    """Per-class scalar, e.g. `test/f1/amur_tiger`."""
    return f"{name(stage, metric)}/{class_name}"


TRAIN_LOSS = name(TRAIN, LOSS)
TRAIN_ACC = name(TRAIN, ACC)
VAL_LOSS = name(VAL, LOSS)
VAL_ACC = name(VAL, ACC)
VAL_F1_MACRO = name(VAL, F1_MACRO)
VAL_F1_MACRO_BEST = name(VAL, F1_MACRO_BEST)
TEST_ACC = name(TEST, ACC)
TEST_F1_MACRO = name(TEST, F1_MACRO)
TEST_F1_WEIGHTED = name(TEST, F1_WEIGHTED)
TEST_RECALL_MACRO = name(TEST, RECALL_MACRO)
VAL_MIOU = name(VAL, MIOU)
VAL_MIOU_BEST = name(VAL, MIOU_BEST)
TEST_MIOU = name(TEST, MIOU)


def all_names() -> set[str]:
    """Every stage-level name (per-class names are derived with `per_class`)."""
    metrics = set(CLASSIFICATION_METRICS) | set(SEGMENTATION_METRICS)
    out = {name(s, m) for s in STAGES for m in metrics}
    return out | {VAL_F1_MACRO_BEST, VAL_MIOU_BEST, TEST_RECALL_MACRO}


def is_per_class(metric: str) -> bool:
    """`test/f1/amur_tiger` -> True; `test/f1_macro` -> False."""
    return metric.count("/") > 1


def split_per_class(metric: str) -> tuple[str, str] | None:
    """`test/recall/amur_tiger` -> ("test/recall", "amur_tiger"); None for stage-level names."""
    if not is_per_class(metric):
        return None
    stage, kind, cls = metric.split("/", 2)
    return f"{stage}/{kind}", cls
