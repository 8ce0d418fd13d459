"""A study storage is data, never code: `hydra/sweeper/sampler=cmaes` resumes a study whose trials hold
pickles (optuna's CmaEsSampler keeps its state as `cma:optimizer:*` pickles and loads them back)
without loading them, and writes none. No training: optuna in-process, storages in tmp_path."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

optuna = pytest.importorskip("optuna")
from optuna.distributions import FloatDistribution, IntDistribution

from hydra_plugins.cvexp_optuna_sweeper import _impl, config

optuna.logging.set_verbosity(optuna.logging.WARNING)

HAVE_CMAES = importlib.util.find_spec("cmaes") is not None  # CMA-ES itself (optuna's sampler needs it)
needs_cmaes = pytest.mark.skipif(not HAVE_CMAES, reason="the cmaes package is not installed")
SPACE = {"optimizer.lr": FloatDistribution(1e-4, 1e-1, log=True), "x": FloatDistribution(-5.0, 5.0)}
PARAMS = {"optimizer.lr": "tag(log, interval(1e-4, 1e-1))", "x": "interval(-5.0, 5.0)"}


def _objective(p: dict) -> float:
    return (p["x"] - 1.0) ** 2 + (p["optimizer.lr"] - 1e-2) ** 2


class Payload:
    """What an attacker stores: unpickling it creates `marker` (builtins.open(marker, "w"))."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _cvexp_cmaes(**kw):
    """The sampler `hydra/sweeper/sampler=cmaes` gives (other arguments: +hydra.sweeper.sampler.popsize=5),
    built as the sweeper builds it."""
    node = OmegaConf.to_container(OmegaConf.structured(config.CmaEsSamplerConfig))
    return _impl._build(OmegaConf.create({**node, **kw}), "sampler")


def _poisoned_study(url: str, marker: Path, n: int) -> None:
    """A study of n completed CMA-ES trials, each with a pickled 'optimizer' that creates `marker`."""
    study = optuna.create_study(study_name="s", storage=url, direction="minimize")
    blob = pickle.dumps(Payload(marker)).hex()
    for i in range(n):
        params = {"optimizer.lr": 10 ** (-1 - 3 * i / max(n, 1)), "x": -4.0 + i}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=SPACE, value=_objective(params),
            system_attrs={"cma:optimizer:0": blob, "cma:generation": 0 if i < n - 1 else 1}))


@pytest.mark.parametrize("n_trials", [1, 8])  # 8: a full generation (4 + 3 ln 2 = 6) to replay and tell
def test_cmaes_option_never_unpickles_a_stored_optimizer(tmp_path, n_trials):
    marker = tmp_path / "pwned"
    url = f"sqlite:///{tmp_path / 'study.db'}"
    _poisoned_study(url, marker, n_trials)
    assert not marker.exists()
    study = optuna.load_study(study_name="s", storage=url, sampler=_cvexp_cmaes(seed=0))
    try:
        outcome = study.ask(SPACE)
    except Exception as e:  # noqa: BLE001 - without cmaes the sampler stops (after restoring its state)
        outcome = e
    assert not marker.exists(), "a pickle stored in the study was loaded (and ran)"
    if HAVE_CMAES:
        assert isinstance(outcome, optuna.trial.Trial), outcome
        assert SPACE["x"].low <= outcome.params["x"] <= SPACE["x"].high
        generation = study.trials[outcome.number].system_attrs.get("cma:generation")
        assert generation == (1 if n_trials == 8 else 0)  # 8: the stored generation 0 was replayed and told


def test_optunas_own_cmaes_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        _impl.OptunaSweeperImpl(sampler=OmegaConf.create({"_target_": "optuna.samplers.CmaEsSampler", "seed": 0}),
                                pruner=optuna.pruners.NopPruner(), direction="minimize", storage=None,
                                study_name="s", n_trials=2, n_jobs=1, max_failure_rate=0.0, params=PARAMS)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "optuna.samplers.CmaEsSampler" in err
    assert "hydra/sweeper/sampler=cmaes" in err


@needs_cmaes
@pytest.mark.parametrize("kw", [{}, {"popsize": 5}, {"with_margin": True}, {"use_separable_cma": True}])
def test_cmaes_samples_as_optunas_and_stores_no_pickle(kw):
    space = {**SPACE, "n": IntDistribution(1, 8)}
    runs = []
    for sampler in (optuna.samplers.CmaEsSampler(seed=0, **kw), _cvexp_cmaes(seed=0, **kw)):
        study = optuna.create_study(sampler=sampler)
        for _ in range(40):
            trial = study.ask(space)
            study.tell(trial, _objective(trial.params) + (trial.params["n"] - 3) ** 2)
        runs.append(study.trials)
    theirs, ours = runs
    for a, b in zip(theirs, ours):  # optuna's pickle round trip rounds its covariance matrix: ~1e-14
        assert b.params == pytest.approx(a.params, abs=1e-9)
    keys = {k for t in ours for k in t.system_attrs}
    assert not any(":optimizer" in k for k in keys), keys
    assert any(":optimizer" in k for t in theirs for k in t.system_attrs)  # (what optuna's own stores)
    assert max(v for t in ours for k, v in t.system_attrs.items() if k.endswith(":generation")) >= 3


class FunctionLauncher:
    """Runs no job: each 'job' returns _objective of its sampled params."""

    def __init__(self):
        self.launched = 0

    def launch(self, job_overrides, initial_job_idx):
        returns = []
        for ov in job_overrides:
            kv = dict(o.split("=", 1) for o in ov if not o.startswith("++hydra"))
            ret = JobReturn()
            ret.status = JobStatus.COMPLETED
            ret.return_value = _objective({k: float(v) for k, v in kv.items()})
            returns.append(ret)
        self.launched += len(returns)
        return returns


def _sweep(tmp_path: Path, storage: str, n_trials: int, name: str, sampler=None) -> _impl.OptunaSweeperImpl:
    impl = _impl.OptunaSweeperImpl(sampler=sampler or OmegaConf.structured(config.CmaEsSamplerConfig(seed=0)),
                                   pruner=optuna.pruners.NopPruner(), direction="minimize", storage=storage,
                                   study_name="s", n_trials=n_trials, n_jobs=2, max_failure_rate=0.0,
                                   params=PARAMS)
    impl.config = OmegaConf.create({"optimizer": {"lr": 1e-3}, "x": 0.0, "hydra": {"runtime": {"choices": {}}}})
    impl.sweep_dir = tmp_path / name
    impl.launcher = FunctionLauncher()
    impl.sweep([])
    return impl


@needs_cmaes
def test_cmaes_sweep_resumes_the_study_it_wrote(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = _sweep(tmp_path, url, 14, "first")
    second = _sweep(tmp_path, url, 14, "second")
    assert first.launcher.launched == second.launcher.launched == 14
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert len(trials) == 28 and all(t.state.name == "COMPLETE" for t in trials)
    generation = [t.system_attrs.get("cma:generation", -1) for t in trials]
    assert max(generation[14:]) > max(generation[:14]) >= 1  # the second sweep went on from the first's state
    assert not any(":optimizer" in k for t in trials for k in t.system_attrs)


@needs_cmaes
def test_cmaes_sweep_resumes_a_poisoned_study_without_loading_it(tmp_path):
    marker = tmp_path / "pwned"
    url = f"sqlite:///{tmp_path / 'study.db'}"
    _poisoned_study(url, marker, 8)
    impl = _sweep(tmp_path, url, 6, "sweep")
    assert not marker.exists(), "a pickle stored in the study was loaded (and ran)"
    assert impl.launcher.launched == 6
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 14
