"""Signals that must not cut a save short: SIGINT (Ctrl-C), SIGTERM (``kill``, a job scheduler's
stop) and SIGHUP (a closed terminal).

:class:`DeferredSignals` is a context manager: inside it those signals are only noted; on the way
out the previous handlers come back and each noted signal is handed to its handler, in order (a
Python handler is called, the default action of SIGTERM or SIGHUP is taken by re-raising the
signal; an ignored signal stays ignored). With ``deliver=False`` the signals are kept in
``pending`` for the caller to act on. Regions nest: an inner region hands its signals to the
outer one. Outside the main thread (where Python cannot set handlers) the region does nothing.

| name         | what                                                                     |
|--------------|--------------------------------------------------------------------------|
| ``STOP_SIGNALS`` | the signals deferred: SIGINT, SIGTERM and, where it exists, SIGHUP   |
| ``pending``  | the signal numbers noted inside the region, oldest first                 |
| ``exit_status(signum)`` | 128 + signum, the shell's status for a run a signal stopped   |
"""
from __future__ import annotations

import signal
import threading
from typing import Any

__all__ = ["STOP_SIGNALS", "DeferredSignals", "exit_status", "signal_name"]

STOP_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
_MAX_PENDING = 8  # a held-down key sends many; a handful is all anyone acts on


def exit_status(signum: int) -> int:
    """The exit status of a command stopped by ``signum``: 128 + its number (130 for Ctrl-C)."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    """``"Ctrl-C"`` for SIGINT, else the signal's name (``"SIGTERM"``)."""
    if signum == signal.SIGINT:
        return "Ctrl-C"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class DeferredSignals:
    """Hold SIGINT, SIGTERM and SIGHUP while the block runs (see the module docstring)."""

    def __init__(self, deliver: bool = True):
        self.deliver = deliver
        self.pending: list[int] = []
        self.previous: dict[int, Any] = {}

    def _hold(self, signum: int, frame: Any) -> None:
        if len(self.pending) < _MAX_PENDING:
            self.pending.append(signum)

    def __enter__(self) -> DeferredSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self.previous[signum] = signal.signal(signum, self._hold)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self.previous.items():
            # a handler set outside Python reads as None: Python's own is the nearest
            signal.signal(signum, handler if handler is not None else _python_default(signum))
        if self.deliver:
            pending, self.pending = self.pending, []
            for signum in pending:
                _deliver(signum, self.previous.get(signum))

    def take(self) -> list[int]:
        """The signals noted so far, forgotten here (the caller acts on them)."""
        pending, self.pending = self.pending, []
        return pending


def _python_default(signum: int) -> Any:
    return signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL


def _deliver(signum: int, handler: Any) -> None:
    """Hand a held signal to the handler it would have reached."""
    handler = handler if handler is not None else _python_default(signum)
    if handler == signal.SIG_IGN:
        return
    if callable(handler):
        handler(signum, None)
    else:  # SIG_DFL: the default action (for SIGTERM and SIGHUP, the end of the process)
        signal.raise_signal(signum)


def held_by(handler: Any) -> DeferredSignals | None:
    """The region whose hold ``handler`` is, if it is one (so that a nested guard can adopt its signals)."""
    owner = getattr(handler, "__self__", None)
    return owner if isinstance(owner, DeferredSignals) else None
