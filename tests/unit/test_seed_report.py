"""Repeated seeds and folds in the sweep report: validation picks the best, groups of repeats with
mean ± std, t intervals and Welch tests that equal scipy's, the baseline choice, every seed's dot
in the plot, per-class recall beside F1. Hand-built job folders, no training."""

import csv
import os
import sys
import types

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import stats as sps
from test_report import write_job

from cvexp import report as report_cli
from cvexp.analysis import stats
from cvexp.analysis import sweep_report as report
from cvexp.engine.hydra_callbacks import RUN_NAME_ENV, SweepReport, run_name

CLASSES = ("amur_leopard", "people")


def job_metrics(val, test, recall_people=0.5):
    return {"val/f1_macro_best": val, "test/f1_macro": test, "test/acc": test + 0.01,
            "test/recall_macro": (0.9 + recall_people) / 2,
            "test/f1/amur_leopard": 0.8, "test/f1/people": 0.4,
            "test/recall/amur_leopard": 0.9, "test/recall/people": recall_people}


# the numbers of a `-m aug=none,strong,flip seed=...` sweep: strong clearly better, flip within noise
VALUES = {
    "none": {"val": [0.70, 0.72, 0.69], "test": [0.68, 0.71, 0.66]},
    "strong": {"val": [0.80, 0.83, 0.81, 0.82], "test": [0.79, 0.80, 0.78, 0.82]},
    "flip": {"val": [0.71, 0.68, 0.73], "test": [0.69, 0.70, 0.64]},
}


@pytest.fixture
def seeds(tmp_path):
    s = tmp_path / "seeds"
    num = 0
    for aug, v in VALUES.items():
        for seed, (val, test) in enumerate(zip(v["val"], v["test"])):
            job = write_job(s, num, [f"aug={aug}", f"seed={seed}", "trainer.max_epochs=3"], "completed",
                            job_metrics(val, test, recall_people=0.3 if aug == "none" else 0.6))
            (job / "config.yaml").write_text("optimized_metric: val/f1_macro_best\nmonitor_mode: max\n")
            num += 1
    write_job(s, num, ["aug=strong", "seed=9", "trainer.max_epochs=3"], "failed", error="boom")
    return s


def _stat(table, group, metric):
    return next(r for r in table if r["group"] == group and r["metric"] == metric)


def test_groups_are_jobs_that_differ_only_in_seed(seeds):
    rows = report.collect_rows(seeds)
    groups = report.group_rows(rows)
    assert [g["label"] for g in groups] == ["aug=none", "aug=strong", "aug=flip"]
    assert [len(g["rows"]) for g in groups] == [3, 5, 3]  # the failed seed is in its group, without values
    assert report.group_values(groups[1], "val/f1_macro_best") == VALUES["strong"]["val"]
    assert report.varying_repeat_keys(rows) == ["seed"]


def test_statistics_equal_scipy(seeds):
    rows = report.collect_rows(seeds)
    groups = report.group_rows(rows)
    table = report.group_stats(groups, ["val/f1_macro_best", "test/f1_macro"], baseline=0)
    for aug in VALUES:
        for metric, key in (("val/f1_macro_best", "val"), ("test/f1_macro", "test")):
            x = np.array(VALUES[aug][key])
            r = _stat(table, f"aug={aug}", metric)
            assert r["n"] == len(x)
            assert r["mean"] == pytest.approx(x.mean(), abs=1e-12)
            assert r["std"] == pytest.approx(x.std(ddof=1), abs=1e-12)
            lo, hi = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
            assert (r["ci_low"], r["ci_high"]) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
            if aug == "none":
                assert r["baseline"] and r["p"] is None
                continue
            base = np.array(VALUES["none"][key])
            ref = sps.ttest_ind(x, base, equal_var=False)
            assert r["t"] == pytest.approx(ref.statistic, abs=1e-9)
            assert r["p"] == pytest.approx(ref.pvalue, abs=1e-12)
            assert r["diff"] == pytest.approx(x.mean() - base.mean(), abs=1e-12)
            assert r["differs"] == (ref.pvalue < 0.05)
    assert _stat(table, "aug=strong", "val/f1_macro_best")["differs"] is True
    assert _stat(table, "aug=flip", "val/f1_macro_best")["differs"] is False


def test_stats_edge_cases():
    assert stats.summarize([0.5])["std"] is None and stats.summarize([0.5])["ci_low"] is None
    assert stats.summarize([None, float("nan")])["n"] == 0
    assert stats.welch([0.5], [0.6, 0.7])["p"] is None  # one run: no spread to compare against
    w = stats.welch([0.5, 0.5], [0.6, 0.6])  # no spread at all: no t statistic, not p = 0
    assert w["p"] is None and w["diff"] == pytest.approx(0.1)
    ref = sps.ttest_ind([1.0, 2.0, 4.0], [0.5, 0.7], equal_var=False)
    w = stats.welch([0.5, 0.7], [1.0, 2.0, 4.0])
    assert w["p"] == pytest.approx(ref.pvalue) and w["df"] == pytest.approx(ref.df)


def test_report_shows_groups_baseline_and_per_class_recall(seeds):
    files = report.write_report(seeds)
    md = files["md"].read_text()
    assert "Best by `val/f1_macro_best` (validation; the sweep's optimized_metric): job 4" in md
    assert "Best group by mean `val/f1_macro_best`: **aug=strong**" in md
    assert "## Groups: repeated seeds and folds" in md and "Jobs that differ only in `seed` form a group" in md
    p = sps.ttest_ind(VALUES["strong"]["val"], VALUES["none"]["val"], equal_var=False).pvalue
    section = md.split("### val/f1_macro_best")[1].split("###")[0]
    strong = next(ln for ln in section.splitlines() if ln.startswith("| aug=strong |"))
    assert f"{p:.2g}" in strong or f"{p:.3f}" in strong
    assert strong.endswith("| **yes** |") and "| aug=none (baseline) | 3 |" in section
    flip = next(ln for ln in section.splitlines() if ln.startswith("| aug=flip |"))
    assert flip.endswith("| no |")
    # per-class F1 and recall side by side, classes in the task's order
    assert "## Per class (test): f1 / recall" in md
    assert "| people | 0.400 / 0.300 | 0.400 / 0.600 | 0.400 / 0.600 |" in md
    with open(files["groups"], newline="") as fh:
        table = list(csv.DictReader(fh))
    r = next(t for t in table if t["group"] == "aug=strong" and t["metric"] == "val/f1_macro_best")
    assert r["n"] == "4" and float(r["p"]) == pytest.approx(p) and r["differs"] == "True"
    assert any(t["metric"] == "test/recall/people" for t in table)
    with open(seeds / "report.csv", newline="") as fh:
        assert [t["group"] for t in csv.DictReader(fh)][:4] == ["aug=none"] * 3 + ["aug=strong"]


@pytest.mark.parametrize("baseline", ["aug=strong", "aug=strong seed=0", {"aug": "strong"}, "3"])
def test_baseline_choice(seeds, baseline):
    groups = report.group_rows(report.collect_rows(seeds))
    assert report.find_baseline(groups, baseline) == (1, "")
    idx, note = report.find_baseline(groups, "aug=bogus")
    assert idx == 0 and "matches no group" in note
    report.write_report(seeds, baseline=baseline)
    assert "| aug=strong (baseline) | 4 |" in (seeds / "report.md").read_text()


def test_selection_uses_validation_not_test(tmp_path):
    s = tmp_path / "sel"
    write_job(s, 0, ["model=a"], "completed", {"val/f1_macro_best": 0.9, "test/f1_macro": 0.5})
    write_job(s, 1, ["model=b"], "completed", {"val/f1_macro_best": 0.6, "test/f1_macro": 0.8})
    rows = report.collect_rows(s)
    assert report.best_row(rows)["job"] == "0"
    md = report.markdown(rows, s)
    assert "job 0 (model=a) = 0.9000; test/f1_macro = 0.5000" in md
    # only test metrics: nobody is named best
    t = tmp_path / "testonly"
    write_job(t, 0, ["model=a"], "completed", {"test/f1_macro": 0.5})
    rows = report.collect_rows(t)
    assert report.selection_metric(rows) is None and report.best_row(rows) is None
    assert "no job is named best" in report.markdown(rows, t)
    # the jobs' own optimized_metric wins (read from their config.yaml), and its mode
    u = tmp_path / "own"
    for i, (iou, f1) in enumerate([(0.4, 0.9), (0.6, 0.1)]):
        job = write_job(u, i, [f"model={i}"], "completed", {"val/miou_best": iou, "val/f1_macro_best": f1})
        (job / "config.yaml").write_text("optimized_metric: val/miou_best\n")
    rows = report.collect_rows(u)
    assert report.selection_metric(rows) == "val/miou_best" and report.best_row(rows)["job"] == "1"


def test_folds_and_seeds_form_one_group(tmp_path):
    s = tmp_path / "kfold"
    num, vals = 0, []
    for seed in (0, 1):
        for fold in range(3):
            v = 0.6 + 0.01 * num
            vals.append(v)
            write_job(s, num, [f"seed={seed}", f"data.fold={fold}", "data.num_folds=3", "model=convnet"],
                      "completed", {"val/f1_macro_best": v, "test/f1_macro": v - 0.05})
            num += 1
    rows = report.collect_rows(s)
    groups = report.group_rows(rows)
    assert len(groups) == 1 and groups[0]["label"] == "all jobs" and len(groups[0]["rows"]) == 6
    assert report.varying_repeat_keys(rows) == ["seed", "data.fold"]
    r = report.group_stats(groups, ["val/f1_macro_best"])[0]
    assert r["n"] == 6 and r["mean"] == pytest.approx(np.mean(vals)) and r["std"] == pytest.approx(np.std(vals, ddof=1))
    md = report.markdown(rows, s)
    assert "Jobs that differ only in `seed` and/or `data.fold` form a group" in md


def test_plot_shows_every_seed(seeds):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.collect_rows(seeds)
    groups = report.group_rows(rows)
    fig, ax = plt.subplots()
    metrics = ["val/f1_macro_best", "test/f1_macro"]
    drawn = report.plot_groups(ax, groups, metrics)
    n_values = sum(len(v[k]) for v in VALUES.values() for k in ("val", "test"))
    assert drawn == n_values == 20
    dots = np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())
                           and c.get_offsets().shape[1] == 2 and type(c).__name__ == "PathCollection"])
    assert len(dots) == n_values  # one dot per seed and metric, not one per group
    assert sorted(dots[:, 1].tolist()) == pytest.approx(sorted(x for v in VALUES.values() for k in ("val", "test")
                                                               for x in v[k]))
    plt.close(fig)
    assert report.write_report(seeds)["png"].stat().st_size > 0


def test_cli_baseline_and_summary(seeds, capsys):
    assert report_cli.main([str(seeds), "--baseline", "aug=flip"]) == 0
    out = capsys.readouterr().out
    assert "Welch p vs aug=flip" in out and "report_groups.csv" in out
    assert "| aug=flip (baseline) | 3 |" in (seeds / "report.md").read_text()
    assert report_cli.main([str(seeds), "--alpha", "2"]) == 2


def _hydra_like(sweep, overrides=()):
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}, "overrides": {"task": list(overrides)}},
                             "task_name": "train"})


def test_callback_passes_baseline_and_alpha(seeds):
    cb = SweepReport(fail_on_error=False, baseline=OmegaConf.create({"aug": "strong"}), alpha=0.01)
    cb.on_multirun_start(_hydra_like(seeds))
    cb.on_multirun_end(_hydra_like(seeds))
    md = (seeds / "report.md").read_text()
    assert "| aug=strong (baseline) | 4 |" in md and "p < 0.01" in md


# ------------------------------------------------------------------------------------ W&B


class FakeRun:
    def __init__(self, **kw):
        self.kw, self.logged, self.summary, self.finished, self.id = kw, [], {}, False, "fake123"

    def log(self, d):
        self.logged.append(d)

    def finish(self):
        self.finished = True


@pytest.fixture
def fake_wandb(monkeypatch):
    mod = types.SimpleNamespace(run=None, runs=[], finished=0)

    def init(**kw):
        mod.run = FakeRun(**kw)
        mod.runs.append(mod.run)
        return mod.run

    def finish():
        mod.finished += 1
        mod.run = None

    mod.init, mod.finish = init, finish
    mod.Image = lambda path: ("image", path)
    mod.Table = lambda columns, data: ("table", columns, data)
    monkeypatch.setitem(sys.modules, "wandb", mod)
    return mod


def test_each_job_gets_its_own_named_wandb_run(fake_wandb, monkeypatch, tmp_path):
    monkeypatch.delenv(RUN_NAME_ENV, raising=False)
    cb = SweepReport()
    sweep_ov = ["debug=fast", "aug=none,strong", "seed=0,1"]
    cb.on_multirun_start(_hydra_like(tmp_path / "s", sweep_ov))
    job = _hydra_like(tmp_path / "s", ["debug=fast", "aug=strong", "seed=1"])
    cb.on_job_start(job)
    assert os.environ[RUN_NAME_ENV] == "aug=strong seed=1"  # the W&B name (conf/logger/wandb.yaml)
    fake_wandb.init(project="p")  # what the job's WandbLogger does
    cb.on_job_end(job)
    assert fake_wandb.run is None and fake_wandb.finished == 1  # the next job cannot reuse it
    assert RUN_NAME_ENV not in os.environ
    cb.on_job_end(job)  # nothing open: nothing to finish
    assert fake_wandb.finished == 1
    assert run_name(["model=resnet18"]) == "model=resnet18" and run_name([]) == ""
    assert run_name(["debug=fast"], ["debug=fast"]) == "debug=fast"
    cb._restore_group()


def test_sweep_report_goes_to_wandb(fake_wandb, seeds):
    for d in seeds.iterdir():
        if d.is_dir() and (d / "config.yaml").is_file():
            (d / "config.yaml").write_text("optimized_metric: val/f1_macro_best\nlogger:\n  wandb:\n"
                                           "    _target_: pytorch_lightning.loggers.WandbLogger\n"
                                           "    project: cvexp\n    mode: offline\n    group: multiruns/x\n")
    rows = report.collect_rows(seeds)
    settings = report.wandb_settings(rows)
    assert settings["project"] == "cvexp" and "_target_" not in settings
    SweepReport(fail_on_error=False).on_multirun_end(_hydra_like(seeds))
    (run,) = fake_wandb.runs
    assert run.kw["group"] == "multiruns/x" and run.kw["job_type"] == "sweep_report"
    assert run.kw["dir"] == str(seeds) and run.kw["mode"] == "offline" and run.finished
    logged = run.logged[0]
    assert logged["sweep/report"] == ("image", str(seeds / "report.png"))
    assert logged["sweep/groups"][0] == "table" and logged["sweep/jobs"][1][0] == "job"
    assert run.summary["best_job"] == "4"


def test_no_wandb_run_without_wandb_jobs(fake_wandb, seeds):
    assert report.wandb_settings(report.collect_rows(seeds)) is None
    SweepReport(fail_on_error=False).on_multirun_end(_hydra_like(seeds))
    assert fake_wandb.runs == []
