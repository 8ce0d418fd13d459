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

Jobs of a sweep on the joblib launcher (`hydra/launcher=joblib`) run side by side in worker
processes; before each one starts, `share_cores` caps its torch threads at `cores // parallel jobs`
(at least 1), so that n_jobs x threads <= cores.

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


def parallel_jobs(config: DictConfig) -> int | None:
    """How many jobs of the sweep run at once in local worker processes (the joblib launcher's
    `n_jobs`, -1 = every core, -2 = all but one, as joblib counts them); None for launchers that
    run one job at a time in this process or on other machines."""
    try:
        launcher = config.hydra.launcher
        target = str(launcher.get("_target_", ""))
    except Exception:  # noqa: BLE001 - no hydra node (called by hand)
        return None
    if not target.endswith("JoblibLauncher"):
        return None
    from joblib import cpu_count

    n = int(launcher.get("n_jobs") or -1)
    return max(1, n if n > 0 else cpu_count() + 1 + n)


def share_cores(config: DictConfig) -> int | None:
    """In a job of a parallel local sweep: at most cores // parallel jobs torch threads (at least 1),
    so that n_jobs x threads <= cores. joblib's loky workers already start with OMP_NUM_THREADS set
    that way unless the user set it; this also holds when the user asked for more. Returns the
    job's thread count, None for other launchers (nothing changed)."""
    n_jobs = parallel_jobs(config)
    if n_jobs is None:
        return None
    import torch
    from joblib import cpu_count

    limit = max(1, cpu_count() // n_jobs)
    if torch.get_num_threads() > limit:
        log.info("%d parallel job(s) on %d core(s): %d torch thread(s) for this one (was %d)", n_jobs,
                 cpu_count(), limit, torch.get_num_threads())
        torch.set_num_threads(limit)
    return torch.get_num_threads()


class StopSignalForwarder:
    """The sweep's main process while jobs run in joblib worker processes. A scheduler's SIGTERM
    reaches this process only: it is passed on to the workers, whose jobs then stop at the next
    batch boundary, save last.ckpt, record `interrupted` and write the sweep report
    (cvexp.engine.entry); the sweep ends with their exit code (143). Ctrl-C reaches every process
    of the terminal's group by itself, so this process only waits for its workers. A second signal
    stops at once (joblib then ends its workers)."""

    SIGNALS = ("SIGTERM", "SIGINT")

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> StopSignalForwarder:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                s = getattr(signal, name)
                self._previous[s] = signal.getsignal(s)
                signal.signal(s, self._handle)
        return self

    def restore(self) -> None:
        import signal

        for s, h in self._previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        import signal

        if self.received is not None:  # the second signal: do not wait any longer
            self.restore()
            raise KeyboardInterrupt
        self.received = signum
        if signum != signal.SIGINT:  # (Ctrl-C has reached the workers already)
            forward_signal(signum)
        log.warning("%s: waiting for the running jobs to stop and save their state (again to stop at once)",
                    signal.Signals(signum).name)


_forwarder: StopSignalForwarder | None = None  # (module state: the callback itself is pickled to workers)


def _stop_forwarding() -> None:
    global _forwarder
    if _forwarder is not None:
        _forwarder.restore()
        _forwarder = None


def forward_signal(signum: int) -> list[int]:
    """Send `signum` to this process's worker processes (multiprocessing/loky children); their pids."""
    import multiprocessing

    sent = []
    for p in multiprocessing.active_children():
        try:
            os.kill(p.pid, signum)
            sent.append(p.pid)
        except (ProcessLookupError, TypeError):
            pass
    return sent


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
        global _forwarder
        if parallel_jobs(config) is not None and _forwarder is None:
            _forwarder = StopSignalForwarder().install()
        # resolved once, here: ${now:...} in the sweep dir must give the folder the jobs use
        self._sweep_dir = sweep_dir_of(config)
        self._sweep_overrides = _overrides_of(config)
        if self._sweep_dir is not None:
            self._old_group = os.environ.get(GROUP_ENV)
            os.environ[GROUP_ENV] = sweep_group_name(self._sweep_dir)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        share_cores(config)  # joblib launcher: jobs side by side share the cores
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
        _stop_forwarding()
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
        search = report.read_search_results(sweep_dir)
        if not bad and search is not None and search.get("best_trial") is None and search.get("n_trials"):
            log.error("no trial of the search completed with a value (see %s); no best parameters",
                      sweep_dir / report.OPTUNA_TRIALS_CSV)
            if self.fail_on_error:
                raise SystemExit(1)
        if not bad:
            return
        lines = [f"{len(bad)} of {len(rows)} job(s) of the sweep did not complete:"]
        for r in bad:
            why = report.one_line(r["error"], 240) or "no error recorded (killed?)"
            lines.append(f"  job {r['job']} [{r['status']}] {' '.join(r['overrides'])}: {why}")
        lines.append(f"details: {sweep_dir}/<job>/status.json; report: {sweep_dir / report.REPORT_MD}")
        if search_tolerated_failures(sweep_dir):
            lines.append("the search tolerates these (hydra.sweeper.max_failure_rate) and found its best trial")
            log.warning("\n".join(lines))
            return
        log.error("\n".join(lines))
        if self.fail_on_error:
            # SystemExit passes through Hydra's error handling: the sweep's exit code says it failed
            raise SystemExit(1)

    def _restore_group(self) -> None:
        if self._old_group is None:
            os.environ.pop(GROUP_ENV, None)
        else:
            os.environ[GROUP_ENV] = self._old_group


def search_tolerated_failures(sweep_dir: Path) -> bool:
    """A hyperparameter search (the Optuna sweeper) whose failed trials stayed within its
    max_failure_rate and that has a best trial: its failures do not fail the sweep."""
    from cvexp.analysis import sweep_report as report

    res = report.read_search_results(sweep_dir)
    return bool(res) and not res.get("stopped_by_failures") and res.get("best_trial") is not None


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
            rundir.refuse_foreign_dir(run_dir)
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
