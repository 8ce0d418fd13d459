"""LightningModules, one per task (classification, segmentation), all with the TaskModule
interface (tasks/base.py): what they take from the data, how they are scored and what they write.
A new task is one module here plus a `conf/task/` option."""

from __future__ import annotations

TASKS = {"classification": "cvexp.tasks.classification.ClassificationModule",
         "segmentation": "cvexp.tasks.segmentation.SegmentationModule"}


def task_class(name: str):
    """The TaskModule class of a task name as checkpoints record it (`checkpoint["cvexp"]["task"]`)."""
    import importlib

    from cvexp.errors import CheckpointError

    if name not in TASKS:
        raise CheckpointError(f"unknown task {name!r} in the checkpoint; known: {', '.join(TASKS)}")
    module, _, cls = TASKS[name].rpartition(".")
    return getattr(importlib.import_module(module), cls)
