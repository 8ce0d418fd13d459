"""A run directory's books: status.json and metrics.json, atomic writes, and the refusals that
keep finished runs safe (a finished run's directory is never written into again).

status.json: {"status": running | completed | failed | interrupted, "task_name", "overrides",
"started", "pid", "host", "wall_time_s", "error"?, "traceback"?, "signal"?}.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cvexp.io.atomic import atomic_write_bytes
from cvexp.errors import RunDirError

STATUS_FILE = "status.json"
METRICS_FILE = "metrics.json"
SWEEP_FILE = "multirun.yaml"  # Hydra writes it into every sweep directory


def read_status(run_dir: str | os.PathLike) -> dict:
    try:
        status = json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (a status.json saying "running" may be stale)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_finished_run(run_dir: str | os.PathLike) -> bool:
    return read_status(run_dir).get("status") == "completed" or (Path(run_dir) / METRICS_FILE).is_file()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    atomic_write_bytes(path, text.encode())


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def new_status(task_name: str | None, overrides: Iterable[str]) -> dict:
    import time

    return {"status": "running", "task_name": task_name, "overrides": list(overrides),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "pid": os.getpid(), "host": socket.gethostname()}


# ------------------------------------------------------------------------------- refusals

def refuse_finished_run_dir(run_dir: str | os.PathLike) -> None:
    if is_finished_run(run_dir):
        raise RunDirError(f"{run_dir} holds a finished run ({STATUS_FILE}/{METRICS_FILE}); choose a new "
                          "hydra.run.dir so its outputs are kept")


def refuse_unfinished_run_dir(run_dir: str | os.PathLike) -> None:
    """A new run never writes into a directory that a live job is using, or that holds a run a
    `resume=` could continue (its last.ckpt and config would be overwritten)."""
    status = read_status(run_dir)
    state, pid, host = status.get("status"), status.get("pid"), status.get("host")
    if state == "running" and isinstance(pid, int) and pid != os.getpid():
        if host != socket.gethostname() or pid_alive(pid):
            raise RunDirError(f"{run_dir} is in use by a running job (pid {pid} on {host}); choose another "
                              "hydra.run.dir")
    if state in ("running", "interrupted") and (Path(run_dir) / "checkpoints" / "last.ckpt").is_file():
        raise RunDirError(f"{run_dir} holds an unfinished run that can be resumed; continue it with "
                          f"python -m cvexp resume={run_dir}, or choose another hydra.run.dir")


def refuse_foreign_dir(run_dir: str | os.PathLike) -> None:
    """A run goes into a new or empty folder, or one that holds a cvexp run (status.json: the
    refusals above decide) or study (study.json); a folder of someone's files is never written into (Hydra's own
    `.hydra/` and job log of an invocation that stopped before its run began are not files of theirs)."""
    from cvexp.studies import STUDY_LEDGER  # a study's folder: the study runner decides

    d = Path(run_dir)
    if not d.is_dir() or (d / STATUS_FILE).exists() or (d / STUDY_LEDGER).exists():
        return
    foreign = sorted(p.name for p in d.iterdir() if p.name != ".hydra" and p.suffix != ".log")
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise RunDirError(f"{d} holds files that are not a cvexp run ({shown}); a run writes only into a new or "
                          "empty folder: choose another hydra.run.dir")


def refuse_used_sweep_dir(sweep_dir: str | os.PathLike) -> None:
    """A sweep directory that already holds a sweep (Hydra's multirun.yaml, or any job with a
    status.json) would have its jobs' configs overwritten: refused."""
    d = Path(sweep_dir)
    if not d.is_dir():
        return
    jobs = [j for j in d.iterdir() if j.is_dir() and (j / STATUS_FILE).is_file()]
    if (d / SWEEP_FILE).is_file() or jobs:
        finished = sum(is_finished_run(j) for j in jobs)
        raise RunDirError(f"{d} already holds a sweep ({len(jobs)} job(s), {finished} finished); choose a new "
                          "hydra.sweep.dir so its outputs are kept")


def check_writable_dir(path: str | os.PathLike, key: str) -> None:
    """`path` is, or can be made, a writable directory; else a one-line error naming `key`."""
    p = Path(path).expanduser()
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise RunDirError(f"{key}={p} cannot be created: {probe} is a file, not a directory; "
                          f"set {key} to a directory")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise RunDirError(f"{key}={p} is not writable ({probe} is read-only for this user); "
                          f"set {key} to a writable directory")
