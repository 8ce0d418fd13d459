"""The files every finished run leaves: metrics.json, per_class.csv, confusion matrix, curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cvexp.analysis.confusion import per_class_from_confusion, plot_confusion_matrix, write_rows_csv
from cvexp.analysis.curves import plot_learning_curves, write_history_csv


def write_classification_results(out: Path, confusion: np.ndarray, class_names: Sequence[str],
                                 title: str = "Test confusion matrix") -> dict[str, Path]:
    rows = per_class_from_confusion(confusion, class_names)
    write_rows_csv(rows, out / "per_class.csv")
    np.savetxt(out / "confusion_matrix.csv", np.asarray(confusion, dtype=np.int64), fmt="%d", delimiter=",",
               header=",".join(class_names), comments="")
    png = plot_confusion_matrix(confusion, class_names, out / "confusion_matrix.png", title=title)
    return {"per_class": out / "per_class.csv", "confusion_matrix": png}


def write_history(out: Path, history: Sequence[dict]) -> dict[str, Path]:
    if not history:
        return {}
    write_history_csv(history, out / "history.csv")
    png = plot_learning_curves(history, out / "learning_curves.png")
    return {"history": out / "history.csv", "learning_curves": png} if png else {"history": out / "history.csv"}
