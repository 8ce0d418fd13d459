"""Reading YAML that runs and sweeps left behind (config.yaml, Hydra's .hydra/*.yaml, study and sweep
files), which may come from anywhere: only through a safe loader, at most MAX_BYTES, and without
anchors or aliases (`&a` / `*a`). cvexp and Hydra never write those, and a few hundred bytes of
nested aliases (a "billion laughs" file) expand to gigabytes and minutes when loaded."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import yaml

from cvexp.errors import ConfigError

MAX_BYTES = 16 << 20


def read_yaml_text(path: str | os.PathLike) -> str:
    """The text of a YAML file, checked: a one-line ConfigError for one that is too large, not
    YAML, or that uses anchors or aliases."""
    p = Path(path)
    size = p.stat().st_size
    if size > MAX_BYTES:
        raise ConfigError(f"{p} is {size / 1e6:.0f} MB, far more than a run's YAML file; refused")
    text = p.read_text()
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ConfigError(f"{p} uses YAML anchors or aliases (&/*), which cvexp and Hydra never "
                                  "write (nested aliases can fill the memory); write the values out instead")
    except yaml.YAMLError as e:
        raise ConfigError(f"{p} is not valid YAML ({str(e).splitlines()[0][:120]})") from None
    return text


def load_yaml(path: str | os.PathLike) -> Any:
    """Plain Python objects from a checked YAML file (yaml.safe_load: a tag such as
    !!python/object is an error, never a call)."""
    text = read_yaml_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not plain YAML ({str(e).splitlines()[0][:120]})") from None


def load_config(path: str | os.PathLike):
    """An OmegaConf config from a checked YAML file (OmegaConf's own loader, as OmegaConf.load)."""
    from omegaconf import OmegaConf

    return OmegaConf.load(io.StringIO(read_yaml_text(path)))
