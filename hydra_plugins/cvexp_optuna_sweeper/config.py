"""The `hydra/sweeper=optuna` config and its sampler and pruner options (Hydra's ConfigStore).

Same keys and defaults as hydra-optuna-sweeper's `OptunaSweeperConf`, plus `pruner`
(`hydra/sweeper/pruner=none|median|hyperband`). Options are plain `_target_` nodes, so any
sampler or pruner argument can be set: `hydra.sweeper.sampler.seed=0`,
`hydra.sweeper.pruner.n_warmup_steps=3`.

(No `from __future__ import annotations` here: Hydra's plugin scan runs this module before it is in
sys.modules, and dataclasses then cannot read string annotations.)
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

PROVIDER = "cvexp_optuna_sweeper"


@dataclass
class TPESamplerConfig:
    """https://optuna.readthedocs.io/en/stable/reference/samplers/generated/optuna.samplers.TPESampler.html"""

    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None
    n_startup_trials: int = 10
    multivariate: bool = False


@dataclass
class RandomSamplerConfig:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None


@dataclass
class CmaEsSamplerConfig:
    """optuna.samplers.CmaEsSampler's arguments; cvexp's subclass never unpickles the CMA-ES state
    optuna keeps in a study's storage (it rebuilds it from the trials): see _cmaes.py."""

    _target_: str = "hydra_plugins.cvexp_optuna_sweeper._cmaes.NoPickleCmaEsSampler"
    seed: Optional[int] = None
    n_startup_trials: int = 1


@dataclass
class GridSamplerConfig:
    """Every combination once; the search space (finite: choice / range) is filled in from `params`."""

    _target_: str = "optuna.samplers.GridSampler"
    _partial_: bool = True
    seed: Optional[int] = None


@dataclass
class NopPrunerConfig:
    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class MedianPrunerConfig:
    """Stop a trial whose validation metric after an epoch is worse than the median of earlier trials
    at the same epoch. https://optuna.readthedocs.io/en/stable/reference/generated/optuna.pruners.MedianPruner.html"""

    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5  # finished trials before any pruning
    n_warmup_steps: int = 1    # epochs a trial always runs (steps are epochs, counted from 0)
    interval_steps: int = 1


@dataclass
class HyperbandPrunerConfig:
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"
    reduction_factor: int = 3


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.cvexp_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    _recursive_: bool = False  # the sweeper builds sampler and pruner itself (one line when Optuna is missing)
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "none"}])

    sampler: Any = MISSING
    # no pruning unless a pruner is chosen; the jobs report to it with cvexp.engine.callbacks.OptunaPruning
    pruner: Any = MISSING
    # minimize | maximize (the value is what the task function returns: cvexp's optimized_metric)
    direction: str = "minimize"
    # where the study lives: null = a journal file in the sweep directory (optuna_study.log), or a
    # journal file path, or a database URL such as sqlite:///study.db (resume with the same study_name)
    storage: Optional[str] = None
    study_name: Optional[str] = None
    n_trials: int = 20
    # trials asked for and launched together (set hydra.launcher.n_jobs alike to run them in parallel)
    n_jobs: int = 2
    # stop asking for trials once more than this fraction of the finished ones failed
    max_failure_rate: float = 0.0
    # the search space, one override per key: {optimizer.lr: "tag(log, interval(1e-4, 1e-2))"}
    params: Optional[Dict[str, str]] = None


cs = ConfigStore.instance()
cs.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider=PROVIDER)
for name, node in (("tpe", TPESamplerConfig), ("random", RandomSamplerConfig), ("cmaes", CmaEsSamplerConfig),
                   ("grid", GridSamplerConfig)):
    cs.store(group="hydra/sweeper/sampler", name=name, node=node, provider=PROVIDER)
for name, node in (("none", NopPrunerConfig), ("median", MedianPrunerConfig), ("hyperband", HyperbandPrunerConfig)):
    cs.store(group="hydra/sweeper/pruner", name=name, node=node, provider=PROVIDER)
