"""Worker benchmarks and drills: they print figures (docs/benchmarks.md, "Worker"); not a test.

Everything runs against the local stack's moto server, a process of its own
(`localrun.moto_process`, patched by `localrun.moto_fixes`: DynamoDB requests serialized, as
DynamoDB's per-item conditions are atomic and moto's are not; SQS scans linear), with
DynamoDB on a second one where said, and real worker processes (``python -m
orchestrator.worker``) and the simulated model ``tests/worker/models.py:SimulatedModel``,
except (b), which runs the worker in this process so botocore's ``before-call`` hook can
count every AWS request it makes.

  (a) batching      model 50 ms per call + 5 ms per item; batch sizes 1, 4, 10 (and 10 with
                    one batch prefetched instead of two, for comparison). Throughput
                    on a backlog (first predict start to last predict end) and the ratio to
                    batch 1 from the same run, and the share of the model's own limit
                    (size / (50 ms + 5 ms x size): the model never idle); latency p50/p99
                    two ways: in the worker (claim to final record, on the backlog) and end
                    to end (send to final record) at a paced load of --rate requests per
                    second
  (b) cost          AWS requests per request, by operation, for the worker at batch 10
  (c) dispatch      message visible (SendMessage returned) to predict starting, idle worker
  (d) drill         3 worker processes under load: SIGTERM one mid-batch, SIGKILL another
  (e) duplicates    100 requests put twice each on the region queue, 2 workers

Usage: python tests/benchmarks/bench_worker.py [--requests N] [--rate R] [--only a,b,...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests")]

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
)

import boto3  # noqa: E402

from orchestrator.core.record import RequestRecord, RequestStatus  # noqa: E402
from orchestrator.core.stats import percentile  # noqa: E402
from orchestrator.core.timefmt import parse_iso  # noqa: E402
from worker.conftest import (  # noqa: E402
    PRIMARY,
    WorkerStack,
    create_stack,
    make_request,
    wait_until,
)
from worker.models import read_log  # noqa: E402
from worker.moto_server import MotoServerProcess  # noqa: E402
from worker.processes import WorkerProcess  # noqa: E402

CALL_SECONDS = 0.050
ITEM_SECONDS = 0.005


# -- helpers -----------------------------------------------------------------------------------
def records(stack: WorkerStack) -> dict[str, RequestRecord]:
    ddb = stack.client("dynamodb", PRIMARY)
    out: dict[str, RequestRecord] = {}
    kwargs: dict[str, Any] = {"TableName": stack.table_name, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        for item in page.get("Items", []):
            record = RequestRecord.from_item(item)
            out[record.request_id] = record
        if not page.get("LastEvaluatedKey"):
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def all_final(stack: WorkerStack, count: int) -> bool:
    found = records(stack)
    return len(found) >= count and all(r.status.is_final for r in found.values())


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settled(stack: WorkerStack, log: Path, request_ids: list[str]) -> bool:
    """Cheap enough to poll without slowing moto down: the execution log and one
    GetQueueAttributes (a table scan every half second would compete with the worker)."""
    ended = {e["request_id"] for e in read_log(str(log)) if e["event"] == "end"}
    return ended.issuperset(request_ids) and stack.depth() == (0, 0)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}"


def executions(log: Path) -> dict[str, list[dict[str, Any]]]:
    """Per request: its executions, each {pid, start, end (None: never finished)}."""
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in read_log(str(log)):
        key = event["request_id"]
        if event["event"] == "start":
            runs[key].append({"pid": event["pid"], "start": event["at"], "end": None})
        else:
            for run in reversed(runs[key]):
                if run["pid"] == event["pid"] and run["end"] is None:
                    run["end"] = event["at"]
                    break
    return runs


def spawn(stack: WorkerStack, server: Any, log: Path, *args: str, **env: str) -> WorkerProcess:
    return WorkerProcess(
        stack,
        server.endpoint_url,
        log,
        *args,
        SIM_CALL_SECONDS=str(env.pop("call", CALL_SECONDS)),
        SIM_ITEM_SECONDS=str(env.pop("item", ITEM_SECONDS)),
        **env,
    )


def stop_all(workers: list[WorkerProcess]) -> None:
    for worker in workers:
        if worker.process.poll() is None:
            worker.signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(40)
        except Exception:
            worker.kill()


# -- (a) batching ------------------------------------------------------------------------------
def batching(
    servers: list[Any],
    runs: list[tuple[int, int]],
    backlog: int,
    rate: float,
    seconds: float,
    repeats: int,
) -> dict[tuple[int, int], dict[str, Any]]:
    """`repeats` rounds over `runs`, each (batch size, --prefetch-batches), interleaved so that
    the machine's other load falls on every configuration alike; a new worker and stack per
    run. Throughput is the median of the rounds; the latencies and CPU come from round one,
    which also runs the paced load."""
    results: dict[tuple[int, int], dict[str, Any]] = {}
    for round_ in range(repeats):
        for size, prefetch in runs:
            run = backlog_run(servers, size, prefetch, backlog, rate if round_ == 0 else 0, seconds)
            if round_ == 0:
                results[(size, prefetch)] = {**run, "throughputs": []}
            results[(size, prefetch)]["throughputs"].append(run["throughput"])
    for result in results.values():
        result["throughput"] = percentile(result["throughputs"], 50)
    return results


def backlog_run(
    servers: list[Any], size: int, prefetch: int, backlog: int, rate: float, seconds: float
) -> dict[str, Any]:
    """One worker on a backlog of `backlog` requests, then (rate > 0) a paced load."""
    server = servers[0]
    stack = create_stack(boto3.session.Session())
    log = Path(tempfile.mkdtemp()) / "executions.jsonl"
    documents = [make_request() for _ in range(backlog)]
    worker = spawn(
        stack,
        server,
        log,
        *("--batch-size", str(size), "--max-wait", "0.05"),
        *("--prefetch-batches", str(prefetch)),
        # Idle polls end sooner, so each run's SIGTERM drain does too; a worker with work
        # never waits on a poll.
        *("--poll-seconds", "2"),
    ).wait_started()
    forwarded_records(stack, documents)
    processes = [s.process.pid for s in servers]
    cpu_before = [cpu_seconds(pid) for pid in [*processes, worker.pid]]
    began = time.monotonic()
    feed(stack, documents, records_written=True)
    ids = [d["request_id"] for d in documents]
    wait_until(lambda: settled(stack, log, ids), 600, 0.5)
    wall = time.monotonic() - began
    cpu_after = [cpu_seconds(pid) for pid in [*processes, worker.pid]]
    cores = [(a - b) / wall for a, b in zip(cpu_after, cpu_before, strict=True)]
    events = read_log(str(log))
    first = min(e["at"] for e in events if e["event"] == "start")
    last = max(e["at"] for e in events if e["event"] == "end")
    found = records(stack)
    service = [
        (parse_iso(r.finished_at) or 0) - (parse_iso(r.started_at) or 0) for r in found.values()
    ]
    batches = sum(1 for e in events if e["event"] == "start") / max(
        1, len({(e["pid"], e["at"]) for e in events if e["event"] == "start"})
    )
    # Paced: an open-loop load below batch 1's capacity, end-to-end latency.
    paced = paced_latency(stack, log, rate, seconds) if rate > 0 else [0.0]
    stop_all([worker])
    return {
        "throughput": backlog / (last - first),
        "mean_batch": batches,
        "service_p50": percentile(service, 50),
        "service_p99": percentile(service, 99),
        "e2e_p50": percentile(paced, 50),
        "e2e_p99": percentile(paced, 99),
        "emulator_cores": sum(cores[:-1]),
        "busiest_emulator_cores": max(cores[:-1]),
        "worker_cores": cores[-1],
    }


def feed(
    stack: WorkerStack,
    documents: list[dict[str, Any]],
    keep: int = 60,
    records_written: bool = False,
) -> None:
    """Write every FORWARDED record first (BatchWriteItem, before the clock matters), then
    keep about `keep` messages waiting until all are sent: the worker never runs dry, the
    queue stays small (moto's receive slows down as a queue fills), and the distributor's
    writes do not compete with the worker's for moto's one DynamoDB lock."""
    if not records_written:
        forwarded_records(stack, documents)
    pending = list(documents)
    deadline = time.monotonic() + 600
    while pending:
        if time.monotonic() > deadline:
            raise RuntimeError("the workers stopped taking messages (did one exit?)")
        visible, _ = stack.depth()
        if visible < keep:
            chunk, pending = pending[:keep], pending[keep:]
            stack.forward(chunk, record=False)
        else:
            time.sleep(0.1)


def forwarded_records(stack: WorkerStack, documents: list[dict[str, Any]]) -> None:
    from orchestrator.core.request import parse_request
    from orchestrator.core.timefmt import iso_utc

    ddb = stack.client("dynamodb", PRIMARY)
    now = time.time()
    items = []
    for document in documents:
        parsed = parse_request(json.dumps(document))
        record = RequestRecord(
            request_id=document["request_id"],
            status=RequestStatus.FORWARDED,
            message_id=f"master-{document['request_id']}",
            payload_hash=parsed.payload_hash,
            region="us-west-2",
            priority="normal",
            model_name=document["model_name"],
            forwarded_at=iso_utc(now),
            lease_expires_at=int(now) + 60,
            expires_at=int(now) + 86_400,
        )
        items.append({"PutRequest": {"Item": record.to_item()}})
    for start in range(0, len(items), 25):
        ddb.batch_write_item(RequestItems={stack.table_name: items[start : start + 25]})


def paced_latency(stack: WorkerStack, log: Path, rate: float, seconds: float) -> list[float]:
    sqs = stack.client("sqs")
    sent: dict[str, float] = {}
    count = int(rate * seconds)
    began = time.monotonic()
    for n in range(count):
        pause = began + n / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        document = make_request()
        stack.write_forwarded(json.dumps(document), f"master-{document['request_id']}", time.time())
        sent[document["request_id"]] = time.time()
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps(document))

    wait_until(lambda: settled(stack, log, list(sent)), 120, 0.5)
    found = records(stack)
    return [(parse_iso(found[k].finished_at) or 0) - t for k, t in sent.items()]


# -- (b) cost ----------------------------------------------------------------------------------
def cost(server: Any, count: int) -> dict[str, Any]:
    from orchestrator.worker.runtime import Worker, build_clients
    from worker.conftest import RecordingModel, RunningWorker

    stack = create_stack(boto3.session.Session())
    documents = [make_request() for _ in range(count)]
    session = boto3.session.Session()
    calls: Counter[str] = Counter()
    lock = threading.Lock()

    def count_call(model: Any, params: Any, **_: Any) -> None:
        name = f"{model.service_model.service_name}.{model.name}"
        table = params.get("body") or b""
        if model.service_model.service_name == "dynamodb" and stack.workers_table.encode() in (
            table if isinstance(table, bytes) else table.encode()
        ):
            name += " (presence)"
        with lock:
            calls[name] += 1

    session.events.register("before-call", count_call)
    settings = stack.settings(batch_size=10, max_wait=0.05, http_port=None)
    worker = Worker(
        settings,
        RecordingModel(delay=CALL_SECONDS, per_item=ITEM_SECONDS),
        build_clients(session, settings),
    )
    with RunningWorker(worker) as handle:
        feed(stack, documents)
        wait_until(lambda: all_final(stack, count), 300, 0.5)
        wait_until(lambda: stack.depth() == (0, 0), 30, 0.2)
        with lock:
            snapshot = Counter(calls)
        handle.stop()
    per_request = {op: n / count for op, n in sorted(snapshot.items())}
    write_ops = ("UpdateItem", "PutItem", "DeleteItem", "BatchWriteItem")
    writes = sum(n for op, n in snapshot.items() if op.split(".")[-1] in write_ops)
    presence = sum(n for op, n in snapshot.items() if op.endswith("(presence)"))
    sqs = sum(n for op, n in snapshot.items() if op.startswith("sqs."))
    return {
        "per_request": per_request,
        "writes": writes / count,
        "presence": presence / count,
        "sqs": sqs / count,
        "count": count,
    }


# -- (c) dispatch ------------------------------------------------------------------------------
def dispatch(server: Any, samples: int) -> list[float]:
    stack = create_stack(boto3.session.Session())
    log = Path(tempfile.mkdtemp()) / "executions.jsonl"
    worker = spawn(stack, server, log, "--batch-size", "1", call=0.0, item=0.0).wait_started()
    time.sleep(1.0)
    sqs = stack.client("sqs")
    delays = []
    for _ in range(samples):
        document = make_request()
        rid = document["request_id"]
        stack.write_forwarded(json.dumps(document), f"master-{rid}", time.time())
        sent = time.time()  # just before: the message is visible once SendMessage has run
        sqs.send_message(QueueUrl=stack.queue_url, MessageBody=json.dumps(document))
        wait_until(lambda r=rid: any(e["request_id"] == r for e in read_log(str(log))), 30, 0.005)
        start = next(e["at"] for e in read_log(str(log)) if e["request_id"] == rid)
        delays.append(start - sent)
        wait_until(lambda: stack.depth() == (0, 0), 10, 0.01)  # idle again before the next
        time.sleep(0.2)
    stop_all([worker])
    return delays


# -- (d) drill ---------------------------------------------------------------------------------
def open_batch(log: Path, pid: int) -> list[str]:
    runs = executions(log)
    return [rid for rid, rs in runs.items() for r in rs if r["pid"] == pid and r["end"] is None]


def drill(server: Any, count: int) -> dict[str, Any]:
    stack = create_stack(boto3.session.Session())
    log = Path(tempfile.mkdtemp()) / "executions.jsonl"
    args = (
        "--batch-size",
        "4",
        "--max-wait",
        "0.05",
        "--visibility-timeout",
        "6",
        "--invocation-timeout",
        "5",
    )
    workers = [spawn(stack, server, log, *args, call=0.25, item=0.02) for _ in range(3)]
    for worker in workers:
        worker.wait_started()
    documents = [make_request() for _ in range(count)]
    stack.forward(documents)
    termed, killed = workers[0], workers[1]
    wait_until(lambda: len(executions(log)) >= count // 5, 120, 0.05)
    term_batch = wait_until(lambda: open_batch(log, termed.pid), 30, 0.01)
    t_term = time.time()
    termed.signal(signal.SIGTERM)
    kill_batch = wait_until(lambda: open_batch(log, killed.pid), 30, 0.01)
    t_kill = time.time()
    killed.process.kill()
    wait_until(lambda: all_final(stack, count), 300, 0.5)
    term_exit = termed.wait(60)
    survivors = [workers[2]]
    stop_all(survivors)
    found = records(stack)
    runs = executions(log)
    lost = [d["request_id"] for d in documents if found.get(d["request_id"]) is None
            or found[d["request_id"]].status is not RequestStatus.SUCCEEDED]  # fmt: skip
    concurrent, after_success = 0, 0
    for rid, rs in runs.items():
        finished = parse_iso(found[rid].finished_at) if rid in found else None
        ordered = sorted(rs, key=lambda r: r["start"])
        for a, b in itertools.pairwise(ordered):
            a_end = (
                a["end"]
                if a["end"] is not None
                else (t_kill if a["pid"] == killed.pid else float("inf"))
            )
            if b["start"] < a_end:
                concurrent += 1
        if finished is not None and any(r["start"] > finished for r in rs):
            after_success += 1
    reexecuted = {rid: len(rs) - 1 for rid, rs in runs.items() if len(rs) > 1}
    handed_back = [
        rid for line in termed.logged_all("handed back") for rid in line.get("request_ids", [])
    ]

    def ran_elsewhere_after(ids: list[str], after: float, pid: int) -> float | None:
        """Seconds from `after` until the last of `ids` started on another worker."""
        firsts = []
        for rid in ids:
            starts = [
                r["start"] for r in runs.get(rid, []) if r["pid"] != pid and r["start"] >= after
            ]
            if starts:
                firsts.append(min(starts))
        return max(firsts) - after if firsts else None

    return {
        "count": count,
        "lost": len(lost),
        "concurrent": concurrent,
        "after_success": after_success,
        "reexecutions": sum(reexecuted.values()),
        "reexecuted_from_kill": sum(1 for rid in kill_batch if rid in reexecuted),
        "kill_batch": len(kill_batch),
        "term_batch": len(term_batch),
        "term_batch_finished_by_termed": all(
            any(r["pid"] == termed.pid and r["end"] is not None for r in runs[rid])
            for rid in term_batch
        ),
        "term_exit": term_exit,
        "handed_back": len(handed_back),
        "handed_back_ran_after": ran_elsewhere_after(handed_back, t_term, termed.pid),
        "killed_ran_after": ran_elsewhere_after(kill_batch, t_kill, killed.pid),
        "dead_letters": len(stack.dead_letters()),
    }


# -- (e) duplicates ----------------------------------------------------------------------------
def duplicates(server: Any, count: int) -> dict[str, Any]:
    stack = create_stack(boto3.session.Session())
    log = Path(tempfile.mkdtemp()) / "executions.jsonl"
    documents = [make_request() for _ in range(count)]
    stack.forward(documents, copies=2)
    args = ("--batch-size", "10", "--max-wait", "0.05", "--invocation-timeout", "5")
    workers = [
        spawn(stack, server, log, *args, call=0.02, item=0.002).wait_started() for _ in range(2)
    ]
    wait_until(lambda: all_final(stack, count), 300, 0.5)
    wait_until(lambda: stack.depth() == (0, 0), 120, 0.5)  # the copies deleted too
    stop_all(workers)
    runs = executions(log)
    counts = Counter(len(runs.get(d["request_id"], [])) for d in documents)
    found = records(stack)
    return {
        "count": count,
        "executions": dict(sorted(counts.items())),
        "succeeded": sum(1 for r in found.values() if r.status is RequestStatus.SUCCEEDED),
    }


# -- main --------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300, help="requests per run of (a), (b)")
    parser.add_argument("--rate", type=float, default=12.0, help="paced load of (a), per second")
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument(
        "--repeats", type=int, default=3, help="rounds of (a)'s backlog runs (median printed)"
    )
    parser.add_argument("--dispatch-samples", type=int, default=40)
    parser.add_argument("--drill-requests", type=int, default=300)
    parser.add_argument("--only", default="a,b,c,d,e", help="which parts, e.g. a,c")
    args = parser.parse_args()
    parts = set(args.only.split(","))

    server = MotoServerProcess()
    tables = MotoServerProcess()  # DynamoDB on its own emulator process (see docs/benchmarks.md)
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint_url
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = tables.endpoint_url
    python = sys.version.split()[0]
    print(
        f"moto servers: SQS, S3, SNS {server.endpoint_url}; DynamoDB {tables.endpoint_url}; "
        f"Python {python}; {os.cpu_count()} cores"
    )
    try:
        if "a" in parts:
            # Batch 1, 4 and 10 with the default prefetch (2), and batch 10 with one batch
            # ahead, to show what the second one buys.
            sizes = [(1, 2), (4, 2), (10, 2), (10, 1)]
            measure = (args.requests, args.rate, args.paced_seconds, args.repeats)
            split = batching([server, tables], sizes, *measure)
            report_batching(split, args, "DynamoDB on a second moto server")
            del os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
            shared = batching([server], sizes, *measure)
            report_batching(shared, args, "one moto server for everything")
            os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = tables.endpoint_url
        if "b" in parts:
            report_cost(cost(server, args.requests))
        if "c" in parts:
            delays = dispatch(server, args.dispatch_samples)
            print(
                f"\n(c) dispatch overhead, idle worker, batch 1, {len(delays)} samples: "
                f"SendMessage -> predict starts  p50 {ms(percentile(delays, 50))} ms  "
                f"p99 {ms(percentile(delays, 99))} ms"
            )
        if "d" in parts:
            report_drill(drill(server, args.drill_requests))
        if "e" in parts:
            r = duplicates(server, 100)
            print(
                f"\n(e) duplicate copies: {r['count']} requests x 2 copies, 2 worker processes: "
                f"executions per request {r['executions']} (count: requests); "
                f"SUCCEEDED {r['succeeded']}"
            )
    finally:
        server.stop()
        tables.stop()


def report_batching(
    results: dict[tuple[int, int], dict[str, Any]], args: argparse.Namespace, topology: str
) -> None:
    print(
        f"\n(a) batching, {topology}: model {CALL_SECONDS * 1000:.0f} ms per call + "
        f"{ITEM_SECONDS * 1000:.0f} ms per item; {args.requests} requests kept queued, "
        f"{args.repeats} rounds (throughput: their median, and each); paced run "
        f"{args.rate:g}/s for {args.paced_seconds:g} s; --max-wait 0.05"
    )
    print(
        "batch  prefetch  mean  throughput/s  of model's limit  vs batch 1   in-worker p50/p99 ms"
        "   end-to-end p50/p99 ms   CPU cores: emulator (busiest) / worker   rounds"
    )
    base = results[(1, 2)]["throughput"]
    for (size, prefetch), r in results.items():
        limit = size / (CALL_SECONDS + ITEM_SECONDS * size)  # the model never idle
        rounds = " ".join(f"{t:.1f}" for t in r["throughputs"])
        print(
            f"{size:5d} {prefetch:9d} {r['mean_batch']:5.1f} {r['throughput']:13.1f} "
            f"{r['throughput'] / limit:12.0%} {r['throughput'] / base:14.2f}x   "
            f"{ms(r['service_p50'])} / {ms(r['service_p99'])}"
            f"      {ms(r['e2e_p50'])} / {ms(r['e2e_p99'])}"
            f"      {r['emulator_cores']:.2f} ({r['busiest_emulator_cores']:.2f}) / "
            f"{r['worker_cores']:.2f}              {rounds}"
        )


def report_cost(result: dict[str, Any]) -> None:
    print(f"\n(b) AWS requests per request, worker at batch 10, {result['count']} requests:")
    for op, n in result["per_request"].items():
        print(f"  {op:45s} {n:.3f}")
    print(
        f"  DynamoDB writes per request: {result['writes']:.3f} on request records, "
        f"{result['presence']:.3f} on presence; SQS requests per request: {result['sqs']:.3f}"
    )


def report_drill(r: dict[str, Any]) -> None:
    handed = r["handed_back_ran_after"]
    killed = r["killed_ran_after"]
    rows = [
        ("requests lost", r["lost"]),
        ("executed twice concurrently", r["concurrent"]),
        ("executed again after success", r["after_success"]),
        (
            "re-executions (all from the SIGKILL'd batch?)",
            f"{r['reexecutions']} ({r['reexecuted_from_kill']} of its {r['kill_batch']})",
        ),
        (
            "SIGTERM'd worker",
            f"exit {r['term_exit']}; running batch of {r['term_batch']} finished by it: "
            f"{r['term_batch_finished_by_termed']}; handed back {r['handed_back']}",
        ),
        ("handed-back work running elsewhere after", "-" if handed is None else f"{handed:.2f} s"),
        ("SIGKILL'd batch running elsewhere after", "-" if killed is None else f"{killed:.2f} s"),
        ("dead letters", r["dead_letters"]),
    ]
    print(
        f"\n(d) interruption drill: 3 worker processes (batch 4, visibility 6 s, invocation "
        f"timeout 5 s: lease 20 s), {r['count']} requests; SIGTERM one mid-batch, SIGKILL another"
    )
    for label, value in rows:
        print(f"  {label:46s} {value}")


if __name__ == "__main__":
    main()
