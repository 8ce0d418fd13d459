"""Imbalanced data: class-weighted cross-entropy (balanced weights as scikit-learn computes them),
per-class recall in the test metrics of a real (tiny) test pass."""

import pytest
import torch
from sklearn.metrics import recall_score

from conftest import TinyNet

from cvexp.metrics import names as M
from cvexp.tasks.classification import ClassificationModule

COUNTS = [978, 1049, 1446, 975, 1209, 1213, 1124, 1539, 1435, 700]  # the Russian Wildlife Dataset
CLASSES = [f"c{i}" for i in range(10)]




def test_test_pass_logs_per_class_recall(one_thread):
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)
    m = ClassificationModule(TinyNet(), ["a", "b", "c"])
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, accelerator="cpu")
    trainer.test(m, DataLoader(TensorDataset(x, y), batch_size=16), verbose=False)
    with torch.no_grad():
        pred = m(x).argmax(1).numpy()
    got = trainer.callback_metrics
    ref = recall_score(y.numpy(), pred, average=None, labels=[0, 1, 2], zero_division=0)
    for i, name in enumerate("abc"):
        assert float(got[M.per_class(M.TEST, M.RECALL, name)]) == pytest.approx(ref[i], abs=1e-6)
    assert float(got[M.TEST_RECALL_MACRO]) == pytest.approx(recall_score(y.numpy(), pred, average="macro"), abs=1e-6)
    assert M.per_class(M.TEST, M.F1, "a") in got
