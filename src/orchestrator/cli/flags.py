"""Argument parsing shared by the subcommands: one-line usage errors and checked flag types.

Every flag value is checked when it is parsed, so a bad one stops the command before any AWS
call, with one line that names the flag (``error: argument --interval: must be a finite
number ≥ 0, got 'inf'``) and exit status 2 (`ExitCode.USAGE`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn
from urllib.parse import urlsplit

from orchestrator.core.command import ExitCode
from orchestrator.core.regions import is_region_name, known_region


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block: `--help` has it) and kept newlines in
    the description and epilog, where the examples are."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"error: {message}\n")


def finite_float(minimum: float = 0.0, *, inclusive: bool = True) -> Callable[[str], float]:
    """An argparse type: a finite number ≥ `minimum` (> when not `inclusive`).

    ``float()`` alone accepts ``inf`` and ``nan``: an infinite interval overflowed the pacing
    arithmetic and ``nan`` compared false with every bound, so it slipped through them."""
    bound = f"≥ {minimum:g}" if inclusive else f"> {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(value) or not (value >= minimum if inclusive else value > minimum):
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {text!r}")
    return value


def http_url(text: str) -> str:
    """An argparse type for endpoints and queue URLs: ``http://`` or ``https://`` and a host.

    Without a scheme botocore reads ``127.0.0.1:1234`` as a URL whose scheme is ``127.0.0.1``
    and fails deep inside the first call."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(
            f"must be a URL starting with http:// or https:// "
            f"(e.g. http://127.0.0.1:4566), got {text!r}"
        )
    return text


def region_problem(name: str) -> str | None:
    """Why `name` cannot be used as a region, or None when it can."""
    if not is_region_name(name):
        return f"unknown region {name!r} (region names look like us-east-1)"
    if not known_region(name):
        return f"unknown region {name!r} (not an SQS region of any AWS partition)"
    return None


def region(text: str) -> str:
    """An argparse type: a region AWS has. Checked before any call, because an endpoint asked
    for a region it does not serve answers with an error page, not an error message."""
    problem = region_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def add_output_flags(parser: argparse.ArgumentParser, *, json_help: str) -> None:
    parser.add_argument(
        "--plain",
        action="store_true",
        help="plain text: no colour, no progress animation (the default when output is not "
        "a terminal: logs, CI)",
    )
    parser.add_argument("--json", action="store_true", help=json_help)
