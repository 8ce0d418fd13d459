"""YAML that runs and sweeps left behind is read safely: no anchors/aliases (alias bombs), no tags,
a size cap, one line naming the file (cvexp.io.yamlfile)."""

from __future__ import annotations

import time

import pytest
from omegaconf import OmegaConf

from cvexp.errors import ConfigError
from cvexp.io import yamlfile


def _alias_bomb(path, depth=9):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, depth)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_alias_bomb_is_refused_at_once_everywhere(tmp_path):
    bomb = _alias_bomb(tmp_path / "config.yaml")
    assert bomb.stat().st_size < 1000
    for load in (yamlfile.load_yaml, yamlfile.load_config, yamlfile.read_yaml_text):
        start = time.monotonic()
        with pytest.raises(ConfigError, match="anchors or aliases") as e:
            load(bomb)
        assert time.monotonic() - start < 1 and "\n" not in str(e.value) and str(bomb) in str(e.value)


def test_readers_of_run_files_fall_back_instead_of_expanding(tmp_path):
    from cvexp.analysis import sweep_report

    job = tmp_path / "0"
    (job / ".hydra").mkdir(parents=True)
    _alias_bomb(job / ".hydra" / "overrides.yaml")
    start = time.monotonic()
    assert sweep_report.recorded_overrides(job, {"overrides": ["seed=1"]}) == ["seed=1"]  # status.json's
    assert time.monotonic() - start < 1


def test_what_cvexp_and_hydra_write_reads_back(tmp_path):
    cfg = OmegaConf.create({"lr": 1e-3, "blocks": [{"c": 32}, {"c": 32}], "name": "*not an alias*",
                            "paths": {"out": "/tmp/x"}})
    OmegaConf.save(cfg, tmp_path / "config.yaml")
    assert yamlfile.load_config(tmp_path / "config.yaml") == cfg
    assert yamlfile.load_yaml(tmp_path / "config.yaml")["lr"] == 1e-3  # OmegaConf writes 0.001
    (tmp_path / "overrides.yaml").write_text("- seed=1\n- model=resnet18\n")
    assert yamlfile.load_yaml(tmp_path / "overrides.yaml") == ["seed=1", "model=resnet18"]


def test_tags_size_and_syntax(tmp_path, monkeypatch):
    (tmp_path / "tag.yaml").write_text("x: !!python/object/apply:os.system ['touch /tmp/pwned']\n")
    with pytest.raises(ConfigError, match="is not plain YAML"):  # a constructor error, never a call
        yamlfile.load_yaml(tmp_path / "tag.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        yamlfile.load_yaml(tmp_path / "bad.yaml")
    monkeypatch.setattr(yamlfile, "MAX_BYTES", 4)
    with pytest.raises(ConfigError, match="far more than a run's YAML file"):
        yamlfile.load_yaml(tmp_path / "bad.yaml")
