"""`orchestrator`: one command, one subcommand per task.

    orchestrator send --queue-url URL --count 30     # the producer
    orchestrator consume                             # read the distribution back
    orchestrator status REQUEST_ID                   # a request's record: status, result
    orchestrator demo                                # the whole pipeline on this machine

Subcommands are the entry points of the ``orchestrator.commands`` group (see
`orchestrator.core.command`): the shipped package declares its own, and the local stack, a
development tool installed beside it, adds `local`, `demo` and `invoke`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import EntryPoint, entry_points

from orchestrator.core.command import Command, ExitCode

GROUP = "orchestrator.commands"


def available() -> dict[str, EntryPoint]:
    """Installed subcommands by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def _usage(commands: Mapping[str, EntryPoint]) -> str:
    lines = ["usage: orchestrator <command> [options]", "", "commands:"]
    for name in sorted(commands):
        try:
            summary = _load(commands[name]).summary
        except Exception as exc:  # a broken plugin must not hide the others
            summary = f"(unavailable: {type(exc).__name__}: {exc})"
        lines.append(f"  {name:<10} {summary}")
    lines += ["", "`orchestrator <command> --help` shows a command's options and an example."]
    return "\n".join(lines)


def _load(entry_point: EntryPoint) -> Command:
    command = entry_point.load()
    if not isinstance(command, Command):
        raise TypeError(f"{entry_point.value} is not an orchestrator Command")
    return command


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    commands = available()
    if not args or args[0] in ("-h", "--help"):
        print(_usage(commands))
        return ExitCode.OK if args else ExitCode.USAGE
    if args[0] == "--version":
        from orchestrator import __version__

        print(f"orchestrator {__version__}")
        return ExitCode.OK
    name, rest = args[0], args[1:]
    if name not in commands:
        print(f"orchestrator: unknown command {name!r}\n\n{_usage(commands)}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        return int(_load(commands[name]).main(rest))
    except KeyboardInterrupt:  # while a subcommand was loading, or one that does not catch it
        print("error: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
