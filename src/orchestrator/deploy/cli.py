"""`orchestrator deploy`: deploy (or tear down) every region of one environment."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from orchestrator.core.command import Command
from orchestrator.deploy import workers
from orchestrator.deploy.config import (
    BUILT_TEMPLATE,
    COMPUTED_PARAMETERS,
    ENVIRONMENTS,
    PROJECT_TAG,
    REGION_LOCAL_PARAMETERS,
    REGION_TEMPLATE,
    REPO_ROOT,
    SAMCONFIG,
    ConfigurationError,
    check_region,
    parse_key_values,
    parse_regions,
    read_samconfig,
    region_stack_name,
    template_parameters,
)
from orchestrator.deploy.manifests import parse_clusters
from orchestrator.deploy.sam import (
    Runner,
    build_command,
    deploy_command,
    primary_parameters,
    sam_executable,
    subprocess_runner,
)
from orchestrator.deploy.stacks import (
    RegionQueue,
    StackError,
    Waiting,
    delete_region_stacks,
    delete_stack,
    deploy_region_stacks,
    json_output,
    stack_outputs,
)

ClientFactory = Callable[[str], Any]
"""region -> CloudFormation client of that region."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator deploy",
        description=(
            "Deploy the inference orchestrator to several regions in one command: "
            "infrastructure/region.yaml in every --regions region, then the primary stack "
            "(infrastructure/template.yaml, via sam build + sam deploy) with their queues. "
            "With --worker-image, also write each region's GPU worker manifests "
            "(infrastructure/k8s filled in with its stack outputs) under --k8s-dir."
        ),
        epilog=(
            "example: orchestrator deploy --env dev --regions us-west-2 --cluster-name gpu "
            "--worker-image 123456789012.dkr.ecr.us-east-1.amazonaws.com/worker:1.0"
        ),
    )
    parser.add_argument("--env", required=True, choices=ENVIRONMENTS, help="samconfig environment")
    parser.add_argument(
        "--primary-region",
        help="region of the master queue and distributor (default: samconfig's region)",
    )
    parser.add_argument(
        "--regions",
        default="",
        help="comma-separated other regions that get an inference queue (e.g. us-west-2,us-west-1)",
    )
    parser.add_argument("--profile", help="AWS named profile for boto3 and sam")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    parser.add_argument(
        "--destroy", action="store_true", help="delete the primary stack, then every region stack"
    )
    parser.add_argument("--yes", action="store_true", help="confirm --destroy")
    parser.add_argument(
        "--skip-build", action="store_true", help="deploy the existing .aws-sam/build"
    )
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="primary-stack parameter override (repeatable); region.yaml parameters of the same "
        "name (RegionQueueVisibilityTimeout, ...) are passed to the region stacks too",
    )
    parser.add_argument(
        "--region-parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="region.yaml parameter for every region stack (repeatable)",
    )
    parser.add_argument("--config-file", type=Path, default=SAMCONFIG, help=argparse.SUPPRESS)
    parser.add_argument("--sam", default=None, help="sam executable (default: the venv's)")
    parser.add_argument(
        "--outputs-json", type=Path, help="also write the deployed names and URLs to this file"
    )
    parser.add_argument(
        "--sequential", action="store_true", help="deploy region stacks one after another"
    )
    parser.add_argument(
        "--poll-seconds", type=float, default=10.0, help="CloudFormation status poll interval"
    )
    workers.add_arguments(parser)
    return parser


def _boto3_factory(profile: str | None) -> ClientFactory:
    import boto3

    session = boto3.session.Session(profile_name=profile)
    return lambda region: session.client("cloudformation", region_name=region)


class _Deployment:
    """Everything one run decided from its arguments, before touching AWS."""

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.out = out
        self.err = err
        self._lock = threading.Lock()
        self.env: str = args.env
        self.samconfig = read_samconfig(args.config_file, self.env)
        self.primary = check_region(args.primary_region or self.samconfig.region or "us-east-1")
        self.remote, notes = parse_regions(self.primary, args.regions)
        for note in notes:
            self.say(f"note: {note}")
        extra = parse_key_values(args.parameter, "--parameter")
        computed = sorted(COMPUTED_PARAMETERS & set(extra))
        if computed:
            raise ConfigurationError(
                f"--parameter {', '.join(computed)}: set by the deployer "
                "(use --env / --primary-region / --regions / --cluster-name)"
            )
        self.clusters = parse_clusters(args.cluster_name, [self.primary, *self.remote])
        if args.manifests_only and not args.worker_image:
            raise ConfigurationError("--manifests-only needs --worker-image")
        self.extra = extra
        self.stack_name = self.samconfig.stack_name
        self.region_stack = region_stack_name(self.env)
        self.tags = {"Project": PROJECT_TAG, **self.samconfig.tags, "Environment": self.env}
        self.region_parameters = self._region_parameters()
        self.sam = args.sam or sam_executable()
        self.waiting = Waiting(delay=args.poll_seconds)

    def say(self, line: str) -> None:
        # Region stacks log from several threads: one write per line keeps lines whole.
        with self._lock:
            self.out.write(line + "\n")
            self.out.flush()

    def _region_parameters(self) -> dict[str, str]:
        accepted = set(template_parameters(REGION_TEMPLATE))
        shared = {**self.samconfig.parameter_overrides, **self.extra}
        parameters = {
            key: value
            for key, value in shared.items()
            if key in accepted and key not in REGION_LOCAL_PARAMETERS
        }
        explicit = parse_key_values(self.args.region_parameter, "--region-parameter")
        unknown = sorted(set(explicit) - accepted)
        if unknown:
            raise ConfigurationError(
                f"--region-parameter {', '.join(unknown)}: region.yaml has no such parameter"
            )
        computed = sorted(COMPUTED_PARAMETERS & set(explicit))
        if computed:
            raise ConfigurationError(
                f"--region-parameter {', '.join(computed)}: set by the deployer "
                "(use --env / --primary-region / --cluster-name)"
            )
        parameters.update(explicit)
        parameters["Environment"] = self.env
        parameters["PrimaryRegion"] = self.primary
        return parameters

    def cluster(self, region: str) -> str:
        """ClusterName of the region's stack; always sent, so leaving it out removes it."""
        return self.clusters.get(region) or self.clusters.get("*") or ""

    def per_region_parameters(self) -> dict[str, dict[str, str]]:
        return {region: {"ClusterName": self.cluster(region)} for region in self.remote}

    def primary_parameters(self, remote: Sequence[RegionQueue]) -> dict[str, str]:
        parameters = primary_parameters(
            self.env, remote, self.samconfig.parameter_overrides, self.extra
        )
        parameters["ClusterName"] = self.cluster(self.primary)
        return parameters

    def write_manifests(self, outputs: dict[str, dict[str, str]]) -> int:
        settings = workers.settings(self.args, self.clusters)
        return workers.write_manifests(self.args.k8s_dir, outputs, settings, self.say, self.err)

    def deploy_command(self, remote: Sequence[RegionQueue]) -> list[str]:
        return deploy_command(
            self.sam,
            config_file=self.args.config_file,
            env=self.env,
            template_file=BUILT_TEMPLATE,
            stack_name=self.stack_name,
            region=self.primary,
            parameters=self.primary_parameters(remote),
            profile=self.args.profile,
        )

    def build_command(self) -> list[str]:
        return build_command(self.sam, config_file=self.args.config_file, env=self.env)


def _placeholder_queues(env: str, regions: Sequence[str]) -> list[RegionQueue]:
    return [
        RegionQueue(
            region=r,
            stack_name=region_stack_name(env),
            url=f"https://sqs.{r}.amazonaws.com/<account>/inference-queue-{r}-{env}",
            arn=f"arn:aws:sqs:{r}:<account>:inference-queue-{r}-{env}",
            high_url=f"https://sqs.{r}.amazonaws.com/<account>/inference-queue-{r}-{env}-high",
            high_arn=f"arn:aws:sqs:{r}:<account>:inference-queue-{r}-{env}-high",
        )
        for r in regions
    ]


def _print_plan(d: _Deployment) -> None:
    d.say(f"Plan for {d.env} (dry run: nothing is changed)")
    d.say(f"  primary region {d.primary}: stack {d.stack_name}")
    if d.args.manifests_only:
        d.say(f"  1. read the outputs of {d.stack_name} in {d.primary}")
        if d.remote:
            d.say(f"     and of {d.region_stack} in {', '.join(d.remote)}")
        _print_manifest_step(d, 2)
        return
    if d.args.destroy:
        d.say(f"  1. delete stack {d.stack_name} in {d.primary}")
        if d.remote:
            d.say(f"  2. delete stack {d.region_stack} in {', '.join(d.remote)}")
        return
    step = 1
    if d.remote:
        params = " ".join(f"{k}={v}" for k, v in d.region_parameters.items())
        d.say(
            f"  {step}. create or update stack {d.region_stack} from "
            f"{REGION_TEMPLATE.relative_to(REPO_ROOT)} in {', '.join(d.remote)}"
        )
        d.say(f"       parameters: {params}")
        d.say(
            "       then read RegionQueueUrl / RegionQueueArn and RegionHighPriorityQueueUrl /"
            " RegionHighPriorityQueueArn of each"
        )
        step += 1
    else:
        d.say("  (no other regions: the distributor routes to the primary region's queue only)")
    if not d.args.skip_build:
        d.say(f"  {step}. {shlex.join(d.build_command())}")
        step += 1
    d.say(f"  {step}. {shlex.join(d.deploy_command(_placeholder_queues(d.env, d.remote)))}")
    d.say(f"  {step + 1}. read the outputs of {d.stack_name} in {d.primary} and print the queues")
    _print_manifest_step(d, step + 2)


def _print_manifest_step(d: _Deployment, step: int) -> None:
    if not d.args.worker_image:
        d.say("  (no --worker-image: the k8s manifests are not written)")
        return
    for region in [d.primary, *d.remote]:
        cluster = d.cluster(region) or "<the stack's ClusterName output>"
        d.say(
            f"  {step}. write {d.args.k8s_dir / region}/ from infrastructure/k8s "
            f"(cluster {cluster}, image {d.args.worker_image})"
        )


def _summary(d: _Deployment, outputs: dict[str, str], remote: Sequence[RegionQueue]) -> dict:
    region_queues = json_output(outputs, "RegionQueuesJson") or {
        d.primary: outputs.get("RegionQueueUrl")
    } | {q.region: q.url for q in remote}
    high_queues = json_output(outputs, "HighPriorityQueuesJson") or {
        d.primary: outputs.get("RegionHighPriorityQueueUrl")
    } | {q.region: q.high_url for q in remote}
    return {
        "environment": d.env,
        "stack_name": d.stack_name,
        "primary_region": d.primary,
        "master_queue_url": outputs.get("MasterQueueUrl"),
        "dead_letter_queue_url": outputs.get("DeadLetterQueueUrl"),
        "table_name": outputs.get("IdempotencyTableName"),
        "function_name": outputs.get("DistributorFunctionName"),
        "region_queues": region_queues,
        "high_priority_queues": high_queues,
        "region_stacks": {q.region: q.stack_name for q in remote},
    }


def _print_summary(d: _Deployment, summary: dict) -> None:
    d.say("")
    d.say(f"Deployed {summary['stack_name']} ({summary['primary_region']})")
    d.say(f"  master queue       {summary['master_queue_url']}")
    d.say(f"  dead-letter queue  {summary['dead_letter_queue_url']}")
    d.say(f"  idempotency table  {summary['table_name']}")
    d.say(f"  distributor        {summary['function_name']}")
    d.say("  region queues (REGION_QUEUES):")
    for region, url in summary["region_queues"].items():
        d.say(f"    {region:<16} {url}")
    d.say("  high-priority queues (HIGH_PRIORITY_QUEUES):")
    for region, url in summary["high_priority_queues"].items():
        d.say(f"    {region:<16} {url}")


def _manifests_only(d: _Deployment, factory: ClientFactory) -> int:
    outputs = {d.primary: stack_outputs(factory(d.primary), d.stack_name)}
    for region in d.remote:
        outputs[region] = stack_outputs(factory(region), d.region_stack)
    return d.write_manifests(outputs)


def _deploy(d: _Deployment, factory: ClientFactory, runner: Runner) -> int:
    remote: list[RegionQueue] = []
    if d.remote:
        d.say(f"Region stacks {d.region_stack} in {', '.join(d.remote)}")
        clients = {region: factory(region) for region in d.remote}
        queues = deploy_region_stacks(
            clients,
            stack_name=d.region_stack,
            template_body=REGION_TEMPLATE.read_text(encoding="utf-8"),
            parameters=d.region_parameters,
            region_parameters=d.per_region_parameters(),
            tags=d.tags,
            waiting=d.waiting,
            log=d.say,
            parallel=not d.args.sequential,
        )
        remote = [queues[region] for region in d.remote]
        for queue in remote:
            d.say(f"  {queue.region}: {queue.url}")
    if not d.args.skip_build:
        d.say(f"$ {shlex.join(d.build_command())}")
        runner(d.build_command())
    command = d.deploy_command(remote)
    d.say(f"$ {shlex.join(command)}")
    runner(command)
    primary_outputs = stack_outputs(factory(d.primary), d.stack_name)
    summary = _summary(d, primary_outputs, remote)
    _print_summary(d, summary)
    if d.args.outputs_json:
        d.args.outputs_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        d.say(f"  (written to {d.args.outputs_json})")
    if not d.args.worker_image:
        d.say("  (give --worker-image to write the GPU worker manifests)")
        return 0
    outputs = {d.primary: primary_outputs} | {q.region: dict(q.outputs) for q in remote}
    return d.write_manifests(outputs)


def _destroy(d: _Deployment, factory: ClientFactory) -> int:
    if not d.args.yes:
        _print_plan(d)
        d.say("Add --yes to delete these stacks.")
        return 2
    if d.env == "prod":
        d.say(
            "note: the prod ledger table has deletion protection; if the delete fails on "
            "IdempotencyTable, turn it off first (docs/deployment.md, Tear down)"
        )
    d.say(
        "note: a stack whose results bucket still holds results fails to delete; empty it "
        "first: aws s3 rm s3://inference-results-<account>-<region>-" + d.env + " --recursive"
    )
    delete_stack(factory(d.primary), d.stack_name, d.waiting, d.say)
    if d.remote:
        clients = {region: factory(region) for region in d.remote}
        delete_region_stacks(
            clients,
            stack_name=d.region_stack,
            waiting=d.waiting,
            log=d.say,
            parallel=not d.args.sequential,
        )
    d.say("Deleted. The SAM artifact bucket (aws-sam-cli-managed-default) is kept.")
    return 0


def main(
    argv: Sequence[str] | None = None,
    *,
    client_factory: ClientFactory | None = None,
    runner: Runner | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Entry point; the keyword arguments are the seams the tests use."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = _parser().parse_args(argv)
    try:
        d = _Deployment(args, out, err)
        if args.dry_run:
            _print_plan(d)
            return 0
        factory = client_factory or _boto3_factory(args.profile)
        if args.manifests_only:
            return _manifests_only(d, factory)
        if args.destroy:
            return _destroy(d, factory)
        return _deploy(d, factory, runner or subprocess_runner(REPO_ROOT))
    except (ConfigurationError, StackError, BotoCoreError, ClientError) as error:
        print(f"error: {error}", file=err)
        return 1
    except subprocess.CalledProcessError as error:
        print(f"error: {shlex.join(error.cmd)} exited with {error.returncode}", file=err)
        return error.returncode or 1


COMMAND = Command(
    summary="deploy the region stacks, then the primary stack, to real AWS",
    main=lambda argv: main(argv),
)
