"""Scale-out pieces without training or subprocesses: the Optuna sweeper plugin (search-space syntax,
trials through a stand-in launcher, pruning), the hparams_search configs, the sweep report of a
search, the joblib launcher's thread sharing and signal forwarding, and the unpadded evaluation
sampler of DDP runs."""

import csv
import json
import signal
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, compose_config
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from cvexp.engine import hydra_callbacks
from cvexp.analysis import sweep_report as report
from cvexp.data.base import SplitDataModule, UnpaddedDistributedSampler, process_shard, sharded_for_eval
from cvexp.errors import ConfigError

optuna = pytest.importorskip("optuna")
from hydra_plugins.cvexp_optuna_sweeper import _impl, pruning
from hydra_plugins.cvexp_optuna_sweeper import _search_space as space

optuna.logging.set_verbosity(optuna.logging.WARNING)


# ------------------------------------------------------------------------------ search-space syntax
def test_search_space_syntax_of_hydra_optuna_sweeper():
    from optuna.distributions import CategoricalDistribution as Cat
    from optuna.distributions import FloatDistribution as Float
    from optuna.distributions import IntDistribution as Int

    found, fixed = space.parse([
        "optimizer.lr=tag(log, interval(1e-4, 1e-2))", "task.dice_weight=interval(0.0, 1.0)",
        "aug=choice(none, basic, strong)", "data.batch_size=choice(16, 32, 64)", "x=range(8, 65, 8)",
        "y=range(0.1, 0.5, 0.1)", "z=shuffle(range(1, 4))", "debug=fast", "aug=choice(none, strong)"])
    assert found["optimizer.lr"] == Float(1e-4, 1e-2, log=True)
    assert found["task.dice_weight"] == Float(0.0, 1.0)
    assert found["aug"] == Cat(["none", "strong"])  # the later override of a key wins (command line over params)
    assert found["data.batch_size"] == Cat([16, 32, 64])
    assert found["x"] == Int(8, 64, step=8)  # Hydra's range: the stop is excluded
    assert isinstance(found["y"], Float) and found["y"].step == pytest.approx(0.1) and found["y"].high == pytest.approx(0.4)
    assert isinstance(found["z"], Cat) and sorted(found["z"].choices) == [1, 2, 3]
    assert fixed == {"debug": "fast"}


@pytest.mark.parametrize("override, words", [
    ("optimizer.lr=tag(log, interval(0, 1e-2))", ["optimizer.lr", "low > 0"]),
    ("optimizer.lr=interval(0.1, 0.1)", ["optimizer.lr", "low < high"]),
    ("data.batch_size=range(4, 4)", ["data.batch_size", "no value"]),
    ("aug=glob(*)", ["aug", "choice(a, b, c)"]),
])
def test_search_space_mistakes_are_one_line_naming_the_key(override, words):
    with pytest.raises(space.SearchSpaceError) as e:
        space.parse([override])
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


@pytest.mark.parametrize("value", ["adam", "a b", "c,d", "1", "true", "it's", "x=1", 1e-3, 3, True, None, 4.2e-6])
def test_sampled_values_read_back_as_the_same_value(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    back = OverridesParser.create().parse_override(f"k={space.format_value(value)}")
    assert not back.is_sweep_override() and back.value() == value and type(back.value()) is type(value)


def test_grid_of_finite_distributions():
    found, _ = space.parse(["a=choice(x, y)", "b=range(1, 4)"])
    assert space.grid_of(found) == {"a": ["x", "y"], "b": [1, 2, 3]}
    found, _ = space.parse(["c=interval(0.0, 1.0)"])
    with pytest.raises(space.SearchSpaceError, match="c: .*grid"):
        space.grid_of(found)


# ------------------------------------------------------------------------------ configs
def _searched_keys(cfg):
    return list(cfg.hydra.sweeper.params.keys())


def test_wildlife_optuna_config(tmp_path):
    cfg = compose_config("train", ["hparams_search=wildlife_optuna"], tmp_path / "run", tmp_path / "logs")
    sw = cfg.hydra.sweeper
    assert sw._target_ == "hydra_plugins.cvexp_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert sw.direction == "maximize" and sw.sampler._target_ == "optuna.samplers.TPESampler"
    assert sw.pruner._target_ == "optuna.pruners.MedianPruner"
    assert set(_searched_keys(cfg)) == {"optimizer", "optimizer.lr", "optimizer.weight_decay", "aug",
                                        "data.batch_size"}
    assert cfg.optimized_metric == "val/f1_macro_best" and str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.callbacks.optuna_pruning._target_ == "cvexp.engine.callbacks.OptunaPruning"
    assert cfg.callbacks.optuna_pruning.monitor == "val/f1_macro"
    impl = _impl.OptunaSweeperImpl(sampler=None, pruner=None, direction="maximize", storage=None, study_name=None,
                                   n_trials=1, n_jobs=1, max_failure_rate=0, params=sw.params)
    impl.config = cfg
    _, found, _ = impl._checked([])  # every searched key exists in the run's config
    assert set(found) == set(_searched_keys(cfg))
    from cvexp.io.checkpoint import check_targets  # a trial's checkpoint stays loadable (allow-list)

    check_targets({"callbacks": OmegaConf.to_container(cfg.callbacks, resolve=True)})


def test_seg_optuna_config_on_a_segmentation_run(tmp_path):
    cfg = compose_config("train", ["experiment=seg_demo", "hparams_search=seg_optuna"], tmp_path / "run",
                         tmp_path / "logs")
    assert set(_searched_keys(cfg)) == {"optimizer.lr", "data.image_size", "task.dice_weight"}
    assert cfg.optimized_metric == "val/miou_best" and cfg.hydra.sweeper.direction == "maximize"
    impl = _impl.OptunaSweeperImpl(sampler=None, pruner=None, direction="maximize", storage=None, study_name=None,
                                   n_trials=1, n_jobs=1, max_failure_rate=0, params=cfg.hydra.sweeper.params)
    impl.config = cfg
    impl._checked(["data.image_size=choice(48, 64)"])


def test_seg_optuna_on_a_classification_run_is_one_line(tmp_path, capsys):
    cfg = compose_config("train", ["hparams_search=seg_optuna"], tmp_path / "run", tmp_path / "logs")
    impl = _impl.OptunaSweeperImpl(sampler=None, pruner=None, direction="maximize", storage=None, study_name=None,
                                   n_trials=1, n_jobs=1, max_failure_rate=0, params=cfg.hydra.sweeper.params)
    impl.config, impl.sweep_dir = cfg, tmp_path / "sweep"
    with pytest.raises(SystemExit) as e:
        impl.sweep([])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "task.dice_weight is not a key" in err[0] and "experiment=seg_demo" in err[0]
    assert not (tmp_path / "sweep").exists()  # nothing written


@pytest.mark.parametrize("setting, words", [
    ({"direction": "up"}, ["hydra.sweeper.direction", "maximize"]),
    ({"n_trials": 0}, ["hydra.sweeper.n_trials", ">= 1"]),
    ({"max_failure_rate": 2}, ["hydra.sweeper.max_failure_rate"]),
    ({"params": {}}, ["nothing to search", "hparams_search="]),
])
def test_sweeper_setting_mistakes_are_one_line(tmp_path, capsys, setting, words):
    kwargs = dict(sampler=None, pruner=None, direction="maximize", storage=None, study_name=None, n_trials=2,
                  n_jobs=1, max_failure_rate=0.0, params={"optimizer.lr": "interval(1e-4, 1e-2)"})
    kwargs.update(setting)
    impl = _impl.OptunaSweeperImpl(**kwargs)
    impl.sweep_dir = tmp_path / "sweep"
    with pytest.raises(SystemExit) as e:
        impl.sweep([])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and all(w in err[0] for w in words), err


def test_joblib_launcher_config_composes(tmp_path):
    cfg = compose_config("train", ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], tmp_path / "run",
                         tmp_path / "logs")
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    assert hydra_callbacks.parallel_jobs(cfg) == 2


# ------------------------------------------------------------------------------ the sweeper, trial by trial
class FakeLauncher:
    """Runs no job: each 'job' returns 10 * optimizer.lr, or fails (aug=bad), or is pruned (aug=prune)
    the way cvexp.engine.callbacks.OptunaPruning marks its trial."""

    def __init__(self):
        self.launched = []

    def launch(self, job_overrides, initial_job_idx):
        returns = []
        for i, ov in enumerate(job_overrides):
            self.launched.append((initial_job_idx + i, list(ov)))
            kv = dict(o.split("=", 1) for o in ov)
            link = json.loads(kv[f"++hydra.job.env_set.{pruning.ENV}"].strip("'"))
            ret = JobReturn()
            ret.status = JobStatus.COMPLETED
            if kv.get("aug") == "bad":
                ret.return_value = float("nan")  # what cvexp's run_job returns for a failed job of a sweep
            else:
                ret.return_value = 10 * float(kv["optimizer.lr"])
            if kv.get("aug") == "prune":
                study = optuna.load_study(study_name=link["study"], storage=pruning.open_storage(link["storage"]))
                trial = optuna.trial.Trial(study, link["trial_id"])
                trial.report(0.01, step=0)
                trial.set_user_attr(pruning.PRUNED_AT, 0)
            returns.append(ret)
        return returns


def _sweeper(tmp_path, **kw):
    args = dict(sampler=optuna.samplers.RandomSampler(seed=0), pruner=optuna.pruners.NopPruner(),
                direction="maximize", storage=None, study_name="t", n_trials=6, n_jobs=2, max_failure_rate=0.5,
                params={"optimizer.lr": "tag(log, interval(1e-4, 1e-1))", "aug": "choice(none, bad, prune)"})
    args.update(kw)
    impl = _impl.OptunaSweeperImpl(**args)
    impl.config = OmegaConf.create({"monitor_mode": "max", "optimizer": {"lr": 1e-3}, "aug": {},
                                    "hydra": {"runtime": {"choices": {"aug": "basic"}}}})
    impl.sweep_dir = tmp_path / "sweep"
    impl.launcher = FakeLauncher()
    return impl


def test_trials_run_in_batches_and_record_complete_failed_and_pruned(tmp_path):
    impl = _sweeper(tmp_path, max_failure_rate=1.0)
    impl.sweep(["debug=fast"])
    launched = impl.launcher.launched
    assert [j for j, _ in launched] == list(range(6))
    assert all("debug=fast" in ov for _, ov in launched)
    with open(impl.sweep_dir / _impl.TRIALS_CSV, newline="") as fh:
        trials = list(csv.DictReader(fh))
    assert [int(t["trial"]) for t in trials] == list(range(6)) and [int(t["job"]) for t in trials] == list(range(6))
    for (_, ov), t in zip(launched, trials):
        kv = dict(o.split("=", 1) for o in ov)
        expected = {"bad": "FAIL", "prune": "PRUNED"}.get(kv["aug"], "COMPLETE")
        assert t["state"] == expected and t["aug"] == kv["aug"]
        assert float(t["optimizer.lr"]) == pytest.approx(float(kv["optimizer.lr"]))
        if expected == "COMPLETE":
            assert float(t["value"]) == pytest.approx(10 * float(kv["optimizer.lr"]))
    res = yaml.safe_load((impl.sweep_dir / _impl.RESULTS_YAML).read_text())
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    best = max(complete, key=lambda t: float(t["value"]))
    assert res["best_trial"] == int(best["trial"]) and res["best_job"] == int(best["job"])
    assert res["best_value"] == pytest.approx(float(best["value"]))
    assert res["complete"] + res["pruned"] + res["fail"] == 6 and res["stopped_by_failures"] is False
    assert float(trials[-1]["best_so_far"] or "nan") == pytest.approx(float(best["value"]))
    study = optuna.load_study(study_name="t", storage=pruning.open_storage(res["storage"]))
    assert study.best_trial.number == res["best_trial"]  # the study itself lives in the sweep dir's journal


def test_too_many_failures_stop_asking_for_trials(tmp_path):
    impl = _sweeper(tmp_path, max_failure_rate=0.0, params={"optimizer.lr": "interval(1e-4, 1e-1)",
                                                            "aug": "choice(bad)"})
    impl.sweep([])
    assert len(impl.launcher.launched) == 2  # one batch, then stop
    res = yaml.safe_load((impl.sweep_dir / _impl.RESULTS_YAML).read_text())
    assert res["stopped_by_failures"] is True and res["best_trial"] is None and res["fail"] == 2
    assert not hydra_callbacks.search_tolerated_failures(impl.sweep_dir)


def test_grid_sampler_tries_every_point_once(tmp_path):
    impl = _sweeper(tmp_path, sampler=OmegaConf.create({"_target_": "optuna.samplers.GridSampler",
                                                         "_partial_": True, "seed": 0}),
                    n_trials=10, n_jobs=1, params={"optimizer.lr": "choice(0.001, 0.01)", "aug": "choice(none)"})
    impl.sampler = _impl._build(impl.sampler, "sampler")
    impl.sweep([])
    points = sorted(dict(o.split("=", 1) for o in ov)["optimizer.lr"] for _, ov in impl.launcher.launched)
    assert points == ["0.001", "0.01"]


# ------------------------------------------------------------------------------ pruning, job side
class FakeStrategy:
    def broadcast(self, obj, src=0):
        return obj


class FakeTrainer:
    def __init__(self, value, epoch=0):
        self.sanity_checking = False
        self.is_global_zero = True
        self.callback_metrics = {"val/f1_macro": torch.tensor(value)}
        self.current_epoch = epoch
        self.should_stop = False
        self.strategy = FakeStrategy()


def test_pruning_callback_reports_and_stops_a_hopeless_trial(tmp_path, monkeypatch):
    from cvexp.engine.callbacks import OptunaPruning

    journal = str(tmp_path / "study.log")
    study = optuna.create_study(study_name="p", storage=pruning.open_storage(journal), direction="maximize")
    trial = study.ask()
    monkeypatch.setenv(pruning.ENV, pruning.link_value(journal, "p", trial._trial_id, trial.number))
    monkeypatch.setattr(pruning, "_pruner_config", lambda: OmegaConf.create(
        {"_target_": "optuna.pruners.ThresholdPruner", "lower": 0.5}))
    cb = OptunaPruning(monitor="val/f1_macro")
    good, bad = FakeTrainer(0.8, epoch=0), FakeTrainer(0.2, epoch=1)
    cb.on_fit_start(good, None)
    cb.on_validation_end(good, None)
    assert not good.should_stop
    cb.on_validation_end(bad, None)
    assert bad.should_stop and cb.pruned_at == 1
    frozen = study.get_trials()[0]
    assert frozen.intermediate_values == {0: pytest.approx(0.8), 1: pytest.approx(0.2)}
    assert frozen.user_attrs[pruning.PRUNED_AT] == 1


def test_pruning_callback_is_a_no_op_outside_a_search(monkeypatch):
    from cvexp.engine.callbacks import OptunaPruning

    monkeypatch.delenv(pruning.ENV, raising=False)
    cb = OptunaPruning(monitor="val/f1_macro")
    t = FakeTrainer(0.0)
    cb.on_fit_start(t, None)
    cb.on_validation_end(t, None)
    assert not t.should_stop and cb._link is None
    monkeypatch.setenv(pruning.ENV, '{"storage": "x", "study": "s", "trial_id": 0, "number": 0}')
    monkeypatch.setattr(pruning, "_pruner_config", lambda: OmegaConf.create({"_target_": pruning.NO_PRUNER}))
    assert pruning.TrialLink.from_env() is None  # pruner none: no storage is opened


# ------------------------------------------------------------------------------ the sweep report of a search
def _job(sweep: Path, num: int, lr: str, val: float, state: str = "completed"):
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(f"- optimizer.lr={lr}\n- debug=fast\n")
    (job / "status.json").write_text(json.dumps({"status": state, "wall_time_s": 1.0}))
    (job / "metrics.json").write_text(json.dumps({"val/f1_macro_best": val, "test/f1_macro": val - 0.1}))
    (job / "config.yaml").write_text("optimized_metric: val/f1_macro_best\nmonitor_mode: max\n")


def test_search_report_lists_trials_in_order_and_marks_the_best_complete_one(tmp_path):
    sweep = tmp_path / "sweep"
    vals = {0: ("0.0030405325392865654", 0.50, "COMPLETE"), 1: ("0.01", 0.90, "PRUNED"),
            2: ("0.0001", 0.70, "COMPLETE"), 3: ("0.2", 0.10, "COMPLETE")}
    for j, (lr, v, _) in vals.items():
        _job(sweep, j, lr, v)
    with open(sweep / report.OPTUNA_TRIALS_CSV, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["trial", "job", "state", "value", "best_so_far", "pruned_at_epoch", "optimizer.lr", "error"])
        for j, (lr, v, st) in vals.items():
            w.writerow([j, j, st, v, "", 0 if st == "PRUNED" else "", lr, ""])
    (sweep / report.OPTUNA_RESULTS).write_text(yaml.safe_dump({
        "name": "optuna", "study_name": "s", "direction": "maximize", "best_trial": 2, "best_job": 2,
        "best_value": 0.7, "storage": "x", "stopped_by_failures": False}))
    rows = report.collect_rows(sweep)
    assert [r["trial"] for r in rows] == [0, 1, 2, 3]
    assert report.best_row(rows)["job"] == "2"  # the pruned trial's higher number does not count
    md = report.markdown(rows, sweep)
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| job | trial | state |") and "best val/f1_macro_best so far" in table[0]
    assert [line.split("|")[1].strip() for line in table[1:]] == ["0", "1", "2 (best)", "3"]
    assert "PRUNED (epoch 0)" in table[2] and "0.00304" in table[1]  # sampled floats shortened
    so_far = [line.split("|")[-5].strip() for line in table[1:]]
    assert so_far == ["0.5000", "0.5000", "0.7000", "0.7000"]
    assert "Optuna search: study `s`" in md and "best trial 2 (job 2)" in md
    assert hydra_callbacks.search_tolerated_failures(sweep)


def test_search_exit_code_follows_its_failure_rate(tmp_path, monkeypatch):
    """A search whose failed trials stay within max_failure_rate ends 0; one that stopped for failures,
    or in which no trial produced a value, ends 1 (after writing its report)."""
    monkeypatch.delenv(hydra_callbacks.GROUP_ENV, raising=False)

    def sweep_with(name, statuses, results):
        sweep = tmp_path / name
        for j, st in enumerate(statuses):
            _job(sweep, j, "0.001", 0.5, st)
        (sweep / report.OPTUNA_RESULTS).write_text(yaml.safe_dump(results))
        return OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})

    ok = sweep_with("ok", ["completed", "failed"], {"n_trials": 2, "best_trial": 0, "stopped_by_failures": False})
    hydra_callbacks.SweepReport().on_multirun_end(ok)  # no SystemExit
    for name, statuses, res in (
            ("stopped", ["completed", "failed"], {"n_trials": 2, "best_trial": 0, "stopped_by_failures": True}),
            ("novalue", ["completed"], {"n_trials": 1, "best_trial": None, "stopped_by_failures": False})):
        with pytest.raises(SystemExit) as e:
            hydra_callbacks.SweepReport().on_multirun_end(sweep_with(name, statuses, res))
        assert e.value.code == 1 and (tmp_path / name / "report.md").is_file()


# ------------------------------------------------------------------------------ joblib: cores and signals
def test_parallel_jobs_share_the_cores(monkeypatch):
    import joblib

    monkeypatch.setattr(joblib, "cpu_count", lambda: 8)
    joblib_cfg = lambda n: OmegaConf.create({"hydra": {"launcher": {
        "_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": n}}})
    assert [hydra_callbacks.parallel_jobs(joblib_cfg(n)) for n in (2, -1, -2, 1)] == [2, 8, 7, 1]
    assert hydra_callbacks.parallel_jobs(OmegaConf.create(
        {"hydra": {"launcher": {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}}})) is None
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        assert hydra_callbacks.share_cores(joblib_cfg(4)) == 2 and torch.get_num_threads() == 2
        assert hydra_callbacks.share_cores(joblib_cfg(1)) == 2  # fewer than allowed: left alone
    finally:
        torch.set_num_threads(n)


def test_stop_signal_forwarder_waits_once_then_stops(monkeypatch):
    sent = []
    monkeypatch.setattr(hydra_callbacks, "forward_signal", lambda s: sent.append(s))
    before = signal.getsignal(signal.SIGTERM)
    f = hydra_callbacks.StopSignalForwarder().install()
    try:
        assert signal.getsignal(signal.SIGTERM) == f._handle
        f._handle(signal.SIGTERM, None)  # passed on to the workers; this process waits for them
        assert sent == [signal.SIGTERM] and f.received == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):  # the second: at once
            f._handle(signal.SIGINT, None)
    finally:
        f.restore()
    assert signal.getsignal(signal.SIGTERM) == before


# ------------------------------------------------------------------------------ DDP: every sample once
@pytest.mark.parametrize("n, replicas", [(39, 2), (40, 2), (7, 3), (5, 5)])
def test_unpadded_shards_cover_every_sample_exactly_once(n, replicas):
    ds = TensorDataset(torch.arange(n))
    shards = [list(UnpaddedDistributedSampler(ds, replicas, r)) for r in range(replicas)]
    assert sorted(i for s in shards for i in s) == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert [len(UnpaddedDistributedSampler(ds, replicas, r)) for r in range(replicas)] == list(map(len, shards))


class _Shard:
    def __init__(self, replicas, rank):
        self.distributed_sampler_kwargs = {"num_replicas": replicas, "rank": rank}


class TinyData(SplitDataModule):
    batch_size, num_workers = 4, 0

    def __init__(self, sizes):
        super().__init__()
        self.sizes = sizes

    def dataset(self, split, augment=None):
        return TensorDataset(torch.arange(self.sizes[split]), torch.zeros(self.sizes[split], dtype=torch.long))


def test_eval_loaders_are_sharded_only_under_several_processes():
    dm = TinyData({"train": 10, "val": 5, "test": 39})
    assert process_shard(None) is None and process_shard(_Shard(1, 0)) is None
    plain = dm.test_dataloader()  # no trainer: as it is
    assert not isinstance(plain.sampler, UnpaddedDistributedSampler) and len(plain.dataset) == 39
    seen = []
    for rank in (0, 1):
        dm.trainer = _Shard(2, rank)
        loader = dm.test_dataloader()
        assert isinstance(loader.sampler, UnpaddedDistributedSampler)
        assert loader.batch_size == 4 and loader.collate_fn is plain.collate_fn
        seen += [int(i) for x, _ in loader for i in x]
        assert not isinstance(dm.train_dataloader().sampler, UnpaddedDistributedSampler)  # Lightning's
    assert sorted(seen) == list(range(39))
    dm.trainer = _Shard(8, 0)
    with pytest.raises(ConfigError, match="the val split has 5 sample.*8 processes"):
        dm.val_dataloader()


def test_sharding_keeps_a_custom_collate_and_leaves_shuffled_loaders():
    ds = TensorDataset(torch.arange(9))
    collate = lambda b: b
    loader = sharded_for_eval(DataLoader(ds, batch_size=2, collate_fn=collate), 2, 1)
    assert loader.collate_fn is collate and [int(x[0]) for b in loader for x in b] == [1, 3, 5, 7]
    shuffled = DataLoader(ds, batch_size=2, shuffle=True)
    assert sharded_for_eval(shuffled, 2, 0) is shuffled


# ------------------------------------------------------------------------------ packaging
def test_plugin_is_discoverable_in_any_install():
    import pkgutil

    import hydra_plugins
    from hydra_plugins.cvexp_optuna_sweeper import make_discoverable

    make_discoverable()
    make_discoverable()  # (once is enough)
    names = [m.name for m in pkgutil.iter_modules(hydra_plugins.__path__)]
    assert names.count("cvexp_optuna_sweeper") >= 1



def test_pyproject_ships_the_plugin_and_installs_the_search_extra_in_dev():
    tomllib = pytest.importorskip("tomllib")  # (Python >= 3.11)
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "hydra_plugins.cvexp_optuna_sweeper" in meta["tool"]["setuptools"]["packages"]
    extras = meta["project"]["optional-dependencies"]
    for dep in extras["search"]:
        assert dep in extras["dev"], f"{dep} of the [search] extra is missing from [dev] (CI installs .[dev])"
    assert any(d.startswith("optuna") for d in extras["search"])
    assert any(d.startswith("hydra-joblib-launcher") for d in extras["search"])


def test_a_storage_path_that_is_not_a_journal_is_never_appended_to(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    db = tmp_path / "study.db"
    db.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    for target in (notes, db, tmp_path):
        impl = _impl.OptunaSweeperImpl(sampler=None, pruner=None, direction="maximize", storage=str(target),
                                       study_name=None, n_trials=1, n_jobs=1, max_failure_rate=0.0,
                                       params={"optimizer.lr": "interval(1e-4, 1e-2)"})
        before = target.read_bytes() if target.is_file() else None
        with pytest.raises(SystemExit) as e:
            impl._storage()
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1 and "is not an Optuna journal" in err[0], err
        assert "sqlite:///" in err[0]
        if before is not None:
            assert target.read_bytes() == before
    assert _impl._is_journal(tmp_path / "empty") is False  # absent: _storage creates it
    (tmp_path / "empty").write_text("")
    (tmp_path / "journal.log").write_text('{"op_code": 0, "worker_id": "x"}\n')
    assert _impl._is_journal(tmp_path / "empty") and _impl._is_journal(tmp_path / "journal.log")
