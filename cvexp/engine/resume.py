"""`python -m cvexp resume=RUN_DIR [trainer.max_epochs=N]`: continue an interrupted run.

The run goes on in its own directory, with its own config (config.yaml, written when it started;
the command line may change only `trainer.max_epochs` and `data.num_workers`), from
`checkpoints/last.ckpt`, which holds the weights, optimizer and scheduler, the loop counters, the
best-metric trackers and best checkpoint, the history and the random states of the epoch end
(cvexp.engine.callbacks.RunState), and the W&B run id, so a resumed run ends where an uninterrupted one
would. Hydra's files of the resumed invocation go to `.hydra/resume-<time>/`; the first ones stay.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from cvexp.engine import rundir
from cvexp.errors import ConfigError

ALLOWED = ("trainer.max_epochs", "data.num_workers")
LAST = Path("checkpoints") / "last.ckpt"


def _key(arg: str) -> str:
    return arg.split("=", 1)[0].lstrip("+~")


def prepare_argv(argv: list[str]) -> list[str]:
    """With `resume=DIR` on the command line: check DIR can be resumed and point Hydra at it."""
    given = [a for a in argv if a.startswith("resume=")]
    if not given or given[-1] in ("resume=", "resume=null"):
        return argv
    if "-m" in argv or "--multirun" in argv:
        raise ConfigError("resume=... continues one run; drop -m/--multirun")
    run_dir = Path(given[-1].split("=", 1)[1]).expanduser().resolve()
    check_resumable(run_dir)
    extra = [a for a in argv if not a.startswith("resume=") and not a.startswith("-")]
    bad = [a for a in extra if _key(a) not in ALLOWED]
    if bad:
        raise ConfigError(f"resume=... continues the run with its own config ({run_dir / 'config.yaml'}); "
                          f"only {', '.join(ALLOWED)} may change, not {', '.join(bad)}. Start a new run "
                          "from its weights with ckpt_path=... instead")
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    flags = [a for a in argv if a.startswith("-")]
    return [*flags, f"resume={run_dir}", *extra, f"hydra.run.dir={run_dir}",
            f"hydra.output_subdir=.hydra/resume-{stamp}"]


def check_resumable(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise ConfigError(f"resume={run_dir}: no such run directory; pass the directory of a run of "
                          "python -m cvexp (outputs/train/runs/<time>)")
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"resume={run_dir}: not a cvexp training run (no config.yaml)")
    status = rundir.read_status(run_dir)
    if rundir.is_finished_run(run_dir):
        raise ConfigError(f"resume={run_dir}: the run has finished; nothing to resume (train longer from its "
                          "weights in a new run: ckpt_path=.../checkpoints/last.ckpt trainer.max_epochs=N)")
    if status.get("status") == "running" and status.get("host") == socket.gethostname():

        pid = status.get("pid")
        if isinstance(pid, int) and rundir.pid_alive(pid):
            raise ConfigError(f"resume={run_dir}: the run is still running (pid {pid}); stop it first")
    if not (run_dir / LAST).is_file():
        raise ConfigError(f"resume={run_dir}: no {LAST} (the run stopped before its first epoch ended); "
                          "start it again instead")


def resumed_config(cfg: DictConfig) -> tuple[DictConfig, dict]:
    """The run's own config with the allowed command-line changes, set to continue from last.ckpt;
    and what last.ckpt says of the run (`choices`, `epoch`)."""
    from cvexp.io.checkpoint import check_targets, read_file
    from cvexp.io.yamlfile import load_config

    run_dir = Path(cfg.resume)
    stored = load_config(run_dir / "config.yaml")
    check_targets(OmegaConf.to_container(stored, resolve=False), run_dir / "config.yaml")
    given = {_key(a) for a in _overrides()}
    ckpt = read_file(run_dir / LAST, "checkpoint", f"resume needs {LAST}")
    info = ckpt.get("cvexp") if isinstance(ckpt, dict) else None
    if not isinstance(info, dict):
        raise ConfigError(f"resume={run_dir}: {LAST} is not a cvexp checkpoint")
    stored = _moved_into(stored, run_dir)
    with open_dict(stored):
        for key in ALLOWED:
            if key in given:
                OmegaConf.update(stored, key, OmegaConf.select(cfg, key), force_add=True)
        stored.resume = str(run_dir)
        stored.ckpt_path = str(run_dir / LAST)
        stored.paths.output_dir = str(run_dir)
        logger = stored.get("logger") or {}
        if info.get("wandb_id") and isinstance(logger.get("wandb"), DictConfig):
            stored.logger.wandb.id = info["wandb_id"]  # the same W&B run goes on
            stored.logger.wandb.resume = "allow"
    epoch = int(ckpt.get("epoch", -1))
    max_epochs = OmegaConf.select(stored, "trainer.max_epochs")
    if isinstance(max_epochs, int) and 0 <= max_epochs < epoch:
        raise ConfigError(f"resume={run_dir}: the run already reached epoch {epoch}, beyond "
                          f"trainer.max_epochs={max_epochs}; give a larger trainer.max_epochs")
    import warnings

    # the run's own checkpoints are expected in its checkpoint folder
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
    return stored, {"choices": info.get("choices") or {}, "epoch": epoch}


# the keys by which a run's config names where it writes
OUTPUT_KEYS = ("output_dir", "default_root_dir", "dirpath", "save_dir")


def _moved_into(stored: DictConfig, run_dir: Path) -> DictConfig:
    """The stored config with every path under the run's original folder moved into `run_dir` (a
    copied or moved run writes into itself, never into the run it was copied from); refused if any
    place it writes (OUTPUT_KEYS) is still outside `run_dir`."""
    from cvexp.io.checkpoint import walk

    old = str(OmegaConf.select(stored, "paths.output_dir") or "")
    new = str(run_dir)

    def move(node):
        if isinstance(node, dict):
            return {k: move(v) for k, v in node.items()}
        if isinstance(node, list):
            return [move(v) for v in node]
        if isinstance(node, str) and old and (node == old or node.startswith(old.rstrip("/") + "/")):
            return new + node[len(old.rstrip("/")):]
        return node

    moved = move(OmegaConf.to_container(stored, resolve=False))
    for key, node in moved.items():
        for where, value in walk(node, str(key)):
            if where.rsplit(".", 1)[-1] not in OUTPUT_KEYS or not isinstance(value, str) or not value:
                continue
            if Path(value).expanduser().resolve().is_relative_to(run_dir.resolve()):
                continue
            raise ConfigError(f"resume={run_dir}: {where}={value} in its config.yaml writes outside the run "
                              "directory; a resumed run writes only into itself. Start a new run from its "
                              "weights instead: ckpt_path=<run dir>/checkpoints/last.ckpt")
    return OmegaConf.create(moved)


def _overrides() -> list[str]:
    from cvexp.engine.entry import cli_overrides

    return cli_overrides()
