"""The Optuna sweeper's work: parse the search space, run trials in batches through the configured
launcher, tell Optuna the outcomes, write the trials table and the best result."""

from __future__ import annotations

import csv
import functools
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.cvexp_optuna_sweeper import _search_space as space_of
from hydra_plugins.cvexp_optuna_sweeper import pruning

log = logging.getLogger(__name__)

TRIALS_CSV = "optuna_trials.csv"
RESULTS_YAML = "optimization_results.yaml"
DEFAULT_JOURNAL = "optuna_study.log"
DIRECTIONS = ("minimize", "maximize")


class SweepConfigError(Exception):
    """A sweeper setting a user got wrong; one line naming the key and the fix."""


def _fail(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def _direction(direction: Any) -> str:
    name = getattr(direction, "name", direction)  # (an enum in hydra-optuna-sweeper's configs)
    if isinstance(name, str) and name.lower() in DIRECTIONS:
        return name.lower()
    raise SweepConfigError(f"hydra.sweeper.direction={direction!r} is not allowed: choose minimize or maximize "
                           "(one objective: the task's optimized_metric)")


def _job_value(ret: JobReturn, metric: str = "optimized_metric") -> tuple[float | None, str]:
    """(the job's return value, "") or (None, why it is no value)."""
    if ret.status == JobStatus.FAILED:
        err = getattr(ret, "_return_value", None)
        return None, f"{type(err).__name__}: {err}" if err is not None else "the job failed"
    value = ret.return_value
    if value is None:
        return None, (f"the run has no {metric} (did it validate? trainer.check_val_every_n_epoch, "
                      "trainer.limit_val_batches)")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None, f"the job returned {value!r}, not a number"
    if not math.isfinite(value):
        return None, "the job failed (its status.json says why)" if math.isnan(value) else f"the job returned {value}"
    return value, ""


def _build(node: Any, key: str) -> Any:
    """The sampler or pruner of its config node (`_target_`), or the object itself."""
    if not isinstance(node, DictConfig):
        return node
    from hydra.utils import instantiate

    try:
        return instantiate(node)
    except Exception as e:  # noqa: BLE001 - a wrong class or argument: one line naming the key
        cause = e.__cause__ or e
        raise SweepConfigError(f"hydra.sweeper.{key} cannot be built ({type(cause).__name__}: "
                               f"{str(cause).strip().splitlines()[0] if str(cause).strip() else ''})") from None


def _no_pickle(sampler: Any) -> Any:
    """The sampler, unless it is optuna's own CmaEsSampler, which unpickles (so runs) state read from
    the study's storage: a study file from anywhere would run code."""
    from optuna.samplers import CmaEsSampler

    from hydra_plugins.cvexp_optuna_sweeper._cmaes import NoPickleCmaEsSampler

    if isinstance(sampler, CmaEsSampler) and not isinstance(sampler, NoPickleCmaEsSampler):
        name = "optuna.samplers.CmaEsSampler" if type(sampler) is CmaEsSampler else \
            f"{type(sampler).__module__}.{type(sampler).__qualname__}"
        raise SweepConfigError(f"hydra.sweeper.sampler {name} "
                               "unpickles the CMA-ES state stored in the study (a study file could run code): "
                               "use hydra/sweeper/sampler=cmaes (cvexp's CMA-ES, same arguments, no pickle)")
    return sampler


def _is_journal(path: Path) -> bool:
    """An empty file, or one whose first line is an Optuna journal record ({"op_code": ...})."""
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        first = fh.readline(1 << 16)
    if not first.strip():
        return path.stat().st_size == 0
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and "op_code" in record


def _tell(study: Any, trial: Any, **outcome: Any) -> None:
    """study.tell; the grid sampler's "grid exhausted" (it calls Study.stop, which only works inside
    optimize) comes after the outcome is stored and is not an error here."""
    try:
        study.tell(trial, **outcome)
    except RuntimeError as e:
        if "Study.stop" not in str(e):
            raise


class OptunaSweeperImpl:
    def __init__(self, sampler: Any, pruner: Any, direction: Any, storage: Any, study_name: str | None,
                 n_trials: int, n_jobs: int, max_failure_rate: float, params: Any) -> None:
        try:
            import optuna  # noqa: F401
        except ImportError:
            _fail("hydra/sweeper=optuna (hparams_search=...) needs Optuna: pip install 'cvexp[search]' "
                  "(or pip install optuna)")
        try:
            self.sampler = _no_pickle(_build(sampler, "sampler"))
            self.pruner = _build(pruner, "pruner")
        except SweepConfigError as e:
            _fail(str(e))
        self.direction = direction
        self.storage = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.params = params
        self.job_idx = 0
        self.config: DictConfig | None = None
        self.launcher = None
        self.sweep_dir: Path | None = None
        self.rows: list[dict[str, Any]] = []

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.job_idx = 0
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context,
                                                                task_function=task_function)
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    # ------------------------------------------------------------------------------ checks
    def _checked(self, arguments: list[str]) -> tuple[str, dict[str, Any], dict[str, str]]:
        direction = _direction(self.direction)
        for key, value, ok, what in (
                ("n_trials", self.n_trials, isinstance(self.n_trials, int) and self.n_trials >= 1, "an integer >= 1"),
                ("n_jobs", self.n_jobs, isinstance(self.n_jobs, int) and self.n_jobs >= 1, "an integer >= 1"),
                ("max_failure_rate", self.max_failure_rate,
                 isinstance(self.max_failure_rate, (int, float)) and 0 <= self.max_failure_rate <= 1,
                 "a number from 0 to 1")):
            if not ok:
                raise SweepConfigError(f"hydra.sweeper.{key}={value!r} is not allowed: it must be {what}")
        try:
            space, fixed = space_of.parse(space_of.params_arguments(self.params) + list(arguments))
        except space_of.SearchSpaceError as e:
            raise SweepConfigError(f"hydra.sweeper.params / command line: {e}") from None
        if not space:
            raise SweepConfigError("the Optuna sweeper has nothing to search: give hydra.sweeper.params (e.g. "
                                   "hparams_search=wildlife_optuna) or sweeps on the command line, e.g. "
                                   "'optimizer.lr=tag(log, interval(1e-4, 1e-2))'")
        self._check_keys(list(space))
        mode = OmegaConf.select(self.config, "monitor_mode") if self.config is not None else None
        if mode in ("max", "min") and (mode == "max") != (direction == "maximize"):
            log.warning("hydra.sweeper.direction=%s but monitor_mode=%s: the search %s the value the runs %s",
                        direction, mode, direction + "s", "maximise" if mode == "max" else "minimise")
        return direction, space, fixed

    def _check_keys(self, keys: list[str]) -> None:
        """Every searched key is a config group or a key the run's config has (a typo, or a
        segmentation key in a classification run, would fail every trial)."""
        if self.config is None:
            return
        choices = OmegaConf.select(self.config, "hydra.runtime.choices") or {}
        missing = object()
        for key in keys:
            if key.startswith(("+", "~")) or "@" in key or "/" in key or key in choices:
                continue
            if key.split(".")[0] in keys:  # a key of a group option chosen by the search itself
                continue
            if OmegaConf.select(self.config, key, default=missing) is missing:
                what = ", ".join(f"{g}={choices[g]}" for g in ("task", "data", "model") if choices.get(g))
                raise SweepConfigError(f"{key} is not a key of this run's config ({what}); search keys the run has "
                                       "(segmentation keys need a segmentation run, e.g. experiment=seg_demo), or "
                                       f"write +{key}=... to add a new one")

    def _is_grid(self) -> bool:
        import optuna

        return isinstance(self.sampler, functools.partial) and self.sampler.func is optuna.samplers.GridSampler

    def _storage(self) -> str:
        if self.storage in (None, ""):
            assert self.sweep_dir is not None
            path = self.sweep_dir / DEFAULT_JOURNAL
        elif "://" in str(self.storage):
            return str(self.storage)
        else:
            path = Path(str(self.storage)).expanduser()
        path = path.resolve()
        if path.exists() and not _is_journal(path):
            _fail(f"hydra.sweeper.storage={self.storage}: {path} is not an Optuna journal (a study file of an earlier "
                  "sweep), and the sweep would append to it; give a new file name, that sweep's journal, or a "
                  f"database URL (sqlite:///{path.with_suffix('.db')})")
        path.parent.mkdir(parents=True, exist_ok=True)
        return str(path)

    # ------------------------------------------------------------------------------ the sweep
    def sweep(self, arguments: list[str]) -> None:
        try:
            direction, space, fixed = self._checked(arguments)
            if self._is_grid():
                grid = space_of.grid_of(space)
                self.sampler = self.sampler(grid)
                size = math.prod(len(v) for v in grid.values())
                if size < self.n_trials:
                    log.info("the grid has %d points: n_trials %d -> %d", size, self.n_trials, size)
                    self.n_trials = size
        except (SweepConfigError, space_of.SearchSpaceError) as e:
            _fail(str(e))
        self._run(direction, space, fixed)

    def _run(self, direction: str, space: dict[str, Any], fixed: dict[str, str]) -> None:
        import optuna
        from optuna.trial import TrialState

        storage = self._storage()
        study = optuna.create_study(study_name=self.study_name, storage=pruning.open_storage(storage),
                                    sampler=self.sampler, pruner=self.pruner, direction=direction,
                                    load_if_exists=True)
        log.info("Optuna study %r (%s), %s, sampler %s, pruner %s, %d trial(s), %d at a time", study.study_name,
                 storage, direction, type(self.sampler).__name__, type(self.pruner).__name__, self.n_trials,
                 self.n_jobs)
        log.info("search space: %s", ", ".join(f"{k}: {d}" for k, d in space.items()))
        metric = str(OmegaConf.select(self.config, "optimized_metric", default="optimized_metric")) \
            if self.config is not None else "optimized_metric"
        self.rows = []
        self.stopped_by_failures = False
        done = failed = 0
        while done < self.n_trials:
            batch = min(self.n_jobs, self.n_trials - done)
            trials = [study.ask(fixed_distributions=space) for _ in range(batch)]
            overrides = [space_of.trial_overrides(t.params, fixed)
                         + [f"++hydra.job.env_set.{pruning.ENV}="
                            + space_of.format_value(pruning.link_value(storage, study.study_name, t._trial_id,
                                                                       t.number))]
                         for t in trials]
            first_job = self.job_idx
            returns = self.launcher.launch(overrides, initial_job_idx=first_job)
            self.job_idx += len(returns)
            by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
            for i, (trial, ret) in enumerate(zip(trials, returns)):
                value, why = _job_value(ret, metric)
                pruned_at = by_number[trial.number].user_attrs.get(pruning.PRUNED_AT) \
                    if trial.number in by_number else None
                if value is None:
                    _tell(study, trial, state=TrialState.FAIL)
                    failed += 1
                    log.warning("trial %d (job %d) failed: %s", trial.number, first_job + i, why)
                elif pruned_at is not None:
                    _tell(study, trial, state=TrialState.PRUNED)
                else:
                    _tell(study, trial, values=value)
                self.rows.append({"trial": trial.number, "job": first_job + i, "params": dict(trial.params),
                                  "value": value, "pruned_at_epoch": pruned_at, "error": why})
            done += batch
            self._write_trials(study)
            if failed / done > self.max_failure_rate:
                log.error("%d of %d trial(s) failed, more than hydra.sweeper.max_failure_rate=%g: no more trials "
                          "(raise it to go on despite failures)", failed, done, self.max_failure_rate)
                self.stopped_by_failures = True
                break
        self._write_results(study, direction, storage)

    # ------------------------------------------------------------------------------ outputs
    def _write_trials(self, study: Any) -> Path:
        """optuna_trials.csv: the sweep's trials in order, with state, value, the best so far and params."""
        assert self.sweep_dir is not None
        states = {t.number: t.state.name for t in study.get_trials(deepcopy=False)}
        keys = list(dict.fromkeys(k for r in self.rows for k in r["params"]))
        maximize = study.direction.name == "MAXIMIZE"
        best = None
        path = self.sweep_dir / TRIALS_CSV
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["trial", "job", "state", "value", "best_so_far", "pruned_at_epoch", *keys, "error"])
            for r in self.rows:
                state = states.get(r["trial"], "")
                if state == "COMPLETE" and r["value"] is not None:
                    best = r["value"] if best is None else (max if maximize else min)(best, r["value"])
                w.writerow([r["trial"], r["job"], state, "" if r["value"] is None else r["value"],
                            "" if best is None else best,
                            "" if r["pruned_at_epoch"] is None else r["pruned_at_epoch"],
                            *[space_of.format_value(r["params"][k]) if k in r["params"] else "" for k in keys],
                            r["error"]])
        return path

    def _write_results(self, study: Any, direction: str, storage: str) -> Path:
        """optimization_results.yaml (hydra-optuna-sweeper's file: name, best_params, best_value), plus the
        best trial's number and job, and the study's counts."""
        from optuna.trial import TrialState

        assert self.sweep_dir is not None
        trials = study.get_trials(deepcopy=False)
        counts = {s.name.lower(): sum(t.state == s for t in trials)
                  for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        job_of = {r["trial"]: r["job"] for r in self.rows}
        out: dict[str, Any] = {"name": "optuna", "study_name": study.study_name, "storage": storage,
                               "direction": direction, "n_trials": len(self.rows), **counts,
                               "stopped_by_failures": bool(getattr(self, "stopped_by_failures", False))}
        try:
            best = study.best_trial
        except ValueError:  # no completed trial
            best = None
        if best is not None:
            out.update(best_params=dict(best.params), best_value=best.value, best_trial=best.number,
                       best_job=job_of.get(best.number))
            log.info("best trial %d (job %s): %s = %s", best.number, job_of.get(best.number, "?"),
                     dict(best.params), best.value)
        else:
            out.update(best_params=None, best_value=None, best_trial=None, best_job=None)
            log.warning("no trial completed: no best parameters")
        path = self.sweep_dir / RESULTS_YAML
        OmegaConf.save(OmegaConf.create(out), path)
        return path
