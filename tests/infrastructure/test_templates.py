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


def evaluate(
    template: dict[str, Any], parameters: dict[str, str] | None = None, **where: str
) -> Evaluator:
    """An Evaluator; region.yaml's PrimaryRegion (no default: the deployer sets it) included."""
    given = dict(parameters or {})
    if "PrimaryRegion" in template["Parameters"]:
        given.setdefault("PrimaryRegion", "us-east-1")
    return Evaluator(template, given, **where)


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
    # docs/contracts.md lists the outputs other components read; the worker's outputs
    # (WorkerRoleArn, ResultsBucketName, ...) are documented in docs/deployment.md.
    assert set(region_outputs) <= set(region["Outputs"])
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
    variables = evaluate(primary).properties("DistributorFunction")["Environment"]["Variables"]
    assert variables["DEAD_LETTER_QUEUE_URL"] == "<Ref:MasterDeadLetterQueue>"
    assert variables["IDEMPOTENCY_TABLE_NAME"] == "<Ref:IdempotencyTable>"
    assert evaluate(primary).output("DeadLetterQueueUrl") == "<Ref:MasterDeadLetterQueue>"


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
        evaluator = evaluate(primary, {"FunctionTimeout": str(timeout)})
        visibility = int(evaluator.properties("MasterQueue")["VisibilityTimeout"])
        assert visibility >= 6 * timeout + max_window, timeout
        assert visibility <= 43200


def test_region_queue_visibility_is_long_enough_for_gpu_inference() -> None:
    for template in TEMPLATES.values():
        assert int(evaluate(template).properties("RegionQueue")["VisibilityTimeout"]) >= 3600


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
    props = evaluate(TEMPLATES[name]).properties(queue)
    assert props["RedrivePolicy"]["deadLetterTargetArn"] == f"<{dlq}.Arn>"
    assert 1 <= int(props["RedrivePolicy"]["maxReceiveCount"]) <= 10
    dlq_props = evaluate(TEMPLATES[name]).properties(dlq)
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
    evaluator = evaluate(template)
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


# template.yaml refers to its own tables; region.yaml, deployed before the primary stack
# exists, builds the same tables' names and ARNs from PrimaryRegion and Environment.
PRIMARY_TO_REGION: list[tuple[Any, Any]] = [
    (
        {"Fn::GetAtt": ["IdempotencyTable", "Arn"]},
        {
            "Fn::Sub": "arn:${AWS::Partition}:dynamodb:${PrimaryRegion}:${AWS::AccountId}"
            ":table/inference-idempotency-${Environment}"
        },
    ),
    (
        {"Fn::GetAtt": ["WorkersTable", "Arn"]},
        {
            "Fn::Sub": "arn:${AWS::Partition}:dynamodb:${PrimaryRegion}:${AWS::AccountId}"
            ":table/inference-workers-${Environment}"
        },
    ),
    ({"Ref": "IdempotencyTable"}, {"Fn::Sub": "inference-idempotency-${Environment}"}),
    ({"Ref": "WorkersTable"}, {"Fn::Sub": "inference-workers-${Environment}"}),
]
REGION_ONLY_PARAMETERS = {"PrimaryRegion"}


def as_region_yaml(value: Any) -> Any:
    """A template.yaml value with its own tables replaced by region.yaml's expressions."""
    for mine, theirs in PRIMARY_TO_REGION:
        if value == mine:
            return theirs
    if isinstance(value, dict):
        return {k: as_region_yaml(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_region_yaml(v) for v in value]
    return value


def test_region_level_resources_are_the_same_in_both_templates() -> None:
    """Everything region.yaml deploys in a remote region, template.yaml deploys identically in
    the primary one: the two templates stay standalone and cannot drift."""
    for logical_id, resource in region["Resources"].items():
        assert logical_id in primary["Resources"], logical_id
        assert as_region_yaml(primary["Resources"][logical_id]) == resource, logical_id
    for name, output in region["Outputs"].items():
        if name != "RequestTableRegion":
            mine = {k: v for k, v in primary["Outputs"][name].items() if k != "Description"}
            theirs = {k: v for k, v in output.items() if k != "Description"}
            assert as_region_yaml(mine) == theirs, name
    assert primary["Outputs"]["RequestTableRegion"]["Value"] == {"Ref": "AWS::Region"}
    assert region["Outputs"]["RequestTableRegion"]["Value"] == {"Ref": "PrimaryRegion"}
    for name, condition in region["Conditions"].items():
        assert primary["Conditions"][name] == condition, name
    for parameter, spec in region["Parameters"].items():
        if parameter in REGION_ONLY_PARAMETERS:
            assert parameter not in primary["Parameters"]
            continue
        shared = {k: v for k, v in primary["Parameters"][parameter].items() if k != "Description"}
        assert shared == {k: v for k, v in spec.items() if k != "Description"}, parameter


def test_region_stacks_name_the_primary_tables() -> None:
    """region.yaml's table ARNs are the ARNs of the tables template.yaml creates."""
    for environment in ("dev", "prod"):
        values = {"Environment": environment}
        p = evaluate(primary, values, region="eu-west-1")
        r = evaluate(region, {**values, "PrimaryRegion": "eu-west-1"}, region="ap-south-1")
        arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/"
        worker = worker_statements(r)
        assert (
            worker["RequestRecords"]["Resource"]
            == arn + p.properties("IdempotencyTable")["TableName"]
        )
        assert (
            worker["PublishPresence"]["Resource"] == arn + p.properties("WorkersTable")["TableName"]
        )
        assert r.output("RequestTableName") == p.properties("IdempotencyTable")["TableName"]
        assert r.output("WorkersTableName") == p.properties("WorkersTable")["TableName"]
        assert r.output("RequestTableRegion") == p.output("RequestTableRegion") == "eu-west-1"


def test_queue_names() -> None:
    values = {"Environment": "prod"}
    p = evaluate(primary, values, region="eu-west-1")
    assert p.properties("MasterQueue")["QueueName"] == "inference-master-queue-prod"
    assert p.properties("RegionQueue")["QueueName"] == "inference-queue-eu-west-1-prod"
    assert p.properties("IdempotencyTable")["TableName"] == "inference-idempotency-prod"
    r = evaluate(region, values, region="us-west-2")
    assert r.properties("RegionQueue")["QueueName"] == "inference-queue-us-west-2-prod"


# ---------------------------------------------------------------------- ledger table
def test_ledger_table() -> None:
    props = evaluate(primary).properties("IdempotencyTable")
    assert props["KeySchema"] == [{"AttributeName": "request_id", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "request_id", "AttributeType": "S"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert evaluate(primary, {"Environment": "prod"}).properties("IdempotencyTable")[
        "DeletionProtectionEnabled"
    ]


# ---------------------------------------------------------------------- IAM
def statements(parameters: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    role = evaluate(primary, parameters).properties("DistributorRole")
    (policy,) = role["Policies"]
    return {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


REMOTE = {
    "RemoteRegionQueues": "us-west-2=https://sqs.us-west-2.amazonaws.com/1/q2,"
    "us-west-1=https://sqs.us-west-1.amazonaws.com/1/q1",
    "RemoteRegionQueueArns": "arn:aws:sqs:us-west-2:1:q2,arn:aws:sqs:us-west-1:1:q1",
    "RemoteRegionHighPriorityQueues": "us-west-2=https://sqs.us-west-2.amazonaws.com/1/q2-high,"
    "us-west-1=https://sqs.us-west-1.amazonaws.com/1/q1-high",
    "RemoteRegionHighPriorityQueueArns": "arn:aws:sqs:us-west-2:1:q2-high,"
    "arn:aws:sqs:us-west-1:1:q1-high",
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
            ["<RegionHighPriorityQueue.Arn>", "<RegionQueue.Arn>"],
        ),
        "DeadLetterMalformedRequests": (["sqs:SendMessage"], ["<MasterDeadLetterQueue.Arn>"]),
        "ReadWorkerPresence": (["dynamodb:Query"], ["<WorkersTable.Arn>"]),
        "ForwardToRemoteRegionQueues": (
            ["sqs:GetQueueAttributes", "sqs:SendMessage"],
            ["arn:aws:sqs:us-west-1:1:q1", "arn:aws:sqs:us-west-2:1:q2"],
        ),
        "ForwardToRemoteRegionHighPriorityQueues": (
            ["sqs:GetQueueAttributes", "sqs:SendMessage"],
            ["arn:aws:sqs:us-west-1:1:q1-high", "arn:aws:sqs:us-west-2:1:q2-high"],
        ),
    }


def test_single_region_has_no_remote_statement_and_tracing_is_optional() -> None:
    assert "ForwardToRemoteRegionQueues" not in statements()
    assert "ForwardToRemoteRegionHighPriorityQueues" not in statements()
    assert "XRayTraces" not in statements()
    assert "XRayTraces" in statements({"EnableTracing": "true"})
    fn = evaluate(primary, {"EnableTracing": "true"}).properties("DistributorFunction")
    assert fn["Tracing"] == "Active"
    assert fn["Environment"]["Variables"]["ENABLE_TRACING"] == "true"


def test_remote_arns_are_required_with_remote_urls() -> None:
    rules = primary["Rules"]
    assert rules["RemoteQueueArnsGivenWithUrls"]["Assertions"]
    assert rules["RemoteQueueUrlsGivenWithArns"]["Assertions"]
    # HIGH_PRIORITY_QUEUES must name the regions of REGION_QUEUES (the functions refuse
    # anything else at cold start): remote high-priority queues come with the remote queues.
    with_queues = rules["RemoteHighPriorityQueuesGivenWithQueues"]
    assert with_queues["RuleCondition"] == {
        "Fn::Not": [{"Fn::Contains": [{"Ref": "RemoteRegionQueues"}, ""]}]
    }
    asserted = json.dumps(with_queues["Assertions"])
    assert "RemoteRegionHighPriorityQueues" in asserted
    assert "RemoteRegionHighPriorityQueueArns" in asserted
    assert rules["RemoteQueuesGivenWithHighPriorityQueues"]["Assertions"]


# ---------------------------------------------------------------------- logs, alarms, dashboard
def test_log_group_has_retention_and_is_the_functions() -> None:
    evaluator = evaluate(primary)
    assert int(evaluator.properties("DistributorLogGroup")["RetentionInDays"]) > 0
    fn = evaluator.properties("DistributorFunction")
    assert fn["LoggingConfig"]["LogGroup"] == "<Ref:DistributorLogGroup>"
    assert (
        evaluator.properties("DistributorLogGroup")["LogGroupName"]
        == "/aws/lambda/inference-distributor-dev"
    )


def alarms(template: dict[str, Any]) -> list[dict[str, Any]]:
    evaluator = evaluate(template, {"AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:t"})
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
        "AlarmActions" not in evaluate(primary).properties(a)
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
        "RemoteRegionHighPriorityQueues": ",".join(
            f"{r}=https://sqs.{r}.amazonaws.com/123456789012/inference-queue-{r}-dev-high"
            for r in regions
        ),
        "RemoteRegionHighPriorityQueueArns": ",".join(
            f"arn:aws:sqs:{r}:123456789012:inference-queue-{r}-dev-high" for r in regions
        ),
    }


@pytest.mark.parametrize("count", [0, 1, 3])
def test_region_queues_json_has_this_region_and_every_remote_one(count: int) -> None:
    evaluator = evaluate(primary, remote_pairs(count), region="us-east-1")
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
    evaluator = evaluate(primary, {"Environment": environment, **remote_pairs(count)})
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


# ---------------------------------------------------------------------- results bucket
@pytest.mark.parametrize("name", TEMPLATES)
def test_results_bucket_is_encrypted_private_and_expires(name: str) -> None:
    template = TEMPLATES[name]
    props = evaluate(template, {"ResultsRetentionDays": "30"}, region="eu-west-1").properties(
        "ResultsBucket"
    )
    assert props["BucketName"] == "inference-results-123456789012-eu-west-1-dev"
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert rule["Status"] == "Enabled"
    assert rule["ExpirationInDays"] == "30"
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    # The whole bucket: a rule limited to one prefix would miss results after a prefix change.
    assert not {"Prefix", "TagFilters"} & set(rule)
    assert "VersioningConfiguration" not in props  # see the CKV_AWS_21 suppression


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_bucket_denies_insecure_transport(name: str) -> None:
    template = TEMPLATES[name]
    evaluator = evaluate(template)
    covered: set[str] = set()
    for policy in resources(template, "AWS::S3::BucketPolicy"):
        props = evaluator.properties(policy)
        bucket = props["Bucket"].removeprefix("<Ref:").removesuffix(">")
        by_sid = {s["Sid"]: s for s in props["PolicyDocument"]["Statement"]}
        deny = by_sid["DenyInsecureTransport"]
        assert (deny["Effect"], deny["Principal"], deny["Action"]) == ("Deny", "*", "s3:*")
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert set(deny["Resource"]) == {f"<{bucket}.Arn>", f"<{bucket}.Arn>/*"}
        tls = by_sid["DenyOutdatedTls"]
        assert tls["Condition"] == {"NumericLessThan": {"s3:TlsVersion": "1.2"}}
        covered.add(bucket)
    assert covered == set(resources(template, "AWS::S3::Bucket"))


# ---------------------------------------------------------------------- workers table
def test_workers_presence_table() -> None:
    props = evaluate(primary, {"Environment": "prod"}).properties("WorkersTable")
    assert props["TableName"] == "inference-workers-prod"
    assert props["KeySchema"] == [
        {"AttributeName": "region", "KeyType": "HASH"},
        {"AttributeName": "worker_id", "KeyType": "RANGE"},
    ]
    assert props["AttributeDefinitions"] == [
        {"AttributeName": "region", "AttributeType": "S"},
        {"AttributeName": "worker_id", "AttributeType": "S"},
    ]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
    assert evaluate(primary).output("WorkersTableName") == "<Ref:WorkersTable>"
    assert "WorkersTable" not in region["Resources"]  # one table, in the primary region


# ---------------------------------------------------------------------- worker and KEDA roles
def role_policy(evaluator: Evaluator, role: str) -> dict[str, dict[str, Any]]:
    (policy,) = evaluator.properties(role)["Policies"]
    return {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}


def worker_statements(evaluator: Evaluator) -> dict[str, dict[str, Any]]:
    return role_policy(evaluator, "WorkerRole")


def granted(statements: dict[str, dict[str, Any]]) -> dict[str, tuple[list[str], list[str]]]:
    return {
        sid: (sorted(as_list(s["Action"])), sorted(as_list(s["Resource"])))
        for sid, s in statements.items()
    }


ACCOUNT = "123456789012"
WORKER_GRANTS = {
    "ConsumeRegionQueue": (
        ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:ReceiveMessage"],
        ["<RegionHighPriorityQueue.Arn>", "<RegionQueue.Arn>"],
    ),
    "DeadLetterFailedRequests": (["sqs:SendMessage"], ["<RegionDeadLetterQueue.Arn>"]),
    "WriteResults": (["s3:PutObject"], ["<ResultsBucket.Arn>/results/*"]),
    "PublishCallbacks": (
        ["sns:Publish"],
        [f"arn:aws:sns:*:{ACCOUNT}:inference-callback-*"],
    ),
}


def test_worker_role_grants_exactly_what_the_worker_does() -> None:
    request_actions = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    presence_actions = ["dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    table = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/inference-"
    assert granted(worker_statements(evaluate(region, region="us-west-2"))) == {
        **WORKER_GRANTS,
        "RequestRecords": (request_actions, [table + "idempotency-dev"]),
        "PublishPresence": (presence_actions, [table + "workers-dev"]),
    }
    assert granted(worker_statements(evaluate(primary))) == {
        **WORKER_GRANTS,
        "RequestRecords": (request_actions, ["<IdempotencyTable.Arn>"]),
        "PublishPresence": (presence_actions, ["<WorkersTable.Arn>"]),
    }


@pytest.mark.parametrize("name", TEMPLATES)
def test_worker_writes_only_its_own_regions_presence(name: str) -> None:
    statement = worker_statements(evaluate(TEMPLATES[name], region="ap-south-1"))["PublishPresence"]
    assert statement["Condition"] == {
        "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["ap-south-1"]}
    }


@pytest.mark.parametrize("name", TEMPLATES)
def test_worker_role_parameters_narrow_it(name: str) -> None:
    template = TEMPLATES[name]
    pattern = f"arn:aws:sns:us-east-1:{ACCOUNT}:team-a-*"
    statements = worker_statements(
        evaluate(template, {"ResultsPrefix": "out/v2/", "CallbackTopicArnPattern": pattern})
    )
    assert statements["WriteResults"]["Resource"] == "<ResultsBucket.Arn>/out/v2/*"
    assert statements["PublishCallbacks"]["Resource"] == pattern
    # Inputs: no s3:GetObject at all unless InputObjectArns names some.
    assert resources(template, "AWS::IAM::RolePolicy")["WorkerInputsPolicy"]["Condition"] == (
        "HasInputObjects"
    )
    assert not evaluate(template).condition("HasInputObjects")
    inputs = "arn:aws:s3:::in-a/requests/*,arn:aws:s3:::in-b/*"
    evaluator = evaluate(template, {"InputObjectArns": inputs})
    assert evaluator.condition("HasInputObjects")
    policy = evaluator.properties("WorkerInputsPolicy")
    assert policy["RoleName"] == "<Ref:WorkerRole>"
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Action"]) == ("Allow", "s3:GetObject")
    assert statement["Resource"] == inputs.split(",")


def trust(evaluator: Evaluator, role: str) -> dict[str, Any]:
    (statement,) = evaluator.properties(role)["AssumeRolePolicyDocument"]["Statement"]
    return dict(statement)


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize(
    ("role", "namespace", "account"),
    [
        ("WorkerRole", "inference", "inference-worker"),
        ("KedaOperatorRole", "keda", "keda-operator"),
    ],
)
def test_roles_trust_one_service_account_through_eks_pod_identity(
    name: str, role: str, namespace: str, account: str
) -> None:
    template = TEMPLATES[name]
    statement = trust(evaluate(template), role)
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
    assert statement["Condition"] == {
        "StringEquals": {
            "aws:SourceAccount": ACCOUNT,
            "aws:RequestTag/kubernetes-namespace": namespace,
            "aws:RequestTag/kubernetes-service-account": account,
        }
    }
    with_cluster = trust(evaluate(template, {"ClusterName": "gpu-east"}), role)
    assert with_cluster["Condition"]["StringEquals"]["aws:RequestTag/eks-cluster-name"] == (
        "gpu-east"
    )


@pytest.mark.parametrize("name", TEMPLATES)
def test_keda_reads_only_the_region_queues_depth(name: str) -> None:
    statements = role_policy(evaluate(TEMPLATES[name]), "KedaOperatorRole")
    assert granted(statements) == {
        "ReadRegionQueueDepth": (
            ["sqs:GetQueueAttributes"],
            ["<RegionHighPriorityQueue.Arn>", "<RegionQueue.Arn>"],
        )
    }


@pytest.mark.parametrize("name", TEMPLATES)
def test_pod_identity_associations_only_with_a_cluster(name: str) -> None:
    template = TEMPLATES[name]
    associations = resources(template, "AWS::EKS::PodIdentityAssociation")
    assert {k: v["Condition"] for k, v in associations.items()} == {
        "WorkerPodIdentityAssociation": "HasClusterName",
        "KedaPodIdentityAssociation": "AssociateKedaOperator",
    }
    assert not evaluate(template).condition("HasClusterName")
    given = evaluate(template, {"ClusterName": "gpu"})
    assert given.condition("HasClusterName") and given.condition("AssociateKedaOperator")
    assert given.properties("WorkerPodIdentityAssociation") == {
        "ClusterName": "gpu",
        "Namespace": "inference",
        "ServiceAccount": "inference-worker",
        "RoleArn": "<WorkerRole.Arn>",
    }
    assert given.properties("KedaPodIdentityAssociation")["RoleArn"] == "<KedaOperatorRole.Arn>"
    skip_keda = {"ClusterName": "gpu", "CreateKedaPodIdentityAssociation": "false"}
    assert not evaluate(template, skip_keda).condition("AssociateKedaOperator")


# Resources that are patterns by design; every other resource is one exact ARN.
PATTERN_RESOURCES = {
    "WriteResults": "objects under the results prefix of this region's bucket",
    "PublishCallbacks": "callback topics by name pattern, chosen per request by the sender",
    "ReadInputs": "input objects by the patterns given in InputObjectArns",
}
STAR_RESOURCES = {
    "XRayTraces": "X-Ray's write actions support no resource-level permissions",
    "ReadQueueAgeMetric": "CloudWatch GetMetricData supports no resource-level permissions",
}


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_iam_statement_is_scoped(name: str) -> None:
    template = TEMPLATES[name]
    values = {"InputObjectArns": "arn:aws:s3:::in/*", "EnableTracing": "true", **REMOTE}
    evaluator = evaluate(template, {k: v for k, v in values.items() if k in template["Parameters"]})
    documents = [
        policy["PolicyDocument"]
        for role in resources(template, "AWS::IAM::Role")
        for policy in evaluator.properties(role).get("Policies", [])
    ] + [
        evaluator.properties(p)["PolicyDocument"]
        for p in resources(template, "AWS::IAM::RolePolicy")
    ]
    assert documents
    for document in documents:
        for statement in document["Statement"]:
            sid = statement["Sid"]
            assert statement["Effect"] == "Allow", sid
            assert all("*" not in action for action in as_list(statement["Action"])), sid
            for resource in as_list(statement["Resource"]):
                if resource == "*":
                    assert sid in STAR_RESOURCES, sid
                elif "*" in resource:
                    assert sid in PATTERN_RESOURCES, (sid, resource)


# ---------------------------------------------------------------------- Karpenter interruptions
INTERRUPTION_EVENTS = {
    "SpotInterruptionRule": ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
    "RebalanceRule": ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
    "InstanceStateChangeRule": ("aws.ec2", "EC2 Instance State-change Notification"),
    "ScheduledChangeRule": ("aws.health", "AWS Health Event"),
}


@pytest.mark.parametrize("name", TEMPLATES)
def test_interruption_events_reach_karpenters_queue(name: str) -> None:
    template = TEMPLATES[name]
    evaluator = evaluate(template, region="us-west-2")
    queue = evaluator.properties("InterruptionQueue")
    assert queue["QueueName"] == "inference-karpenter-us-west-2-dev"
    assert queue["SqsManagedSseEnabled"] is True
    assert int(queue["MessageRetentionPeriod"]) == 300
    rules = resources(template, "AWS::Events::Rule")
    assert set(rules) == set(INTERRUPTION_EVENTS)
    for rule, (source, detail_type) in INTERRUPTION_EVENTS.items():
        props = evaluator.properties(rule)
        assert props["EventPattern"] == {"source": [source], "detail-type": [detail_type]}
        (target,) = props["Targets"]
        assert target["Arn"] == "<InterruptionQueue.Arn>"
    policy = evaluator.properties("InterruptionQueuePolicy")
    assert policy["Queues"] == ["<Ref:InterruptionQueue>"]
    by_sid = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    events = by_sid["EventBridgeRulesOfThisStack"]
    assert events["Principal"] == {"Service": "events.amazonaws.com"}
    assert (events["Effect"], events["Action"]) == ("Allow", "sqs:SendMessage")
    assert events["Resource"] == "<InterruptionQueue.Arn>"
    assert set(events["Condition"]["ArnEquals"]["aws:SourceArn"]) == {
        f"<{rule}.Arn>" for rule in INTERRUPTION_EVENTS
    }
    sqs = by_sid["SqsService"]
    assert sqs["Principal"] == {"Service": "sqs.amazonaws.com"}
    assert (sqs["Action"], sqs["Resource"]) == ("sqs:SendMessage", "<InterruptionQueue.Arn>")


# ---------------------------------------------------------------------- outputs
WORKER_OUTPUTS = {
    "RegionQueueUrl": "<Ref:RegionQueue>",
    "RegionHighPriorityQueueUrl": "<Ref:RegionHighPriorityQueue>",
    "RegionHighPriorityQueueArn": "<RegionHighPriorityQueue.Arn>",
    "RegionDeadLetterQueueUrl": "<Ref:RegionDeadLetterQueue>",
    "WorkerRoleArn": "<WorkerRole.Arn>",
    "KedaOperatorRoleArn": "<KedaOperatorRole.Arn>",
    "ResultsBucketName": "<Ref:ResultsBucket>",
    "ResultsPrefix": "results/",
    "InterruptionQueueName": "<InterruptionQueue.QueueName>",
    "InterruptionQueueArn": "<InterruptionQueue.Arn>",
}


def test_outputs_for_the_worker_manifests() -> None:
    p = evaluate(primary, region="us-east-1")
    r = evaluate(region, {"PrimaryRegion": "us-east-1"}, region="us-west-2")
    for name, value in WORKER_OUTPUTS.items():
        assert p.output(name) == r.output(name) == value, name
    assert p.output("RequestTableName") == "<Ref:IdempotencyTable>"
    assert p.output("WorkersTableName") == "<Ref:WorkersTable>"
    assert r.output("RequestTableName") == "inference-idempotency-dev"
    assert r.output("WorkersTableName") == "inference-workers-dev"
    assert r.output("RequestTableRegion") == p.output("RequestTableRegion") == "us-east-1"
    for template in TEMPLATES.values():
        assert template["Outputs"]["ClusterName"]["Condition"] == "HasClusterName"


def test_deployment_doc_names_every_parameter_and_output() -> None:
    text = (CONTRACTS.parent / "deployment.md").read_text(encoding="utf-8")
    for template in TEMPLATES.values():
        for name in [*template["Parameters"], *template["Outputs"]]:
            assert f"`{name}`" in text, name


# ---------------------------------------------------------------------- suppressions
@pytest.mark.parametrize("name", TEMPLATES)
def test_every_suppression_says_why(name: str) -> None:
    for logical_id, resource in TEMPLATES[name]["Resources"].items():
        metadata = resource.get("Metadata") or {}
        for skip in (metadata.get("checkov") or {}).get("skip", []):
            assert len(skip.get("comment", "")) > 40, (logical_id, skip["id"])
        assert "cfn-lint" not in metadata or metadata["cfn-lint"]["config"]["ignore_checks"]


def test_rescue_function_is_scheduled_once_a_minute_with_one_run_at_a_time() -> None:
    function = primary["Resources"]["RescueFunction"]
    assert function["Metadata"]["BuildMethod"] == "makefile"
    props = function["Properties"]
    assert props["Handler"] == "orchestrator.rescue.handler.lambda_handler"
    assert props["ReservedConcurrentExecutions"] == 1
    (event,) = props["Events"].values()
    assert event["Type"] == "Schedule" and event["Properties"]["Schedule"] == "rate(1 minute)"
    variables = props["Environment"]["Variables"]
    distributor = primary["Resources"]["DistributorFunction"]["Properties"]
    assert variables["REGION_QUEUES"] == distributor["Environment"]["Variables"]["REGION_QUEUES"]


def test_rescue_may_touch_only_its_memory_item_beyond_updating_a_records_region() -> None:
    statements = {
        s["Sid"]: s
        for s in primary["Resources"]["RescueRole"]["Properties"]["Policies"][0]["PolicyDocument"][
            "Statement"
        ]
        if isinstance(s, dict) and "Sid" in s
    }
    assert statements["UpdateRequestRegion"]["Action"] == "dynamodb:UpdateItem"
    memory = statements["StallMemoryItemOnly"]
    assert set(memory["Action"]) == {"dynamodb:GetItem", "dynamodb:PutItem"}
    assert memory["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"] == [
        "#rescue:stalled-since"
    ]


# ---------------------------------------------------------------------- high-priority queues
@pytest.mark.parametrize("name", TEMPLATES)
def test_the_high_priority_queue_is_the_region_queue_under_another_name(name: str) -> None:
    """Same visibility, retention, long polling, dead-letter queue, redrive and encryption."""
    evaluator = evaluate(TEMPLATES[name], {"Environment": "prod"}, region="eu-west-1")
    standard = evaluator.properties("RegionQueue")
    high = evaluator.properties("RegionHighPriorityQueue")
    assert high["QueueName"] == "inference-queue-eu-west-1-prod-high"
    assert {k: v for k, v in high.items() if k != "QueueName"} == {
        k: v for k, v in standard.items() if k != "QueueName"
    }
    assert high["RedrivePolicy"]["deadLetterTargetArn"] == "<RegionDeadLetterQueue.Arn>"
    assert high["SqsManagedSseEnabled"] is True
    metadata = TEMPLATES[name]["Resources"]["RegionHighPriorityQueue"]["Metadata"]
    assert [skip["id"] for skip in metadata["checkov"]["skip"]] == ["CKV_AWS_27"]


@pytest.mark.parametrize("name", TEMPLATES)
def test_the_high_priority_queue_has_its_age_alarm(name: str) -> None:
    alarm = watched(TEMPLATES[name], "ApproximateAgeOfOldestMessage")
    assert "<RegionHighPriorityQueue.QueueName>" in alarm


@pytest.mark.parametrize("count", [0, 1, 3])
def test_high_priority_queues_json_names_the_regions_of_region_queues(count: int) -> None:
    evaluator = evaluate(primary, remote_pairs(count), region="us-east-1")
    variables = evaluator.properties("DistributorFunction")["Environment"]["Variables"]
    high = json.loads(variables["HIGH_PRIORITY_QUEUES"])
    assert list(high) == list(json.loads(variables["REGION_QUEUES"]))
    assert high["us-east-1"] == "<Ref:RegionHighPriorityQueue>"
    for r in ["us-west-2", "us-west-1", "eu-central-1"][:count]:
        assert high[r] == f"https://sqs.{r}.amazonaws.com/123456789012/inference-queue-{r}-dev-high"
    assert evaluator.output("HighPriorityQueuesJson") == variables["HIGH_PRIORITY_QUEUES"]


def test_the_rescue_sees_the_same_queues_and_placement_as_the_distributor() -> None:
    evaluator = evaluate(primary, REMOTE)
    rescue = evaluator.properties("RescueFunction")["Environment"]["Variables"]
    distributor = evaluator.properties("DistributorFunction")["Environment"]["Variables"]
    for name in ("REGION_QUEUES", "HIGH_PRIORITY_QUEUES", "MODEL_REGIONS"):
        assert rescue[name] == distributor[name], name
    assert (
        evaluate(primary, {"ModelRegions": '{"m": ["us-east-1"]}'}).properties("RescueFunction")[
            "Environment"
        ]["Variables"]["MODEL_REGIONS"]
        == '{"m": ["us-east-1"]}'
    )


def rescue_statements(parameters: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    return role_policy(evaluate(primary, parameters), "RescueRole")


def test_the_rescue_moves_between_high_priority_queues_too() -> None:
    move = [
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
        "sqs:SendMessage",
    ]
    grants = granted(rescue_statements(REMOTE))
    assert grants["MoveBetweenRegionQueues"] == (
        move,
        ["<RegionHighPriorityQueue.Arn>", "<RegionQueue.Arn>"],
    )
    assert grants["MoveBetweenRemoteRegionQueues"] == (
        move,
        ["arn:aws:sqs:us-west-1:1:q1", "arn:aws:sqs:us-west-2:1:q2"],
    )
    assert grants["MoveBetweenRemoteRegionHighPriorityQueues"] == (
        move,
        ["arn:aws:sqs:us-west-1:1:q1-high", "arn:aws:sqs:us-west-2:1:q2-high"],
    )
    alone = rescue_statements()
    assert "MoveBetweenRemoteRegionHighPriorityQueues" not in alone
    assert "MoveBetweenRemoteRegionQueues" not in alone


def test_the_dashboard_shows_the_high_priority_queue_and_its_alarm() -> None:
    body = evaluate(primary).properties("Dashboard")["DashboardBody"]
    assert "<RegionHighPriorityQueue.QueueName>" in body
    assert "<RegionHighPriorityQueueAgeAlarm.Arn>" in body
