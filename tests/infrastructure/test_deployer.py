"""The one-command deployer: region stacks in moto's CloudFormation, the primary via a fake sam.

The fake ``sam`` parses each command line with the SAM CLI's own click commands (so the
options, samconfig.toml and the ``--parameter-overrides`` quoting are what the real CLI sees),
evaluates template.yaml's REGION_QUEUES with the parsed parameters, and stands up a stand-in
primary stack in moto carrying the outputs the real one would have.
"""

from __future__ import annotations

import ast
import io
import json
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cfn_eval import PRIMARY, Evaluator, load

from orchestrator.deploy import cli
from orchestrator.deploy.config import (
    SAMCONFIG,
    ConfigurationError,
    parse_overrides,
    parse_regions,
    read_samconfig,
)
from orchestrator.deploy.manifests import load_documents
from orchestrator.deploy.sam import command_environment, format_override, remote_queue_parameters
from orchestrator.deploy.schemas import validate_documents
from orchestrator.deploy.stacks import (
    RegionQueue,
    StackError,
    Waiting,
    deploy_region_stacks,
    deploy_stack,
    stack_status,
)

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS::")

REGION_STACK = "inference-orchestrator-region-dev"
REGION_PARAMETERS = {"Environment": "dev", "PrimaryRegion": "us-east-1"}
REGION_BODY = (PRIMARY.parent / "region.yaml").read_text(encoding="utf-8")
FAST = Waiting(delay=0, max_attempts=5, sleep=lambda _: None)


@pytest.fixture(autouse=True)
def _keep_boto3_default_session(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The SAM CLI's option parsing replaces boto3's default session; put it back."""
    monkeypatch.setenv("SAM_CLI_TELEMETRY", "0")
    saved = boto3.DEFAULT_SESSION
    yield
    boto3.DEFAULT_SESSION = saved


@pytest.fixture
def session(moto_session: boto3.session.Session) -> Iterator[boto3.session.Session]:
    yield moto_session


def cfn(session: boto3.session.Session, region: str) -> Any:
    return session.client("cloudformation", region_name=region)


# ---------------------------------------------------------------------- region stacks in moto
def test_region_stacks_are_created_in_each_region(session: boto3.session.Session) -> None:
    clients = {r: cfn(session, r) for r in ("us-west-2", "us-west-1")}
    queues = deploy_region_stacks(
        clients,
        stack_name=REGION_STACK,
        template_body=REGION_BODY,
        parameters=REGION_PARAMETERS,
        tags={"Project": "inference-orchestrator"},
        waiting=FAST,
    )
    assert list(queues) == ["us-west-2", "us-west-1"]
    for r, queue in queues.items():
        sqs = session.client("sqs", region_name=r)
        url = sqs.get_queue_url(QueueName=f"inference-queue-{r}-dev")["QueueUrl"]
        assert queue.url == url
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert queue.arn == attributes["QueueArn"]
        assert attributes["VisibilityTimeout"] == "3600"
        assert attributes["SqsManagedSseEnabled"] == "true"
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"].endswith(f"inference-queue-{r}-dev-dlq")
        assert queue.dead_letter_url and queue.dead_letter_url.endswith("-dlq")
        stack = clients[r].describe_stacks(StackName=REGION_STACK)["Stacks"][0]
        assert {"Key": "Project", "Value": "inference-orchestrator"} in stack["Tags"]


def test_region_stack_is_updated_in_place(session: boto3.session.Session) -> None:
    client = cfn(session, "us-west-2")
    first = deploy_stack(
        client,
        name=REGION_STACK,
        template_body=REGION_BODY,
        parameters=REGION_PARAMETERS,
        waiting=FAST,
    )
    second = deploy_stack(
        client,
        name=REGION_STACK,
        template_body=REGION_BODY,
        parameters={**REGION_PARAMETERS, "RegionQueueVisibilityTimeout": "7200"},
        waiting=FAST,
    )
    assert second["RegionQueueUrl"] == first["RegionQueueUrl"]
    sqs = session.client("sqs", region_name="us-west-2")
    attributes = sqs.get_queue_attributes(
        QueueUrl=second["RegionQueueUrl"], AttributeNames=["VisibilityTimeout"]
    )["Attributes"]
    assert attributes["VisibilityTimeout"] == "7200"
    assert stack_status(client, REGION_STACK) == "UPDATE_COMPLETE"


def test_region_template_fits_an_inline_template_body() -> None:
    """The deployer sends region.yaml as TemplateBody, which CloudFormation caps at 51,200
    bytes (template.yaml goes through SAM's S3 upload, whose limit is 1 MB)."""
    assert len(REGION_BODY.encode("utf-8")) < 51_200


def policy_document(value: Any) -> dict[str, Any]:
    """An IAM policy as moto returns it: a dict, JSON, or (moto's CloudFormation) a repr."""
    if isinstance(value, dict):
        return value
    try:
        return dict(json.loads(value))
    except json.JSONDecodeError:
        return dict(ast.literal_eval(value))


def test_region_stack_holds_the_workers_resources(session: boto3.session.Session) -> None:
    """The worker role's grants resolve to this region's queues and bucket and to the primary
    region's tables; the interruption rules deliver to Karpenter's queue."""
    client = cfn(session, "us-west-2")
    outputs = deploy_region_stacks(
        {"us-west-2": client},
        stack_name=REGION_STACK,
        template_body=REGION_BODY,
        parameters={**REGION_PARAMETERS, "ClusterName": "gpu-west"},
        waiting=FAST,
    )["us-west-2"].outputs
    sqs = session.client("sqs", region_name="us-west-2")

    def arn(url: str) -> str:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attributes["Attributes"]["QueueArn"])

    iam = session.client("iam")
    role_name = outputs["WorkerRoleArn"].rsplit("/", 1)[1]
    (policy_name,) = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    document = policy_document(
        iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
    )
    resources = {s["Sid"]: s["Resource"] for s in document["Statement"]}
    table = "arn:aws:dynamodb:us-east-1:123456789012:table/inference-"
    assert outputs["RegionHighPriorityQueueUrl"].endswith("/inference-queue-us-west-2-dev-high")
    assert outputs["RegionHighPriorityQueueArn"] == arn(outputs["RegionHighPriorityQueueUrl"])
    assert resources == {
        "ConsumeRegionQueue": [
            arn(outputs["RegionQueueUrl"]),
            arn(outputs["RegionHighPriorityQueueUrl"]),
        ],
        "DeadLetterFailedRequests": arn(outputs["RegionDeadLetterQueueUrl"]),
        "RequestRecords": table + "idempotency-dev",
        "PublishPresence": table + "workers-dev",
        "WriteResults": f"arn:aws:s3:::{outputs['ResultsBucketName']}/results/*",
        "PublishCallbacks": "arn:aws:sns:*:123456789012:inference-callback-*",
    }
    trust = policy_document(iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"])
    (statement,) = trust["Statement"]
    assert statement["Condition"]["StringEquals"]["aws:RequestTag/eks-cluster-name"] == "gpu-west"
    assert outputs["ClusterName"] == "gpu-west"
    assert outputs["ResultsBucketName"] == "inference-results-123456789012-us-west-2-dev"
    assert outputs["RequestTableRegion"] == "us-east-1"

    events = session.client("events", region_name="us-west-2")
    queue_arn = outputs["InterruptionQueueArn"]
    rules = events.list_rules()["Rules"]
    assert len(rules) == 4
    for rule in rules:
        (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert target["Arn"] == queue_arn
    assert queue_arn.endswith(":" + outputs["InterruptionQueueName"])


# ---------------------------------------------------------------------- stack state machine
class ScriptedCfn:
    """A CloudFormation client whose DescribeStacks answers come from a script."""

    def __init__(self, statuses: Sequence[str | None], update_error: str | None = None) -> None:
        self.statuses = list(statuses)
        self.update_error = update_error
        self.calls: list[str] = []
        self.arguments: dict[str, Any] = {}
        self.outputs = {"RegionQueueUrl": "https://q"}

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if status is None:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationError",
                        "Message": f"Stack {StackName} does not exist",
                    }
                },
                "DescribeStacks",
            )
        outputs = [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]
        return {"Stacks": [{"StackStatus": status, "Outputs": outputs}]}

    def describe_stack_events(self, StackName: str) -> dict[str, Any]:
        return {
            "StackEvents": [
                {
                    "LogicalResourceId": "RegionQueue",
                    "ResourceStatus": "CREATE_FAILED",
                    "ResourceStatusReason": "queue name already exists",
                },
                {"LogicalResourceId": "X", "ResourceStatus": "CREATE_COMPLETE"},
            ]
        }

    def create_stack(self, **arguments: Any) -> None:
        self.calls.append("create")
        self.arguments = arguments

    def update_stack(self, **_: Any) -> None:
        self.calls.append("update")
        if self.update_error:
            raise ClientError(
                {"Error": {"Code": "ValidationError", "Message": self.update_error}}, "UpdateStack"
            )

    def delete_stack(self, **_: Any) -> None:
        self.calls.append("delete")


def run(client: ScriptedCfn) -> dict[str, str]:
    return deploy_stack(client, name="s", template_body="{}", parameters={}, waiting=FAST)


def test_a_stack_whose_creation_failed_is_deleted_and_created_again() -> None:
    client = ScriptedCfn(
        ["ROLLBACK_COMPLETE", "ROLLBACK_COMPLETE", "DELETE_IN_PROGRESS", None, "CREATE_COMPLETE"]
    )
    assert run(client) == {"RegionQueueUrl": "https://q"}
    assert client.calls == ["delete", "create"]


def test_a_stack_in_progress_is_waited_for_then_updated() -> None:
    client = ScriptedCfn(["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE", "UPDATE_COMPLETE"])
    run(client)
    assert client.calls == ["update"]


def test_no_updates_is_success() -> None:
    client = ScriptedCfn(["CREATE_COMPLETE"], update_error="No updates are to be performed.")
    assert run(client) == {"RegionQueueUrl": "https://q"}


def test_a_failed_creation_names_the_failed_resource() -> None:
    client = ScriptedCfn([None, "CREATE_IN_PROGRESS", "ROLLBACK_COMPLETE"])
    with pytest.raises(StackError, match="RegionQueue: queue name already exists"):
        run(client)


def test_a_stack_needing_a_person_is_not_touched() -> None:
    client = ScriptedCfn(["UPDATE_ROLLBACK_FAILED"])
    with pytest.raises(StackError, match="UPDATE_ROLLBACK_FAILED"):
        run(client)
    assert client.calls == []


def test_waiting_gives_up() -> None:
    client = ScriptedCfn(["CREATE_IN_PROGRESS"])
    with pytest.raises(StackError, match="still CREATE_IN_PROGRESS after 5 polls"):
        run(client)


def test_region_stacks_get_iam_capability_and_their_own_parameters() -> None:
    clients = {
        "us-west-2": ScriptedCfn([None, "CREATE_COMPLETE"]),
        "eu-west-1": ScriptedCfn([None, "CREATE_COMPLETE"]),
    }
    for client in clients.values():
        client.outputs["RegionQueueArn"] = "arn:aws:sqs:x"
        client.outputs["RegionHighPriorityQueueUrl"] = "https://q-high"
        client.outputs["RegionHighPriorityQueueArn"] = "arn:aws:sqs:x-high"
    deploy_region_stacks(
        clients,
        stack_name="s",
        template_body="{}",
        parameters={"Environment": "dev", "ClusterName": ""},
        region_parameters={"us-west-2": {"ClusterName": "gpu-west"}},
        waiting=FAST,
    )
    for region, cluster in (("us-west-2", "gpu-west"), ("eu-west-1", "")):
        arguments = clients[region].arguments
        assert arguments["Capabilities"] == ["CAPABILITY_IAM"]  # the stack creates IAM roles
        given = {p["ParameterKey"]: p["ParameterValue"] for p in arguments["Parameters"]}
        assert given == {"Environment": "dev", "ClusterName": cluster}


def test_every_failed_region_is_reported() -> None:
    clients = {
        "us-west-2": ScriptedCfn(["UPDATE_ROLLBACK_FAILED"]),
        "us-west-1": ScriptedCfn(["DELETE_FAILED"]),
    }
    with pytest.raises(StackError) as caught:
        deploy_region_stacks(
            clients, stack_name="s", template_body="{}", parameters={}, waiting=FAST
        )
    assert "us-west-2" in str(caught.value)
    assert "us-west-1" in str(caught.value)


# ---------------------------------------------------------------------- parameters, samconfig
def test_regions_are_checked_and_the_primary_dropped() -> None:
    remote, notes = parse_regions("us-east-1", "us-east-1, us-west-2,us-west-1,us-west-2,")
    assert remote == ["us-west-2", "us-west-1"]
    assert len(notes) == 2
    with pytest.raises(ConfigurationError, match="not an AWS region"):
        parse_regions("us-east-1", "us-west-2,uswest1")


def test_samconfig_environments() -> None:
    dev, prod = read_samconfig(SAMCONFIG, "dev"), read_samconfig(SAMCONFIG, "prod")
    assert dev.stack_name == "inference-orchestrator-dev"
    assert prod.stack_name == "inference-orchestrator-prod"
    assert dev.parameter_overrides["Environment"] == "dev"
    assert prod.parameter_overrides["Environment"] == "prod"
    assert set(prod.parameter_overrides) <= set(load(PRIMARY)["Parameters"])
    with pytest.raises(ConfigurationError, match="no \\[staging\\]"):
        read_samconfig(SAMCONFIG, "staging")


def stand_in_build(directory: Path) -> Path:
    """A `.aws-sam/build/template.yaml` under `directory`, as `sam build` would leave it.

    The SAM CLI checks that the template it is given exists; a clean checkout has not been
    built, so the tests give it a copy of the source template there.
    """
    built = directory / ".aws-sam" / "build" / "template.yaml"
    built.parent.mkdir(parents=True, exist_ok=True)
    built.write_text(PRIMARY.read_text())
    return built


def test_samconfig_as_the_sam_cli_reads_it(tmp_path: Path, monkeypatch: Any) -> None:
    from samcli.commands.build.command import cli as build
    from samcli.commands.deploy.command import cli as deploy

    stand_in_build(tmp_path)
    monkeypatch.chdir(tmp_path)  # where sam looks for the built template by default

    for env, confirm in (("dev", False), ("prod", True)):
        args = ["--config-file", str(SAMCONFIG), "--config-env", env]
        built = build.make_context("build", list(args)).params
        assert built["template_file"].endswith("infrastructure/template.yaml")
        deployed = deploy.make_context("deploy", list(args)).params
        assert deployed["capabilities"] == ["CAPABILITY_IAM"]
        assert deployed["confirm_changeset"] is confirm
        assert deployed["stack_name"] == f"inference-orchestrator-{env}"
        assert deployed["parameter_overrides"]["Environment"] == env
        # deploy must use the built template (with the dependencies), never the source one
        assert not deployed["template_file"].endswith("infrastructure/template.yaml")


def test_override_quoting_round_trips_through_sam() -> None:
    from samcli.cli.types import CfnParameterOverridesType

    values = {
        "Empty": "",
        "Pairs": "us-west-2=https://sqs.us-west-2.amazonaws.com/1/q,eu-west-1=https://x/1/y",
        "Spaced": 'a b "c"',
    }
    args = tuple(format_override(k, v) for k, v in values.items())
    assert CfnParameterOverridesType().convert(args, None, None) == values
    assert parse_overrides('A=1 B="two words"', "test") == {"A": "1", "B": "two words"}


def test_remote_queue_parameters_refuse_urls_the_template_cannot_split() -> None:
    url = "https://sqs.us-west-2.amazonaws.com/1/q"
    good = RegionQueue("us-west-2", "s", url, "arn:aws:sqs:x", None, url + "-high", "arn:h")
    assert remote_queue_parameters([]) == {
        "RemoteRegionQueues": "",
        "RemoteRegionQueueArns": "",
        "RemoteRegionHighPriorityQueues": "",
        "RemoteRegionHighPriorityQueueArns": "",
    }
    assert remote_queue_parameters([good]) == {
        "RemoteRegionQueues": f"us-west-2={url}",
        "RemoteRegionQueueArns": "arn:aws:sqs:x",
        "RemoteRegionHighPriorityQueues": f"us-west-2={url}-high",
        "RemoteRegionHighPriorityQueueArns": "arn:h",
    }
    bad = RegionQueue("us-west-2", "s", "https://x/?a=b", "arn:aws:sqs:x", None, url, "arn:h")
    with pytest.raises(ConfigurationError):
        remote_queue_parameters([bad])
    bad_high = RegionQueue("us-west-2", "s", url, "arn:aws:sqs:x", None, "https://x/?a=b", "a")
    with pytest.raises(ConfigurationError):
        remote_queue_parameters([bad_high])
    with pytest.raises(ConfigurationError):
        remote_queue_parameters([RegionQueue("us-west-2", "s", url, "arn:x", None, url, "")])


def test_sam_gets_a_python312_on_path() -> None:
    import shutil
    import sys

    env = command_environment({"PATH": "/nonexistent"})
    if (Path(sys.executable).parent / "python3.12").exists():
        assert shutil.which("python3.12", path=env["PATH"])
    assert env["PATH"].endswith("/nonexistent")


# ---------------------------------------------------------------------- the whole command
class FakeSam:
    """Records sam command lines; ``deploy`` stands up a stand-in primary stack in moto."""

    def __init__(self, session: boto3.session.Session) -> None:
        self.session = session
        self.calls: list[list[str]] = []
        self.parameters: dict[str, str] = {}
        self._built = stand_in_build(Path(tempfile.mkdtemp(prefix="fake-sam-")))

    def __call__(self, argv: Sequence[str]) -> None:
        from samcli.commands.build.command import cli as build
        from samcli.commands.deploy.command import cli as deploy

        self.calls.append(list(argv))
        command, args = argv[1], list(argv[2:])
        if command == "build":
            build.make_context("build", list(args))
            return
        assert command == "deploy"
        if "--template-file" in args:  # the real path is asserted by the tests themselves
            args[args.index("--template-file") + 1] = str(self._built)
        params = deploy.make_context("deploy", list(args)).params
        self.parameters = dict(params["parameter_overrides"])
        region = args[args.index("--region") + 1]
        self._stand_in(params["stack_name"], region, self.parameters)

    def _stand_in(self, stack_name: str, region: str, parameters: dict[str, str]) -> None:
        evaluator = Evaluator(load(PRIMARY), parameters, region=region)
        before, after = evaluator.output("RegionQueuesJson").split("<Ref:RegionQueue>")
        high_before, high_after = evaluator.output("HighPriorityQueuesJson").split(
            "<Ref:RegionHighPriorityQueue>"
        )
        env = parameters["Environment"]
        queue = {"Type": "AWS::SQS::Queue"}
        template = {
            "Resources": {
                "MasterQueue": {
                    **queue,
                    "Properties": {"QueueName": f"inference-master-queue-{env}"},
                },
                "RegionQueue": {
                    **queue,
                    "Properties": {"QueueName": f"inference-queue-{region}-{env}"},
                },
                "RegionHighPriorityQueue": {
                    **queue,
                    "Properties": {"QueueName": f"inference-queue-{region}-{env}-high"},
                },
                "RegionDeadLetterQueue": {
                    **queue,
                    "Properties": {"QueueName": f"inference-queue-{region}-{env}-dlq"},
                },
            },
            "Outputs": {
                "MasterQueueUrl": {"Value": {"Ref": "MasterQueue"}},
                "DeadLetterQueueUrl": {"Value": "https://dlq"},
                "IdempotencyTableName": {"Value": f"inference-idempotency-{env}"},
                "DistributorFunctionName": {"Value": f"inference-distributor-{env}"},
                "RegionQueueUrl": {"Value": {"Ref": "RegionQueue"}},
                "RegionQueuesJson": {
                    "Value": {"Fn::Join": ["", [before, {"Ref": "RegionQueue"}, after]]}
                },
                "RegionHighPriorityQueueUrl": {"Value": {"Ref": "RegionHighPriorityQueue"}},
                "HighPriorityQueuesJson": {
                    "Value": {
                        "Fn::Join": [
                            "",
                            [high_before, {"Ref": "RegionHighPriorityQueue"}, high_after],
                        ]
                    }
                },
                **self._worker_outputs(region, env, parameters),
            },
        }
        client = self.session.client("cloudformation", region_name=region)
        deploy_stack(
            client, name=stack_name, template_body=json.dumps(template), parameters={}, waiting=FAST
        )

    @staticmethod
    def _worker_outputs(region: str, env: str, parameters: dict[str, str]) -> dict[str, Any]:
        """What template.yaml's region-level part outputs (names as the template builds them)."""
        account = "123456789012"
        outputs: dict[str, Any] = {
            "RegionDeadLetterQueueUrl": {"Value": {"Ref": "RegionDeadLetterQueue"}},
            "WorkerRoleArn": {"Value": f"arn:aws:iam::{account}:role/stand-in-WorkerRole"},
            "KedaOperatorRoleArn": {"Value": f"arn:aws:iam::{account}:role/stand-in-Keda"},
            "ResultsBucketName": {"Value": f"inference-results-{account}-{region}-{env}"},
            "ResultsPrefix": {"Value": parameters.get("ResultsPrefix", "results/")},
            "InterruptionQueueName": {"Value": f"inference-karpenter-{region}-{env}"},
            "InterruptionQueueArn": {
                "Value": f"arn:aws:sqs:{region}:{account}:inference-karpenter-{region}-{env}"
            },
            "RequestTableName": {"Value": f"inference-idempotency-{env}"},
            "RequestTableRegion": {"Value": region},
            "WorkersTableName": {"Value": f"inference-workers-{env}"},
        }
        if parameters.get("ClusterName"):
            outputs["ClusterName"] = {"Value": parameters["ClusterName"]}
        return outputs


def deployer(
    session: boto3.session.Session, argv: list[str], runner: Any = None
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(
        [*argv, "--poll-seconds", "0"],
        client_factory=lambda region: cfn(session, region),
        runner=runner or FakeSam(session),
        out=out,
        err=err,
    )
    return code, out.getvalue(), err.getvalue()


def test_one_command_deploys_every_region(session: boto3.session.Session, tmp_path) -> None:
    sam = FakeSam(session)
    summary_file = tmp_path / "outputs.json"
    code, out, err = deployer(
        session,
        [
            "--env", "dev", "--primary-region", "us-east-1",
            "--regions", "us-west-2,us-west-1",
            "--parameter", "RegionQueueVisibilityTimeout=7200",
            "--outputs-json", str(summary_file),
        ],
        sam,
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert [call[1] for call in sam.calls] == ["build", "deploy"]
    deploy = sam.calls[1]
    assert deploy[deploy.index("--region") + 1] == "us-east-1"
    assert deploy[deploy.index("--template-file") + 1].endswith(".aws-sam/build/template.yaml")

    # what the primary stack received: samconfig's overrides kept, the remote queues added
    sqs = {r: session.client("sqs", region_name=r) for r in ("us-east-1", "us-west-2", "us-west-1")}
    urls = {r: sqs[r].get_queue_url(QueueName=f"inference-queue-{r}-dev")["QueueUrl"] for r in sqs}
    arns = {
        r: sqs[r].get_queue_attributes(QueueUrl=urls[r], AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        for r in ("us-west-2", "us-west-1")
    }
    assert sam.parameters["Environment"] == "dev"
    assert sam.parameters["RegionQueueVisibilityTimeout"] == "7200"
    assert sam.parameters["RemoteRegionQueueArns"].split(",") == [
        arns["us-west-2"],
        arns["us-west-1"],
    ]
    high = {
        r: sqs[r].get_queue_url(QueueName=f"inference-queue-{r}-dev-high")["QueueUrl"] for r in sqs
    }
    assert sam.parameters["RemoteRegionHighPriorityQueues"] == (
        f"us-west-2={high['us-west-2']},us-west-1={high['us-west-1']}"
    )
    assert sam.parameters["RemoteRegionHighPriorityQueueArns"].split(",") == [
        sqs[r].get_queue_attributes(QueueUrl=high[r], AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        for r in ("us-west-2", "us-west-1")
    ]
    # the region stacks got the shared tunable too
    visibility = sqs["us-west-2"].get_queue_attributes(
        QueueUrl=urls["us-west-2"], AttributeNames=["VisibilityTimeout"]
    )["Attributes"]["VisibilityTimeout"]
    assert visibility == "7200"

    # the distributor's REGION_QUEUES (as the template computes it) names all three queues
    summary = json.loads(summary_file.read_text())
    assert summary["region_queues"] == urls
    assert summary["high_priority_queues"] == high  # HIGH_PRIORITY_QUEUES, the same regions
    assert "high-priority queues (HIGH_PRIORITY_QUEUES)" in out
    assert summary["master_queue_url"].endswith("/inference-master-queue-dev")
    for r, url in urls.items():
        assert f"{r}" in out and url in out


def test_single_region_sends_empty_remote_parameters(session: boto3.session.Session) -> None:
    sam = FakeSam(session)
    code, out, _ = deployer(session, ["--env", "prod", "--skip-build"], sam)
    assert code == 0
    assert [call[1] for call in sam.calls] == ["deploy"]
    # sent explicitly (empty), so an update cannot keep a removed region's previous value
    assert sam.parameters["RemoteRegionQueues"] == ""
    assert sam.parameters["RemoteRegionQueueArns"] == ""
    assert sam.parameters["RemoteRegionHighPriorityQueues"] == ""
    assert sam.parameters["RemoteRegionHighPriorityQueueArns"] == ""
    assert sam.parameters["MaximumConcurrency"] == "100"  # from samconfig [prod]
    assert "inference-queue-us-east-1-prod" in out


def test_dry_run_touches_nothing() -> None:
    def no_aws(region: str) -> Any:
        raise AssertionError("dry run created a client")

    def no_commands(argv: Sequence[str]) -> None:
        raise AssertionError("dry run ran a command")

    out = io.StringIO()
    code = cli.main(
        ["--env", "dev", "--regions", "us-west-2,us-west-1", "--dry-run"],
        client_factory=no_aws,
        runner=no_commands,
        out=out,
    )
    assert code == 0
    plan = out.getvalue()
    assert "inference-orchestrator-region-dev" in plan
    assert "us-west-2, us-west-1" in plan
    assert "sam build" in plan and "sam deploy" in plan
    assert "RemoteRegionQueues=us-west-2=https://sqs.us-west-2.amazonaws.com/" in plan


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--parameter", "Environment=prod"], "set by the deployer"),
        (["--region-parameter", "Nope=1"], "region.yaml has no such parameter"),
        (["--parameter", "novalue"], "is not Key=Value"),
        (["--primary-region", "east"], "not an AWS region"),
    ],
)
def test_bad_arguments_are_reported(argv: list[str], message: str) -> None:
    err = io.StringIO()
    code = cli.main(["--env", "dev", "--dry-run", *argv], out=io.StringIO(), err=err)
    assert code == 1
    assert message in err.getvalue()


def test_a_failed_sam_deploy_is_reported(session: boto3.session.Session) -> None:
    import subprocess

    def failing(argv: Sequence[str]) -> None:
        raise subprocess.CalledProcessError(3, list(argv))

    code, _, err = deployer(session, ["--env", "dev", "--skip-build"], failing)
    assert code == 3
    assert "sam deploy" in err


def test_destroy(session: boto3.session.Session) -> None:
    code, _, _ = deployer(session, ["--env", "dev", "--regions", "us-west-2"])
    assert code == 0
    code, out, _ = deployer(session, ["--env", "dev", "--regions", "us-west-2", "--destroy"])
    assert code == 2 and "--yes" in out
    assert stack_status(cfn(session, "us-west-2"), REGION_STACK) is not None
    code, out, _ = deployer(
        session, ["--env", "dev", "--regions", "us-west-2", "--destroy", "--yes"]
    )
    assert code == 0
    assert stack_status(cfn(session, "us-west-2"), REGION_STACK) is None
    assert stack_status(cfn(session, "us-east-1"), "inference-orchestrator-dev") is None


# ---------------------------------------------------------------------- worker manifests
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/inference-worker:1.0"


def written_documents(folder: Path) -> dict[str, dict[str, Any]]:
    documents = [
        document
        for path in sorted(folder.glob("*.yaml"))
        for document in load_documents(path.read_text(encoding="utf-8"), path.name)
    ]
    assert validate_documents(documents) == []
    return {document["kind"]: document for document in documents}


def test_manifests_are_filled_in_per_region(session: boto3.session.Session, tmp_path) -> None:
    sam = FakeSam(session)
    code, out, err = deployer(
        session,
        [
            "--env", "dev", "--regions", "us-west-2", "--skip-build",
            "--cluster-name", "us-east-1=gpu-east,us-west-2=gpu-west",
            "--worker-image", IMAGE, "--k8s-dir", str(tmp_path),
        ],
        sam,
    )  # fmt: skip
    assert (code, err) == (0, "")
    # each stack got its own cluster (pod identity associations), the region stack the primary
    assert sam.parameters["ClusterName"] == "gpu-east"
    stack = cfn(session, "us-west-2").describe_stacks(StackName=REGION_STACK)["Stacks"][0]
    given = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert (given["ClusterName"], given["PrimaryRegion"]) == ("gpu-west", "us-east-1")

    source = sorted(p.name for p in (PRIMARY.parent / "k8s").glob("*.yaml"))
    for region, cluster in (("us-east-1", "gpu-east"), ("us-west-2", "gpu-west")):
        folder = tmp_path / region
        assert sorted(p.name for p in folder.iterdir()) == sorted([*source, "values.json"])
        assert "${" not in "".join(p.read_text() for p in folder.glob("*.yaml"))
        kinds = written_documents(folder)
        (container,) = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        trigger, high_trigger = kinds["ScaledObject"]["spec"]["triggers"]
        sqs = session.client("sqs", region_name=region)
        url = sqs.get_queue_url(QueueName=f"inference-queue-{region}-dev")["QueueUrl"]
        high = sqs.get_queue_url(QueueName=f"inference-queue-{region}-dev-high")["QueueUrl"]
        dlq = sqs.get_queue_url(QueueName=f"inference-queue-{region}-dev-dlq")["QueueUrl"]
        assert env["WORKER_QUEUE_URL"] == trigger["metadata"]["queueURL"] == url
        assert env["WORKER_HIGH_PRIORITY_QUEUE_URL"] == high_trigger["metadata"]["queueURL"]
        assert env["WORKER_HIGH_PRIORITY_QUEUE_URL"] == high
        assert high_trigger["metadata"]["awsRegion"] == region
        assert env["WORKER_DEAD_LETTER_QUEUE_URL"] == dlq
        assert env["WORKER_REGION"] == trigger["metadata"]["awsRegion"] == region
        assert env["IDEMPOTENCY_TABLE_NAME"] == "inference-idempotency-dev"
        assert env["IDEMPOTENCY_TABLE_REGION"] == "us-east-1"
        assert env["WORKERS_TABLE_NAME"] == "inference-workers-dev"
        assert env["RESULTS_BUCKET"] == f"inference-results-123456789012-{region}-dev"
        assert env["RESULTS_PREFIX"] == "results/"
        assert env["WORKER_HANDLER"] == "examples.digits:DigitsModel"
        assert container["image"] == IMAGE
        node_class = kinds["EC2NodeClass"]["spec"]
        assert node_class["role"] == f"KarpenterNodeRole-{cluster}"
        discovery = [{"tags": {"karpenter.sh/discovery": cluster}}]
        assert node_class["subnetSelectorTerms"] == node_class["securityGroupSelectorTerms"]
        assert node_class["subnetSelectorTerms"] == discovery
        values = json.loads((folder / "values.json").read_text())
        assert values["outputs"]["InterruptionQueueName"] == f"inference-karpenter-{region}-dev"
        assert f"apply -f {folder}/" in out
    role = kinds["ServiceAccount"]["metadata"]["annotations"]
    assert role["inference-orchestrator/pod-identity-role-arn"].startswith("arn:aws:iam::")


def test_manifests_only_reads_the_deployed_stacks(session: boto3.session.Session, tmp_path) -> None:
    assert deployer(session, ["--env", "dev", "--regions", "us-west-2", "--skip-build"])[0] == 0

    def no_commands(argv: Sequence[str]) -> None:
        raise AssertionError("--manifests-only ran a command")

    code, out, err = deployer(
        session,
        [
            "--env", "dev", "--regions", "us-west-2", "--manifests-only",
            "--worker-image", IMAGE, "--cluster-name", "gpu", "--k8s-dir", str(tmp_path),
            "--worker-handler", "mymodel.serve:Model", "--karpenter-node-role", "NodeRole",
        ],
        no_commands,
    )  # fmt: skip
    assert (code, err) == (0, "")
    kinds = written_documents(tmp_path / "us-west-2")
    (container,) = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert {"name": "WORKER_HANDLER", "value": "mymodel.serve:Model"} in container["env"]
    assert kinds["EC2NodeClass"]["spec"]["role"] == "NodeRole"
    assert "validated offline" in out


def test_manifests_need_an_image_and_a_cluster(session: boto3.session.Session, tmp_path) -> None:
    code, _, err = deployer(session, ["--env", "dev", "--manifests-only"])
    assert code == 1 and "--worker-image" in err
    assert deployer(session, ["--env", "dev", "--skip-build"])[0] == 0
    argv = ["--env", "dev", "--manifests-only", "--worker-image", IMAGE, "--k8s-dir", str(tmp_path)]
    code, _, err = deployer(session, argv)
    assert code == 1 and "--cluster-name" in err
    assert not (tmp_path / "us-east-1").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cluster-name", "eu-west-3=gpu"], "eu-west-3 is not deployed here"),
        (["--cluster-name", "gpu cluster"], "is not an EKS cluster name"),
        (["--parameter", "ClusterName=gpu"], "set by the deployer"),
        (["--region-parameter", "PrimaryRegion=us-west-2"], "set by the deployer"),
    ],
)
def test_bad_worker_arguments_are_reported(argv: list[str], message: str) -> None:
    err = io.StringIO()
    code = cli.main(["--env", "dev", "--dry-run", *argv], out=io.StringIO(), err=err)
    assert code == 1
    assert message in err.getvalue()


def test_dry_run_shows_the_manifests_step() -> None:
    out = io.StringIO()
    argv = ["--env", "dev", "--regions", "us-west-2", "--dry-run", "--worker-image", IMAGE]
    assert cli.main([*argv, "--cluster-name", "gpu"], out=out) == 0
    plan = out.getvalue()
    assert "build/k8s/us-east-1" in plan and "build/k8s/us-west-2" in plan
    assert "PrimaryRegion=us-east-1" in plan
