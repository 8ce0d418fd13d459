"""Hydra callbacks (registered in conf/hydra/default.yaml under `hydra.callbacks`).

`RunDirGuard` runs before Hydra writes anything into a run or sweep directory: a directory that
holds a finished run (single runs) or an earlier sweep (multiruns), or that cannot be created or
written, is refused with one line and exit code 2, so nothing of a finished run is overwritten.

`SweepReport` writes the sweep report (report.md, report.csv, report.png; cvexp.analysis.report)
into the multirun directory when a sweep ends, then, if any job failed, logs which ones and why
and makes the process exit with code 1, after the report is written. `python -m cvexp.report DIR`
rebuilds the same report by hand.

It also names the sweep for loggers: while a sweep runs, `CVEXP_SWEEP_GROUP` holds the sweep
directory, and conf/logger/wandb.yaml uses it as the W&B `group`, so the runs of one sweep are
grouped (and compared) on the W&B dashboard. Single runs leave it unset (no group).

Turn the report off with `hydra.callbacks.sweep_report.enabled=false`, or keep exit code 0 when
jobs failed with `hydra.callbacks.sweep_report.fail_on_error=false`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("cvexp.sweep")

GROUP_ENV = "CVEXP_SWEEP_GROUP"
WANDB_GROUP_MAX = 128  # W&B limits group names


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


class SweepReport(Callback):
    def __init__(self, enabled: bool = True, fail_on_error: bool = True) -> None:
        self.enabled = enabled
        self.fail_on_error = fail_on_error
        self._sweep_dir: Path | None = None
        self._old_group: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # resolved once, here: ${now:...} in the sweep dir must give the folder the jobs use
        self._sweep_dir = sweep_dir_of(config)
        if self._sweep_dir is not None:
            self._old_group = os.environ.get(GROUP_ENV)
            os.environ[GROUP_ENV] = sweep_group_name(self._sweep_dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = self._sweep_dir or sweep_dir_of(config)
        self._restore_group()
        if not self.enabled or sweep_dir is None or not sweep_dir.is_dir():
            return
        from cvexp.analysis import report

        rows = report.collect_rows(sweep_dir)
        try:
            files = report.write_report(sweep_dir, rows=rows)
            log.info("sweep report: %s (%d jobs)", files["md"], len(rows))
        except Exception as e:  # noqa: BLE001 - a broken plot must not hide the jobs' own results
            log.exception("could not write the sweep report in %s: %s", sweep_dir, e)
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
