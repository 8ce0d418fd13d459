"""Sweep reports: rows and values from hand-built job dirs (completed, failed, half-written),
the CLI, the Hydra callback, the W&B sweep group, and one real multirun end to end."""

import csv
import json
from pathlib import Path

import pytest
from conftest import run_cli

from cvexp import report as report_cli


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


@pytest.mark.slow
def test_real_multirun_with_a_failing_job(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli(["-m", "cvexp", "-m", "debug=fast", "data.n_images=200", "data.image_size=32", "logger=none",
                 "callbacks.progress_bar=null", "model.activation=relu,bogus", f"hydra.sweep.dir={sweep}"])
    assert r.returncode == 1, r.stderr[-3000:]  # a job failed: the sweep says so by its exit code ...
    log = r.stdout + r.stderr
    assert "1 of 2 job(s) of the sweep did not complete" in log and "bogus" in log
    for f in ("report.md", "report.csv", "report.png"):  # ... after writing the report
        assert (sweep / f).is_file(), f
    with open(sweep / "report.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [(t["job"], t["model.activation"], t["status"]) for t in table] == [
        ("0", "relu", "completed"), ("1", "bogus", "failed")]
    saved = json.loads((sweep / "0" / "metrics.json").read_text())
    for k in ("test/acc", "test/f1_macro", "test/f1_weighted", "val/f1_macro_best"):
        assert float(table[0][k]) == pytest.approx(saved[k])
    assert table[0]["epochs"] == "1" and float(table[0]["wall_time_s"]) > 0
    assert table[0]["gap/acc"] != "" and table[0]["gap/loss"] != ""
    assert "unknown activation 'bogus'" in table[1]["error"] and table[1]["test/acc"] == ""
    md = (sweep / "report.md").read_text()
    assert "| 0 | relu |" in md and "| 1 | bogus |" in md and "Common overrides: `debug=fast`" in md
    # rebuilding by hand gives the same table
    (sweep / "report.csv").unlink()
    assert report_cli.main([str(sweep)]) == 0
    with open(sweep / "report.csv", newline="") as fh:
        assert list(csv.DictReader(fh)) == table
