"""Sweep reports: rows and values from hand-built job dirs (completed, failed, half-written),
the CLI, the Hydra callback, the W&B sweep group, and one real multirun end to end."""

import csv
import json
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cvexp import report as report_cli
from cvexp.analysis import sweep_report as report
from cvexp.engine.hydra_callbacks import GROUP_ENV, SweepReport


def write_job(sweep: Path, num: int, overrides: list[str], status: str | None, metrics: dict | None = None,
              history: list[dict] | None = None, error: str | None = None, wall: float = 12.5,
              raw_status: str | None = None) -> Path:
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if raw_status is not None:
        (job / "status.json").write_text(raw_status)
    elif status is not None:
        st = {"status": status, "overrides": overrides, "wall_time_s": wall}
        if error:
            st["error"] = error
        (job / "status.json").write_text(json.dumps(st))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    if history is not None:
        keys = sorted({k for r in history for k in r}, key=lambda k: (k != "epoch", k))
        with open(job / "history.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(history)
    return job


def metrics(acc, f1):
    return {"test/acc": acc, "test/f1_macro": f1, "test/f1_weighted": f1 + 0.01, "val/f1_macro_best": f1 + 0.02,
            "test/loss": 1.0, "test/f1/amur_tiger": 0.5}


def history(train_acc, val_acc, train_loss, val_loss, epochs=3):
    return [{"epoch": e, "train/acc": train_acc * (e + 1) / epochs, "val/acc": val_acc * (e + 1) / epochs,
             "train/loss": train_loss + (epochs - 1 - e), "val/loss": val_loss + (epochs - 1 - e),
             "val/f1_macro": val_acc * (e + 1) / epochs} for e in range(epochs)]


@pytest.fixture
def sweep(tmp_path):
    s = tmp_path / "multiruns" / "2026-01-01_00-00-00"
    common = "trainer.max_epochs=3"
    write_job(s, 0, ["aug=none", common], "completed", metrics(0.80, 0.78), history(0.99, 0.80, 0.05, 0.70))
    write_job(s, 1, ["aug=strong", common], "completed", metrics(0.85, 0.84), history(0.86, 0.84, 0.40, 0.45),
              wall=30.0)
    write_job(s, 2, ["aug=bogus", common], "failed",
              error="ConfigError: aug=bogus | not an option\nsecond line")
    write_job(s, 3, ["aug=flip", common], None, raw_status='{"status": "compl')  # killed while writing
    write_job(s, 10, ["aug=color", common], "running")
    (s / "multirun.yaml").write_text("hydra: {}\n")
    (s / "notajob").mkdir()  # a stray folder without job files is not a row
    return s


def test_rows_and_values(sweep):
    rows = report.collect_rows(sweep)
    assert [r["job"] for r in rows] == ["0", "1", "2", "3", "10"]  # numeric order, 10 last
    assert [r["status"] for r in rows] == ["completed", "completed", "failed", "incomplete", "running"]
    r0, r1, r2 = rows[:3]
    assert r0["metrics"]["test/acc"] == 0.80 and r1["metrics"]["test/f1_macro"] == 0.84
    assert r0["epochs"] == 3 and r0["wall_time_s"] == 12.5
    # last epoch: train 0.99 vs val 0.80 -> gap 0.19; loss 0.70 - 0.05 = 0.65
    assert r0["gap/acc"] == pytest.approx(0.19)
    assert r0["gap/loss"] == pytest.approx(0.65)
    assert r1["gap/acc"] == pytest.approx(0.02)
    assert "\n" not in r2["error"] and "second line" in r2["error"]
    assert rows[3]["overrides"] == ["aug=flip", "trainer.max_epochs=3"]  # from .hydra/overrides.yaml
    varying, common = report.swept_keys(rows)
    assert varying == ["aug"] and common == {"trainer.max_epochs": "3"}
    assert report.selection_metric(rows) == "val/f1_macro_best"  # validation picks, never test
    assert [r["job"] for r in report.failed_rows(rows)] == ["2", "3", "10"]


def test_report_files(sweep):
    files = report.write_report(sweep)
    assert {p.name for p in files.values()} == {"report.md", "report.csv", "report.png", "report_groups.csv"}
    assert all(p.parent == sweep and p.stat().st_size > 0 for p in files.values())
    with open(sweep / "report.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [t["job"] for t in table] == ["0", "1", "2", "3", "10"]
    assert [t["aug"] for t in table] == ["none", "strong", "bogus", "flip", "color"]
    t0, t1, t2 = table[:3]
    assert float(t0["test/acc"]) == 0.80 and float(t0["test/f1_weighted"]) == pytest.approx(0.79)
    assert float(t0["val/f1_macro_best"]) == pytest.approx(0.80)
    assert float(t0["final/train/acc"]) == pytest.approx(0.99) and float(t0["final/val/acc"]) == pytest.approx(0.80)
    assert float(t0["gap/acc"]) == pytest.approx(0.19) and float(t0["gap/loss"]) == pytest.approx(0.65)
    assert t0["epochs"] == "3" and t0["status"] == "completed" and float(t1["wall_time_s"]) == 30.0
    assert t2["status"] == "failed" and "not an option" in t2["error"] and t2["test/acc"] == ""
    assert "test/f1/amur_tiger" not in table[0]  # per-class values stay in the job's own files
    md = (sweep / "report.md").read_text()
    lines = [ln for ln in md.split("\n## ")[0].splitlines() if ln.startswith("| ")]  # the jobs table
    assert len(lines) == 1 + 5  # header + one row per job
    assert "| aug |" in lines[0] and "test/acc" in lines[0] and "gap acc" in lines[0]
    row0 = lines[1].split(" | ")
    assert row0[1] == "none" and "0.8000" in lines[1] and "0.1900" in lines[1] and "completed" in lines[1]
    assert "failed" in lines[3] and "\\|" in md  # a | in an error message cannot break the table
    assert ("Best by `val/f1_macro_best` (validation; the sweep's optimized_metric): job 1 (aug=strong) = 0.8600; "
            "test/f1_macro = 0.8400") in md
    assert "| 1 (best) | strong |" in md and "## Groups" not in md  # no repeated seeds: no group statistics
    assert "Common overrides: `trainer.max_epochs=3`" in md
    assert "job 2" in md and "not an option" in md and "![comparison](report.png)" in md


def test_empty_and_one_job_sweeps(tmp_path):
    files = report.write_report(tmp_path)
    assert files["csv"].read_text().startswith("job,") and "Jobs: 0" in files["md"].read_text()
    one = tmp_path / "one"
    write_job(one, 0, ["model=convnet"], "completed", metrics(0.5, 0.4), history(0.6, 0.5, 1.0, 1.2))
    rows = report.collect_rows(one)
    assert report.swept_keys(rows) == (["model"], {})  # a single job still shows what it ran
    report.write_report(one)
    assert "| 0 | convnet |" in (one / "report.md").read_text()


def test_cli(sweep, tmp_path, capsys):
    for f in ("report.md", "report.csv", "report.png"):
        assert not (sweep / f).exists()
    assert report_cli.main([str(sweep)]) == 0
    assert (sweep / "report.md").is_file() and (sweep / "report.png").is_file()
    out = capsys.readouterr().out
    assert "5 job(s), 2 completed, 3 not completed" in out and "not an option" in out
    assert report_cli.main([str(sweep), "--strict"]) == 1
    assert report_cli.main([str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").mkdir()
    assert report_cli.main([str(tmp_path / "empty")]) == 2
    assert report_cli.main([str(sweep), str(sweep)]) == 2  # several dirs need --out
    out_dir = tmp_path / "combined"
    assert report_cli.main([str(sweep), str(sweep), "--out", str(out_dir)]) == 0
    with open(out_dir / "report.csv", newline="") as fh:
        jobs = [r["job"] for r in csv.DictReader(fh)]
    assert len(jobs) == 10 and jobs[0] == f"{sweep.name}/0"


def _hydra_like(sweep: Path):
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}, "task_name": "train"})


def test_callback_writes_report_then_fails_the_process(sweep, monkeypatch):
    monkeypatch.delenv(GROUP_ENV, raising=False)
    cb = SweepReport()
    cb.on_multirun_start(_hydra_like(sweep))
    assert os.environ[GROUP_ENV].endswith("multiruns/2026-01-01_00-00-00")
    with pytest.raises(SystemExit) as exc:
        cb.on_multirun_end(_hydra_like(sweep))
    assert exc.value.code == 1
    assert (sweep / "report.md").is_file() and (sweep / "report.csv").is_file()  # written before exiting
    assert GROUP_ENV not in os.environ  # restored


def test_callback_quiet_when_all_jobs_completed(tmp_path):
    s = tmp_path / "ok"
    write_job(s, 0, ["aug=none"], "completed", metrics(0.8, 0.7), history(0.9, 0.8, 0.1, 0.3))
    SweepReport().on_multirun_start(_hydra_like(s))
    SweepReport().on_multirun_end(_hydra_like(s))  # no SystemExit
    assert (s / "report.md").is_file()
    bad = tmp_path / "bad"
    write_job(bad, 0, ["aug=x"], "failed", error="boom")
    SweepReport(fail_on_error=False).on_multirun_end(_hydra_like(bad))
    assert "boom" in (bad / "report.md").read_text()
    SweepReport(enabled=False).on_multirun_end(_hydra_like(tmp_path / "off"))
    assert not (tmp_path / "off").exists()


def test_wandb_group_is_the_sweep(compose_cfg, monkeypatch):
    from cvexp.engine import build as runs

    monkeypatch.delenv(GROUP_ENV, raising=False)
    assert runs.resolved_container(compose_cfg("train", ["logger=wandb"]))["logger"]["wandb"]["group"] is None
    monkeypatch.setenv(GROUP_ENV, "outputs/train/multiruns/x")
    cfg = compose_cfg("train", ["logger=wandb"])
    assert runs.resolved_container(cfg)["logger"]["wandb"]["group"] == "outputs/train/multiruns/x"
    cfg = compose_cfg("train", ["logger=wandb", "logger.wandb.group=mine"])
    assert cfg.logger.wandb.group == "mine"


def test_sweep_callback_is_registered(compose_cfg):
    cfg = compose_cfg("train")
    assert cfg.hydra.callbacks.sweep_report._target_ == "cvexp.engine.hydra_callbacks.SweepReport"
