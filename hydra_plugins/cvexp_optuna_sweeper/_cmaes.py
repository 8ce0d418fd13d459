"""CMA-ES without pickle (`hydra/sweeper/sampler=cmaes`).

Optuna's CmaEsSampler keeps the CMA-ES state as a pickle, hex-encoded in the system attributes of
a trial (`cma:optimizer:0`, ...), and on every ask `pickle.loads` it back from the storage: resuming
a study database from someone else (or a shared one) would run whatever code it holds. This
sampler never reads those attributes and never writes them: it rebuilds the state from the trials
themselves (their params, values and `cma:generation`, all JSON), replaying CMA-ES's updates, which
are deterministic: it samples what optuna's sampler samples (up to rounding), a fresh study or a
resumed one. Studies written by optuna's own sampler resume too (their pickles are ignored). The
replay costs one CMA-ES update per generation on every ask: nothing next to a training run.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from optuna._transform import _SearchSpaceTransform
from optuna.samplers import CmaEsSampler
from optuna.study import StudyDirection


class NoPickleCmaEsSampler(CmaEsSampler):
    """optuna.samplers.CmaEsSampler (same arguments) whose state comes from the trials, never from a pickle."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._replay_context: dict[int, tuple[Any, StudyDirection]] = {}  # thread -> (search space, direction)

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        key = threading.get_ident()
        self._replay_context[key] = (search_space, study.direction)
        try:
            return super().sample_relative(study, trial, search_space)
        finally:
            self._replay_context.pop(key, None)

    def _restore_optimizer(self, completed_trials: list[Any]) -> Any:
        """The optimizer optuna would have unpickled: a fresh one told, generation by generation, the
        first population of completed trials sampled at that generation (as optuna told them)."""
        search_space, direction = self._replay_context[threading.get_ident()]
        # the same transform as CmaEsSampler.sample_relative's
        trans = _SearchSpaceTransform(search_space, transform_step=not self._with_margin, transform_0_1=True)
        rng = self._cma_rng.rng
        state = rng.get_state()
        optimizer = self._init_optimizer(trans, direction)
        if any(t.system_attrs.get(self._attr_key_generation, 0) > 0 for t in completed_trials):
            # optuna would unpickle here and draw no seed for a new optimizer: keep its random stream
            rng.set_state(state)
        import cmaes

        sign = 1.0 if direction == StudyDirection.MINIMIZE else -1.0
        while True:
            solutions = self._get_solution_trials(completed_trials, optimizer.generation)
            if len(solutions) < optimizer.population_size:
                return optimizer
            optimizer.tell([
                (np.array(t.system_attrs["x_for_tell"], dtype=float) if isinstance(optimizer, cmaes.CMAwM)
                 else trans.transform(t.params), sign * float(t.value))
                for t in solutions[:optimizer.population_size]])

    def _split_optimizer_str(self, optimizer_str: str) -> dict[str, str]:
        """No `cma:optimizer:*` attributes are written. (Optuna's tell-and-store step, the only
        caller, is not reached either: the replay has told every complete generation.)"""
        return {}
