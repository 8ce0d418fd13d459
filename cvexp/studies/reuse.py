"""What a step's directory already holds, and what is left to run (no Hydra, no subprocess here).

- A single-run step whose directory's status.json says `completed` is reused. One that was
  interrupted (killed, preempted, Ctrl-C) with `checkpoints/last.ckpt` is resumed in its own
  directory (`python -m cvexp resume=DIR`); one that failed is run again into the same directory.
- A multirun step whose sweep directory holds every expected job, each completed, is reused. A
  sweep that stopped part-way is finished job by job: each missing, failed or interrupted job runs
  (or resumes) as a single run into its own job folder, then `python -m cvexp.report` rebuilds the
  sweep's report. The expected jobs come from the entry point (Hydra's basic sweeper expansion of
  the step's overrides); without them (another sweeper) a partial sweep is refused with a message.
- A finished run made with other overrides than the step's (the study's config changed) is not
  reused silently: the step fails with a line naming the folder and the fix (a new `study.dir`, or
  `study.check_overrides=false`). Nothing is ever deleted.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cvexp.analysis import sweep_report
from cvexp.engine import rundir
from cvexp.errors import ConfigError
from cvexp.studies import spec
from cvexp.studies.spec import Step, Study

REUSE, RUN, RESUME, FINISH_JOBS, REFUSE = "reuse", "run", "resume", "finish_jobs", "refuse"
LAST_CKPT = Path("checkpoints") / "last.ckpt"


@dataclass
class Plan:
    action: str
    reason: str
    commands: list[list[str]] = field(default_factory=list)
    jobs: list[int] = field(default_factory=list)  # jobs of a sweep (re)run one by one


# ------------------------------------------------------------------------------------ reading
def recorded_overrides(run_dir: Path) -> list[str] | None:
    """The overrides a run was made with (sweep_report.recorded_overrides, with its status.json)."""
    return sweep_report.recorded_overrides(run_dir, rundir.read_status(run_dir))


def run_state(run_dir: Path) -> str:
    """absent | completed | failed | interrupted | running (a live process) | dead (said running, its
    process is gone: killed) | unknown (a folder without status.json)."""
    d = Path(run_dir)
    status = rundir.read_status(d)
    state = status.get("status")
    if not status:
        if (d / rundir.METRICS_FILE).is_file():
            return "completed"
        return "unknown" if d.is_dir() and any(d.iterdir()) else "absent"
    if state == "running":
        if status.get("host") == socket.gethostname() and isinstance(status.get("pid"), int):
            return "running" if rundir.pid_alive(status["pid"]) else "dead"
        return "running"
    return str(state)


def _resumable(run_dir: Path, step: Step) -> bool:
    return step.entry == "train" and (run_dir / LAST_CKPT).is_file() and (run_dir / "config.yaml").is_file()


def _same(recorded: Sequence[str] | None, wanted: Sequence[str]) -> bool:
    return recorded is None or sorted(recorded) == sorted(wanted)


def _diff(recorded: Sequence[str], wanted: Sequence[str]) -> str:
    gone = [o for o in recorded if o not in wanted]
    new = [o for o in wanted if o not in recorded]
    parts = ([f"made with {' '.join(gone)}"] if gone else []) + ([f"the step now adds {' '.join(new)}"] if new else [])
    return "; ".join(parts) or "in another order"


def _changed(where: Path, recorded: Sequence[str], wanted: Sequence[str]) -> str:
    return (f"{where} holds a finished run made with other overrides ({_diff(recorded, wanted)}); to run the "
            "study with its new settings set study.dir to a new folder (nothing is deleted), or keep the "
            "old run with study.check_overrides=false")


# ------------------------------------------------------------------------------------ single runs
def plan_single(study: Study, step: Step, overrides: Sequence[str]) -> Plan:
    d = study.step_dir(step)
    state = run_state(d)
    status = rundir.read_status(d)
    if state == "completed":
        rec = recorded_overrides(d) if step.is_hydra else None
        wanted = spec.task_overrides(overrides)
        if study.check_overrides and not status.get("resumes") and not _same(rec, wanted):
            return Plan(REFUSE, _changed(d, rec or [], wanted))
        return Plan(REUSE, f"{d.name}/status.json: completed")
    if state == "running":
        return Plan(REFUSE, f"{d} is still running (pid {status.get('pid')} on {status.get('host')}); wait for it "
                            "or stop it, then run the study again")
    if (d / rundir.METRICS_FILE).is_file():
        return Plan(REFUSE, f"{d} holds a run that ended {state} after writing metrics.json "
                            f"({sweep_report.one_line(status.get('error'), 160) or 'no error recorded'}); "
                            "move that folder away (nothing is deleted) and run the study again")
    if state in ("interrupted", "dead") and _resumable(d, step):
        return Plan(RESUME, f"{d.name} was {state}: resuming from {LAST_CKPT}",
                    [[study.python, "-m", step.module, f"resume={d}"]])
    why = {"absent": "not run yet", "unknown": "no status.json yet"}.get(state, f"was {state}: running it again")
    return Plan(RUN, why, [spec.command(study, step, overrides)])


# ------------------------------------------------------------------------------------ sweeps
def job_dirs(sweep_dir: Path) -> list[Path]:
    return [d for d in sweep_report.find_job_dirs(sweep_dir) if d.name.isdigit()]


def report_args(overrides: Sequence[str]) -> list[str]:
    """The sweep report settings of a step (`hydra.callbacks.sweep_report.baseline/alpha=...`) as
    arguments of `python -m cvexp.report`."""
    out = []
    for o in overrides:
        key, _, value = o.partition("=")
        key = key.lstrip("+~")
        value = value.strip().strip("'\"")
        if key == "hydra.callbacks.sweep_report.baseline" and value not in ("", "null"):
            if value.startswith("{") and value.endswith("}"):
                pairs = [p.split(":", 1) for p in value[1:-1].split(",") if ":" in p]
                value = " ".join(f"{k.strip()}={v.strip()}" for k, v in pairs)
            out += ["--baseline", value]
        elif key == "hydra.callbacks.sweep_report.alpha" and value:
            out += ["--alpha", value]
    return out


def report_command(study: Study, step: Step, overrides: Sequence[str]) -> list[str]:
    return [study.python, "-m", "cvexp.report", str(study.step_dir(step)), *report_args(overrides)]


def has_report(sweep_dir: Path) -> bool:
    return (sweep_dir / sweep_report.REPORT_MD).is_file() and (sweep_dir / sweep_report.REPORT_CSV).is_file()


def plan_sweep(study: Study, step: Step, overrides: Sequence[str], expected: list[list[str]] | None) -> Plan:
    d = study.step_dir(step)
    found = job_dirs(d)
    if not found and not (d / rundir.SWEEP_FILE).is_file():
        return Plan(RUN, "not run yet", [spec.command(study, step, overrides)])
    report = [] if has_report(d) else [report_command(study, step, overrides)]
    if expected is None:
        states = {j.name: run_state(j) for j in found}
        if found and all(s == "completed" for s in states.values()):
            return Plan(REUSE, f"{len(found)} job(s) completed", report)
        return Plan(REFUSE, f"{d} holds a sweep that did not finish, and its jobs cannot be listed (not Hydra's "
                            "basic sweeper); move that folder away (nothing is deleted) and run the study again")
    extra = [j for j in found if int(j.name) >= len(expected)]
    if extra:
        return Plan(REFUSE, f"{d} holds {len(found)} jobs but the step has {len(expected)} (the study's config "
                            "changed); set study.dir to a new folder (nothing is deleted)")
    commands, todo = [], []
    for i, want in enumerate(expected):
        jd = d / str(i)
        state = run_state(jd)
        if state == "completed":
            rec = recorded_overrides(jd)
            if study.check_overrides and not rundir.read_status(jd).get("resumes") and not _same(rec, want):
                return Plan(REFUSE, _changed(jd, rec or [], want))
            continue
        if state == "running":
            return Plan(REFUSE, f"{jd} is still running; wait for it or stop it, then run the study again")
        if (jd / rundir.METRICS_FILE).is_file():
            return Plan(REFUSE, f"{jd} ended {state} after writing metrics.json; move that folder away "
                                "(nothing is deleted) and run the study again")
        todo.append(i)
        if state in ("interrupted", "dead") and _resumable(jd, step):
            commands.append([study.python, "-m", step.module, f"resume={jd}"])
        else:
            commands.append(spec.job_command(study, step, want, overrides, jd))
    if not todo:
        return Plan(REUSE, f"{len(expected)} job(s) completed", report)
    return Plan(FINISH_JOBS, f"{len(expected) - len(todo)} of {len(expected)} job(s) completed; running "
                             f"job(s) {', '.join(map(str, todo))}",
                commands + [report_command(study, step, overrides)], todo)


# ------------------------------------------------------------------------------------ outcome
def outcome(study: Study, step: Step, expected: list[list[str]] | None = None) -> tuple[bool, str]:
    """(finished, why not) of a step after it ran: its status.json, or every job of its sweep."""
    d = study.step_dir(step)
    if not step.multirun:
        state = run_state(d)
        if state == "completed":
            return True, ""
        err = rundir.read_status(d).get("error")
        return False, (sweep_report.one_line(err, 300) if err else f"{d.name}: {state} (no completed status.json)")
    found = job_dirs(d)
    n = len(expected) if expected is not None else len(found)
    if n == 0:
        return False, f"{d.name}: the sweep left no jobs"
    bad = []
    for i in range(n):
        jd = d / str(i)
        state = run_state(jd)
        if state != "completed":
            row = sweep_report.read_job(jd)
            why = sweep_report.one_line(row["error"], 200) or ("not started" if state == "absent" else state)
            bad.append(f"job {i} ({' '.join(row['overrides'])}): {why}" if row["overrides"] else f"job {i}: {why}")
    if bad:
        return False, f"{len(bad)} of {n} job(s) did not complete: " + "; ".join(bad[:2]) + (" ..." if len(bad) > 2 else "")
    return True, ""


def any_status(study: Study, step: Step) -> bool:
    """Whether any run of the step got as far as writing its status.json."""
    d = study.step_dir(step)
    dirs = job_dirs(d) if step.multirun else [d]
    return any((j / rundir.STATUS_FILE).is_file() for j in dirs)


def find_job(sweep_dir: Path, filters: dict[str, str]) -> Path:
    """The one job of a sweep whose overrides hold every key=value of `filters`."""
    hits, seen = [], []
    for jd in job_dirs(sweep_dir):
        ov = {sweep_report.override_key(o): sweep_report.override_value(o) for o in recorded_overrides(jd) or []}
        seen.append(" ".join(f"{k}={v}" for k, v in ov.items()))
        if all(ov.get(k) == v for k, v in filters.items()):
            hits.append(jd)
    want = " ".join(f"{k}={v}" for k, v in filters.items())
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise ConfigError(f"{sweep_dir} has no job with {want} (its jobs: {'; '.join(seen) or 'none'}); fix the "
                          f"[...] of the {{dir:{sweep_dir.name}[...]}} reference")
    raise ConfigError(f"{sweep_dir}: {len(hits)} jobs have {want} ({', '.join(h.name for h in hits)}); add a key "
                      "to the [...] reference (e.g. seed=0) so it names one job")
