"""The public API: the README's Python example runs as written; load_checkpoint/build_run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.slow
def test_readme_python_example_runs(capsys, one_thread):
    section = README.read_text().split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    acc = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= acc <= 1.0


@pytest.mark.slow
def test_load_checkpoint_and_build_run(tmp_path, one_thread):
    import cvexp
    from conftest import predict_split, run_cli

    run_dir = tmp_path / "run"
    r = run_cli(["-m", "cvexp", "debug=fast", "data.n_images=200", "data.image_size=32", "logger=none",
                 "callbacks.progress_bar=null", f"hydra.run.dir={run_dir}"])
    assert r.returncode == 0, r.stderr[-2000:]
    run = cvexp.load_checkpoint(run_dir, data={"num_workers": 0})
    assert isinstance(run.module, cvexp.ClassificationModule) and not run.module.training
    labels, preds = predict_split(run_dir / "checkpoints" / "best.ckpt", "test")
    xs = [x for x, _ in run.datamodule.loader("test", augment=False, shuffle=False)]
    with torch.no_grad():
        mine = torch.cat([run.module(x).argmax(1) for x in xs]).numpy()
    assert (mine == preds).all()
    fresh = cvexp.build_run(run_dir / "config.yaml")
    assert type(fresh.module) is type(run.module) and fresh.datamodule.num_classes == 10
