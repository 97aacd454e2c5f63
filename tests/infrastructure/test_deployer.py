"""The one-command deployer: region stacks in moto's CloudFormation, the primary via a fake sam.

The fake ``sam`` parses each command line with the SAM CLI's own click commands (so the
options, samconfig.toml and the ``--parameter-overrides`` quoting are what the real CLI sees),
evaluates template.yaml's REGION_QUEUES with the parsed parameters, and stands up a stand-in
primary stack in moto carrying the outputs the real one would have.
"""

from __future__ import annotations

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
from orchestrator.deploy.sam import command_environment, format_override, remote_queue_parameters
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
        parameters={"Environment": "dev"},
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
        client, name=REGION_STACK, template_body=REGION_BODY, parameters={}, waiting=FAST
    )
    second = deploy_stack(
        client,
        name=REGION_STACK,
        template_body=REGION_BODY,
        parameters={"RegionQueueVisibilityTimeout": "7200"},
        waiting=FAST,
    )
    assert second["RegionQueueUrl"] == first["RegionQueueUrl"]
    sqs = session.client("sqs", region_name="us-west-2")
    attributes = sqs.get_queue_attributes(
        QueueUrl=second["RegionQueueUrl"], AttributeNames=["VisibilityTimeout"]
    )["Attributes"]
    assert attributes["VisibilityTimeout"] == "7200"
    assert stack_status(client, REGION_STACK) == "UPDATE_COMPLETE"


# ---------------------------------------------------------------------- stack state machine
class ScriptedCfn:
    """A CloudFormation client whose DescribeStacks answers come from a script."""

    def __init__(self, statuses: Sequence[str | None], update_error: str | None = None) -> None:
        self.statuses = list(statuses)
        self.update_error = update_error
        self.calls: list[str] = []

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
        outputs = [{"OutputKey": "RegionQueueUrl", "OutputValue": "https://q"}]
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

    def create_stack(self, **_: Any) -> None:
        self.calls.append("create")

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
    good = RegionQueue("us-west-2", "s", "https://sqs.us-west-2.amazonaws.com/1/q", "arn:aws:sqs:x")
    assert remote_queue_parameters([]) == {"RemoteRegionQueues": "", "RemoteRegionQueueArns": ""}
    assert remote_queue_parameters([good])["RemoteRegionQueues"].startswith("us-west-2=https://")
    bad = RegionQueue("us-west-2", "s", "https://x/?a=b", "arn:aws:sqs:x")
    with pytest.raises(ConfigurationError):
        remote_queue_parameters([bad])


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
            },
        }
        client = self.session.client("cloudformation", region_name=region)
        deploy_stack(
            client, name=stack_name, template_body=json.dumps(template), parameters={}, waiting=FAST
        )


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
    # the region stacks got the shared tunable too
    visibility = sqs["us-west-2"].get_queue_attributes(
        QueueUrl=urls["us-west-2"], AttributeNames=["VisibilityTimeout"]
    )["Attributes"]["VisibilityTimeout"]
    assert visibility == "7200"

    # the distributor's REGION_QUEUES (as the template computes it) names all three queues
    summary = json.loads(summary_file.read_text())
    assert summary["region_queues"] == urls
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
