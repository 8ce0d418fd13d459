"""The command line as a user meets it: sweeps, and one-line errors for what a user gets wrong."""

import json

import pytest
from conftest import run_cli

COMMON = ["debug=fast", "data.image_size=32", "callbacks.progress_bar=null", "logger=none"]
FAST = [*COMMON, "data.n_images=200"]


@pytest.mark.slow
def test_two_job_multirun(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli(["-m", "cvexp", "-m", "aug=none,basic", *FAST, f"hydra.sweep.dir={sweep}"])
    assert r.returncode == 0, r.stderr[-2000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    for job, aug in zip(jobs, ("none", "basic")):
        assert json.loads((job / "status.json").read_text())["status"] == "completed"
        assert "test/acc" in json.loads((job / "metrics.json").read_text())
        assert f"aug={aug}" in (job / ".hydra" / "overrides.yaml").read_text()


def test_unknown_option_lists_the_available_ones(tmp_path):
    r = run_cli(["-m", "cvexp", "model=resnet1800", f"hydra.run.dir={tmp_path / 'r'}"])
    assert r.returncode != 0
    assert "model/resnet1800" in r.stderr and "convnet" in r.stderr and "resnet18" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_data_root_is_one_line(tmp_path):
    missing = tmp_path / "no-such-dataset"
    r = run_cli(["-m", "cvexp", "data=wildlife", f"paths.data_dir={missing}", *COMMON,
                 f"hydra.run.dir={tmp_path / 'r'}"])
    assert r.returncode == 2
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and str(missing) in err[0]
    assert "Traceback" not in r.stderr
    status = json.loads((tmp_path / "r" / "status.json").read_text())
    assert status["status"] == "failed" and str(missing) in status["error"]


def test_finished_run_is_never_overwritten(tmp_path):
    run = tmp_path / "done"
    (run / ".hydra").mkdir(parents=True)
    (run / "metrics.json").write_text('{"test/acc": 0.9}')
    (run / "status.json").write_text('{"status": "completed"}')
    (run / ".hydra" / "config.yaml").write_text("original: true\n")
    r = run_cli(["-m", "cvexp", *FAST, f"hydra.run.dir={run}"])
    assert r.returncode == 2 and "holds a finished run" in r.stderr
    assert (run / "metrics.json").read_text() == '{"test/acc": 0.9}'
    assert (run / ".hydra" / "config.yaml").read_text() == "original: true\n"
    r = run_cli(["-m", "cvexp.eval", f"ckpt_path={tmp_path / 'x.ckpt'}", f"hydra.run.dir={run}"])
    assert r.returncode == 2 and "holds a finished run" in r.stderr


def test_bad_checkpoint_paths(tmp_path):
    r = run_cli(["-m", "cvexp.eval", f"ckpt_path={tmp_path / 'missing.ckpt'}", f"hydra.run.dir={tmp_path / 'a'}"])
    assert r.returncode == 2 and "missing.ckpt does not exist" in r.stderr
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x00not a checkpoint")
    r = run_cli(["-m", "cvexp.eval", f"ckpt_path={junk}", f"hydra.run.dir={tmp_path / 'b'}"])
    assert r.returncode == 2 and "cannot read checkpoint" in r.stderr and "Traceback" not in r.stderr


def test_missing_mandatory_value_is_one_line(tmp_path):
    r = run_cli(["-m", "cvexp", "experiment=idd_zero_shot_cityscapes", "data=demo_idd", *COMMON,
                 f"hydra.run.dir={tmp_path / 'r'}"])
    assert r.returncode == 2, r.stderr[-1500:]
    assert "model.weights has no value" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_ddp_with_two_cpu_processes_writes_one_run_dir(tmp_path):
    """The scale-out path (Lightning DDP re-launching the Hydra entry point), on CPU with gloo."""
    run = tmp_path / "ddp"
    r = run_cli(["-m", "cvexp", *FAST, "trainer.max_epochs=2", "trainer.strategy=ddp", "trainer.accelerator=cpu",
                 "trainer.devices=2", f"hydra.run.dir={run}"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Starting with 2 processes" in r.stdout + r.stderr
    assert json.loads((run / "status.json").read_text())["status"] == "completed"
    assert "test/acc" in json.loads((run / "metrics.json").read_text())
    assert len((run / "history.csv").read_text().strip().splitlines()) == 1 + 2


ENTRY_POINTS = ["train", "eval", "predict", "export", "analyze", "cross_eval", "preview", "report", "theory"]
HEAVY = ("torch", "pytorch_lightning", "albumentations", "matplotlib", "timm", "cv2", "scipy")


def test_entry_points_import_no_heavy_library():
    """`--help` and `--cfg job` cost a bare Hydra app's time: no entry point imports torch, Lightning,
    albumentations or matplotlib before it runs (benchmarks/: startup)."""
    import subprocess
    import sys

    code = ("import sys\n" + "".join(f"import cvexp.{m}\n" for m in ENTRY_POINTS) +
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == ""


def test_cfg_job_prints_the_config_without_torch():
    r = run_cli(["-X", "importtime", "-m", "cvexp", "--cfg", "job", "model=resnet18", "aug=strong"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert "timm_models.TimmClassifier" in r.stdout and "task_name: train" in r.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "omegaconf" in imported and not imported & set(HEAVY)
