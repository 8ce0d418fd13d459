"""Run a study's steps as subprocesses, one after the other, and keep its ledger (`study.json`).

    result = run_study(study, expand_jobs)     # then cvexp.studies.report.write_report(study.dir)

For each enabled step, in order ("step i/N" on the console): resolve its references, plan it
(`cvexp.studies.reuse`: reuse, run, resume or finish a sweep's missing jobs), run the commands with
their output in `logs/<step>.log`, then check what the step's directory holds. A step that fails is
recorded with its error; later steps that refer to it are skipped, the others still run
(`study.keep_going=false` stops at the first failure). The ledger is rewritten after every step, so
an interrupted study leaves an accurate one. Ctrl-C / SIGTERM reach the running step (it saves
`last.ckpt` and marks itself interrupted); the study records that, writes its report and exits
130 / 143.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from cvexp.engine import rundir
from cvexp.errors import ConfigError, CvexpError
from cvexp.studies import LOG_DIR, STUDY_LEDGER, reuse, spec
from cvexp.studies.spec import Step, Study

Expander = Callable[[Sequence[str]], "list[list[str]] | None"]


class StudyInterrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class StudyResult:
    steps: list[dict] = field(default_factory=list)
    interrupted: int | None = None  # the signal that stopped the study

    @property
    def failed(self) -> list[dict]:
        return [s for s in self.steps if s["status"] in ("failed", "skipped", "interrupted")]


def config_hash(obj) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_ledger(study_dir: Path) -> dict:
    try:
        data = json.loads((Path(study_dir) / STUDY_LEDGER).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def existing_steps(study: Study) -> list[str]:
    return [s.name for s in study.steps if study.step_dir(s).is_dir() and any(study.step_dir(s).iterdir())]


class Runner:
    def __init__(self, study: Study, expand_jobs: Expander | None = None, out: TextIO | None = None,
                 verbose: bool = False, argv: Sequence[str] = ()):
        self.study = study
        self.expand_jobs = expand_jobs or (lambda overrides: None)
        self.out = out or sys.stdout
        self.verbose = verbose
        self.argv = list(argv)
        self.previous = {s.get("name"): s for s in read_ledger(study.dir).get("steps", []) if isinstance(s, dict)}
        self.records: list[dict] = []
        self._child: subprocess.Popen | None = None
        self._signal: int | None = None

    # ------------------------------------------------------------------ console
    def say(self, msg: str) -> None:
        print(f"[study] {msg}", file=self.out, flush=True)

    # ------------------------------------------------------------------ the study
    def run(self) -> StudyResult:
        study = self.study
        if not study.resume:
            found = existing_steps(study)
            if found:
                raise ConfigError(f"study.resume=false but {study.dir} already holds steps of a study "
                                  f"({', '.join(found)}); set study.dir to a new folder, or drop study.resume=false "
                                  "to reuse them")
        (study.dir / LOG_DIR).mkdir(parents=True, exist_ok=True)
        started = time.time()
        self.ledger = {"study": study.name, "title": study.title, "scale": study.scale, "dir": str(study.dir),
                       "argv": self.argv, "python": sys.executable, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                       "config_sha256": config_hash(study.config), "config": study.config, "steps": self.records}
        steps = study.enabled_steps
        bad: dict[str, str] = {}
        old_term = signal.signal(signal.SIGTERM, self._on_sigterm)
        result = StudyResult(self.records)
        try:
            for i, step in enumerate(steps, 1):
                if self._signal is not None:
                    break
                record = self._run_step(step, i, len(steps), bad)
                if record["status"] != "completed":
                    bad[step.name] = record["status"]
                    if not study.keep_going and record["status"] == "failed":
                        self.say("study.keep_going=false: stopping after the first failed step")
                        break
        except KeyboardInterrupt:
            self._signal = self._signal or int(signal.SIGINT)
        except StudyInterrupted as e:
            self._signal = e.signum
        finally:
            signal.signal(signal.SIGTERM, old_term)
            done = {r["name"] for r in self.records}
            for i, s in enumerate(steps, 1):  # (stopped early: the steps it did not reach)
                if s.name not in done:
                    self.records.append({"name": s.name, "entry": s.entry, "multirun": s.multirun, "title": s.title,
                                         "status": "not run", "dir": s.name, "index": i, "of": len(steps),
                                         **_kept(self.previous.get(s.name))})
            self.records.sort(key=lambda r: r.get("index", 0))
            for s in study.steps:
                if not s.enabled:
                    self.records.append({"name": s.name, "entry": s.entry, "multirun": s.multirun, "title": s.title,
                                         "status": "disabled", "dir": s.name})
            self.ledger.update(ended=time.strftime("%Y-%m-%dT%H:%M:%S"), wall_time_s=round(time.time() - started, 2),
                               interrupted=signal.Signals(self._signal).name if self._signal else None)
            self._write_ledger()
        result.interrupted = self._signal
        return result

    def _write_ledger(self) -> None:
        rundir.write_json(self.study.dir / STUDY_LEDGER, self.ledger)

    def _on_sigterm(self, signum, frame) -> None:
        self._signal = signum
        if self._child is not None and self._child.poll() is None:
            self._child.send_signal(signum)  # the step saves last.ckpt and marks itself interrupted
        else:
            raise StudyInterrupted(signum)

    # ------------------------------------------------------------------ one step
    def _run_step(self, step: Step, i: int, n: int, bad: dict[str, str]) -> dict:
        study = self.study
        kind = f"{step.entry}{' -m' if step.multirun else ''}"
        rec = {"name": step.name, "entry": step.entry, "multirun": step.multirun, "title": step.title,
               "dir": step.name, "log": f"{LOG_DIR}/{step.name}.log", "index": i, "of": n,
               "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "reused": False, "ran": []}
        self.records.append(rec)
        t0 = time.time()
        blocked = [d for d in step.needs() if d in bad]
        try:
            if blocked:
                raise _Skip(f"needs step {blocked[0]}, which {bad[blocked[0]]}")
            overrides = [spec.resolve(o, study, reuse.find_job, step.name) for o in study.overrides_of(step)]
            rec["overrides"] = overrides
            expected = self.expand_jobs(overrides) if step.multirun else None
            if expected is not None:
                rec["expected_jobs"] = len(expected)
            rec["command"] = spec.shell_line(spec.command(study, step, overrides))
            plan = reuse.plan_sweep(study, step, overrides, expected) if step.multirun else \
                reuse.plan_single(study, step, overrides)
            rec.update(action=plan.action, reason=plan.reason)
            if plan.action == reuse.REFUSE:
                raise CvexpError(plan.reason)
            if plan.action == reuse.REUSE:
                rec["reused"] = True
                self.say(f"step {i}/{n} {step.name} [{kind}]: reused ({plan.reason})")
            else:
                self.say(f"step {i}/{n} {step.name} [{kind}]: {plan.reason} ... (log: {rec['log']})")
            said = ""
            for cmd in plan.commands:
                rec["ran"].append(spec.shell_line(cmd))
                code, last_error = self._execute(cmd, study.dir / rec["log"])
                if self._signal is not None:
                    raise StudyInterrupted(self._signal)
                if code != 0 and cmd[2] == "cvexp.report":
                    rec["report_error"] = last_error or f"exit code {code}"
                elif code != 0:
                    said = said or last_error or f"exit code {code}"
            ok, why = reuse.outcome(study, step, expected)
            if not ok:
                # a step that stopped before any run wrote its status.json (a config error, a refusal,
                # a crash of the sweep itself): its own words
                raise CvexpError(said if said and not reuse.any_status(study, step) else why)
            rec["status"] = "completed"
        except _Skip as e:
            rec.update(status="skipped", error=str(e))
        except StudyInterrupted as e:
            rec.update(status="interrupted", error=f"stopped by {e}")
            self._signal = e.signum
        except KeyboardInterrupt:
            rec.update(status="interrupted", error="stopped by SIGINT")
            self._signal = int(signal.SIGINT)
        except CvexpError as e:
            rec.update(status="failed", error=str(e))
        rec["wall_time_s"] = round(time.time() - t0, 2)
        if rec.get("ran"):
            rec["ran_wall_time_s"] = rec["wall_time_s"]
        elif self.previous.get(step.name, {}).get("ran_wall_time_s") is not None:
            rec["ran_wall_time_s"] = self.previous[step.name]["ran_wall_time_s"]
        if rec["status"] == "completed":
            if not rec["reused"]:
                self.say(f"step {i}/{n} {step.name}: completed in {rec['wall_time_s']:.1f} s")
        else:
            self.say(f"step {i}/{n} {step.name}: {rec['status'].upper()}: {rec.get('error')}"
                     + (f" (log: {rec['log']})" if rec.get("ran") else ""))
        self._write_ledger()
        if self._signal is not None:
            raise KeyboardInterrupt
        return rec

    def _execute(self, cmd: list[str], log_path: Path) -> tuple[int, str]:
        """Run one command, its output appended to the step's log (and echoed with study.verbose).
        Returns (exit code, the last `error: ...` line it printed, else its last line)."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        last_error = last_line = ""
        with open(log_path, "a", encoding="utf-8", errors="replace") as log:
            log.write(f"\n$ {spec.shell_line(cmd)}\n")
            log.flush()
            self._child = proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                                  text=True, errors="replace", bufsize=1)
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    log.write(line)
                    if line.startswith("error: "):
                        last_error = line[len("error: "):].strip()
                    elif line.strip() and not line.startswith(("[", " ", "Set the environment variable HYDRA_FULL")):
                        last_line = line.strip()
                    if self.verbose:
                        self.out.write(line)
                code = proc.wait()
            except KeyboardInterrupt:
                # the step got the same Ctrl-C (same process group): let it save last.ckpt and exit
                self._signal = int(signal.SIGINT)
                try:
                    code = proc.wait(timeout=120)
                except (subprocess.TimeoutExpired, KeyboardInterrupt):
                    proc.kill()
                    code = proc.wait()
            finally:
                self._child = None
            log.write(f"# exit code {code}\n")
        return code, (last_error or (last_line if code else ""))[:500]


class _Skip(Exception):
    pass


def _kept(previous: dict | None) -> dict:
    """What a step not reached this time keeps from the ledger of the last run that ran it."""
    return {"ran_wall_time_s": previous["ran_wall_time_s"]} if previous and "ran_wall_time_s" in previous else {}


def run_study(study: Study, expand_jobs: Expander | None = None, out: TextIO | None = None,
              verbose: bool = False, argv: Sequence[str] = ()) -> StudyResult:
    return Runner(study, expand_jobs, out, verbose, argv).run()
