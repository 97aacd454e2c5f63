"""CloudFormation stacks through an injected boto3 client: create or update, wait, read outputs.

Every function takes the client of the stack's region, so the same code runs against AWS and
against moto in the tests. Waiting is a poll of DescribeStacks (``Waiting`` sets the pace), not
a boto3 waiter, so a stack left in progress by an earlier run is waited for too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from orchestrator.core.errors import AWS_ERRORS

Log = Callable[[str], None]

# A first creation that failed leaves the stack in one of these: it can only be deleted.
_FAILED_CREATE = frozenset({"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"})
# Left by a failed update or delete: a person has to look (continue-update-rollback, retain...).
_NEEDS_A_PERSON = frozenset({"UPDATE_ROLLBACK_FAILED", "DELETE_FAILED", "UPDATE_FAILED"})


class StackError(RuntimeError):
    """A stack did not reach the state asked for; the message names the failed resources."""


@dataclass(frozen=True)
class Waiting:
    delay: float = 10.0
    """Seconds between two DescribeStacks calls."""
    max_attempts: int = 360
    """Polls before giving up (360 x 10 s = 1 hour)."""
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class RegionQueue:
    """A remote region's queues (standard and high-priority), read from its region.yaml
    stack's outputs."""

    region: str
    stack_name: str
    url: str
    arn: str
    dead_letter_url: str | None = None
    high_url: str = ""
    """``RegionHighPriorityQueueUrl``."""
    high_arn: str = ""
    """``RegionHighPriorityQueueArn``."""
    outputs: Mapping[str, str] = field(default_factory=dict, compare=False)
    """Every output of the stack (the worker manifests need more than the queue)."""


def _quiet(_: str) -> None:
    return None


def _missing(error: ClientError) -> bool:
    message = error.response.get("Error", {}).get("Message", "")
    return "does not exist" in message


def stack_status(cfn: Any, name: str) -> str | None:
    """The stack's status, or None when there is no such (live) stack."""
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        if _missing(error):
            return None
        raise
    if not stacks or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
        return None
    return str(stacks[0]["StackStatus"])


def stack_outputs(cfn: Any, name: str) -> dict[str, str]:
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


def failure_reasons(cfn: Any, name: str, limit: int = 5) -> list[str]:
    """The latest ``*_FAILED`` events of a stack, newest first, as ``resource: reason``."""
    try:
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    except ClientError:
        return []
    reasons = [
        f"{e.get('LogicalResourceId')}: {e.get('ResourceStatusReason') or e['ResourceStatus']}"
        for e in events
        if str(e.get("ResourceStatus", "")).endswith("_FAILED")
    ]
    return reasons[:limit]


def wait_until_settled(cfn: Any, name: str, waiting: Waiting) -> str | None:
    """Poll until the stack is no longer ``*_IN_PROGRESS``; its final status (None: gone)."""
    status: str | None = None
    for attempt in range(waiting.max_attempts):
        status = stack_status(cfn, name)
        if status is None or not status.endswith("_IN_PROGRESS"):
            return status
        if attempt + 1 < waiting.max_attempts:
            waiting.sleep(waiting.delay)
    raise StackError(
        f"{name}: still {status} after {waiting.max_attempts} polls of {waiting.delay:g} s"
    )


def _expect(cfn: Any, name: str, status: str | None, wanted: str, action: str) -> None:
    if status == wanted:
        return
    reasons = failure_reasons(cfn, name)
    detail = "; ".join(reasons) if reasons else "no failure event recorded"
    raise StackError(f"{name}: {action} ended in {status or 'no stack'} ({detail})")


def _as_parameters(parameters: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in parameters.items()]


def _as_tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": str(v)} for k, v in tags.items()]


def delete_stack(cfn: Any, name: str, waiting: Waiting = Waiting(), log: Log = _quiet) -> bool:
    """Delete the stack and wait; False when there was nothing to delete."""
    status = wait_until_settled(cfn, name, waiting)
    if status is None:
        log(f"{name}: no stack to delete")
        return False
    log(f"{name}: deleting ({status})")
    cfn.delete_stack(StackName=name)
    final = wait_until_settled(cfn, name, waiting)
    if final is not None:
        _expect(cfn, name, final, "DELETE_COMPLETE", "delete")
    log(f"{name}: deleted")
    return True


def deploy_stack(
    cfn: Any,
    *,
    name: str,
    template_body: str,
    parameters: Mapping[str, str],
    tags: Mapping[str, str] | None = None,
    capabilities: Sequence[str] = (),
    waiting: Waiting = Waiting(),
    log: Log = _quiet,
) -> dict[str, str]:
    """Create the stack, or update it when it exists; wait; return its outputs.

    A stack whose first creation failed (ROLLBACK_COMPLETE) cannot be updated: it is deleted
    and created again. "No updates are to be performed" is success.
    """
    status = wait_until_settled(cfn, name, waiting)
    if status in _NEEDS_A_PERSON:
        raise StackError(
            f"{name}: stack is {status}; fix it in the CloudFormation console "
            "(continue the rollback or delete it) and run the deployer again"
        )
    if status in _FAILED_CREATE:
        log(f"{name}: its first creation failed ({status}); deleting it to create it again")
        delete_stack(cfn, name, waiting, log)
        status = None
    arguments: dict[str, Any] = {
        "StackName": name,
        "TemplateBody": template_body,
        "Parameters": _as_parameters(parameters),
        "Tags": _as_tags(tags or {}),
    }
    if capabilities:
        arguments["Capabilities"] = list(capabilities)
    if status is None:
        log(f"{name}: creating")
        cfn.create_stack(**arguments)
        _expect(cfn, name, wait_until_settled(cfn, name, waiting), "CREATE_COMPLETE", "create")
        log(f"{name}: created")
    else:
        log(f"{name}: updating ({status})")
        try:
            cfn.update_stack(**arguments)
        except ClientError as error:
            if "No updates are to be performed" not in str(error):
                raise
            log(f"{name}: already up to date")
        else:
            final = wait_until_settled(cfn, name, waiting)
            _expect(cfn, name, final, "UPDATE_COMPLETE", "update")
            log(f"{name}: updated")
    return stack_outputs(cfn, name)


def region_queue_from_outputs(
    region: str, stack_name: str, outputs: Mapping[str, str]
) -> RegionQueue:
    missing = [key for key in QUEUE_OUTPUTS if not outputs.get(key)]
    if missing:
        raise StackError(f"{stack_name} in {region}: outputs {', '.join(missing)} are missing")
    return RegionQueue(
        region=region,
        stack_name=stack_name,
        url=outputs["RegionQueueUrl"],
        arn=outputs["RegionQueueArn"],
        dead_letter_url=outputs.get("RegionDeadLetterQueueUrl"),
        high_url=outputs["RegionHighPriorityQueueUrl"],
        high_arn=outputs["RegionHighPriorityQueueArn"],
        outputs=dict(outputs),
    )


def json_output(outputs: Mapping[str, str], name: str) -> dict[str, str]:
    """An output holding a JSON object (``RegionQueuesJson``); {} when absent or not one."""
    try:
        value = json.loads(outputs.get(name, "{}"))
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


QUEUE_OUTPUTS = (
    "RegionQueueUrl",
    "RegionQueueArn",
    "RegionHighPriorityQueueUrl",
    "RegionHighPriorityQueueArn",
)
"""The region stack outputs the primary stack's parameters are made of."""


def _run_per_region(
    clients: Mapping[str, Any], work: Callable[[str, Any], Any], parallel: bool
) -> dict[str, Any]:
    """``work(region, client)`` for every region; every failure reported, not just the first."""
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}
    if parallel and len(clients) > 1:
        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            futures = {r: pool.submit(work, r, c) for r, c in clients.items()}
            for region, future in futures.items():
                try:
                    results[region] = future.result()
                except (StackError, *AWS_ERRORS) as error:  # a defect raises as itself
                    errors[region] = error
    else:
        for region, client in clients.items():
            try:
                results[region] = work(region, client)
            except (StackError, *AWS_ERRORS) as error:
                errors[region] = error
    if errors:
        lines = [f"  {region}: {error}" for region, error in errors.items()]
        raise StackError("region stacks failed:\n" + "\n".join(lines))
    return {region: results[region] for region in clients}


def deploy_region_stacks(
    clients: Mapping[str, Any],
    *,
    stack_name: str,
    template_body: str,
    parameters: Mapping[str, str],
    tags: Mapping[str, str] | None = None,
    waiting: Waiting = Waiting(),
    log: Log = _quiet,
    parallel: bool = True,
    region_parameters: Mapping[str, Mapping[str, str]] | None = None,
    capabilities: Sequence[str] = ("CAPABILITY_IAM",),
) -> dict[str, RegionQueue]:
    """Deploy region.yaml in every region of ``clients`` ({region: cloudformation client}).

    ``region_parameters`` adds or overrides parameters of single regions (the EKS cluster
    name differs per region). The stack creates IAM roles without names: ``CAPABILITY_IAM``.
    """

    def one(region: str, cfn: Any) -> RegionQueue:
        outputs = deploy_stack(
            cfn,
            name=stack_name,
            template_body=template_body,
            parameters={**parameters, **(region_parameters or {}).get(region, {})},
            tags=tags,
            capabilities=capabilities,
            waiting=waiting,
            log=lambda line: log(f"[{region}] {line}"),
        )
        return region_queue_from_outputs(region, stack_name, outputs)

    return _run_per_region(clients, one, parallel)


def delete_region_stacks(
    clients: Mapping[str, Any],
    *,
    stack_name: str,
    waiting: Waiting = Waiting(),
    log: Log = _quiet,
    parallel: bool = True,
) -> dict[str, bool]:
    def one(region: str, cfn: Any) -> bool:
        return delete_stack(cfn, stack_name, waiting, lambda line: log(f"[{region}] {line}"))

    return _run_per_region(clients, one, parallel)
