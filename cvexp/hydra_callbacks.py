"""Hydra callbacks (registered in conf/hydra/default.yaml under `hydra.callbacks`).

`RunDirGuard` runs before Hydra writes anything into a run or sweep directory: a directory that
holds a finished run (single runs) or an earlier sweep (multiruns), or that cannot be created or
written, is refused with one line and exit code 2, so nothing of a finished run is overwritten.

`SweepReport` writes the sweep report (report.md, report.csv, report.png; cvexp.analysis.sweep_report)
into the multirun directory when a sweep ends, then, if any job failed, logs which ones and why
and makes the process exit with code 1, after the report is written. `python -m cvexp.report DIR`
rebuilds the same report by hand.

It also keeps W&B runs apart and named (conf/logger/wandb.yaml reads two environment variables):
- while a sweep runs, `CVEXP_SWEEP_GROUP` holds the sweep directory, the W&B `group`, so the
  runs of one sweep are grouped (and compared) on the dashboard; single runs have no group;
- before each job, `CVEXP_RUN_NAME` is set to the job's own overrides (those the sweep varies,
  e.g. `aug=strong seed=1`), the W&B run name;
- after each job the job's W&B run is finished, so the next job of the sweep (same process)
  starts its own run instead of Lightning's WandbLogger reusing the process-global `wandb.run`;
- when the sweep's jobs logged to W&B, the report (image, job and group tables) becomes one more
  run of the group, with job_type `sweep_report`.

Choose the baseline group of the seed statistics with
`'hydra.callbacks.sweep_report.baseline="aug=none"'` (default: the first group) and the
significance level with `hydra.callbacks.sweep_report.alpha=0.01`. Turn the report off with
`hydra.callbacks.sweep_report.enabled=false`, or keep exit code 0 when jobs failed with
`hydra.callbacks.sweep_report.fail_on_error=false`.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("cvexp.sweep")

GROUP_ENV = "CVEXP_SWEEP_GROUP"
RUN_NAME_ENV = "CVEXP_RUN_NAME"
WANDB_GROUP_MAX = 128  # W&B limits group names
RUN_NAME_MAX = 128


def sweep_group_name(sweep_dir: str | os.PathLike) -> str:
    """The W&B group of a sweep: its directory, relative to the working dir when below it."""
    p = Path(sweep_dir)
    try:
        name = str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        name = str(p)
    return name[-WANDB_GROUP_MAX:]


def sweep_dir_of(config: DictConfig) -> Path | None:
    try:
        return Path(str(config.hydra.sweep.dir))
    except Exception:  # noqa: BLE001 - no hydra node (called by hand) or unresolvable
        return None


def _overrides_of(config: DictConfig) -> list[str]:
    try:
        return [str(o) for o in config.hydra.overrides.task]
    except Exception:  # noqa: BLE001 - no hydra node (called by hand)
        return []


def run_name(job_overrides: list[str], sweep_overrides: list[str] | None = None) -> str:
    """A job's W&B name: its overrides without those every job of the sweep shares
    (`debug=fast aug=strong seed=1` in a sweep of `debug=fast aug=none,strong seed=0,1` ->
    `aug=strong seed=1`); all of them when nothing is left; "" without overrides."""
    shared = set(sweep_overrides or [])
    own = [o for o in job_overrides if o not in shared] or list(job_overrides)
    name = " ".join(own)
    return name if len(name) <= RUN_NAME_MAX else name[: RUN_NAME_MAX - 3] + "..."


def finish_wandb_run() -> None:
    """Finish the process's W&B run, if W&B is loaded and a run is open."""
    wandb = sys.modules.get("wandb")
    if wandb is None or getattr(wandb, "run", None) is None:
        return
    try:
        wandb.finish()
    except Exception as e:  # noqa: BLE001 - W&B trouble must not fail a finished job
        log.warning("could not finish the W&B run: %s", e)


class SweepReport(Callback):
    def __init__(self, enabled: bool = True, fail_on_error: bool = True, baseline: Any = None,
                 alpha: float = 0.05, log_to_wandb: bool = True) -> None:
        self.enabled = enabled
        self.fail_on_error = fail_on_error
        if baseline is not None and hasattr(baseline, "items"):
            baseline = {str(k): str(v) for k, v in baseline.items()}
        self.baseline = baseline
        self.alpha = float(alpha)
        self.log_to_wandb = log_to_wandb
        self._sweep_dir: Path | None = None
        self._old_group: str | None = None
        self._sweep_overrides: list[str] | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # resolved once, here: ${now:...} in the sweep dir must give the folder the jobs use
        self._sweep_dir = sweep_dir_of(config)
        self._sweep_overrides = _overrides_of(config)
        if self._sweep_dir is not None:
            self._old_group = os.environ.get(GROUP_ENV)
            os.environ[GROUP_ENV] = sweep_group_name(self._sweep_dir)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        finish_wandb_run()  # a run left open by anything before this job is not this job's
        name = run_name(_overrides_of(config), self._sweep_overrides)
        if name:
            os.environ[RUN_NAME_ENV] = name
        else:
            os.environ.pop(RUN_NAME_ENV, None)

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        finish_wandb_run()  # the next job of the sweep starts its own W&B run
        os.environ.pop(RUN_NAME_ENV, None)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = self._sweep_dir or sweep_dir_of(config)
        self._restore_group()
        if not self.enabled or sweep_dir is None or not sweep_dir.is_dir():
            return
        from cvexp.analysis import sweep_report as report

        rows = report.collect_rows(sweep_dir)
        files = {}
        try:
            files = report.write_report(sweep_dir, rows=rows, baseline=self.baseline, alpha=self.alpha)
            log.info("sweep report: %s (%d jobs)", files["md"], len(rows))
        except Exception as e:  # noqa: BLE001 - a broken plot must not hide the jobs' own results
            log.exception("could not write the sweep report in %s: %s", sweep_dir, e)
        settings = report.wandb_settings(rows) if self.log_to_wandb else None
        if settings and files:
            try:
                run_id = report.log_to_wandb(sweep_dir, files, settings, rows)
                log.info("sweep report logged to W&B run %s (group %s)", run_id, settings.get("group"))
            except Exception as e:  # noqa: BLE001 - the dashboard copy is a convenience
                log.warning("could not log the sweep report to W&B: %s", e)
        bad = report.failed_rows(rows)
        if not bad:
            return
        lines = [f"{len(bad)} of {len(rows)} job(s) of the sweep did not complete:"]
        for r in bad:
            why = report.one_line(r["error"], 240) or "no error recorded (killed?)"
            lines.append(f"  job {r['job']} [{r['status']}] {' '.join(r['overrides'])}: {why}")
        lines.append(f"details: {sweep_dir}/<job>/status.json; report: {sweep_dir / report.REPORT_MD}")
        log.error("\n".join(lines))
        if self.fail_on_error:
            # SystemExit passes through Hydra's error handling: the sweep's exit code says it failed
            raise SystemExit(1)

    def _restore_group(self) -> None:
        if self._old_group is None:
            os.environ.pop(GROUP_ENV, None)
        else:
            os.environ[GROUP_ENV] = self._old_group


def _refuse(msg: str) -> None:
    import sys

    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(2)


class RunDirGuard(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from cvexp.engine import rundir
        from cvexp.errors import CvexpError

        try:
            run_dir = Path(str(config.hydra.run.dir))
            rundir.check_writable_dir(run_dir, "hydra.run.dir")
            rundir.refuse_finished_run_dir(run_dir)
        except CvexpError as e:
            _refuse(str(e))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from cvexp.engine import rundir
        from cvexp.errors import CvexpError

        sweep_dir = sweep_dir_of(config)
        if sweep_dir is None:
            return
        try:
            rundir.check_writable_dir(sweep_dir, "hydra.sweep.dir")
            rundir.refuse_used_sweep_dir(sweep_dir)
        except CvexpError as e:
            _refuse(str(e))
