"""Typed checks of a composed config, before any data is read or any model built.

Each schema is a dataclass: a field's annotation is the type its key must have, `rule(...)` adds
bounds, allowed values or a sum. `validate(cfg)` checks every key that the config holds (keys a
config group leaves out are not required) and raises a one-line `ConfigError` naming the key, the
value and what is allowed. A new key gets its check by adding one field here.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Union

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from cvexp.errors import ConfigError

Number = Union[int, float]


def rule(*, ge: float | None = None, gt: float | None = None, le: float | None = None,
         choices: tuple | None = None, length: int | None = None, sums_to: float | None = None,
         each_ge: float | None = None, each_gt: float | None = None, str_choices: tuple | None = None,
         note: str = "") -> Any:
    """`str_choices`: the words allowed besides a number (e.g. num_workers: auto)."""
    return field(default=None, metadata={k: v for k, v in dict(
        ge=ge, gt=gt, le=le, choices=choices, length=length, sums_to=sums_to, each_ge=each_ge,
        each_gt=each_gt, str_choices=str_choices, note=note).items() if v not in (None, "")})


@dataclass
class TrainerSchema:
    max_epochs: Optional[int] = rule(ge=-1, note="-1 = no limit")
    min_epochs: Optional[int] = rule(ge=0)
    max_steps: Optional[int] = rule(ge=-1, note="-1 = no limit")
    num_nodes: int = rule(ge=1)
    log_every_n_steps: Optional[int] = rule(ge=1)
    check_val_every_n_epoch: Optional[int] = rule(ge=1)
    accumulate_grad_batches: int = rule(ge=1)
    gradient_clip_val: Optional[Number] = rule(ge=0)
    limit_train_batches: Optional[Number] = rule(ge=0)
    limit_val_batches: Optional[Number] = rule(ge=0)
    limit_test_batches: Optional[Number] = rule(ge=0)
    num_sanity_val_steps: Optional[int] = rule(ge=-1)
    accelerator: str = rule(choices=("auto", "cpu", "gpu", "cuda", "mps", "tpu", "hpu"))
    deterministic: Optional[Union[bool, str]] = rule()
    precision: Union[int, str] = rule(choices=("32-true", "32", 32, "16-mixed", "bf16-mixed", "16-true",
                                               "bf16-true", "64-true", "64", 64, "16", 16, "bf16",
                                               "transformer-engine"))


@dataclass
class DataSchema:
    batch_size: int = rule(ge=1)
    num_workers: Union[int, str] = rule(ge=0, str_choices=("auto",), note="auto = the cores a run can use")
    image_size: Optional[int] = rule(ge=1, note="null = the model's input size")
    base_size: Optional[int] = rule(ge=1)
    n_images: int = rule(ge=10)
    n_train: int = rule(ge=1)
    n_val: int = rule(ge=1)
    split: list = rule(length=3, each_ge=0, sums_to=1.0, note="train/val/test fractions")
    mean: Optional[list] = rule(length=3)
    std: Optional[list] = rule(length=3, each_gt=0)
    label_level: int = rule(choices=(1, 2, 3))
    skip_corrupt: bool = rule()
    verify_images: bool = rule()
    fold: Optional[int] = rule(ge=0, note="k-fold: the fold used as val, 0..num_folds-1; null = no folds")
    num_folds: Optional[int] = rule(ge=2, note="k-fold: how many folds; null = no folds")
    sampler: Optional[str] = rule(choices=("balanced",), note="null = a plain shuffle")
    reduced_decode: bool = rule()


@dataclass
class OptimizerSchema:
    lr: Number = rule(gt=0)
    weight_decay: Number = rule(ge=0)
    momentum: Number = rule(ge=0, le=1)


@dataclass
class TaskSchema:
    label_smoothing: Number = rule(ge=0, le=1)
    l2_penalty: Number = rule(ge=0)
    dice_weight: Number = rule(ge=0)
    class_weights: Optional[Union[str, list]] = rule(
        each_ge=0, note="balanced, null, or one number >= 0 per class")


@dataclass
class PathsSchema:
    root_dir: str = rule()
    data_dir: str = rule()
    log_dir: str = rule()
    cache_dir: str = rule()


@dataclass
class RunSchema:
    seed: Optional[int] = rule()
    ckpt_path: Optional[str] = rule()
    resume: Optional[str] = rule()
    train: bool = rule()
    test: bool = rule()
    split: str = rule(choices=("train", "val", "test"))


SCHEMAS: dict[str, type] = {"": RunSchema, "trainer": TrainerSchema, "data": DataSchema,
                            "optimizer": OptimizerSchema, "task": TaskSchema, "paths": PathsSchema}


def validate(cfg: DictConfig, schemas: dict[str, type] = SCHEMAS) -> None:
    for node_key, schema in schemas.items():
        node = cfg if not node_key else cfg.get(node_key) if isinstance(cfg, DictConfig) else None
        if not isinstance(node, DictConfig):
            continue
        hints = typing.get_type_hints(schema)
        for f in fields(schema):
            if f.name not in node.keys():  # (`in` alone is False for a missing ??? value)
                continue
            key = f"{node_key}.{f.name}" if node_key else f.name
            if OmegaConf.is_missing(node, f.name):
                raise ConfigError(f"{key} has no value; set it on the command line: {key}=...")
            try:
                value = node[f.name]
            except MissingMandatoryValue as e:
                raise ConfigError(f"{key} refers to a value that is not set ({_first(e)}); set it: {key}=...") from None
            except InterpolationResolutionError as e:
                raise ConfigError(f"{key} cannot be resolved ({_first(e)}); set it: {key}=...") from None
            if isinstance(value, ListConfig):
                value = OmegaConf.to_container(value, resolve=True)
            _check(key, value, hints[f.name], f.metadata)


def _first(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:120]


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string", list: "a list",
            type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


def _matches(value, tp) -> bool:
    origin = typing.get_origin(tp)
    if origin is Union:
        return any(_matches(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is Any:
        return True
    return isinstance(value, origin or tp)


def _check(key: str, value, tp, rules) -> None:
    def fail(what: str) -> None:
        note = f" ({rules['note']})" if rules.get("note") else ""
        raise ConfigError(f"{key}={value!r} is not allowed: {what}{note}; fix it on the command line or in "
                          "the config file")

    if not _matches(value, tp):
        fail(f"expected {_type_name(tp)}")
    if value is None:
        return
    if isinstance(value, str) and "str_choices" in rules and value not in rules["str_choices"]:
        fail("a number or " + ", ".join(rules["str_choices"]))
    if "choices" in rules and value not in rules["choices"]:
        fail("choose one of " + ", ".join(str(c) for c in rules["choices"]))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            fail("expected a finite number")
        if "ge" in rules and value < rules["ge"]:
            fail(f"must be >= {rules['ge']}")
        if "gt" in rules and value <= rules["gt"]:
            fail(f"must be > {rules['gt']}")
        if "le" in rules and value > rules["le"]:
            fail(f"must be <= {rules['le']}")
    if isinstance(value, list):
        if "length" in rules and len(value) != rules["length"]:
            fail(f"expected {rules['length']} values")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            fail("expected numbers")
        if "each_ge" in rules and any(v < rules["each_ge"] for v in value):
            fail(f"every value must be >= {rules['each_ge']}")
        if "each_gt" in rules and any(v <= rules["each_gt"] for v in value):
            fail(f"every value must be > {rules['each_gt']}")
        if "sums_to" in rules and abs(sum(value) - rules["sums_to"]) > 1e-6:
            fail(f"the values must add up to {rules['sums_to']:g} (they add up to {sum(value):g})")
