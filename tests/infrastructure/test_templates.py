"""What users of the templates rely on: redrive, timeouts, encryption, least privilege, names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfn_eval import PRIMARY, REGION, Evaluator, load

CONTRACTS = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"

primary = load(PRIMARY)
region = load(REGION)
TEMPLATES = {"template.yaml": primary, "region.yaml": region}


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def contract_environment() -> set[str]:
    """Variable names of the distributor's environment table in docs/contracts.md."""
    text = CONTRACTS.read_text(encoding="utf-8")
    section = text.split("## Distributor Lambda", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def contract_names(pattern: str) -> list[str]:
    text = CONTRACTS.read_text(encoding="utf-8")
    match = re.search(pattern, text, re.S)
    assert match, pattern
    return re.findall(r"`([A-Za-z]+)`", match.group(1))


# ---------------------------------------------------------------------- contract names
def test_logical_ids_and_outputs_are_the_contract() -> None:
    ids = contract_names(r"`template.yaml` \(primary region\) logical ids:(.*?)Outputs:")
    outputs = contract_names(r"`template.yaml` \(primary region\).*?Outputs:(.*?)\n- ")
    assert set(ids) <= set(primary["Resources"])
    assert set(outputs) <= set(primary["Outputs"])
    region_ids = contract_names(r"`region.yaml` \(every other region\) logical ids:(.*?)Outputs:")
    region_outputs = contract_names(r"`region.yaml` \(every other region\).*?Outputs:(.*?)\n\n")
    assert set(region_ids) <= set(region["Resources"])
    assert set(region_outputs) == set(region["Outputs"])
    assert {"MasterQueue", "DistributorFunction", "RegionQueuesJson"} <= set(ids + outputs)


def test_function_environment_is_exactly_the_contract() -> None:
    function = primary["Resources"]["DistributorFunction"]["Properties"]
    names = set(function["Environment"]["Variables"])
    assert names == contract_environment()


def test_function_code_and_runtime() -> None:
    function = primary["Resources"]["DistributorFunction"]["Properties"]
    assert function["CodeUri"] == "../src"
    assert function["Handler"] == "orchestrator.distributor.handler.lambda_handler"
    assert function["Runtime"] == "python3.12"
    # An explicit role: SAM would otherwise attach AWSLambdaSQSQueueExecutionRole (Resource "*").
    assert function["Role"] == {"Fn::GetAtt": ["DistributorRole", "Arn"]}
    assert "Policies" not in function


def test_dead_letter_queue_url_is_the_master_dlq() -> None:
    variables = Evaluator(primary).properties("DistributorFunction")["Environment"]["Variables"]
    assert variables["DEAD_LETTER_QUEUE_URL"] == "<Ref:MasterDeadLetterQueue>"
    assert variables["IDEMPOTENCY_TABLE_NAME"] == "<Ref:IdempotencyTable>"
    assert Evaluator(primary).output("DeadLetterQueueUrl") == "<Ref:MasterDeadLetterQueue>"


# ---------------------------------------------------------------------- event source, timeouts
def sqs_event() -> dict[str, Any]:
    events = primary["Resources"]["DistributorFunction"]["Properties"]["Events"]
    (event,) = [e for e in events.values() if e["Type"] == "SQS"]
    return event["Properties"]


def test_event_source_reports_partial_batch_failures() -> None:
    event = sqs_event()
    assert event["Queue"] == {"Fn::GetAtt": ["MasterQueue", "Arn"]}
    assert event["BatchSize"] == 10
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["MaximumBatchingWindowInSeconds"] == {"Ref": "BatchingWindowSeconds"}
    assert event["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "MaximumConcurrency"}


def test_master_visibility_timeout_is_at_least_six_function_timeouts_plus_window() -> None:
    params = primary["Parameters"]
    max_window = int(params["BatchingWindowSeconds"]["MaxValue"])
    timeouts = [int(t) for t in params["FunctionTimeout"]["AllowedValues"]]
    assert int(params["FunctionTimeout"]["Default"]) in timeouts
    assert primary["Resources"]["DistributorFunction"]["Properties"]["Timeout"] == {
        "Ref": "FunctionTimeout"
    }
    for timeout in timeouts:
        evaluator = Evaluator(primary, {"FunctionTimeout": str(timeout)})
        visibility = int(evaluator.properties("MasterQueue")["VisibilityTimeout"])
        assert visibility >= 6 * timeout + max_window, timeout
        assert visibility <= 43200


def test_region_queue_visibility_is_long_enough_for_gpu_inference() -> None:
    for template in TEMPLATES.values():
        assert int(Evaluator(template).properties("RegionQueue")["VisibilityTimeout"]) >= 3600


# ---------------------------------------------------------------------- queues
@pytest.mark.parametrize(
    ("name", "queue", "dlq"),
    [
        ("template.yaml", "MasterQueue", "MasterDeadLetterQueue"),
        ("template.yaml", "RegionQueue", "RegionDeadLetterQueue"),
        ("region.yaml", "RegionQueue", "RegionDeadLetterQueue"),
    ],
)
def test_redrive_to_the_dead_letter_queue(name: str, queue: str, dlq: str) -> None:
    props = Evaluator(TEMPLATES[name]).properties(queue)
    assert props["RedrivePolicy"]["deadLetterTargetArn"] == f"<{dlq}.Arn>"
    assert 1 <= int(props["RedrivePolicy"]["maxReceiveCount"]) <= 10
    dlq_props = Evaluator(TEMPLATES[name]).properties(dlq)
    assert "RedrivePolicy" not in dlq_props
    assert int(dlq_props["MessageRetentionPeriod"]) == 1209600


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_queue_is_encrypted(name: str) -> None:
    queues = resources(TEMPLATES[name], "AWS::SQS::Queue")
    assert queues
    for logical_id, queue in queues.items():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") is True or props.get("KmsMasterKeyId"), logical_id


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_queue_denies_insecure_transport(name: str) -> None:
    template = TEMPLATES[name]
    evaluator = Evaluator(template)
    covered: set[str] = set()
    for policy in resources(template, "AWS::SQS::QueuePolicy"):
        props = evaluator.properties(policy)
        for statement in props["PolicyDocument"]["Statement"]:
            if (
                statement["Effect"] == "Deny"
                and statement["Principal"] == "*"
                and statement["Action"] == "sqs:*"
                and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            ):
                queues = {q.removeprefix("<Ref:").removesuffix(">") for q in props["Queues"]}
                assert {f"<{q}.Arn>" for q in queues} <= set(statement["Resource"])
                covered |= queues
    assert covered == set(resources(template, "AWS::SQS::Queue"))


def test_region_queue_is_defined_the_same_in_both_templates() -> None:
    for logical_id in ("RegionQueue", "RegionDeadLetterQueue", "RegionQueuesTlsOnlyPolicy"):
        assert primary["Resources"][logical_id] == region["Resources"][logical_id], logical_id
    for alarm in ("RegionQueueAgeAlarm", "RegionDeadLetterQueueAlarm"):
        assert primary["Resources"][alarm] == region["Resources"][alarm], alarm
    for parameter, spec in region["Parameters"].items():
        shared = {k: v for k, v in primary["Parameters"][parameter].items() if k != "Description"}
        assert shared == {k: v for k, v in spec.items() if k != "Description"}, parameter


def test_queue_names() -> None:
    values = {"Environment": "prod"}
    p = Evaluator(primary, values, region="eu-west-1")
    assert p.properties("MasterQueue")["QueueName"] == "inference-master-queue-prod"
    assert p.properties("RegionQueue")["QueueName"] == "inference-queue-eu-west-1-prod"
    assert p.properties("IdempotencyTable")["TableName"] == "inference-idempotency-prod"
    r = Evaluator(region, values, region="us-west-2")
    assert r.properties("RegionQueue")["QueueName"] == "inference-queue-us-west-2-prod"


# ---------------------------------------------------------------------- ledger table
def test_ledger_table() -> None:
    props = Evaluator(primary).properties("IdempotencyTable")
    assert props["KeySchema"] == [{"AttributeName": "request_id", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "request_id", "AttributeType": "S"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert Evaluator(primary, {"Environment": "prod"}).properties("IdempotencyTable")[
        "DeletionProtectionEnabled"
    ]


# ---------------------------------------------------------------------- IAM
def statements(parameters: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    role = Evaluator(primary, parameters).properties("DistributorRole")
    (policy,) = role["Policies"]
    return {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


REMOTE = {
    "RemoteRegionQueues": "us-west-2=https://sqs.us-west-2.amazonaws.com/1/q2,"
    "us-west-1=https://sqs.us-west-1.amazonaws.com/1/q1",
    "RemoteRegionQueueArns": "arn:aws:sqs:us-west-2:1:q2,arn:aws:sqs:us-west-1:1:q1",
}


@pytest.mark.parametrize(
    "parameters", [{}, REMOTE, {**REMOTE, "EnableTracing": "true"}], ids=["alone", "remote", "xray"]
)
def test_no_statement_has_a_wildcard_resource_or_action(parameters: dict[str, str]) -> None:
    for sid, statement in statements(parameters).items():
        assert statement["Effect"] == "Allow"
        actions = as_list(statement["Action"])
        assert all("*" not in action for action in actions), sid
        if "*" in as_list(statement["Resource"]):
            # X-Ray's write actions do not support resource-level permissions.
            assert set(actions) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, sid


def test_least_privilege_statements() -> None:
    granted = {
        sid: (sorted(as_list(s["Action"])), sorted(as_list(s["Resource"])))
        for sid, s in statements(REMOTE).items()
    }
    assert granted == {
        "WriteOwnLogs": (
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            ["<DistributorLogGroup.Arn>"],
        ),
        "ConsumeMasterQueue": (
            ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"],
            ["<MasterQueue.Arn>"],
        ),
        "IdempotencyLedger": (
            ["dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
            ["<IdempotencyTable.Arn>"],
        ),
        "ForwardToThisRegionQueue": (
            ["sqs:GetQueueAttributes", "sqs:SendMessage"],
            ["<RegionQueue.Arn>"],
        ),
        "DeadLetterMalformedRequests": (["sqs:SendMessage"], ["<MasterDeadLetterQueue.Arn>"]),
        "ForwardToRemoteRegionQueues": (
            ["sqs:GetQueueAttributes", "sqs:SendMessage"],
            ["arn:aws:sqs:us-west-1:1:q1", "arn:aws:sqs:us-west-2:1:q2"],
        ),
    }


def test_single_region_has_no_remote_statement_and_tracing_is_optional() -> None:
    assert "ForwardToRemoteRegionQueues" not in statements()
    assert "XRayTraces" not in statements()
    assert "XRayTraces" in statements({"EnableTracing": "true"})
    fn = Evaluator(primary, {"EnableTracing": "true"}).properties("DistributorFunction")
    assert fn["Tracing"] == "Active"
    assert fn["Environment"]["Variables"]["ENABLE_TRACING"] == "true"


def test_remote_arns_are_required_with_remote_urls() -> None:
    rules = primary["Rules"]
    assert rules["RemoteQueueArnsGivenWithUrls"]["Assertions"]
    assert rules["RemoteQueueUrlsGivenWithArns"]["Assertions"]


# ---------------------------------------------------------------------- logs, alarms, dashboard
def test_log_group_has_retention_and_is_the_functions() -> None:
    evaluator = Evaluator(primary)
    assert int(evaluator.properties("DistributorLogGroup")["RetentionInDays"]) > 0
    fn = evaluator.properties("DistributorFunction")
    assert fn["LoggingConfig"]["LogGroup"] == "<Ref:DistributorLogGroup>"
    assert (
        evaluator.properties("DistributorLogGroup")["LogGroupName"]
        == "/aws/lambda/inference-distributor-dev"
    )


def alarms(template: dict[str, Any]) -> list[dict[str, Any]]:
    evaluator = Evaluator(template, {"AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:t"})
    return [evaluator.properties(a) for a in resources(template, "AWS::CloudWatch::Alarm")]


def watched(template: dict[str, Any], metric: str) -> dict[str, dict[str, Any]]:
    return {a["Dimensions"][0]["Value"]: a for a in alarms(template) if a["MetricName"] == metric}


def test_alarms() -> None:
    depth = watched(primary, "ApproximateNumberOfMessagesVisible")
    for dlq in ("<MasterDeadLetterQueue.QueueName>", "<RegionDeadLetterQueue.QueueName>"):
        assert depth[dlq]["Threshold"] == 1
        assert depth[dlq]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert "<RegionQueue.QueueName>" in watched(primary, "ApproximateAgeOfOldestMessage")
    assert "<RegionQueue.QueueName>" in watched(region, "ApproximateAgeOfOldestMessage")
    assert "<RegionDeadLetterQueue.QueueName>" in watched(
        region, "ApproximateNumberOfMessagesVisible"
    )
    errors = watched(primary, "Errors")["<Ref:DistributorFunction>"]
    assert errors["Namespace"] == "AWS/Lambda"
    for alarm in alarms(primary) + alarms(region):
        assert alarm["AlarmActions"] == ["arn:aws:sns:us-east-1:123456789012:t"]
    assert all(
        "AlarmActions" not in Evaluator(primary).properties(a)
        for a in resources(primary, "AWS::CloudWatch::Alarm")
    )


def remote_pairs(count: int) -> dict[str, str]:
    regions = ["us-west-2", "us-west-1", "eu-central-1"][:count]
    if not regions:
        return {}
    return {
        "RemoteRegionQueues": ",".join(
            f"{r}=https://sqs.{r}.amazonaws.com/123456789012/inference-queue-{r}-dev"
            for r in regions
        ),
        "RemoteRegionQueueArns": ",".join(
            f"arn:aws:sqs:{r}:123456789012:inference-queue-{r}-dev" for r in regions
        ),
    }


@pytest.mark.parametrize("count", [0, 1, 3])
def test_region_queues_json_has_this_region_and_every_remote_one(count: int) -> None:
    evaluator = Evaluator(primary, remote_pairs(count), region="us-east-1")
    variables = evaluator.properties("DistributorFunction")["Environment"]["Variables"]
    region_queues = json.loads(variables["REGION_QUEUES"])
    expected = {"us-east-1": "<Ref:RegionQueue>"}
    for r in ["us-west-2", "us-west-1", "eu-central-1"][:count]:
        expected[r] = f"https://sqs.{r}.amazonaws.com/123456789012/inference-queue-{r}-dev"
    assert region_queues == expected
    assert list(region_queues) == list(expected)
    # The output is the same expression, so it reports exactly what the function received.
    assert evaluator.output("RegionQueuesJson") == variables["REGION_QUEUES"]


@pytest.mark.parametrize("environment", ["dev", "prod"])
@pytest.mark.parametrize("count", [0, 1, 3])
def test_dashboard_body_is_json_with_a_widget_per_region(environment: str, count: int) -> None:
    evaluator = Evaluator(primary, {"Environment": environment, **remote_pairs(count)})
    body = json.loads(evaluator.properties("Dashboard")["DashboardBody"])
    widgets = body["widgets"]
    text = json.dumps(body)
    for metric in ("Forwarded", "Duplicates", "Invalid", "Failed", "BatchLatency"):
        assert f'MetricName=\\"{metric}\\"' in text, metric
    assert 'Namespace=\\"InferenceOrchestrator\\"' in text
    assert "<MasterQueue.QueueName>" in text
    assert "<RegionQueue.QueueName>" in text
    assert '"Duration"' in text
    assert '"Errors"' in text
    remote = widgets[8:]
    assert len(remote) == count
    for widget, r in zip(remote, ["us-west-2", "us-west-1", "eu-central-1"], strict=False):
        assert widget["properties"]["region"] == r
        assert widget["properties"]["title"].endswith(f"inference-queue-{r}-dev")
        (expression,) = widget["properties"]["metrics"][0]
        assert f"AND {environment}'" in expression["expression"]


# ---------------------------------------------------------------------- suppressions
@pytest.mark.parametrize("name", TEMPLATES)
def test_every_suppression_says_why(name: str) -> None:
    for logical_id, resource in TEMPLATES[name]["Resources"].items():
        metadata = resource.get("Metadata") or {}
        for skip in (metadata.get("checkov") or {}).get("skip", []):
            assert len(skip.get("comment", "")) > 40, (logical_id, skip["id"])
        assert "cfn-lint" not in metadata or metadata["cfn-lint"]["config"]["ignore_checks"]
