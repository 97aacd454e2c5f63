"""Distributor benchmark: what the design's AWS round trips cost per batch.

Runs the real handler on full 10-message batches against moto (in-process), four ways:

  concurrent, no injected latency    the emulator's own CPU time
  concurrent, injected round trips   DynamoDB 5 ms, SQS us-east-1 8 ms, us-west-2 70 ms,
                                     us-west-1 65 ms (one sleep per AWS call)
  sequential, same two settings      the same distributor with every AWS call made one at a
                                     time (an inline executor): the naive baseline

The difference between the medians with and without injected latency is what the round
trips cost, free of moto's CPU time. Also prints AWS requests per operation per 1,000
messages and the cold start (import the handler, build its clients) over fresh interpreters.

Usage: python tests/benchmarks/bench_distributor.py [--batches N] [--cold-starts N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests")]  # the test support modules; the package is installed

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
)

LATENCY = {
    ("dynamodb", "us-east-1"): 0.005,
    ("sqs", "us-east-1"): 0.008,
    ("sqs", "us-west-2"): 0.070,
    ("sqs", "us-west-1"): 0.065,
}


class InlineExecutor(Executor):
    """Runs each task when it is submitted: every AWS call one after the other."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def run(batches: int, *, latency: bool, sequential: bool) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from orchestrator.core.stats import percentile
    from orchestrator.distributor.handler import build_distributor
    from support.faults import Faults, FaultySession
    from support.records import FakeContext, event, valid_records
    from support.stack import create_local_aws

    with mock_aws():
        aws = create_local_aws(boto3.session.Session())
        faults = Faults()
        app = build_distributor(aws.environ(LOG_LEVEL="ERROR"), FaultySession(aws.session, faults))
        if sequential:
            inline = InlineExecutor()
            distributor = app.distributor
            distributor._executor = inline
            distributor.depths._executor = inline
            distributor.forwarder._executor = inline
        app.handle(event(*valid_records(10)), FakeContext())  # warm the connection pools
        purge(aws)
        faults.calls.clear()
        if latency:
            faults.latency.update(LATENCY)
        timings: list[float] = []
        failures = 0
        for _ in range(batches):
            records = valid_records(10)
            started = time.perf_counter()
            response = app.handle(event(*records), FakeContext())
            timings.append((time.perf_counter() - started) * 1000)
            failures += len(response["batchItemFailures"])
            faults.latency.clear()
            purge(aws)  # keep moto's queues small: its SQS slows as a queue fills
            if latency:
                faults.latency.update(LATENCY)
        messages = batches * 10 - failures
        calls = Counter(f"{service}.{op}" for service, op, _ in faults.calls)
        return {
            "median": statistics.median(timings),
            "p90": percentile(timings, 90),
            "forwarded": messages,
            "failures": failures,
            "per_1000": {op: n * 1000 / messages for op, n in sorted(calls.items())},
            "dynamodb_writes_per_message": sum(
                n
                for op, n in calls.items()
                if op.split(".")[1] in ("put_item", "update_item", "delete_item")
            )
            / messages,
            "sqs_per_message": sum(n for op, n in calls.items() if op.startswith("sqs."))
            / messages,
        }


def purge(aws: Any) -> None:
    aws.drain_all()


COLD_START = """
import time
started = time.perf_counter()
import orchestrator.distributor.handler as handler
imported = time.perf_counter()
app = handler.build_distributor({
    "REGION_QUEUES": '{"us-east-1": "https://sqs.us-east-1.amazonaws.com/1/q", '
                     '"us-west-2": "https://sqs.us-west-2.amazonaws.com/1/q", '
                     '"us-west-1": "https://sqs.us-west-1.amazonaws.com/1/q"}',
    "IDEMPOTENCY_TABLE_NAME": "t", "AWS_REGION": "us-east-1",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/dlq"})
built = time.perf_counter()
print((imported - started) * 1000, (built - started) * 1000)
"""


ARTIFACT = ROOT / ".aws-sam" / "build" / "DistributorFunction"


def runtime_site() -> Path:
    """boto3 alone, as the python3.12 runtime provides it (the artifact holds the rest).

    The development virtualenv also holds awscrt and pyOpenSSL (through aws-sam-cli), which
    botocore imports when present and which make its import slower than it is in Lambda.
    """
    site = ROOT / ".aws-sam" / "bench-runtime"
    stamp = site / ".installed"
    pins = [
        line.strip()
        for line in (ROOT / "requirements-dev.txt").read_text().splitlines()
        if line.startswith(("boto3==", "botocore==", "s3transfer==", "jmespath=="))
    ]
    wanted = "\n".join(pins)
    if not stamp.exists() or stamp.read_text() != wanted:
        subprocess.run(
            [
                str(Path(sys.executable).with_name("uv")),
                "pip",
                "install",
                "--quiet",
                "--target",
                str(site),
                *pins,
            ],
            check=True,
            capture_output=True,
        )
        stamp.write_text(wanted)
    return site


def cold_starts(count: int, site: Path | None) -> tuple[float, float]:
    """Median import and import+build times over fresh interpreters (-I: no user site)."""
    # With `site`: the sam build artifact (exactly what the Lambda zip holds) and boto3.
    paths = [str(ARTIFACT), str(site)] if site else [str(ROOT / "src"), *sys.path[1:]]
    prelude = f"import sys; sys.path[:0] = {paths!r}\n"
    # With `site`, the base interpreter: the virtualenv's packages must not be importable.
    python = getattr(sys, "_base_executable", sys.executable) if site else sys.executable
    imports, totals = [], []
    for _ in range(count + 1):  # the first run may compile .pyc files: not counted
        out = subprocess.run(
            [python, "-I", "-c", prelude + COLD_START],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        imports.append(float(out[0]))
        totals.append(float(out[1]))
    return statistics.median(imports[1:]), statistics.median(totals[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=100, help="10-message batches per run")
    parser.add_argument("--cold-starts", type=int, default=5, help="fresh interpreters")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    results = {}
    for name, sequential in (("concurrent", False), ("sequential", True)):
        for latency in (False, True):
            results[(name, latency)] = run(args.batches, latency=latency, sequential=sequential)

    print(f"Distributor benchmark: {args.batches} full 10-message batches per run, moto in-process")
    print(
        f"python {sys.version.split()[0]}, injected round trips: "
        + ", ".join(f"{s} {r} {v * 1000:.0f} ms" for (s, r), v in LATENCY.items())
    )
    print()
    print(f"{'design':<12}{'latency':<10}{'median ms':>11}{'p90 ms':>9}{'failed':>8}")
    for (name, latency), r in results.items():
        print(
            f"{name:<12}{'injected' if latency else 'none':<10}{r['median']:>11.1f}"
            f"{r['p90']:>9.1f}{r['failures']:>8}"
        )
    added = {
        name: results[(name, True)]["median"] - results[(name, False)]["median"]
        for name in ("concurrent", "sequential")
    }
    print()
    print(
        f"round trips add to the median batch: concurrent {added['concurrent']:.1f} ms, "
        f"sequential {added['sequential']:.1f} ms"
    )
    speedup = results[("sequential", True)]["median"] / results[("concurrent", True)]["median"]
    print(
        f"with round trips, concurrent is {speedup:.2f}x faster than sequential "
        f"(median {results[('concurrent', True)]['median']:.1f} vs "
        f"{results[('sequential', True)]['median']:.1f} ms); round-trip cost ratio "
        f"{added['sequential'] / added['concurrent']:.2f}x"
    )
    print()
    print("AWS requests per 1,000 forwarded messages (runs with round trips):")
    for name in ("concurrent", "sequential"):
        r = results[(name, True)]
        ops = ", ".join(f"{op} {n:.1f}" for op, n in r["per_1000"].items())
        print(f"  {name}: {ops}")
        print(
            f"    DynamoDB writes per message {r['dynamodb_writes_per_message']:.3f}; "
            f"SQS requests per message {r['sqs_per_message']:.3f}"
        )
    print()
    print(
        f"cold start, median of {args.cold_starts} fresh interpreters "
        "(import the handler module; then also build its 4 clients):"
    )
    if not (ARTIFACT / "orchestrator").is_dir():
        print(f"error: {ARTIFACT} is missing: run `make build` first", file=sys.stderr)
        return 2
    imported, built = cold_starts(args.cold_starts, runtime_site())
    print(
        f"  the sam build artifact + the runtime's boto3: import {imported:.0f} ms, "
        f"import + build {built:.0f} ms"
    )
    dev_imported, dev_built = cold_starts(args.cold_starts, None)
    print(
        f"  development virtualenv (awscrt, pyOpenSSL present): import {dev_imported:.0f} ms, "
        f"import + build {dev_built:.0f} ms"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {f"{n}-{'latency' if lat else 'plain'}": r for (n, lat), r in results.items()}
                | {"cold_start_import_ms": imported, "cold_start_total_ms": built},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
