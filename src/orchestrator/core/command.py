"""The contract between the `orchestrator` command and the subcommands it runs.

Each subcommand is an entry point in the ``orchestrator.commands`` group whose object is a
`Command`. The command line loads only the one being run, so `orchestrator send` never
imports the worker, and a component defines its own subcommand without importing the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit statuses shared by every subcommand."""

    OK = 0
    """Everything asked for was done."""
    FAILURES = 1
    """The command ran, but some of its work failed (a send refused, an audit failed)."""
    USAGE = 2
    """Bad flags or input, or the endpoint could not be reached: nothing was done."""
    ABORTED = 3
    """Stopped at once by a second signal; held work was handed back (the worker)."""
    INTERRUPTED = 130
    """Ctrl-C (128 + SIGINT), the shell's convention."""


@dataclass(frozen=True, slots=True)
class Command:
    """A subcommand: a one-line summary and a `main(argv) -> exit status`."""

    summary: str
    main: Callable[[Sequence[str]], int]
