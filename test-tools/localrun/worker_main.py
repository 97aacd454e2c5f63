"""``python -m localrun.worker_main ARGS``: ``orchestrator worker ARGS`` (the worker's own
command line, `orchestrator.worker.cli.main`), in a process that gets SIGTERM, and so drains,
when the local stack that started it dies (`localrun.child`)."""

from __future__ import annotations

import sys

from localrun.child import die_with_parent


def main() -> int:
    die_with_parent()
    from orchestrator.worker.cli import main as worker_main

    return worker_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
