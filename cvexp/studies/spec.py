"""A study and its steps, from the plain dict of the config's `study` node (no Hydra here).

A step is one existing entry point with overrides:

    q2_models:
      entry: train               # train | eval | cross_eval | analyze | predict | export | preview |
                                 # theory (or its module, e.g. cvexp.eval): cvexp's own entry points only
      multirun: true             # python -m cvexp -m ...  (a sweep; its jobs are the sweep's jobs)
      overrides: [experiment=wildlife_convnet,wildlife_resnet18, seed=0,1,2]
      extra: []                  # appended: what scale presets and the command line add

A study file is data, never code: a step runs one of cvexp's own entry points (ENTRY_MODULES) and
its overrides are Hydra `key=value` overrides only. A command-line flag (`-cd`, `--config-dir`, ...;
the study itself adds `-m` for `multirun: true` and `--out` for theory) and an override that names
code to import (`_target_`, `hydra.searchpath`) are refused when the study is read, before any step runs.

Each step writes into `<study dir>/<step name>/` (`hydra.run.dir`, or `hydra.sweep.dir` for a
multirun), so a second run of the study finds it. Overrides may refer to

- `{dir:STEP}`: another (earlier) step's directory, e.g. `ckpt_path={dir:q3_cityscapes}`;
- `{dir:STEP[key=value ...]}`: the job of a multirun step whose overrides hold those values, e.g.
  `ckpt_path={dir:q2_models[experiment=wildlife_resnet18 seed=0]}`;
- `{data:NAME}`: the folder the user gave as `study.data.NAME` (the real datasets);
- `{study_dir}`: the study directory.

Scale presets (`study.scale=demo`) patch steps: `study.scales.<scale>.<step>` may set `enabled`,
`entry`, `multirun`, `title`, replace `overrides` or append `extra`. `study.launcher` is appended to
every multirun step (e.g. `[hydra/launcher=slurm, hydra.launcher.partition=gpu]`); steps pass any
`hydra/launcher=...` override to Hydra unchanged.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvexp.errors import ConfigError

ENTRY_MODULES = {
    "train": "cvexp",
    "eval": "cvexp.eval",
    "cross_eval": "cvexp.cross_eval",
    "analyze": "cvexp.analyze",
    "predict": "cvexp.predict",
    "export": "cvexp.export",
    "preview": "cvexp.preview",
    "theory": "cvexp.studies.theory_step",
}
# entry points that are not Hydra apps: they take their output folder as an argument
NOT_HYDRA = {"theory": "--out"}
# a module name given as entry (`cvexp.eval`) is the same entry point as its short name (`eval`)
_ENTRY_OF_MODULE = {module: name for name, module in ENTRY_MODULES.items()}
STEP_KEYS = ("entry", "overrides", "extra", "multirun", "title", "enabled")
# the key of a Hydra override (`+a.b=`, `~a`, `hydra/launcher=`, `db@pkg=`): nothing else may precede `=`
_OVERRIDE_KEY = re.compile(r"^(?:\+\+|\+|~)?[A-Za-z0-9_][A-Za-z0-9_./@-]*$")
# overrides that would make a step import code, run shell commands (a SLURM launcher's setup lines,
# sbatch/srun arguments) or change its environment (LD_PRELOAD, PYTHONPATH for DDP's re-run), as the
# study file says
_CODE_WORD = re.compile(r"(?<!\w)_target_(?!\w)")
_CODE_KEYS = ("hydra.searchpath", "hydra.job.env_set", "hydra.launcher.setup", "hydra.launcher.srun_args",
              "hydra.launcher.additional_parameters", "hydra.launcher.python")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DIR_REF = re.compile(r"\{dir:([A-Za-z0-9_.-]+)(?:\[([^\]]*)\])?\}")
DATA_REF = re.compile(r"\{data:([A-Za-z0-9_.-]+)\}")
# a reference and the path that continues it (`{dir:a}/checkpoints/best.ckpt`): quoted as one value
_PATH_TAIL = r"((?:/[^,\]\}\s'\"]*)?)"
DIR_REF_TAIL = re.compile(DIR_REF.pattern + _PATH_TAIL)
DATA_REF_TAIL = re.compile(DATA_REF.pattern + _PATH_TAIL)
STUDY_DIR_REF = "{study_dir}"
# a value of only these characters needs no quotes in Hydra's override grammar; others are quoted
_PLAIN = re.compile(r"^[A-Za-z0-9/_\-.@+%:]+$")


@dataclass
class Step:
    name: str
    entry: str
    overrides: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    multirun: bool = False
    title: str = ""
    enabled: bool = True

    @property
    def module(self) -> str:
        if self.entry not in ENTRY_MODULES:  # (a Step made by hand, not by study_from_config)
            raise ConfigError(f"step {self.name}: entry={self.entry!r} is not an entry point of cvexp; use one of "
                              f"{', '.join(ENTRY_MODULES)}")
        return ENTRY_MODULES[self.entry]

    @property
    def is_hydra(self) -> bool:
        return self.entry not in NOT_HYDRA

    def needs(self) -> list[str]:
        """The steps this one refers to (`{dir:STEP}`), in order of mention."""
        return list(dict.fromkeys(m.group(1) for o in self.overrides + self.extra for m in DIR_REF.finditer(o)))


@dataclass
class Study:
    name: str
    dir: Path
    scale: str
    steps: list[Step]
    title: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    launcher: list[str] = field(default_factory=list)
    report: dict = field(default_factory=dict)
    resume: bool = True
    keep_going: bool = True
    check_overrides: bool = True
    python: str = sys.executable
    config: dict = field(default_factory=dict)  # the study node as given (for the appendix and its hash)

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def enabled_steps(self) -> list[Step]:
        return [s for s in self.steps if s.enabled]

    def step_dir(self, step: Step | str) -> Path:
        return self.dir / (step if isinstance(step, str) else step.name)

    def overrides_of(self, step: Step) -> list[str]:
        """The step's overrides as written (references not yet resolved), launcher included."""
        return list(step.overrides) + list(step.extra) + (list(self.launcher) if step.multirun else [])


# ------------------------------------------------------------------------------------ parsing
def _as_list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return [str(v) for v in value]
    raise ConfigError(f"{key} must be a list of overrides (e.g. [seed=0,1,2]), not {value!r}")


def check_override(text: str, key: str) -> None:
    """A step's override is a Hydra `key=value` (or `~key`), never a flag or code: else one line naming it."""
    o = str(text).strip()
    if o.startswith("-"):
        raise ConfigError(f"{key}: {text!r} is a command-line flag, not a Hydra override; a study step takes only "
                          "key=value overrides (multirun: true adds -m): drop it")
    name = o.split("=", 1)[0].strip()
    if not _OVERRIDE_KEY.match(name) or ("=" not in o and not o.startswith("~")):
        raise ConfigError(f"{key}: {text!r} is not a Hydra override; write key=value (references such as "
                          "{dir:STEP} go in the value, e.g. ckpt_path={dir:STEP})")
    if _CODE_WORD.search(o) or name.lstrip("+~").startswith(_CODE_KEYS):
        raise ConfigError(f"{key}: {text!r} names code for the step to import (or shell commands, or its "
                          "environment), which a study file may not; choose a config option of conf/ instead "
                          "(e.g. model=resnet18), or set it in the shell that runs the study: drop it")


def check_overrides(values: Sequence[str], key: str) -> list[str]:
    for i, o in enumerate(values):
        check_override(o, f"{key}.{i}")
    return list(values)


def _step_from(name: str, node: Mapping, key: str) -> Step:
    if not NAME_RE.match(name):
        raise ConfigError(f"{key}: a step name becomes a folder name; use letters, digits, '_', '-' or '.', "
                          f"not {name!r}")
    if not isinstance(node, Mapping):
        raise ConfigError(f"{key} must be a mapping with entry: and overrides:, not {node!r}")
    unknown = [k for k in node if k not in STEP_KEYS]
    if unknown:
        raise ConfigError(f"{key} has unknown key(s) {', '.join(map(str, unknown))}; a step takes "
                          f"{', '.join(STEP_KEYS)}")
    entry = node.get("entry")
    entry = _ENTRY_OF_MODULE.get(entry, entry) if isinstance(entry, str) else entry
    if not entry or not isinstance(entry, str) or entry not in ENTRY_MODULES:
        raise ConfigError(f"{key}.entry={node.get('entry')!r} is not an entry point of cvexp; a study runs only "
                          f"cvexp's own: use one of {', '.join(ENTRY_MODULES)}")
    overrides = check_overrides(_as_list(node.get("overrides"), f"{key}.overrides"), f"{key}.overrides")
    extra = check_overrides(_as_list(node.get("extra"), f"{key}.extra"), f"{key}.extra")
    step = Step(name=name, entry=entry, overrides=overrides, extra=extra, multirun=bool(node.get("multirun", False)),
                title=str(node.get("title") or ""), enabled=bool(node.get("enabled", True)))
    if not step.is_hydra and step.multirun:
        raise ConfigError(f"{key}: entry {entry} is not a Hydra app and cannot be a multirun; drop multirun")
    return step


def _patched(steps: dict[str, dict], scales: Mapping, scale: str) -> dict[str, dict]:
    """The steps with the scale preset applied (`study.scales.<scale>.<step>`)."""
    if scale not in scales:
        if scale == "full" or not scales:
            return steps
        raise ConfigError(f"study.scale={scale} is not defined; choose one of "
                          f"{', '.join(['full', *[s for s in scales if s != 'full']])} (study.scales)")
    patch = scales.get(scale) or {}
    if not isinstance(patch, Mapping):
        raise ConfigError(f"study.scales.{scale} must map step names to changes, not {patch!r}")
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in steps.items()}
    for name, change in patch.items():
        key = f"study.scales.{scale}.{name}"
        if name not in out:
            raise ConfigError(f"{key}: there is no step {name!r}; steps: {', '.join(out)}")
        if not isinstance(change, Mapping):
            raise ConfigError(f"{key} must be a mapping (enabled/entry/multirun/title/overrides/extra), "
                              f"not {change!r}")
        for k, v in change.items():
            if k not in STEP_KEYS:
                raise ConfigError(f"{key}.{k} is not a step key; use one of {', '.join(STEP_KEYS)}")
            if k == "extra":
                out[name]["extra"] = _as_list(out[name].get("extra"), key) + _as_list(v, f"{key}.extra")
            else:
                out[name][k] = v
    return out


def study_from_config(node: Mapping, python: str | None = None) -> Study:
    """The study of a resolved `study` config node (a plain dict). Errors name the key and the fix."""
    if not isinstance(node, Mapping):
        raise ConfigError("the study config is empty; choose one with study=<name> (e.g. study=course)")
    name = str(node.get("name") or "study")
    scale = str(node.get("scale") or "full")
    raw_steps = node.get("steps") or {}
    if not isinstance(raw_steps, Mapping) or not raw_steps:
        raise ConfigError("study.steps is empty; a study is a mapping of named steps (see docs/study.md)")
    steps_dict = _patched({str(k): v for k, v in raw_steps.items()}, node.get("scales") or {}, scale)
    steps = [_step_from(k, v, f"study.steps.{k}") for k, v in steps_dict.items()]
    if not node.get("dir"):
        raise ConfigError("study.dir has no value; set it to the folder the study writes into")
    data = dict(node.get("data") or {})
    study = Study(name=name, dir=Path(str(node["dir"])).expanduser().resolve(), scale=scale, steps=steps,
                  title=str(node.get("title") or name), data=data,
                  launcher=check_overrides(_as_list(node.get("launcher"), "study.launcher"), "study.launcher"),
                  report=dict(node.get("report") or {}),
                  resume=bool(node.get("resume", True)), keep_going=bool(node.get("keep_going", True)),
                  check_overrides=bool(node.get("check_overrides", True)), python=python or sys.executable,
                  config=dict(node))
    check(study)
    return study


def check(study: Study) -> None:
    """Before any work: every reference names an earlier enabled step, every `{data:NAME}` has a value."""
    seen: list[str] = []
    for step in study.steps:
        key = f"study.steps.{step.name}"
        if not step.enabled:
            continue
        if not step.is_hydra and study.overrides_of(step):
            raise ConfigError(f"{key}: entry {step.entry} takes no overrides (it is not a Hydra app); drop them")
        for text in study.overrides_of(step):
            for m in DIR_REF.finditer(text):
                ref = m.group(1)
                if ref not in seen:
                    later = ref in [s.name for s in study.steps]
                    why = ("is disabled or comes later" if later else "is not a step of this study")
                    raise ConfigError(f"{key}: {m.group(0)} refers to step {ref!r}, which {why}; a step can "
                                      f"use the directories of earlier enabled steps ({', '.join(seen) or 'none'})")
                if m.group(2) is not None and not study.step(ref).multirun:
                    raise ConfigError(f"{key}: {m.group(0)} selects a job, but {ref} is not a multirun; "
                                      f"use {{dir:{ref}}}")
            for m in DATA_REF.finditer(text):
                value = study.data.get(m.group(1))
                if value in (None, "", "???"):
                    raise ConfigError(f"study.data.{m.group(1)} has no value; step {step.name} needs it: "
                                      f"set study.data.{m.group(1)}=/path/to/it (or run the demo: study.scale=demo)")
        seen.append(step.name)


# ------------------------------------------------------------------------------------ references
def quote_value(value: str) -> str:
    """A path as a Hydra override value: quoted when it holds characters the grammar reserves."""
    if not _PLAIN.match(value):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return value


def parse_filters(text: str) -> dict[str, str]:
    """`experiment=wildlife_resnet18 seed=0` (spaces or commas between pairs) -> a dict."""
    out = {}
    for part in re.split(r"[\s,]+", text.strip()):
        if not part:
            continue
        if "=" not in part:
            raise ConfigError(f"[{text}]: select a job by key=value pairs, e.g. [seed=0 aug=none]")
        k, v = part.split("=", 1)
        out[k.lstrip("+~")] = v
    return out


JobFinder = Callable[[Path, dict[str, str]], Path]


def resolve(text: str, study: Study, find_job: JobFinder, step_name: str = "") -> str:
    """`text` with `{dir:...}`, `{data:...}` and `{study_dir}` replaced (quoted for Hydra when needed)."""

    def dir_ref(m: re.Match) -> str:
        sweep = study.step_dir(m.group(1))
        path = sweep if m.group(2) is None else find_job(sweep, parse_filters(m.group(2)))
        return quote_value(str(path) + m.group(3))

    def data_ref(m: re.Match) -> str:
        value = study.data.get(m.group(1))
        if value in (None, "", "???"):
            raise ConfigError(f"study.data.{m.group(1)} has no value; step {step_name} needs it: "
                              f"set study.data.{m.group(1)}=/path/to/it")
        return quote_value(str(Path(str(value)).expanduser()) + m.group(2))

    text = DIR_REF_TAIL.sub(dir_ref, text)
    text = DATA_REF_TAIL.sub(data_ref, text)
    return text.replace(STUDY_DIR_REF, quote_value(str(study.dir)))


def is_hydra_override(override: str) -> bool:
    """`hydra.run.dir=...`, `hydra/launcher=slurm`, `+hydra.x=...`: settings of Hydra, not of the job."""
    key = override.split("=", 1)[0].lstrip("+~")
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def task_overrides(overrides: Sequence[str]) -> list[str]:
    return [o for o in overrides if not is_hydra_override(o)]


def _safe(step: Step, overrides: Sequence[str]) -> list[str]:
    """The resolved overrides of a step, checked again where they become argv (a `{data:...}` value
    could otherwise stand as a flag)."""
    return check_overrides([str(o) for o in overrides], f"study.steps.{step.name} (resolved)")


def command(study: Study, step: Step, overrides: Sequence[str]) -> list[str]:
    """The argv of a step (its overrides already resolved): `python -m <module> [-m] ... hydra.run.dir=<dir>`."""
    out = study.step_dir(step)
    overrides = _safe(step, overrides)
    if not step.is_hydra:
        return [study.python, "-m", step.module, *overrides, NOT_HYDRA[step.entry], str(out)]
    where = "hydra.sweep.dir" if step.multirun else "hydra.run.dir"
    return [study.python, "-m", step.module, *(["-m"] if step.multirun else []), *overrides,
            f"{where}={quote_value(str(out))}"]


def job_command(study: Study, step: Step, job_overrides: Sequence[str], step_overrides: Sequence[str],
                job_dir: Path) -> list[str]:
    """One job of a multirun step as a single run into its own job folder (to finish a sweep that
    stopped part-way): the job's overrides, the step's Hydra settings that apply to one run."""
    job_overrides, step_overrides = _safe(step, job_overrides), _safe(step, step_overrides)
    sweep_only = ("hydra/launcher", "hydra.launcher", "hydra/sweeper", "hydra.sweeper", "hydra.sweep")
    keep = [o for o in step_overrides if is_hydra_override(o)
            and not o.split("=", 1)[0].lstrip("+~").startswith(sweep_only)]
    return [study.python, "-m", step.module, *job_overrides, *keep, f"hydra.run.dir={quote_value(str(job_dir))}"]


def shell_line(argv: Sequence[str]) -> str:
    """The command as one would type it (the interpreter shown as `python`)."""
    import shlex

    shown = ["python" if i == 0 else a for i, a in enumerate(argv)]
    return " ".join(shlex.quote(a) for a in shown)
