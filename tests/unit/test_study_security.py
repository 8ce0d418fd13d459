"""A study file is data, never code (no subprocess, no training): a step runs only one of cvexp's own
entry points with Hydra key=value overrides, a report block is one of the report's kinds, and a
report reads only files inside its steps' folders. Each refusal is one line naming the key, raised
when the spec is read; the shipped studies still load."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from PIL import Image as PILImage

from cvexp.engine import rundir
from cvexp.engine.config import config_dir
from cvexp.errors import ConfigError
from cvexp.studies import report, spec

SECRET = "root:x:0:0:SECRET-OUTSIDE-THE-STUDY"


def make_study(tmp_path: Path, steps: dict, report_spec: dict | None = None, **kw) -> spec.Study:
    node = {"name": "t", "dir": str(tmp_path / "study"), "steps": steps, "report": report_spec or {}, **kw}
    return spec.study_from_config(node, python="python")


def refused(match: str, fn, *args, **kw) -> str:
    with pytest.raises(ConfigError, match=match) as e:
        fn(*args, **kw)
    msg = str(e.value)
    assert "\n" not in msg, msg  # one line
    return msg


def finished_run(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    rundir.write_json(d / "status.json", {"status": "completed", "overrides": [], "wall_time_s": 1.0})
    rundir.write_json(d / "metrics.json", {"test/acc": 0.5})
    (d / "config.yaml").write_text("seed: 0\n")
    return d


def outside_file(tmp_path: Path) -> Path:
    secret = tmp_path / "elsewhere" / "passwd.csv"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(f"class_name,f1\n{SECRET},0.5\n")
    return secret


# ------------------------------------------------------------------------------------ entry points
@pytest.mark.parametrize("entry", ["torch.distributed.run", "os", "runpy", "cvexp.study", "cvexp.report",
                                   "pip", "cvexp.evil", "", None, 3])
def test_a_foreign_entry_is_refused(tmp_path, entry):
    refused(r"^study\.steps\.a\.entry=.* is not an entry point of cvexp; .*use one of train, eval",
            make_study, tmp_path, {"a": {"entry": entry}})


def test_the_auditors_study_is_refused_before_anything_runs(tmp_path):
    steps = {"train": {"entry": "torch.distributed.run",
                       "overrides": ["--no-python", "--nproc-per-node=1", "touch", str(tmp_path / "pwned")]}}
    refused(r"torch\.distributed\.run' is not an entry point of cvexp", make_study, tmp_path, steps)
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "study").exists()


def test_a_scale_preset_cannot_bring_a_foreign_entry(tmp_path):
    refused(r"^study\.steps\.a\.entry='os' is not an entry point", make_study, tmp_path,
            {"a": {"entry": "train"}}, scale="demo", scales={"demo": {"a": {"entry": "os"}}})


def test_cvexps_own_modules_are_their_entry_points(tmp_path):
    study = make_study(tmp_path, {name: {"entry": module} for name, module in spec.ENTRY_MODULES.items()})
    for step in study.steps:
        assert step.entry == step.name and step.module == spec.ENTRY_MODULES[step.name]
    assert not study.step("theory").is_hydra  # (cvexp.studies.theory_step is the theory step, --out and all)


def test_a_step_made_by_hand_with_a_foreign_entry_runs_nothing(tmp_path):
    study = make_study(tmp_path, {"a": {"entry": "train"}})
    study.steps[0].entry = "torch.distributed.run"
    refused(r"entry='torch\.distributed\.run' is not an entry point of cvexp", spec.command, study, study.steps[0], [])


# ------------------------------------------------------------------------------------ overrides
@pytest.mark.parametrize("flag", ["-m", "--no-python", "-cd", "--config-dir=/tmp/evil", "-cp=/tmp", " -c", "--run",
                                  "--multirun", "-"])
@pytest.mark.parametrize("where", ["overrides", "extra"])
def test_a_flag_override_is_refused(tmp_path, flag, where):
    msg = refused(rf"^study\.steps\.a\.{where}\.1: .* is a command-line flag, not a Hydra override; .*drop it",
                  make_study, tmp_path, {"a": {"entry": "train", where: ["debug=fast", flag]}})
    assert repr(flag) in msg


def test_flags_are_refused_in_the_launcher_and_scale_presets_too(tmp_path):
    refused(r"^study\.launcher\.0: '--config-dir=/x' is a command-line flag", make_study, tmp_path,
            {"a": {"entry": "train", "multirun": True}}, launcher=["--config-dir=/x"])
    refused(r"^study\.steps\.a\.extra\.1: '-cd' is a command-line flag", make_study, tmp_path,
            {"a": {"entry": "train", "extra": ["x=1"]}}, scale="demo", scales={"demo": {"a": {"extra": ["-cd"]}}})
    refused(r"^study\.steps\.a\.overrides\.0: '-cd' is a command-line flag", make_study, tmp_path,
            {"a": {"entry": "train"}}, scale="demo", scales={"demo": {"a": {"overrides": ["-cd", "/x"]}}})


@pytest.mark.parametrize("override", ["{data:x}", "{study_dir}", "touch", "/tmp/pwned", "a b=1", "'-cd'=1"])
def test_an_override_that_is_not_key_value_is_refused(tmp_path, override):
    refused(r"^study\.steps\.a\.overrides\.0: .* is not a Hydra override; write key=value", make_study, tmp_path,
            {"a": {"entry": "train", "overrides": [override]}}, data={"x": "-cd"})


@pytest.mark.parametrize("override", ["+callbacks.x._target_=os.system", "data._target_=subprocess.run",
                                      "+x={_target_: os.system}", "hydra.searchpath=[file:///tmp/evil]",
                                      "+hydra.searchpath=[file:///tmp/evil]", "+hydra.job.env_set.LD_PRELOAD=/tmp/x.so",
                                      "hydra.job.env_set={PYTHONPATH: /tmp/evil}",
                                      "+hydra.launcher.setup=[touch /tmp/pwned]", "hydra.launcher.srun_args=[--x]",
                                      "+hydra.launcher.additional_parameters={wrap: x}"])
def test_an_override_naming_code_is_refused(tmp_path, override):
    refused(r"^study\.steps\.a\.overrides\.0: .* names code for the step to import", make_study, tmp_path,
            {"a": {"entry": "train", "overrides": [override]}})


def test_ordinary_overrides_are_kept(tmp_path):
    ok = ["debug=fast", "+pretrained=false", "~logger", "++trainer.max_epochs=2", "hydra/launcher=joblib",
          "seed=-1", "lr=-1e-3", "paths.data_dir=/data/my_target_data", "+roots={idd: {data:idd}}",
          "ckpts=[{dir:a},{dir:a}]", "db@pkg=x", "hydra.callbacks.sweep_report.baseline={aug:none}"]
    study = make_study(tmp_path, {"a": {"entry": "train"}, "b": {"entry": "train", "multirun": True, "overrides": ok}},
                       data={"idd": "/data/IDD"}, launcher=["hydra.launcher.n_jobs=2"])
    assert study.step("b").overrides == ok


def test_a_resolved_override_cannot_become_a_flag(tmp_path):
    study = make_study(tmp_path, {"a": {"entry": "train"}})
    refused(r"\(resolved\)\.0: '-cd' is a command-line flag", spec.command, study, study.steps[0], ["-cd", "/tmp/x"])
    refused(r"is a command-line flag", spec.job_command, study, study.steps[0], ["--info"], [], tmp_path / "j")


# ------------------------------------------------------------------------------------ report kinds
def test_every_block_kind_has_its_method_and_nothing_else_is_a_kind():
    for kind in report.BLOCK_KEYS:
        assert callable(getattr(report.Builder, f"_{kind}")), kind


@pytest.mark.parametrize("kind", ["appendix", "header", "machine", "groups_rows", "sweep_dir", "alpha", "_text",
                                  "__init__", None, 7])
def test_an_unknown_kind_is_refused(tmp_path, kind):
    study = make_study(tmp_path, {"seg": {"entry": "train"}},
                       {"sections": [{"title": "S", "blocks": [{"kind": kind, "step": "seg"}]}]})
    finished_run(study.step_dir("seg"))
    refused(r"^study\.report\.sections\.0\.blocks\.0\.kind=.* is not a block kind; use one of text, theory",
            report.check_report, study)
    # and the report itself, built without the entry point's check, calls no other method either
    refused(r"is not a block kind", report.write_report, study)
    assert not (study.dir / "report.md").exists()
    builder = report.Builder(make_study(tmp_path, {"seg": {"entry": "train"}}))
    refused(r"^study\.report: block kind=.* is not a block kind", builder.block, {"kind": kind, "step": "seg"})


# ------------------------------------------------------------------------------------ report files
@pytest.mark.parametrize("block", [
    {"kind": "csv", "step": "seg", "file": "../../../../etc/passwd"},
    {"kind": "csv", "step": "seg", "file": "sub/../../other/per_class.csv"},
    {"kind": "json", "step": "seg", "file": "/etc/passwd"},
    {"kind": "matrix", "step": "seg", "file": "..\\..\\x.csv"},
    {"kind": "images", "steps": ["seg"], "files": ["ok.png", "../*.png"]},
    {"kind": "images", "steps": ["seg"], "files": ["/etc/*.png"]},
])
def test_a_file_block_pointing_outside_is_refused(tmp_path, block):
    study = make_study(tmp_path, {"seg": {"entry": "train"}}, {"sections": [{"title": "S", "blocks": [block]}]})
    key = "file" if "file" in block else "files"
    refused(rf"^study\.report\.sections\.0\.blocks\.0\.{key}=.* is not a file inside the step's folder",
            report.check_report, study)


def symlink_study(tmp_path: Path, blocks: list[dict]) -> spec.Study:
    study = make_study(tmp_path, {"seg": {"entry": "train"}}, {"sections": [{"title": "S", "blocks": blocks}]})
    finished_run(study.step_dir("seg"))
    return study


def test_a_symlink_out_of_the_step_folder_is_not_read(tmp_path):
    secret = outside_file(tmp_path)
    picture = secret.parent / "secret.png"
    PILImage.new("RGB", (8, 6), (1, 2, 3)).save(picture)
    study = symlink_study(tmp_path, [{"kind": "csv", "step": "seg", "file": "per_class.csv"},
                                     {"kind": "json", "step": "seg", "file": "evaluation.json"},
                                     {"kind": "images", "steps": ["seg"], "files": ["*.png"]}])
    d = study.step_dir("seg")
    (d / "per_class.csv").symlink_to(secret)
    (d / "evaluation.json").symlink_to(tmp_path / "elsewhere")  # a folder out of it, too
    (d / "leak.png").symlink_to(picture)
    report.check_report(study)  # the names are fine: the folder's content is what points outside
    files = report.write_report(study)
    md, page = files["md"].read_text(), files["html"].read_text()
    assert SECRET not in md and SECRET not in page
    assert "per_class.csv is outside the folder of seg" in md and "leak.png is outside the folder of seg" in md
    assert "evaluation.json is outside the folder of seg" in md
    assert "<img" not in page  # the outside picture is neither embedded nor linked


def test_a_symlinked_folder_out_of_the_step_is_not_read(tmp_path):
    outside_file(tmp_path)
    study = symlink_study(tmp_path, [{"kind": "csv", "step": "seg", "file": "sub/passwd.csv"}])
    (study.step_dir("seg") / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    md = report.write_report(study)["md"].read_text()
    assert SECRET not in md and "sub/passwd.csv is outside the folder of seg" in md


def test_a_symlink_inside_the_step_folder_is_read(tmp_path):
    study = symlink_study(tmp_path, [{"kind": "csv", "step": "seg", "file": "per_class.csv"}])
    d = study.step_dir("seg")
    with open(d / "real.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["class_name", "f1"], ["road", "0.75"]])
    (d / "per_class.csv").symlink_to(d / "real.csv")
    md = report.write_report(study)["md"].read_text()
    assert "| road | 0.7500 |" in md and "outside the folder" not in md


# ------------------------------------------------------------------------------------ the shipped studies
def shipped_studies() -> list[tuple[str, str]]:
    out = []
    for f in sorted((Path(config_dir()) / "study").glob("*.yaml")):
        scales = (yaml.safe_load(f.read_text()) or {}).get("scales") or {}
        out += [(f.stem, s) for s in dict.fromkeys(["full", *scales])]
    return out


@pytest.mark.parametrize("name,scale", shipped_studies())
def test_the_shipped_studies_still_load(tmp_path, name, scale):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    data = ["study.data.wildlife=/data/rw", "study.data.idd=/data/IDD_Segmentation",
            "study.data.cityscapes=/data/cityscapes", "study.data.cityscapes_weights=/data/cs.pth.tar"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        cfg = compose(config_name="study", overrides=[f"study={name}", f"study.dir={tmp_path / 'study'}",
                                                      f"study.scale={scale}", *(data if name == "course" else [])])
    GlobalHydra.instance().clear()
    node = OmegaConf.to_container(cfg.study, resolve=True)
    for k in ("verbose", "report_only", "embed_images"):
        node.pop(k, None)
    study = spec.study_from_config(node, python="python")
    report.check_report(study)
    assert study.enabled_steps
    for step in study.enabled_steps:
        assert step.entry in spec.ENTRY_MODULES
        overrides = [spec.resolve(o, study, lambda sweep, f: sweep / "0") for o in study.overrides_of(step)]
        cmd = spec.command(study, step, overrides)
        assert cmd[:3] == ["python", "-m", spec.ENTRY_MODULES[step.entry]]
