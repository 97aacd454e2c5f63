"""``orchestrator worker`` / ``python -m orchestrator.worker``: run the GPU inference worker.

    orchestrator worker --queue-url "$REGION_QUEUE_URL" \\
        --handler examples.digits:DigitsModel --batch-size 10

Exit status: 0 drained after SIGTERM (or stopped before receiving anything); 1 stopped on an
unexpected error (a defect, or the model's load() failed) with everything held handed back;
2 bad flags or environment, or the handler could not be loaded; 3 stopped at once by a
second SIGTERM or by SIGINT, everything held handed back.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from orchestrator.core.command import Command, ExitCode
from orchestrator.worker.config import OPTIONS, help_table, settings_from
from orchestrator.worker.exceptions import HandlerLoadError, WorkerConfigError

EXAMPLE = """\
example:
  WORKER_QUEUE_URL=https://sqs.us-west-2.amazonaws.com/123456789012/inference-queue-us-west-2 \\
  IDEMPOTENCY_TABLE_NAME=inference-idempotency IDEMPOTENCY_TABLE_REGION=us-east-1 \\
  orchestrator worker --handler examples.digits:DigitsModel --batch-size 10 --max-wait 0.05

each flag may instead come from its environment variable:
"""

EXIT_CODES = """
exit status:
  0  drained after SIGTERM (the running batch finished or was handed back)
  1  stopped on an unexpected error, or the model's load() failed; held work handed back
  2  bad flags or environment, or --handler could not be loaded
  3  stopped at once by a second SIGTERM or by SIGINT; held work handed back
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator worker",
        description="Run the batched, Spot-safe GPU inference worker on one region queue.",
        epilog=EXAMPLE + help_table() + "\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for option in OPTIONS:
        if option.is_flag:
            parser.add_argument(
                option.flag, action="store_true", help=f"{option.help} [{option.env}]"
            )
        else:
            default = f"; default {option.default}" if option.default else ""
            parser.add_argument(
                option.flag, default=None, help=f"{option.help} [{option.env}{default}]"
            )
    return parser


class SignalPolicy:
    """First SIGTERM drains; a second SIGTERM, or SIGINT, hands everything back at once."""

    def __init__(self, worker: Any) -> None:
        self._worker = worker
        self._terms = 0
        self._previous: dict[int, Any] = {}

    def on_term(self, _signum: int, _frame: FrameType | None) -> None:
        self._terms += 1
        if self._terms == 1:
            self._worker.request_stop()
        else:
            self._worker.request_abort()

    def on_int(self, _signum: int, _frame: FrameType | None) -> None:
        self._worker.request_abort()

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach the main thread only (tests run main() elsewhere)
        self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self.on_term)
        self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self.on_int)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        settings = settings_from(vars(args), os.environ)
    except WorkerConfigError as exc:
        print(f"orchestrator worker: {exc}", file=sys.stderr)
        return ExitCode.USAGE

    import boto3

    from orchestrator.worker import logs
    from orchestrator.worker.handler import load_handler
    from orchestrator.worker.runtime import Worker, build_clients

    logs.configure(settings.log_level, settings.worker_id)
    try:
        model = load_handler(settings.handler)
    except HandlerLoadError as exc:
        print(f"orchestrator worker: --handler / WORKER_HANDLER: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    worker = Worker(settings, model, build_clients(boto3.session.Session(), settings))
    policy = SignalPolicy(worker)
    policy.install()
    try:
        return worker.serve()
    except OSError as exc:  # the HTTP port is taken, most likely
        print(f"orchestrator worker: --http-port / WORKER_HTTP_PORT: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    finally:
        policy.restore()


COMMAND = Command(summary="run the GPU inference worker on a region queue", main=main)
