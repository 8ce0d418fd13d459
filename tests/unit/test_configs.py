"""Every option of every config group composes, and every object-building option instantiates."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from cvexp.metrics import names as M
from cvexp.engine import build as runs
from cvexp.engine.config import config_dir

CONF = Path(config_dir())


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def primary_config_for(group: str) -> str:
    """The entry-point config (train.yaml first) whose defaults list names `group`."""
    import yaml

    for path in sorted(CONF.glob("*.yaml"), key=lambda p: (p.stem != "train", p.stem)):
        for entry in yaml.safe_load(path.read_text()).get("defaults", []):
            if isinstance(entry, dict) and any(str(k).split("@")[0] == group for k in entry):
                return path.stem
    raise AssertionError(f"config group {group} is in no entry point's defaults list")


def all_group_options():
    for group in sorted(p.name for p in CONF.iterdir() if p.is_dir()):
        if group == "hydra":
            continue
        for opt in options(group):
            yield primary_config_for(group), group, opt


@pytest.mark.parametrize("primary,group,option", list(all_group_options()))
def test_every_option_composes(compose_cfg, primary, group, option):
    cfg = compose_cfg(primary, [f"{group}={option}"])
    assert isinstance(cfg, DictConfig)
    runs.resolved_container(cfg)  # every interpolation resolves


@pytest.mark.parametrize("option", options("data"))
def test_data_options_instantiate(compose_cfg, option):
    cfg = compose_cfg("train", [f"data={option}"])
    runs.resolve_inputs(cfg)
    dm = runs.build_datamodule(cfg)
    assert dm.num_classes == len(dm.class_names) and "num_classes" not in cfg.data


@pytest.mark.parametrize("option", options("model"))
def test_model_options_instantiate(compose_cfg, option):
    from cvexp.engine.build import WEIGHT_KEYS

    cfg = compose_cfg("train", [f"model={option}"])
    with open_dict(cfg):
        for k, v in WEIGHT_KEYS.items():  # no downloads, no files: architecture only
            if k in cfg.model.keys():
                cfg.model[k] = v
    runs.resolve_inputs(cfg)
    net = runs.build_model(cfg.model, 7)  # (train passes the data module's count)
    assert sum(p.numel() for p in net.parameters()) > 0


@pytest.mark.parametrize("option", options("aug"))
def test_aug_options_instantiate(compose_cfg, option):
    cfg = compose_cfg("train", [f"aug={option}"])
    for part in ("train", "eval"):
        tf = instantiate(cfg.aug[part], _convert_="all")
        assert isinstance(tf, list) and tf


@pytest.mark.parametrize("group", ["logger", "callbacks"])
def test_named_dict_groups_instantiate(compose_cfg, group):
    for opt in options(group):
        cfg = compose_cfg("train", [f"{group}={opt}"])
        built = runs.build_dict(cfg.get(group))
        assert len(built) == sum(1 for v in (cfg.get(group) or {}).values()
                                 if isinstance(v, DictConfig) and "_target_" in v)


def test_named_entries_can_be_dropped(compose_cfg):
    cfg = compose_cfg("train", ["callbacks.progress_bar=null"])
    names = [type(c).__name__ for c in runs.build_dict(cfg.callbacks)]
    assert "RichProgressBar" not in names and "ModelCheckpoint" in names
    assert runs.build_dict(compose_cfg("train", ["logger=none"]).get("logger")) == []


@pytest.mark.parametrize("option", options("trainer"))
def test_trainer_options(compose_cfg, option):
    cfg = compose_cfg("train", [f"trainer={option}"])
    if cfg.trainer.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        # composes with what a GPU run needs; building refuses with one line on this machine
        assert cfg.trainer.precision in ("bf16-mixed", "16-mixed") and cfg.trainer.devices in (1, -1, "auto")
        from cvexp.errors import ConfigError

        with pytest.raises(ConfigError, match="trainer=cpu"):
            runs.build_trainer(cfg)
        return
    trainer = runs.build_trainer(cfg)
    assert trainer.max_epochs == cfg.trainer.max_epochs
    assert trainer.num_sanity_val_steps == cfg.trainer.num_sanity_val_steps
    assert trainer.limit_train_batches == cfg.trainer.limit_train_batches


@pytest.mark.parametrize("group", ["optimizer", "scheduler", "regularization"])
def test_optimizer_scheduler_regularization_options(compose_cfg, group):
    for opt in options(group):
        cfg = compose_cfg("train", [f"{group}={opt}"])
        params = [torch.nn.Parameter(torch.zeros(3))]
        optimizer = runs.optional(cfg.optimizer)(params=params)
        assert isinstance(optimizer, torch.optim.Optimizer)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(cfg.optimizer.lr)
        sched = runs.optional(cfg.scheduler)
        if group == "scheduler" and opt != "none":
            assert sched is not None, f"scheduler={opt} builds no scheduler"
        if sched is not None:  # run-length keys left null are filled by cvexp.tasks.optim.configure
            length = {k: 10 for k in ("T_max", "total_iters", "total_steps") if k in cfg.scheduler
                      and cfg.scheduler[k] is None}
            scheduler = sched(optimizer=optimizer, **length)
            lr0 = optimizer.param_groups[0]["lr"]
            for _ in range(10):
                optimizer.step()
                scheduler.step()
            assert optimizer.param_groups[0]["lr"] < lr0, f"scheduler={opt} never lowers the lr"
        if group == "regularization":
            wd = optimizer.param_groups[0].get("weight_decay", 0.0)
            l2 = cfg.task.get("l2_penalty", 0.0) or 0.0
            expected = {"none": (0, 0), "l2_penalty": (0, 1), "weight_decay": (1, 0), "decoupled_weight_decay": (1, 0)}
            assert ((wd > 0), (l2 > 0)) == tuple(map(bool, expected[opt])), opt


@pytest.mark.parametrize("overrides", [[], ["experiment=seg_demo"], ["experiment=idd_deeplabv3plus"],
                                       ["experiment=wildlife_resnet18"], ["callbacks=early_stopping"],
                                       ["hparams_search=wildlife_optuna"]])
def test_metric_names_in_configs_are_defined(compose_cfg, overrides):
    """Every metric name a config refers to (monitor, optimized_metric, the callbacks' monitors)
    is defined in cvexp.metrics.names, for every experiment, not only the default."""
    cfg = compose_cfg("train", overrides)
    assert cfg.monitor in M.all_names()
    assert cfg.optimized_metric in M.all_names()
    for name, cb in (cfg.callbacks or {}).items():
        if cb is not None and "monitor" in cb:
            assert cb.monitor == cfg.monitor, name


def test_eval_config_requires_a_checkpoint(compose_cfg):
    from omegaconf.errors import MissingMandatoryValue

    cfg = compose_cfg("eval")
    with pytest.raises(MissingMandatoryValue):
        _ = cfg.ckpt_path


def test_slurm_launcher_composes(compose_cfg):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = compose_cfg("train", ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.partition == "gpu" and cfg.hydra.launcher.gpus_per_node == 1


def test_incompatible_optimizer_settings_are_a_one_line_config_error(compose_cfg):
    from cvexp.errors import ConfigError
    from cvexp.tasks import optim

    cfg = compose_cfg("train", ["optimizer=sgd", "regularization=decoupled_weight_decay"])
    module = torch.nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="AdamW cannot take the optimizer"):
        optim.configure(module, runs.optional(cfg.optimizer), None)


@pytest.mark.parametrize("override,key", [("+data.batchsize=4", "data.batchsize"),
                                          ("+model.chanels=8", "model.chanels"),
                                          ("+task.dice=1", "task.dice")])
def test_misspelt_keys_are_one_line_naming_them(compose_cfg, override, key):
    from cvexp.errors import ConfigError

    cfg = compose_cfg("train", ["data=demo_idd", "model=deeplabv3plus", "model.encoder_weights=null",
                                "task=segmentation", "aug=seg_basic", override])
    runs.resolve_inputs(cfg)
    with pytest.raises(ConfigError, match=rf"^{key} is not a setting of \w+") as e:
        dm = runs.build_datamodule(cfg)
        net = runs.build_model(cfg.model, dm.num_classes)
        runs.build_task(cfg.task, net=net, **runs.task_objects(cfg.task, dm))
    assert "\n" not in str(e.value)


def test_class_count_comes_from_the_data_module(compose_cfg):
    cfg = compose_cfg("train", ["data.class_names=[amur_tiger,birds,dog]"])
    runs.resolve_inputs(cfg)
    dm = runs.build_datamodule(cfg)
    net = runs.build_model(cfg.model, dm.num_classes)
    assert dm.num_classes == 3 and net(torch.zeros(1, 3, 64, 64)).shape == (1, 3)
