"""The Hydra wrapper every entry point shares: `entry_point(fn, config_name)` gives its `main()`.

One job (`run_job`): check the config against the schemas, write status.json, run `fn(cfg)`,
then record how it ended and choose the exit code:

| how it ended                         | status.json   | exit code              |
|--------------------------------------|---------------|------------------------|
| finished                             | completed     | 0                      |
| a user error (CvexpError)            | failed        | 2, one line on stderr  |
| SIGTERM / Ctrl-C                     | interrupted   | 143 / 130 (128 + signal) |
| anything else (a bug, a full disk)   | failed        | 1, one line on stderr; traceback in status.json and the log |

In a sweep, a failed job is recorded and the sweep goes on; a stop signal ends the whole sweep
(the report is written first, listing finished and interrupted jobs).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from cvexp.engine import signals
from cvexp.engine import rundir
from cvexp.errors import ConfigError, CvexpError

log = logging.getLogger("cvexp")


def output_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


def is_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def cli_overrides() -> list[str]:
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def is_rank_zero() -> bool:
    """False in the extra processes of a multi-process (DDP) run; they must not write run files."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def _log_to_files(level: int, msg: str) -> None:
    """Into the run's log file only: the console gets the message once, on stderr."""
    record = log.makeRecord(log.name, level, __file__, 0, msg, (), None)
    for h in logging.getLogger().handlers:
        if isinstance(h, logging.FileHandler):
            h.handle(record)


def user_error_in(e: BaseException) -> CvexpError | None:
    """The CvexpError behind `e`, also when Hydra's instantiate wrapped it."""
    from omegaconf.errors import MissingMandatoryValue

    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, CvexpError):
            return e
        if isinstance(e, MissingMandatoryValue):
            key = getattr(e, "full_key", None) or str(e).split(":")[-1].strip().splitlines()[0]
            return ConfigError(f"{key} has no value; set it on the command line: {key}=...")
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _stop_signal_of(e: BaseException) -> int | None:
    import signal

    from pytorch_lightning.utilities.exceptions import SIGTERMException

    if isinstance(e, signals.Interrupted):
        return e.signum
    if signals.received() is not None:
        return signals.received()
    if isinstance(e, SIGTERMException):
        return int(signal.SIGTERM)
    if isinstance(e, KeyboardInterrupt):
        return int(signal.SIGINT)
    return None


def fail(msg: str, code: int = 2) -> None:
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)


def entry_point(fn: Callable[[DictConfig], dict], config_name: str,
                prepare_argv: Callable[[list[str]], list[str]] | None = None) -> Callable[[], None]:
    """`main()` of an entry point: compose `conf/<config_name>.yaml` with the command line and run
    `fn` as a job (`run_job`). `prepare_argv` may rewrite the command line first (resume); the run
    and sweep directories are checked by `cvexp.engine.hydra_callbacks.RunDirGuard` before Hydra writes."""
    import hydra

    from cvexp.engine.config import config_dir

    @hydra.main(version_base="1.3", config_path=config_dir(), config_name=config_name)
    def _hydra_main(cfg: DictConfig) -> float | None:
        return run_job(fn, cfg)

    def main() -> None:
        use_headless_plots()
        _plugins_discoverable()
        if prepare_argv is not None:
            try:
                sys.argv[1:] = prepare_argv(sys.argv[1:])
            except CvexpError as e:
                fail(str(e))
        _hydra_main()

    main.__doc__ = fn.__doc__
    return main


def _plugins_discoverable() -> None:
    """cvexp's Hydra plugins (the Optuna sweeper) found from any directory, editable installs too."""
    try:
        from hydra_plugins.cvexp_optuna_sweeper import make_discoverable
    except ImportError:
        return
    make_discoverable()


def use_headless_plots() -> None:
    """Every figure of a command goes to a file: matplotlib's non-interactive backend."""
    if "matplotlib" in sys.modules:
        sys.modules["matplotlib"].use("Agg")
    else:  # picked up when a figure is first drawn; --help and --cfg job never import matplotlib
        os.environ["MPLBACKEND"] = "Agg"


def run_job(fn: Callable[[DictConfig], dict], cfg: DictConfig) -> float | None:
    """Run one job with its books kept in status.json (see the module docstring)."""
    if not is_rank_zero():  # DDP workers started by Lightning: rank 0 keeps the books
        return _metric(fn(cfg), cfg)
    out = output_dir(cfg)
    started = time.time()
    status = rundir.new_status(cfg.get("task_name"), cli_overrides())
    previous = rundir.read_status(out)
    if cfg.get("resume"):
        status["resumes"] = int(previous.get("resumes", 0)) + 1
        status["first_started"] = previous.get("first_started", previous.get("started"))
    try:
        rundir.refuse_finished_run_dir(out)  # (its status.json is not touched)
        if not cfg.get("resume"):
            rundir.refuse_unfinished_run_dir(out)
    except CvexpError as e:
        fail(str(e))
    signals.handle_stop_signals()
    try:
        out.mkdir(parents=True, exist_ok=True)
        rundir.write_json(out / rundir.STATUS_FILE, status)
        from cvexp.engine.schema import validate

        validate(cfg)
        metrics = fn(cfg)
    except BaseException as e:  # noqa: BLE001 - record every failure, then decide how to surface it
        return _ended_badly(e, cfg, out, status, started)
    finally:
        signals.restore_signals()
    status.update(status="completed", wall_time_s=round(time.time() - started, 2))
    _write_status(out, status)
    return _metric(metrics, cfg)


def _write_status(out: Path, status: dict) -> None:
    """A failed status write (full disk, removed dir) is reported, never hides the job's own error."""
    try:
        rundir.write_json(out / rundir.STATUS_FILE, status)
    except OSError as e:
        print(f"warning: could not update {out / rundir.STATUS_FILE} ({e}); the job ended "
              f"{status.get('status')}", file=sys.stderr)


def _ended_badly(e: BaseException, cfg: DictConfig, out: Path, status: dict, started: float):
    sig = _stop_signal_of(e)
    user = user_error_in(e)
    wall = round(time.time() - started, 2)
    if sig is not None:
        import signal as _signal

        name = _signal.Signals(sig).name
        status.update(status="interrupted", signal=name, error=f"stopped by {name}", wall_time_s=wall)
        _write_status(out, status)
        last = out / "checkpoints" / "last.ckpt"
        resume = f"; continue with: python -m cvexp resume={out}" if last.is_file() else ""
        msg = f"interrupted by {name}{resume}"
        _log_to_files(logging.WARNING, msg)
        print(msg, file=sys.stderr)
        if is_multirun():
            _report_stopped_sweep()
        raise SystemExit(signals.exit_code(sig))
    if user is not None:
        msg, code = str(user), 2
        status.update(status="failed", error=msg, wall_time_s=wall)
    elif isinstance(e, SystemExit):
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        msg = f"exited with code {code}"
        status.update(status="completed" if code == 0 else "failed", wall_time_s=wall,
                      **({"error": msg} if code else {}))
        _write_status(out, status)
        raise e
    else:
        msg, code = f"{type(e).__name__}: {e}", 1
        status.update(status="failed", error=msg, wall_time_s=wall, traceback=traceback.format_exc())
        _log_to_files(logging.ERROR, status["traceback"])
    _write_status(out, status)
    if is_multirun():  # the sweep goes on; the report lists this job with its error
        log.error("job failed: %s", msg)
        return float("nan")
    _log_to_files(logging.ERROR, f"error: {msg}")
    hint = f" (traceback in {out / rundir.STATUS_FILE})" if code == 1 else ""
    fail(msg.splitlines()[0] + hint if msg else "failed", code)


def _report_stopped_sweep() -> None:
    """A stop signal ends the whole sweep: write its report now (Hydra's end-of-sweep callback will
    not run), listing finished and interrupted jobs."""
    try:
        sweep_dir = Path(HydraConfig.get().sweep.dir)
        from cvexp.analysis import sweep_report as report

        files = report.write_report(sweep_dir)
        print(f"sweep stopped; report: {files['md']}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - the signal's exit code matters more than the report
        print(f"sweep stopped; could not write its report ({e})", file=sys.stderr)


def _metric(metrics: dict, cfg: DictConfig) -> float | None:
    metric_name = cfg.get("optimized_metric")
    value = metrics.get(metric_name) if metric_name else None
    return float(value) if value is not None else None
