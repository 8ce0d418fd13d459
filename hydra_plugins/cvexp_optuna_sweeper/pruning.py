"""The link from a job of an Optuna sweep back to its trial, for pruning.

The sweeper gives every job one environment variable (through `hydra.job.env_set`, so it also
reaches jobs in other processes, e.g. the joblib launcher's workers): where the study is stored,
its name, and the trial's id. A job that reports intermediate values (cvexp.engine.callbacks.OptunaPruning,
after every validation) opens the study there and asks the study's pruner whether to go on. The
study's storage is a journal file or a database that several processes may use at once.

Imports only the standard library at module level (Hydra imports this module when it scans for
plugins); Optuna when a job connects.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

ENV = "CVEXP_OPTUNA_TRIAL"
PRUNED_AT = "pruned_at_epoch"  # trial user attribute: the epoch after which the job stopped
NO_PRUNER = "optuna.pruners.NopPruner"


def link_value(storage: str, study_name: str, trial_id: int, number: int) -> str:
    return json.dumps({"storage": storage, "study": study_name, "trial_id": trial_id, "number": number},
                      separators=(",", ":"))


def open_storage(storage: str) -> Any:
    """A database URL (`sqlite:///study.db`) as it is; anything else is a journal file path."""
    if "://" in storage:
        return storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(storage))


def _pruner_config() -> Any:
    """`hydra.sweeper.pruner` of the running job (None outside a Hydra job)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return HydraConfig.get().sweeper.get("pruner")
    except Exception:  # noqa: BLE001 - not in a Hydra job, or another sweeper
        return None


class TrialLink:
    """The trial a job runs for: `report(value, epoch)` returns whether the pruner stops it."""

    def __init__(self, info: dict, pruner: Any) -> None:
        import optuna

        self.info = info
        self.study = optuna.load_study(study_name=info["study"], storage=open_storage(info["storage"]),
                                       sampler=optuna.samplers.RandomSampler(), pruner=pruner)
        self.trial = optuna.trial.Trial(self.study, int(info["trial_id"]))

    @classmethod
    def from_env(cls) -> TrialLink | None:
        """The link of this job, or None: not a job of an Optuna sweep, or no pruner chosen."""
        raw = os.environ.get(ENV)
        if not raw:
            return None
        pruner_cfg = _pruner_config()
        target = str(pruner_cfg.get("_target_", "")) if pruner_cfg is not None else ""
        if not target or target == NO_PRUNER:
            return None
        try:
            from hydra.utils import instantiate

            return cls(json.loads(raw), instantiate(pruner_cfg))
        except Exception as e:  # noqa: BLE001 - pruning is an optimisation: the job goes on without it
            log.warning("could not reach this job's Optuna trial (%s); it runs without pruning", e)
            return None

    @property
    def number(self) -> int:
        return int(self.info.get("number", -1))

    def report(self, value: float, epoch: int) -> bool:
        self.trial.report(float(value), step=int(epoch))
        return bool(self.trial.should_prune())

    def mark_pruned(self, epoch: int) -> None:
        self.trial.set_user_attr(PRUNED_AT, int(epoch))
