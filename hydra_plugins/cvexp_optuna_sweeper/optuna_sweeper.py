"""The Hydra Sweeper class of `hydra/sweeper=optuna` (found by Hydra's plugin scan; the work is in `_impl`)."""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaSweeper(Sweeper):
    """Asks Optuna for `n_trials` trials, `n_jobs` at a time, launches each as one job of the sweep
    with its sampled overrides, and tells Optuna each job's return value (cvexp's
    `optimized_metric`); failed jobs are failed trials, jobs stopped by the pruner pruned ones.
    Writes `optuna_trials.csv` (after every batch) and `optimization_results.yaml` into the sweep
    directory; the study itself lives in `storage`."""

    def __init__(self, sampler: Any, pruner: Any, direction: Any, storage: Any, study_name: str | None,
                 n_trials: int, n_jobs: int, max_failure_rate: float, params: DictConfig | None) -> None:
        from hydra_plugins.cvexp_optuna_sweeper._impl import OptunaSweeperImpl

        self.sweeper = OptunaSweeperImpl(sampler=sampler, pruner=pruner, direction=direction, storage=storage,
                                         study_name=study_name, n_trials=n_trials, n_jobs=n_jobs,
                                         max_failure_rate=max_failure_rate, params=params)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
