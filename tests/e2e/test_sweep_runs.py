"""Sweep reports: rows and values from hand-built job dirs (completed, failed, half-written),
the CLI, the Hydra callback, the W&B sweep group, and one real multirun end to end."""

import csv
import json

import pytest
from conftest import run_cli

from cvexp import report as report_cli


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
    assert "model.activation='bogus' is unknown" in table[1]["error"] and table[1]["test/acc"] == ""
    md = (sweep / "report.md").read_text()
    assert "| 0 | relu |" in md and "| 1 | bogus |" in md and "Common overrides: `debug=fast`" in md
    # rebuilding by hand gives the same table
    (sweep / "report.csv").unlink()
    assert report_cli.main([str(sweep)]) == 0
    with open(sweep / "report.csv", newline="") as fh:
        assert list(csv.DictReader(fh)) == table
