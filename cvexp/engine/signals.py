"""Stopping on SIGTERM (schedulers, preemption) and Ctrl-C without losing work.

`handle_stop_signals()` installs one handler for SIGTERM and SIGINT. While a Trainer is fitting
(`deferred_to(trainer)`), the first signal only asks Lightning to stop at the next batch boundary
(its own SIGTERM path, which raises `SIGTERMException` there), so the weights are never caught
half-updated and a checkpoint can be saved; outside fit it raises `Interrupted` at once. A second
Ctrl-C always interrupts at once. `received()` tells the entry point which signal ended the job, so
it can record `interrupted` and exit with 128 + the signal number (143 for SIGTERM, 130 for Ctrl-C).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any


class Interrupted(BaseException):
    """A stop signal arrived outside a fit (BaseException: no `except Exception` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


_state: dict[str, Any] = {"signum": None, "trainer": None, "count": 0}
_previous: dict[int, Any] = {}


def received() -> int | None:
    """The first stop signal received since `handle_stop_signals()`, or None."""
    return _state["signum"]


def _handler(signum, frame) -> None:
    _state["count"] += 1
    if _state["signum"] is None:
        _state["signum"] = signum
    trainer = _state["trainer"]
    if trainer is not None and _state["count"] == 1:
        # Lightning checks this flag after every batch and raises SIGTERMException there
        trainer._signal_connector.received_sigterm = True
        return
    if trainer is not None and signum == signal.SIGTERM:
        return  # Lightning's own handler is composed with this one; it stops at the batch boundary
    raise Interrupted(signum)


def handle_stop_signals() -> None:
    """Install the handler (main thread only; elsewhere signals keep their handlers)."""
    _state.update(signum=None, trainer=None, count=0)
    if threading.current_thread() is not threading.main_thread():
        return
    for s in (signal.SIGTERM, signal.SIGINT):
        _previous.setdefault(s, signal.getsignal(s))
        signal.signal(s, _handler)


def restore_signals() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for s, h in _previous.items():
        signal.signal(s, h if h is not None else signal.SIG_DFL)
    _previous.clear()


@contextmanager
def deferred_to(trainer):
    """While fitting, a stop signal asks `trainer` to stop at the next batch boundary."""
    _state["trainer"] = trainer
    try:
        yield
    finally:
        _state["trainer"] = None


def exit_code(signum: int) -> int:
    return 128 + int(signum)
