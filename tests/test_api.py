"""The public API: the README's Python example runs as written; load_checkpoint/build_run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parent.parent / "README.md"


def test_lazy_exports_resolve():
    import cvexp

    for name in cvexp.__all__:
        assert getattr(cvexp, name) is not None
    with pytest.raises(AttributeError):
        cvexp.nope  # noqa: B018


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


def test_library_leaves_the_matplotlib_backend_alone():
    """Only the entry points choose the headless backend; importing or calling library code must
    not switch a notebook's backend."""
    pkg = Path(__file__).resolve().parent.parent / "cvexp"
    offenders = [str(p.relative_to(pkg)) for p in pkg.rglob("*.py")
                 if "matplotlib.use(" in p.read_text() and p.relative_to(pkg).as_posix() != "engine/entry.py"]
    assert offenders == []
