"""The ``frontier`` console script: Ctrl-C and SIGTERM handled before Frontier is imported.

A module of its own, outside the ``frontier_core`` package on purpose: importing the
command (the command-line library, rich) and, for a run, the simulator (numpy, pydantic,
simpy, the plugins) takes a noticeable time, and a Ctrl-C in that time would otherwise
print a ``KeyboardInterrupt`` traceback.

Every interrupt gives one line on stderr, saying what stopped and that nothing was
written (or, for a sweep, which finished runs are kept), and no traceback. Exit status:
130 after SIGINT (Ctrl-C) and 143 after SIGTERM, 128 + the signal's number, as shells
report a command a signal stopped. A command unwinds before it exits, so that it
removes what it had half-written and stops its worker processes; a second signal in
that time exits at once (what is left half-written is removed by the next run).
"""

from __future__ import annotations

import os
import re
import signal
import sys

_WHY = {signal.SIGINT: ("interrupted", "Ctrl-C (SIGINT)"),
        signal.SIGTERM: ("terminated", "SIGTERM")}


class Interrupted(BaseException):
    """Raised in the main thread by SIGINT or SIGTERM. Not a ``KeyboardInterrupt``, which
    the command-line library turns into a silent exit, and not an ``Exception``, which
    code that records a failed run would catch; cleanup runs in ``finally`` blocks and
    ``except BaseException`` handlers that re-raise. A handler may ``add_note`` what it
    kept; the note replaces "nothing was written" in the message."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: object) -> None:
    for s in _WHY:
        signal.signal(s, _again)
    raise Interrupted(signum)


def _early(signum: int, frame: object) -> None:
    # While the package is being imported nothing is written and nothing runs, so there is
    # nothing to unwind; and an exception raised here could land in one of importlib's
    # callbacks, which ignore exceptions. Exit at once.
    os.write(2, (message(Interrupted(signum), sys.argv[1:]) + "\n").encode())
    os._exit(128 + signum)


def _again(signum: int, frame: object) -> None:
    os.write(2, f"{_WHY[signum][0]} again: stopping now\n".encode())
    os._exit(128 + signum)


def _command(argv: list[str]) -> str:
    """``frontier sweep`` or ``frontier validate serving``: the leading words of the
    command line that name a command (not options, files or values)."""
    words = []
    for a in argv[:2]:
        if not re.fullmatch(r"[a-z][a-z-]*", a) or os.path.exists(a):
            break
        words.append(a)
    return " ".join(["frontier", *words])


def message(e: Interrupted, argv: list[str]) -> str:
    """The one line printed for an interrupt."""
    what, how = _WHY.get(e.signum, ("interrupted", f"signal {e.signum}"))
    notes = getattr(e, "__notes__", None)
    kept = notes[-1] if notes else "nothing was written"
    return f"{what}: {_command(argv)} stopped by {how}; {kept}."


def main() -> None:
    for s in _WHY:
        signal.signal(s, _early)
    from frontier_core.app import cli

    for s in _WHY:
        signal.signal(s, _stop)
    try:
        cli.main()
    except Interrupted as e:
        sys.stderr.write(message(e, sys.argv[1:]) + "\n")
        sys.stderr.flush()
        sys.exit(128 + e.signum)


if __name__ == "__main__":
    main()
