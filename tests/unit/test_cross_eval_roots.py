"""cvexp.cross_eval: every dataset reads its own root (`roots={idd: ..., cityscapes: ...}`, or
`cross_eval.roots` after training); the others read paths.data_dir."""

from __future__ import annotations

import pytest
from conftest import compose_config

from cvexp.errors import ConfigError


@pytest.fixture
def grid(monkeypatch, tmp_path):
    """evaluate_grid with the checkpoint reader and the evaluation replaced: returns the eval configs."""
    import cvexp.io.checkpoint
    import cvexp.eval

    seen = []
    monkeypatch.setattr(cvexp.io.checkpoint, "load_run_checkpoint",
                        lambda path: {"cvexp": {"task": "classification", "choices": {"model": "m", "data": "d"}}})

    def fake_evaluate(cfg):
        seen.append(cfg)
        return {"test/acc": 0.5}

    monkeypatch.setattr(cvexp.eval, "evaluate", fake_evaluate)
    return seen


def test_each_dataset_gets_its_own_root(grid, tmp_path):
    from cvexp.cross_eval import cross_eval

    idd, cs, other = tmp_path / "IDD Segmentation", tmp_path / "cityscapes", tmp_path / "default"
    cfg = compose_config("cross_eval", ["ckpts=[a.ckpt]", "datasets=[idd,cityscapes,idd_flat]",
                                        f"roots={{idd: '{idd}', cityscapes: {cs}}}", f"paths.data_dir={other}"],
                         run_dir=tmp_path / "grid", log_dir=tmp_path)
    cross_eval(cfg)
    assert [c.data.layout for c in grid] == ["idd", "cityscapes", "idd_flat"]
    assert [c.data.root for c in grid] == [str(idd), str(cs), str(other)]
    assert [c.paths.data_dir for c in grid] == [str(idd), str(cs), str(other)]


def test_train_configs_cross_eval_roots_reach_the_grid(grid, tmp_path):
    from cvexp.cross_eval import evaluate_grid

    parent = compose_config("train", ["cross_eval.datasets=[cityscapes]",
                                      f"cross_eval.roots={{cityscapes: {tmp_path}}}"],
                            run_dir=tmp_path / "run", log_dir=tmp_path)
    evaluate_grid(["a.ckpt"], ["cityscapes"], None, tmp_path / "grid", parent)  # as cvexp.train calls it
    assert grid[0].data.root == str(tmp_path)


def test_a_root_for_a_dataset_not_evaluated_is_refused(grid, tmp_path):
    from cvexp.cross_eval import cross_eval

    cfg = compose_config("cross_eval", ["ckpts=[a.ckpt]", "datasets=[idd]", f"roots={{cityscape: {tmp_path}}}"],
                         run_dir=tmp_path / "grid", log_dir=tmp_path)
    with pytest.raises(ConfigError, match="roots names cityscape, which is not among the datasets"):
        cross_eval(cfg)
    assert not grid


def test_two_checkpoints_of_the_same_model_and_data_keep_their_own_results(grid, tmp_path):
    import csv

    from cvexp.cross_eval import cross_eval, unique_label

    assert unique_label("m@d", []) == "m@d" and unique_label("m@d", ["m@d", "m@d-2"]) == "m@d-3"
    cfg = compose_config("cross_eval", ["ckpts=[a.ckpt,b.ckpt]", "datasets=[demo_wildlife]"],
                         run_dir=tmp_path / "grid", log_dir=tmp_path)
    cross_eval(cfg)
    outs = [c.paths.output_dir for c in grid]
    assert len(set(outs)) == 2 and [c.ckpt_path for c in grid] == ["a.ckpt", "b.ckpt"]
    with open(tmp_path / "grid" / "cross_dataset.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["checkpoint"] for r in rows] == ["m@d", "m@d-2"] and {r["trained_on"] for r in rows} == {"d"}


def test_a_single_path_or_name_is_a_one_item_list():
    from cvexp.cross_eval import _as_list

    assert _as_list("runs/a/checkpoints/best.ckpt", "ckpts") == ["runs/a/checkpoints/best.ckpt"]
    assert _as_list(["demo_idd", "demo_cityscapes"], "datasets") == ["demo_idd", "demo_cityscapes"]
    assert _as_list(None, "datasets") == []
    with pytest.raises(ConfigError, match=r"ckpts must be a list: ckpts=\[A,B\]"):
        _as_list(3, "ckpts")
