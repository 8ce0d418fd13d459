"""Scale-out end to end: DDP evaluation counts every test sample exactly once (equal to a
single-process `cvexp.eval` of the same checkpoint), a 2-job sweep on the joblib launcher, and a
3-trial Optuna search (our sweeper plugin, hydra_plugins/cvexp_optuna_sweeper)."""

import csv
import json

import numpy as np
import pytest
import yaml
from conftest import REPO, run_cli

COMMON = ["debug=fast", "data.image_size=32", "callbacks.progress_bar=null", "logger=none", "data.n_images=200"]
N_TEST = 39  # data.n_images=200 -> 142 / 20 / 39 images: the test split does not divide by 2 processes


def _test_metrics(run_dir):
    return {k: v for k, v in json.loads((run_dir / "metrics.json").read_text()).items() if k.startswith("test/")}


def _confusion(run_dir):
    return np.loadtxt(run_dir / "confusion_matrix.csv", delimiter=",", skiprows=1, dtype=np.int64)


@pytest.mark.slow
def test_ddp_test_metrics_equal_single_process_eval(tmp_path):
    """trainer.strategy=ddp on 2 CPU processes (gloo): each test image is scored exactly once, so the
    run's test metrics and confusion matrix equal `python -m cvexp.eval` of its checkpoint in one
    process (Lightning's DistributedSampler would pad 39 images to 40, counting one twice)."""
    run = tmp_path / "ddp"
    r = run_cli(["-m", "cvexp", *COMMON, "trainer.limit_test_batches=1.0", "trainer.strategy=ddp",
                 "trainer.accelerator=cpu", "trainer.devices=2", f"hydra.run.dir={run}"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Starting with 2 processes" in r.stdout + r.stderr
    ddp_conf = _confusion(run)
    assert ddp_conf.sum() == N_TEST

    ev = tmp_path / "eval"
    r = run_cli(["-m", "cvexp.eval", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", "logger=none",
                 "trainer.accelerator=cpu", f"hydra.run.dir={ev}"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert _confusion(ev).sum() == N_TEST
    np.testing.assert_array_equal(ddp_conf, _confusion(ev))
    ddp, single = _test_metrics(run), _test_metrics(ev)
    assert set(ddp) == set(single) and "test/acc" in ddp
    for k in ddp:
        assert ddp[k] == pytest.approx(single[k], abs=1e-6), k


@pytest.mark.slow
def test_two_job_sweep_on_the_joblib_launcher(tmp_path):
    """Two jobs side by side in joblib worker processes: each writes its run (status, metrics), the
    sweep report lists both, and each worker had at most cores // 2 torch threads."""
    sweep = tmp_path / "sweep"
    r = run_cli(["-m", "cvexp", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "aug=none,basic",
                 *COMMON, f"hydra.sweep.dir={sweep}"], cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in r.stdout + r.stderr
    status = [json.loads((sweep / j / "status.json").read_text()) for j in ("0", "1")]
    assert [s["status"] for s in status] == ["completed", "completed"]
    assert len({s["pid"] for s in status}) == 2  # two worker processes (not the sweep's own)
    with open(sweep / "report.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [(t["job"], t["aug"], t["status"]) for t in table] == [("0", "none", "completed"), ("1", "basic", "completed")]
    for j in ("0", "1"):
        assert "test/acc" in json.loads((sweep / j / "metrics.json").read_text())


@pytest.mark.slow
def test_three_trial_optuna_search(tmp_path):
    """hparams_search=wildlife_optuna with 3 trials (no -m: the config is a multirun): 3 jobs with
    sampled overrides, the best value recorded (= the best trial's validation metric), the report
    lists the trials in order with the best marked."""
    sweep = tmp_path / "sweep"
    r = run_cli(["-m", "cvexp", "hparams_search=wildlife_optuna", "hydra.sweeper.n_trials=3",
                 "trainer.limit_val_batches=2", *COMMON, f"hydra.sweep.dir={sweep}"], cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    res = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert res["n_trials"] == 3 and res["complete"] + res["pruned"] + res["fail"] == 3 and res["complete"] >= 1
    assert res["direction"] == "maximize" and set(res["best_params"]) == {
        "optimizer", "optimizer.lr", "optimizer.weight_decay", "aug", "data.batch_size"}
    vals = {j: json.loads((sweep / j / "metrics.json").read_text())["val/f1_macro_best"] for j in ("0", "1", "2")}
    assert res["best_value"] == pytest.approx(vals[str(res["best_job"])]) == pytest.approx(max(vals.values()))
    overrides = yaml.safe_load((sweep / str(res["best_job"]) / ".hydra" / "overrides.yaml").read_text())
    assert f"aug={res['best_params']['aug']}" in overrides
    with open(sweep / "optuna_trials.csv", newline="") as fh:
        trials = list(csv.DictReader(fh))
    assert [(t["trial"], t["job"]) for t in trials] == [("0", "0"), ("1", "1"), ("2", "2")]
    md = (sweep / "report.md").read_text().splitlines()
    head = next(i for i, line in enumerate(md) if line.startswith("| job | trial | state |"))
    rows = [line for line in md[head + 2:head + 5]]
    assert [row.split("|")[1].strip().split()[0] for row in rows] == ["0", "1", "2"]
    assert sum("(best)" in row for row in rows) == 1 and rows[res["best_job"]].startswith(f"| {res['best_job']} (best) |")
