"""Studies (cvexp.studies, python -m cvexp.study) without training or subprocesses: the course config
at each scale, step commands and references, what is reused and what is left to run, the runner's
control flow with a fake executor, and the report built from fabricated run directories (every
number read from a file; the HTML's images and links all resolve)."""

from __future__ import annotations

import base64
import csv
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from conftest import compose_config
from PIL import Image as PILImage

from cvexp.analysis import sweep_report
from cvexp.engine import rundir
from cvexp.errors import ConfigError
from cvexp.studies import report, reuse, runner, spec
from cvexp.studies.document import Document, Heading, Para, Table, inline_html

ENTRY_CONFIG = {"train": "train", "eval": "eval", "analyze": "analyze", "cross_eval": "cross_eval"}


# ------------------------------------------------------------------------------------ helpers
def make_study(tmp_path: Path, steps: dict, report_spec: dict | None = None, **kw) -> spec.Study:
    node = {"name": "t", "dir": str(tmp_path / "study"), "steps": steps, "report": report_spec or {}, **kw}
    return spec.study_from_config(node, python="python")


def png(path: Path, color=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.new("RGB", (8, 6), color).save(path)
    return path


def fake_run(d: Path, overrides=(), metrics: dict | None = None, status: str = "completed", error: str = "",
             seed: int = 0, per_class: list[dict] | None = None, files=()) -> Path:
    """A run directory as an entry point leaves it (status.json, .hydra/overrides.yaml, config.yaml, ...)."""
    d.mkdir(parents=True, exist_ok=True)
    (d / ".hydra").mkdir(exist_ok=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    st = {"status": status, "overrides": list(overrides), "wall_time_s": 1.5, "host": "testhost", "pid": 1}
    if error:
        st["error"] = error
    rundir.write_json(d / "status.json", st)
    (d / "config.yaml").write_text(f"seed: {seed}\nmodel: {{name: x}}\n")
    if metrics is not None:
        rundir.write_json(d / "metrics.json", metrics)
    if per_class is not None:
        with open(d / "per_class.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(per_class[0]))
            w.writeheader()
            w.writerows(per_class)
    for f in files:
        png(d / f)
    return d


def fake_theory(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    rundir.write_json(d / "theory.json", {"tables": [
        {"id": "softmax_overflow", "title": "Softmax: naive vs log-sum-exp", "columns": ["logits", "naive", "stable"],
         "rows": [[[1000.0, 1001.0], ["nan", "nan"], [0.2689, 0.7311]]], "note": "exp overflows"},
        {"id": "l2_weight_norms", "title": "L2 weight norms", "columns": ["regularisation", "||w||"],
         "rows": [["none", 7.125], ["l2_penalty", 1.5]], "note": ""}]})
    rundir.write_json(d / "status.json", {"status": "completed", "overrides": [], "wall_time_s": 0.4})
    return d


def fake_sweep(d: Path, jobs: list[tuple[list[str], dict]], report_files: bool = True) -> Path:
    """A multirun dir: numbered jobs, Hydra's multirun.yaml, and the sweep report's group table
    (written by the project's own writer)."""
    d.mkdir(parents=True, exist_ok=True)
    (d / rundir.SWEEP_FILE).write_text("hydra:\n  callbacks:\n    sweep_report:\n      alpha: 0.05\n")
    for i, (ov, metrics) in enumerate(jobs):
        seed = int(next((o.split("=")[1] for o in ov if o.startswith("seed=")), 0))
        fake_run(d / str(i), ov, metrics, seed=seed, files=["confusion_matrix.png"],
                 per_class=[{"class_id": 0, "class_name": "zebra", "f1": 0.5}, {"class_id": 1, "class_name": "ant", "f1": 0.5}])
    if report_files:
        rows = sweep_report.collect_rows(d)
        groups = sweep_report.group_rows(rows)
        metrics = sweep_report.stats_metrics(rows) + [f"{k}/{c}" for k, cs in
                                                      sweep_report.per_class_metrics(rows).items() for c in cs]
        sweep_report.write_groups_csv(sweep_report.group_stats(groups, metrics, 0), d / sweep_report.REPORT_GROUPS_CSV)
        sweep_report.write_csv(rows, d / sweep_report.REPORT_CSV)
        (d / sweep_report.REPORT_MD).write_text("# report\n")
        png(d / sweep_report.REPORT_PNG)
    return d


class Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs, self.hrefs, self.ids = [], [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.srcs.append(a.get("src", ""))
        if tag == "a":
            self.hrefs.append(a.get("href", ""))


def check_html_refs(page: Path) -> Refs:
    """Every <img src> is a decodable PNG data URI or an existing file; every <a href> an anchor of
    the page or an existing file beside it; nothing points to the network."""
    refs = Refs()
    refs.feed(page.read_text())
    base = page.parent
    for src in refs.srcs:
        if src.startswith("data:"):
            head, data = src.split(",", 1)
            assert head == "data:image/png;base64", head
            assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
        else:
            assert "://" not in src and (base / src).is_file(), src
    for href in refs.hrefs:
        if href.startswith("#"):
            assert href[1:] in refs.ids, href
        else:
            assert "://" not in href and (base / href).is_file(), href
    return refs


# ------------------------------------------------------------------------------------ the course config
def course_node(tmp_path, *overrides) -> dict:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from cvexp.engine.config import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        cfg = compose(config_name="study", overrides=["study=course", f"study.dir={tmp_path / 'study'}", *overrides])
    GlobalHydra.instance().clear()
    return OmegaConf.to_container(cfg.study, resolve=True)


FULL_DATA = ["study.data.wildlife=/data/rw", "study.data.idd=/data/IDD_Segmentation",
             "study.data.cityscapes=/data/cityscapes", "study.data.cityscapes_weights=/data/cs.pth.tar"]


def test_course_demo_scale_has_the_whole_study(tmp_path):
    study = spec.study_from_config(course_node(tmp_path, "study.scale=demo"))
    report.check_report(study)
    names = [s.name for s in study.enabled_steps]
    assert names == ["q1_theory", "q2_models", "q2_aug", "q2_tsne_before", "q2_tsne_after", "q3_cityscapes",
                     "q3_zero_shot", "q3_finetune", "q3_cross"]
    assert study.dir == (tmp_path / "study").resolve()
    models = study.step("q2_models")
    assert models.multirun and "data=demo_wildlife" in models.extra and "seed=0,1,2" in models.overrides
    assert study.step("q2_tsne_after").needs() == ["q2_models"]
    assert study.step("q3_cross").needs() == ["q3_cityscapes", "q3_finetune"]
    titles = [s["title"] for s in study.report["sections"]]
    assert [t.split(":")[0] for t in titles] == ["Q1", "Q2", "Q3"]


def test_course_full_scale_needs_the_dataset_folders(tmp_path):
    with pytest.raises(ConfigError, match=r"study\.data\.wildlife has no value.*study\.scale=demo"):
        spec.study_from_config(course_node(tmp_path))
    study = spec.study_from_config(course_node(tmp_path, *FULL_DATA))
    assert "q3_cityscapes" not in [s.name for s in study.enabled_steps]  # the real checkpoint stands for it
    with pytest.raises(ConfigError, match=r"study\.scale=tiny is not defined; choose one of full, demo"):
        spec.study_from_config(course_node(tmp_path, "study.scale=tiny"))


@pytest.mark.parametrize("scale", ["demo", "full"])
def test_every_course_step_composes_with_its_entry_point(tmp_path, scale):
    """Each step's overrides (references resolved, the first job of a sweep) compose with the entry
    point's config and pass its schema checks: no typo in a key or an option."""
    from cvexp.engine.schema import validate
    from cvexp.study import expand_jobs

    study = spec.study_from_config(course_node(tmp_path, f"study.scale={scale}", *FULL_DATA))
    for step in study.enabled_steps:
        overrides = [spec.resolve(o, study, lambda sweep, f: sweep / "0") for o in study.overrides_of(step)]
        if not step.is_hydra:
            continue
        jobs = expand_jobs(overrides) if step.multirun else [spec.task_overrides(overrides)]
        assert jobs, step.name
        if step.multirun:
            assert len(jobs) == {"q2_models": 9, "q2_aug": 9 if scale == "demo" else 21}[step.name]
        cfg = compose_config(ENTRY_CONFIG[step.entry], jobs[0], tmp_path / "run", tmp_path / "logs")
        validate(cfg)


def test_expand_jobs_follows_hydras_basic_sweeper():
    from cvexp.study import expand_jobs

    jobs = expand_jobs(["experiment=a,b", "seed=0,1", "logger=none", "hydra.callbacks.sweep_report.baseline={aug:none}",
                        "hydra/launcher=joblib"])
    assert jobs == [["experiment=a", "seed=0", "logger=none"], ["experiment=a", "seed=1", "logger=none"],
                    ["experiment=b", "seed=0", "logger=none"], ["experiment=b", "seed=1", "logger=none"]]
    assert expand_jobs(["x=1,2", "hydra/sweeper=optuna"]) is None
    assert expand_jobs(["hparams_search=wildlife_lr"]) is None  # a search decides its jobs as it goes


# ------------------------------------------------------------------------------------ steps and references
def test_commands_fix_the_output_dirs_and_keep_launcher_overrides(tmp_path):
    study = make_study(tmp_path, {
        "a": {"entry": "train", "overrides": ["debug=fast"]},
        "s": {"entry": "train", "multirun": True, "overrides": ["seed=0,1", "hydra/launcher=joblib"]},
        "th": {"entry": "theory"}}, launcher=["hydra.launcher.n_jobs=2"])
    a, s, th = study.steps
    cmd = spec.command(study, a, study.overrides_of(a))
    assert cmd == ["python", "-m", "cvexp", "debug=fast", f"hydra.run.dir={study.dir / 'a'}"]
    cmd = spec.command(study, s, study.overrides_of(s))
    assert cmd[:4] == ["python", "-m", "cvexp", "-m"] and cmd[-1] == f"hydra.sweep.dir={study.dir / 's'}"
    assert "hydra/launcher=joblib" in cmd and "hydra.launcher.n_jobs=2" in cmd  # passed to Hydra unchanged
    assert "hydra.launcher.n_jobs=2" not in spec.command(study, a, study.overrides_of(a))  # multiruns only
    assert spec.command(study, th, []) == ["python", "-m", "cvexp.studies.theory_step", "--out", str(study.dir / "th")]


def test_references_resolve_to_step_and_job_dirs(tmp_path):
    study = make_study(tmp_path / "my study", {
        "sweep": {"entry": "train", "multirun": True, "overrides": ["model=a,b"]},
        "one": {"entry": "train"},
        "use": {"entry": "eval", "overrides": ["ckpt_path={dir:sweep[model=b]}", "x={dir:one}/checkpoints/best.ckpt",
                                               "+roots={idd: {data:idd}}"]}}, data={"idd": "/data/IDD"})
    fake_run(study.step_dir("sweep") / "0", ["model=a"])
    fake_run(study.step_dir("sweep") / "1", ["model=b"])
    use = study.step("use")
    got = [spec.resolve(o, study, reuse.find_job) for o in study.overrides_of(use)]
    # the study dir holds a space: each path is one quoted value, the tail of the path inside the quotes
    assert got[0] == f"ckpt_path='{study.dir / 'sweep' / '1'}'"
    assert got[1] == f"x='{study.dir / 'one' / 'checkpoints' / 'best.ckpt'}'"
    assert got[2] == "+roots={idd: /data/IDD}"
    with pytest.raises(ConfigError, match="has no job with model=c"):
        reuse.find_job(study.step_dir("sweep"), {"model": "c"})
    with pytest.raises(ConfigError, match="2 jobs have"):
        reuse.find_job(study.step_dir("sweep"), {})


@pytest.mark.parametrize("steps,match", [
    ({"a": {"entry": "eval", "overrides": ["ckpt_path={dir:b}"]}, "b": {"entry": "train"}},
     r"study\.steps\.a: \{dir:b\} refers to step 'b', which is disabled or comes later"),
    ({"a": {"entry": "eval", "overrides": ["ckpt_path={dir:zz}"]}}, "is not a step of this study"),
    ({"a": {"entry": "train"}, "b": {"entry": "eval", "overrides": ["ckpt_path={dir:a[seed=0]}"]}},
     "selects a job, but a is not a multirun"),
    ({"a": {"entry": "bogus"}}, r"study\.steps\.a\.entry='bogus' is not an entry point"),
    ({"a": {"entry": "train", "overides": []}}, r"study\.steps\.a has unknown key\(s\) overides"),
    ({"a b": {"entry": "train"}}, "a step name becomes a folder name"),
    ({"a": {"entry": "theory", "multirun": True}}, "cannot be a multirun"),
])
def test_config_errors_name_the_key_before_any_work(tmp_path, steps, match):
    with pytest.raises(ConfigError, match=match):
        make_study(tmp_path, steps)


def test_scale_presets_patch_steps(tmp_path):
    steps = {"a": {"entry": "train", "overrides": ["x=1"], "extra": ["y=1"]}, "b": {"entry": "train", "enabled": False}}
    study = make_study(tmp_path, steps, scale="demo",
                       scales={"demo": {"a": {"extra": ["debug=fast"]}, "b": {"enabled": True}}})
    assert study.step("a").overrides == ["x=1"] and study.step("a").extra == ["y=1", "debug=fast"]
    assert study.step("b").enabled
    with pytest.raises(ConfigError, match=r"study\.scales\.demo\.c: there is no step 'c'"):
        make_study(tmp_path, steps, scale="demo", scales={"demo": {"c": {"enabled": True}}})


# ------------------------------------------------------------------------------------ reuse
def test_single_run_steps_are_reused_resumed_or_run(tmp_path):
    study = make_study(tmp_path, {"a": {"entry": "train", "overrides": ["debug=fast"]}})
    a = study.step("a")
    d = study.step_dir(a)
    plan = reuse.plan_single(study, a, ["debug=fast"])
    assert plan.action == reuse.RUN and plan.commands[0][-1] == f"hydra.run.dir={d}"
    fake_run(d, ["debug=fast"], status="failed", error="boom")
    assert reuse.plan_single(study, a, ["debug=fast"]).action == reuse.RUN  # a failed run runs again
    fake_run(d, ["debug=fast"], status="interrupted")
    (d / "checkpoints").mkdir()
    (d / "checkpoints" / "last.ckpt").write_bytes(b"x")
    plan = reuse.plan_single(study, a, ["debug=fast"])
    assert plan.action == reuse.RESUME and plan.commands == [["python", "-m", "cvexp", f"resume={d}"]]
    fake_run(d, ["debug=fast"], {"test/acc": 0.5})
    plan = reuse.plan_single(study, a, ["debug=fast", "hydra.job.name=x"])  # hydra.* settings are not the run's
    assert plan.action == reuse.REUSE and plan.commands == []
    plan = reuse.plan_single(study, a, ["debug=fast", "trainer.max_epochs=5"])
    assert plan.action == reuse.REFUSE
    assert str(d) in plan.reason and "trainer.max_epochs=5" in plan.reason and "study.dir" in plan.reason
    study.check_overrides = False
    assert reuse.plan_single(study, a, ["debug=fast", "trainer.max_epochs=5"]).action == reuse.REUSE


def test_a_sweep_is_reused_when_every_job_completed_and_finished_job_by_job_otherwise(tmp_path):
    study = make_study(tmp_path, {"s": {"entry": "train", "multirun": True,
                                        "overrides": ["aug=none,strong", "seed=0,1", "hydra/launcher=joblib",
                                                      "hydra.callbacks.sweep_report.baseline={aug:none}"]}})
    s = study.step("s")
    ov = study.overrides_of(s)
    expected = [["aug=none", "seed=0"], ["aug=none", "seed=1"], ["aug=strong", "seed=0"], ["aug=strong", "seed=1"]]
    d = study.step_dir(s)
    assert reuse.plan_sweep(study, s, ov, expected).action == reuse.RUN
    fake_sweep(d, [(j, {"val/f1_macro_best": 0.5 + i / 10}) for i, j in enumerate(expected)])
    plan = reuse.plan_sweep(study, s, ov, expected)
    assert plan.action == reuse.REUSE and plan.commands == []
    # a sweep killed part-way: job 2 failed, job 3 never started
    fake_run(d / "2", expected[2], status="failed", error="bad")
    (d / "2" / "metrics.json").unlink()
    for f in (d / "3").rglob("*"):
        if f.is_file():
            f.unlink()
    plan = reuse.plan_sweep(study, s, ov, expected)
    assert plan.action == reuse.FINISH_JOBS and plan.jobs == [2, 3]
    job2, job3, rebuild = plan.commands
    assert job2 == ["python", "-m", "cvexp", "aug=strong", "seed=0",
                    "hydra.callbacks.sweep_report.baseline={aug:none}", f"hydra.run.dir={d / '2'}"]
    assert "hydra/launcher=joblib" not in job2 and job3[-1] == f"hydra.run.dir={d / '3'}"
    assert rebuild == ["python", "-m", "cvexp.report", str(d), "--baseline", "aug=none"]
    # the study's config changed: the sweep has jobs the step does not make
    plan = reuse.plan_sweep(study, s, ov, expected[:2])
    assert plan.action == reuse.REFUSE and "study.dir" in plan.reason
    # the report is rebuilt when the sweep ended before writing it
    fake_run(d / "2", expected[2], {"val/f1_macro_best": 0.2})
    fake_run(d / "3", expected[3], {"val/f1_macro_best": 0.3})
    (d / sweep_report.REPORT_MD).unlink()
    plan = reuse.plan_sweep(study, s, ov, expected)
    assert plan.action == reuse.REUSE and plan.commands == [rebuild]


# ------------------------------------------------------------------------------------ the runner
class FakeExecutor:
    """Stands in for the subprocesses: writes what each entry point would (status.json, metrics)."""

    def __init__(self, fail: dict[str, str] | None = None):
        self.calls: list[list[str]] = []
        self.fail = fail or {}

    def __call__(self, runner_self, cmd, log_path):
        self.calls.append(cmd)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as fh:
            fh.write("$ " + " ".join(cmd) + "\n")
        if "--out" in cmd:
            fake_theory(Path(cmd[cmd.index("--out") + 1]))
            return 0, ""
        out = Path(next(a.split("=", 1)[1] for a in cmd if a.startswith("hydra.run.dir=")))
        task = [a for a in cmd[3:] if not spec.is_hydra_override(a)]
        for name, error in self.fail.items():
            if out.name == name:
                fake_run(out, task, status="failed", error=error)
                return 2, error
        fake_run(out, task, {"test/acc": 0.75}, files=["confusion_matrix.png"])
        return 0, ""


def test_the_runner_reuses_finished_steps_and_reports_failures(tmp_path, monkeypatch):
    steps = {"th": {"entry": "theory"}, "a": {"entry": "train", "overrides": ["debug=fast"]},
             "b": {"entry": "eval", "overrides": ["ckpt_path={dir:a}"]}}
    study = make_study(tmp_path, steps)
    fake = FakeExecutor()
    monkeypatch.setattr(runner.Runner, "_execute", lambda self, cmd, log: fake(self, cmd, log))
    out = io.StringIO()
    result = runner.run_study(study, out=out, argv=["study=t"])
    assert not result.failed and len(fake.calls) == 3
    console = out.getvalue()
    assert "step 1/3 th" in console and "step 2/3 a" in console and "step 3/3 b" in console
    assert fake.calls[2][3] == f"ckpt_path={study.dir / 'a'}"
    ledger = json.loads((study.dir / "study.json").read_text())
    assert [s["status"] for s in ledger["steps"]] == ["completed"] * 3 and ledger["argv"] == ["study=t"]
    # a second run: every step reused, nothing executed
    out = io.StringIO()
    result = runner.run_study(study, out=out)
    assert not result.failed and len(fake.calls) == 3
    assert out.getvalue().count(": reused (") == 3
    ledger = json.loads((study.dir / "study.json").read_text())
    assert all(s["reused"] for s in ledger["steps"]) and ledger["steps"][1]["ran_wall_time_s"] is not None
    # study.resume=false refuses a study dir that holds steps
    study.resume = False
    with pytest.raises(ConfigError, match="study.resume=false but .* already holds steps"):
        runner.run_study(study, out=io.StringIO())


def test_a_failed_step_is_recorded_and_its_dependents_skipped(tmp_path, monkeypatch):
    steps = {"a": {"entry": "train", "overrides": ["model.activation=bogus"]},
             "b": {"entry": "eval", "overrides": ["ckpt_path={dir:a}"]},
             "c": {"entry": "train", "overrides": ["debug=fast"]}}
    study = make_study(tmp_path, steps, report_spec={"sections": [{"title": "S", "blocks": [
        {"kind": "metrics", "steps": ["a", "c"], "keys": ["test/acc"]}]}]})
    fake = FakeExecutor(fail={"a": "unknown activation 'bogus'"})
    monkeypatch.setattr(runner.Runner, "_execute", lambda self, cmd, log: fake(self, cmd, log))
    result = runner.run_study(study, out=io.StringIO())
    assert [(s["name"], s["status"]) for s in result.steps] == [("a", "failed"), ("b", "skipped"), ("c", "completed")]
    assert result.failed[0]["error"] == "unknown activation 'bogus'"
    assert "needs step a, which failed" in result.failed[1]["error"]
    files = report.write_report(study)
    md = files["md"].read_text()
    assert "**a** failed: unknown activation 'bogus'" in md and "**b** skipped" in md
    assert "[logs/a.log](logs/a.log)" in md
    assert "| c | 0.7500 |" in md  # the finished step's number is still there
    check_html_refs(files["html"])


# ------------------------------------------------------------------------------------ the report
def report_study(tmp_path) -> spec.Study:
    steps = {"theory": {"entry": "theory"},
             "models": {"entry": "train", "multirun": True, "overrides": ["model=a,b", "seed=0,1,2"]},
             "seg": {"entry": "train", "overrides": ["task=segmentation"]},
             "cross": {"entry": "cross_eval", "overrides": ["ckpts=[{dir:seg}]"]}}
    sections = [
        {"id": "q1", "title": "Q1: theory", "text": "Stable `softmax`.", "blocks": [{"kind": "theory", "step": "theory"}]},
        {"id": "q2", "title": "Q2: models", "blocks": [
            {"kind": "groups", "title": "Models", "step": "models", "metrics": ["test/acc", "val/f1_macro_best"]},
            {"kind": "per_class", "step": "models", "metric": "test/f1"},
            {"kind": "images", "title": "Confusion", "steps": ["models[seed=0]"], "files": ["confusion_matrix.png"]}]},
        {"id": "q3", "title": "Q3: segmentation", "blocks": [
            {"kind": "metrics", "steps": ["seg"], "labels": ["fine-tuned"], "keys": ["test/miou", "test/pixel_acc"]},
            {"kind": "csv", "step": "seg", "file": "per_class.csv", "columns": ["class_name", "iou"], "sort": "iou",
             "descending": True, "max_rows": 2},
            {"kind": "json", "step": "seg", "file": "evaluation.json", "keys": ["mode", "test_is_val"]},
            {"kind": "images", "steps": ["seg"], "files": ["predictions.png", "failures_*.png"]},
            {"kind": "matrix", "step": "cross", "file": "cross_dataset.csv"}]}]
    study = make_study(tmp_path, steps, {"title": "My study", "sections": sections})
    fake_theory(study.step_dir("theory"))
    jobs = []
    for model, base in (("a", 0.6), ("b", 0.8)):
        for seed in (0, 1, 2):
            acc = base + 0.01 * seed
            jobs.append(([f"model={model}", f"seed={seed}"],
                         {"test/acc": acc, "val/f1_macro_best": acc - 0.05, "test/f1/zebra": acc, "test/f1/ant": 0.1}))
    fake_sweep(study.step_dir("models"), jobs)
    seg = fake_run(study.step_dir("seg"), ["task=segmentation"], {"test/miou": 0.4321, "test/pixel_acc": 0.9},
                   per_class=[{"class_name": "road", "iou": 0.9}, {"class_name": "sky", "iou": 0.95},
                              {"class_name": "pole", "iou": 0.05}],
                   files=["predictions.png", "failures_lowest_miou.png", "failures_low_class_iou.png"])
    rundir.write_json(seg / "evaluation.json", {"mode": "full", "test_is_val": True})
    cross = fake_run(study.step_dir("cross"), ["ckpts=[x]"])
    with open(cross / "cross_dataset.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["checkpoint", "trained_on", "evaluated_on", "space", "metric", "value", "run_dir"])
        w.writerow(["deeplab@idd", "idd", "idd", "cityscapes", "test/miou", 0.5555, "x"])
        w.writerow(["deeplab@idd", "idd", "cityscapes", "cityscapes", "test/miou", 0.1234, "y"])
    return study


def test_the_report_reads_every_number_from_the_files(tmp_path):
    study = report_study(tmp_path)
    report.check_report(study)
    files = report.write_report(study)
    md = files["md"].read_text()
    assert md.startswith("# My study")
    for section in ("## Q1: theory", "## Q2: models", "## Q3: segmentation", "## Appendix: reproducibility"):
        assert section in md
    assert "| [1000, 1001] | [nan, nan] | [0.2689, 0.7311] |" in md and "| none | 7.125 |" in md  # theory.json
    groups = {(r["group"], r["metric"]): r for r in csv.DictReader(open(study.step_dir("models") / "report_groups.csv"))}
    b = groups[("model=b", "test/acc")]
    assert f"{float(b['mean']):.4f} ± {float(b['std']):.4f} [{float(b['ci_low']):.4f}, {float(b['ci_high']):.4f}]" in md
    assert f"p = {float(b['p']):.2g}: **yes**" in md or f"p = {float(b['p']):.3f}: **yes**" in md
    assert "| model=a (baseline) | 3 |" in md and "p < 0.05" in md  # alpha from the sweep's multirun.yaml
    assert md.index("| zebra |") < md.index("| ant |")  # classes in the task's order (per_class.csv)
    assert "| fine-tuned | 0.4321 | 0.9000 |" in md
    assert "| sky | 0.9500 |" in md and "| pole |" not in md and "2 of 3 rows, sorted by iou" in md
    assert "| test_is_val | yes |" in md and "| mode | full |" in md
    assert "| deeplab@idd | 0.5555 | 0.1234 |" in md
    assert "Source: [models/report_groups.csv](models/report_groups.csv)" in md
    assert "Source: [seg/metrics.json](seg/metrics.json)" in md
    assert md.count("![") == 2 + 3  # two models' confusion matrices (seed 0), three segmentation pictures
    # the appendix: seeds and config hashes of every job
    assert "| 0 | model=a seed=0 | 0 |" in md and "| 5 | model=b seed=2 | 2 |" in md
    refs = check_html_refs(files["html"])
    assert len(refs.srcs) == 5 and all(s.startswith("data:image/png") for s in refs.srcs)
    assert {"q1", "q2", "q3", "appendix"} <= refs.ids


def test_a_changed_metrics_file_changes_the_report(tmp_path):
    study = report_study(tmp_path)
    before = report.write_report(study)["md"].read_text()
    assert "0.4321" in before
    path = study.step_dir("seg") / "metrics.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "test/miou": 0.1111}))
    after = report.write_report(study)["md"].read_text()
    assert "0.1111" in after and "0.4321" not in after
    # and a sweep's statistics likewise
    path = study.step_dir("models") / "report_groups.csv"
    rows = list(csv.DictReader(open(path)))
    for r in rows:
        if (r["group"], r["metric"]) == ("model=b", "test/acc"):
            r["mean"] = "0.987654"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert "| model=b | 3 | 0.9877 ±" in report.write_report(study)["md"].read_text()


def test_html_without_embedding_links_images_beside_it(tmp_path):
    study = report_study(tmp_path)
    files = report.write_report(study, embed_images=False)
    refs = check_html_refs(files["html"])
    assert refs.srcs and not any(s.startswith("data:") for s in refs.srcs)
    assert all((study.dir / s).resolve().is_relative_to(study.dir.resolve()) for s in refs.srcs)
    assert oct(files["html"].stat().st_mode & 0o044) != "0o0"  # readable by others, like any output


def test_blocks_of_unfinished_steps_say_why(tmp_path):
    study = report_study(tmp_path)
    (study.step_dir("seg") / "metrics.json").unlink()
    fake_run(study.step_dir("seg"), ["task=segmentation"], status="failed", error="CUDA out of memory")
    (study.step_dir("models") / "report_groups.csv").unlink()
    md = report.write_report(study)["md"].read_text()
    assert "Not available:** step seg has not finished (CUDA out of memory)" in md
    assert "models/report_groups.csv is missing" in md


@pytest.mark.parametrize("block,match", [
    ({"kind": "pie", "step": "seg"}, r"blocks\.0\.kind='pie' is not a block kind"),
    ({"kind": "csv", "step": "seg"}, r"needs file:"),
    ({"kind": "metrics", "steps": ["nope"]}, "names no step of this study"),
    ({"kind": "metrics", "steps": ["seg[seed=0]"]}, "selects jobs, but step seg is not a multirun"),
    ({"kind": "metrics", "steps": ["seg"], "colour": "red"}, r"unknown key\(s\) colour"),
])
def test_report_spec_errors_name_the_key(tmp_path, block, match):
    study = make_study(tmp_path, {"seg": {"entry": "train"}}, {"sections": [{"title": "S", "blocks": [block]}]})
    with pytest.raises(ConfigError, match=match):
        report.check_report(study)


def test_document_renders_the_same_content_as_markdown_and_html():
    doc = Document("T")
    doc.add(Heading(2, "Sec", anchor="sec"), Para("see **bold** `a<b` [file](x.csv)"), Table(["k", "v"], [["a|b", "1"]], ["l", "r"]))
    md = doc.markdown()
    assert "see **bold** `a<b` [file](x.csv)" in md and "| a\\|b | 1 |" in md and "|---|---:|" in md
    page = doc.html()
    assert "<strong>bold</strong>" in page and "<code>a&lt;b</code>" in page and "<a href='x.csv'>file</a>" in page
    assert "<td class='num'>1</td>" in page and "href='#sec'" in page
    assert inline_html("<script>") == "&lt;script&gt;"
    for href in ("javascript:alert", "JavaScript:void0", "data:text/html,x", "vbscript:x"):
        assert inline_html(f"[click]({href})") == "click"  # text, no link
    assert inline_html("[docs](https://x.org/a)") == "<a href='https://x.org/a'>docs</a>"
    assert inline_html("[run](q2/report.md#top)") == "<a href='q2/report.md#top'>run</a>"


def test_theory_step_writes_the_tables_as_data(tmp_path, monkeypatch):
    from cvexp.errors import RunDirError
    from cvexp.studies import theory_step
    from cvexp.theory import demos

    # (the L2 training demo takes seconds; one table shows the format, test_theory checks them all)
    monkeypatch.setattr(demos, "ALL_DEMOS", (demos.softmax_overflow, demos.bce_worked_examples))
    theory_step.write(tmp_path / "th")
    data = json.loads((tmp_path / "th" / "theory.json").read_text())
    assert [t["id"] for t in data["tables"]] == ["softmax_overflow", "bce_worked_examples"]
    softmax = data["tables"][0]
    assert softmax["columns"] == ["logits", "naive softmax", "stable softmax", "stable log-softmax"]
    assert softmax["rows"][2][1] == ["nan", "nan", "nan"]  # naive softmax of [1000, 1001, 1002] in float32
    assert softmax["rows"][2][2] == pytest.approx([0.09003, 0.2447, 0.6652], abs=1e-4)
    assert rundir.read_status(tmp_path / "th")["status"] == "completed"
    assert (tmp_path / "th" / "theory.txt").read_text().startswith("Softmax: naive vs log-sum-exp")
    with pytest.raises(RunDirError, match="holds a finished run"):
        theory_step.write(tmp_path / "th")
