"""The local stack's specs come from infrastructure/*.yaml, not from copies of its values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localrun.cfn import (
    NO_VALUE,
    Resolver,
    ResourceRef,
    TemplateError,
    TemplateEvaluator,
    Unresolved,
    load_template,
    read_template,
)
from localrun.cfn import pseudo_parameters as pseudo
from localrun.templates import REGIONS, infrastructure_dir, load_stack_spec
from orchestrator.core.routing import DEFAULT_STRATEGY

INFRA = infrastructure_dir()


@pytest.fixture(scope="module")
def primary() -> dict[str, Any]:
    return load_template(INFRA / "template.yaml")


def default(template: dict[str, Any], parameter: str) -> int:
    return int(template["Parameters"][parameter]["Default"])


def test_short_tags_become_long_forms(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "Resources:\n"
        "  Q:\n"
        "    Type: AWS::SQS::Queue\n"
        "    Properties:\n"
        "      QueueName: !Sub ${AWS::Region}-q\n"
        "      Arn: !GetAtt Other.Arn\n"
        "      Ref: !Ref Other\n"
        "      Picked: !Select [1, [a, b]]\n"
    )
    props = load_template(path)["Resources"]["Q"]["Properties"]
    assert props["QueueName"] == {"Fn::Sub": "${AWS::Region}-q"}
    assert props["Arn"] == {"Fn::GetAtt": ["Other", "Arn"]}
    assert props["Ref"] == {"Ref": "Other"}
    assert props["Picked"] == {"Fn::Select": [1, ["a", "b"]]}


def test_resolver_evaluates_what_a_local_stack_can_know() -> None:
    template = {
        "Parameters": {
            "Env": {"Type": "String", "Default": "dev"},
            "List": {"Type": "CommaDelimitedList", "Default": ""},
        },
        "Mappings": {"M": {"60": {"V": 390}}},
        "Conditions": {
            "IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]},
            "HasList": {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "List"}]}, ""]}]},
        },
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
    }
    resolver = Resolver(template, pseudo("us-west-2", "s"), {"Env": "prod"})
    assert resolver.resolve({"Fn::Sub": "q-${AWS::Region}-${Env}"}) == "q-us-west-2-prod"
    assert resolver.resolve({"Fn::Sub": "${!Literal}"}) == "${Literal}"
    assert resolver.resolve({"Fn::If": ["IsProd", 1, 2]}) == 1
    assert resolver.condition("HasList") is False
    assert resolver.resolve({"Fn::FindInMap": ["M", 60, "V"]}) == 390
    assert resolver.resolve({"Fn::GetAtt": ["Queue", "Arn"]}) == ResourceRef("Queue", "Arn")
    assert resolver.resolve({"Ref": "Queue"}) == ResourceRef("Queue")
    assert isinstance(resolver.resolve({"Fn::Sub": "${Queue}"}), Unresolved)
    assert resolver.resolve([1, {"Ref": "AWS::NoValue"}]) == [1]
    assert resolver.resolve({"Ref": "AWS::NoValue"}) is NO_VALUE
    with pytest.raises(TemplateError):
        resolver.resolve({"Ref": "Nowhere"})


def test_master_queue_and_its_dead_letter_queue(primary: dict[str, Any]) -> None:
    spec = load_stack_spec()
    master = spec.master_queue
    assert master.name == "inference-master-queue-dev"
    assert master.dead_letter_queue == "MasterDeadLetterQueue"
    assert master.max_receive_count == default(primary, "MasterQueueMaxReceiveCount")
    timeout = str(default(primary, "FunctionTimeout"))
    mapping = primary["Mappings"]["VisibilityByFunctionTimeout"][timeout]
    assert master.visibility_timeout == mapping["MasterQueueVisibilityTimeout"]
    props = primary["Resources"]["MasterQueue"]["Properties"]
    assert master.attributes["MessageRetentionPeriod"] == str(props["MessageRetentionPeriod"])
    assert spec.master_dead_letter_queue.name == "inference-master-queue-dev-dlq"


def test_one_region_queue_per_region(primary: dict[str, Any]) -> None:
    spec = load_stack_spec()
    assert list(spec.region_queues) == list(REGIONS)
    for region, queue in spec.region_queues.items():
        assert queue.name == f"inference-queue-{region}-dev"
        assert queue.visibility_timeout == default(primary, "RegionQueueVisibilityTimeout")
        assert queue.max_receive_count == default(primary, "RegionQueueMaxReceiveCount")
        assert queue.dead_letter_queue == "RegionDeadLetterQueue"
        assert spec.region_dead_letter_queues[region].name == f"inference-queue-{region}-dev-dlq"


def test_ledger_table_and_event_source(primary: dict[str, Any]) -> None:
    spec = load_stack_spec(parameters={"Environment": "prod"})
    assert spec.table.name == "inference-idempotency-prod"
    assert spec.table.key_schema == [{"AttributeName": "request_id", "KeyType": "HASH"}]
    assert spec.table.ttl_attribute == "expires_at"
    function = spec.function
    assert function.handler == "orchestrator.distributor.handler.lambda_handler"
    assert function.timeout == default(primary, "FunctionTimeout")
    assert function.batch_size == 10
    assert function.batching_window == default(primary, "BatchingWindowSeconds")
    assert function.report_batch_item_failures
    assert function.environment["ROUTING_STRATEGY"] == DEFAULT_STRATEGY
    assert "REGION_QUEUES" not in function.environment  # made of resource references


def test_a_missing_template_is_named(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"template\.yaml"):
        load_stack_spec(tmp_path)


def test_read_template_parses_once_and_hands_out_copies() -> None:
    first = read_template(INFRA / "template.yaml")
    first["Resources"].clear()  # a caller changing its copy changes nobody else's
    second = read_template(INFRA / "template.yaml")
    assert "MasterQueue" in second["Resources"]
    assert second == load_template(INFRA / "template.yaml")


def test_the_evaluator_checks_parameters_and_leaves_placeholders() -> None:
    template = {
        "Parameters": {"Env": {"Type": "String", "Default": "dev"}, "Primary": {"Type": "String"}},
        "Resources": {
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"QueueName": {"Fn::Sub": "q-${Env}"}},
            },
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Q": {"Fn::GetAtt": ["Queue", "Arn"]}},
            },
        },
        "Outputs": {"Url": {"Value": {"Ref": "Queue"}}},
    }
    with pytest.raises(TemplateError, match="without a value: \\['Primary'\\]"):
        TemplateEvaluator(template)
    with pytest.raises(TemplateError, match="not parameters of the template: \\['Nope'\\]"):
        TemplateEvaluator(template, {"Primary": "us-east-1", "Nope": "x"})
    evaluator = TemplateEvaluator(template, {"Primary": "us-east-1", "Env": "prod"})
    assert evaluator.properties("Queue") == {"QueueName": "q-prod"}
    assert evaluator.properties("Fn") == {"Q": "<Queue.Arn>"}
    assert evaluator.output("Url") == "<Ref:Queue>"
