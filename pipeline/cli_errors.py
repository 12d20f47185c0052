"""How the command line reports failures: one line on stderr and a non-zero exit, no traceback (``--debug`` shows
it). Known failures are the user's to fix (a pipeline file, SQL, a path that is not a run directory, an input that
cannot be reached); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

from gristmill.core.layout import RunLayout

EXIT_FAILURE = 1
EXIT_USAGE = 2
# What a shell reports for a process killed by SIGPIPE, e.g. ``gristmill sql RUN "..." | head``.
EXIT_BROKEN_PIPE = 128 + 13
# Said on stderr (still open when only stdout's reader left) so that a partial output is never taken for a whole.
BROKEN_PIPE_LINE = "error: output stopped early: its reader closed the pipe (broken pipe)"


class NotARunDirectory(FileNotFoundError):
    """A path given as a run directory that holds no run (no ``plan.json``)."""


def require_run_dir(path: str) -> str:
    """``path`` if it holds a run (a run writes ``plan.json`` before anything else), else ``NotARunDirectory``."""
    layout = RunLayout(path)
    try:
        exists, is_run = layout.root.exists(), layout.plan.is_file()
    except OSError as exc:
        raise NotARunDirectory(f"{path}: cannot be read as a run directory: {exc}") from exc
    if not exists:
        raise NotARunDirectory(f"{path}: no such run directory")
    if not is_run:
        raise NotARunDirectory(f"{path}: not a run directory (no plan.json; `gristmill run` creates one)")
    return path


def _usage_errors() -> tuple[type[BaseException], ...]:
    from gristmill.mixtures.solver import InfeasibleMixture
    from gristmill.pipeline.api import RunOptionsError
    from gristmill.pipeline.lease import LeaseHeldError, LeaseLostError
    from gristmill.pipeline.rundir import StaleSegmentError
    from gristmill.pipeline.spec import SpecError
    from gristmill.stages.ingest.base import InputFileError

    return (SpecError, StaleSegmentError, LeaseHeldError, LeaseLostError, IndexError, InfeasibleMixture,
            InputFileError, NotARunDirectory, RunOptionsError)


def one_line(exc: BaseException) -> tuple[str, int] | None:
    """(message, exit code) for a known failure; None for one that should keep its traceback."""
    if isinstance(exc, _usage_errors()):
        return str(exc), EXIT_USAGE
    duckdb = sys.modules.get("duckdb")  # not imported: the failure cannot be DuckDB's
    if duckdb is not None and isinstance(exc, duckdb.Error):
        return f"SQL: {_first_line(exc)}", EXIT_USAGE
    if isinstance(exc, FileNotFoundError):
        return _os_error(exc), EXIT_USAGE
    if isinstance(exc, OSError):  # an object store or an HTTP server that cannot be reached or read
        return _os_error(exc), EXIT_FAILURE
    return None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


def _os_error(exc: OSError) -> str:
    text = " ".join(str(exc).split())
    if exc.filename and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    return text or type(exc).__name__


def run_handled(command: Callable[[], int], debug: bool) -> int:
    """Run a command; a known failure becomes one ``error:`` line on stderr and its exit code."""
    try:
        return command()
    except BrokenPipeError:
        _silence_stdout()
        print(BROKEN_PIPE_LINE, file=sys.stderr)
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        if debug:
            raise
        known = one_line(exc)
        if known is None:
            raise
        message, code = known
        for line in message.splitlines():  # one line per problem (a pipeline file may have several)
            print(f"error: {line}", file=sys.stderr)
        return code


def _silence_stdout() -> None:
    """The reader of stdout went away (``| head``): nothing more to say to it. Point stdout at /dev/null so that
    flushing it at exit does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (captured): nothing to flush into a pipe
        pass
