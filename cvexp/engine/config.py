"""Where the Hydra configs live, in a source checkout and after a plain `pip install`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def config_dir() -> str:
    """Absolute path of the `conf/` tree.

    A source checkout (editable install or running from the repo) uses `<repo>/conf`; a wheel
    ships the same files as the package data `cvexp/conf` (see pyproject.toml).
    """
    repo_conf = Path(__file__).resolve().parents[2] / "conf"  # cvexp/engine/config.py -> <repo>/conf
    if (repo_conf / "train.yaml").is_file():
        return str(repo_conf)
    packaged = Path(str(resources.files("cvexp") / "conf"))
    if (packaged / "train.yaml").is_file():
        return str(packaged)
    raise FileNotFoundError(
        f"cvexp configs not found in {repo_conf} or {packaged}; reinstall cvexp (pip install .)"
    )
