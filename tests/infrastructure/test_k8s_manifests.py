"""infrastructure/k8s validated offline, and cross-checked with each other and the templates.

- Built-in kinds: kubernetes-validate, strict, against the bundled Kubernetes 1.31 schemas.
- KEDA and Karpenter kinds: infrastructure/schemas (additionalProperties: false).
- An unknown kind, a kind without schema, a typo'd field, a wrong enum: each a failure.
- Names, labels, selectors, service account, placeholders, ports, drain and grace period,
  GPU scheduling and the queue agree across the manifests and with the templates.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from cfn_eval import PRIMARY, REGION, load

from orchestrator.deploy.config import ConfigurationError
from orchestrator.deploy.manifests import (
    FROM_COMMAND_LINE,
    FROM_OUTPUTS,
    MANIFEST_DIR,
    check_image,
    load_documents,
    manifest_files,
    placeholders,
    render,
)
from orchestrator.deploy.schemas import (
    CUSTOM_SCHEMAS,
    KUBERNETES_VERSION,
    SCHEMA_DIR,
    bundled_schema_dir,
    validate_document,
    validate_documents,
)

TEMPLATES = {"template.yaml": load(PRIMARY), "region.yaml": load(REGION)}
FILES = manifest_files()
DOCUMENTS = [document for path in FILES for document in load_documents(path.read_text(), path.name)]
KINDS = {document["kind"]: document for document in DOCUMENTS}

# The worker's environment contract (the worker reads exactly these names).
WORKER_ENV = {
    "WORKER_QUEUE_URL",
    "WORKER_HIGH_PRIORITY_QUEUE_URL",
    "WORKER_REGION",
    "WORKER_HANDLER",
    "WORKER_BATCH_SIZE",
    "WORKER_MAX_WAIT",
    "WORKER_PREFETCH_BATCHES",
    "WORKER_VISIBILITY_TIMEOUT",
    "WORKER_DRAIN_SECONDS",
    "WORKER_MAX_ATTEMPTS",
    "WORKER_DEAD_LETTER_QUEUE_URL",
    "WORKER_HTTP_PORT",
    "WORKER_INVOCATION_TIMEOUT",
    "IDEMPOTENCY_TABLE_NAME",
    "IDEMPOTENCY_TABLE_REGION",
    "RESULTS_BUCKET",
    "RESULTS_PREFIX",
    "WORKERS_TABLE_NAME",
    "WORKER_ID",
    "REQUEST_TTL_SECONDS",
    "INLINE_RESULT_MAX_BYTES",
}
SPOT_NOTICE_SECONDS = 120
SAMPLE_VALUES = {
    "AWS_REGION": "us-west-2",
    "CLUSTER_NAME": "gpu-west",
    "WORKER_IMAGE": "123456789012.dkr.ecr.us-west-2.amazonaws.com/worker:1.0",
    "WORKER_HANDLER": "examples.digits:DigitsModel",
    "KARPENTER_NODE_ROLE": "KarpenterNodeRole-gpu-west",
    "QUEUE_URL": "https://sqs.us-west-2.amazonaws.com/123456789012/inference-queue-us-west-2-dev",
    "HIGH_PRIORITY_QUEUE_URL": (
        "https://sqs.us-west-2.amazonaws.com/123456789012/inference-queue-us-west-2-dev-high"
    ),
    "DEAD_LETTER_QUEUE_URL": (
        "https://sqs.us-west-2.amazonaws.com/123456789012/inference-queue-us-west-2-dev-dlq"
    ),
    "WORKER_ROLE_ARN": "arn:aws:iam::123456789012:role/region-WorkerRole-ABC",
    "RESULTS_BUCKET": "inference-results-123456789012-us-west-2-dev",
    "RESULTS_PREFIX": "results/",
    "REQUEST_TABLE_NAME": "inference-idempotency-dev",
    "REQUEST_TABLE_REGION": "us-east-1",
    "WORKERS_TABLE_NAME": "inference-workers-dev",
}


def deployment() -> dict[str, Any]:
    return KINDS["Deployment"]


def pod_spec() -> dict[str, Any]:
    return deployment()["spec"]["template"]["spec"]


def container() -> dict[str, Any]:
    (worker,) = pod_spec()["containers"]
    return worker


def env() -> dict[str, Any]:
    return {item["name"]: item for item in container()["env"]}


def env_value(name: str) -> str:
    return str(env()[name]["value"])


def default(parameter: str, template: str = "region.yaml") -> str:
    return str(TEMPLATES[template]["Parameters"][parameter]["Default"])


def triggers() -> dict[str, dict[str, Any]]:
    """The ScaledObject's triggers by name."""
    return {t["name"]: t for t in KINDS["ScaledObject"]["spec"]["triggers"]}


# ---------------------------------------------------------------------- offline validation
def test_the_pinned_kubernetes_schemas_ship_with_the_package() -> None:
    folder = bundled_schema_dir()
    assert folder.is_dir(), folder
    assert (folder / "deployment-apps-v1.json").is_file()
    assert (folder / "poddisruptionbudget-policy-v1.json").is_file()
    assert kubernetes_validate.utils.major_minor(KUBERNETES_VERSION) in [
        kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()
    ]


def test_every_manifest_is_valid() -> None:
    assert {d["kind"] for d in DOCUMENTS} == {
        "Namespace",
        "ServiceAccount",
        "Deployment",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "TriggerAuthentication",
        "ScaledObject",
        "NodePool",
        "EC2NodeClass",
    }
    assert validate_documents(DOCUMENTS) == []


def test_the_rendered_manifests_are_valid_too() -> None:
    for path in FILES:
        text = render(path.read_text(), SAMPLE_VALUES, path.name)
        assert "${" not in text
        assert validate_documents(load_documents(text, path.name)) == []


def test_every_custom_schema_is_a_valid_strict_json_schema() -> None:
    import json

    import jsonschema

    assert {p.name for p in SCHEMA_DIR.glob("*.json")} == set(CUSTOM_SCHEMAS.values())
    for name in CUSTOM_SCHEMAS.values():
        schema = json.loads((SCHEMA_DIR / name).read_text())
        jsonschema.validators.validator_for(schema).check_schema(schema)
        assert schema["additionalProperties"] is False
        assert schema["properties"]["spec"]["additionalProperties"] is False


# Each mutation breaks one document; the validator must say so (and point at the field).
Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value

    return mutate


def _rename(path: str, old: str, new: str) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        node: Any = document
        for part in path.split(".") if path else []:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[new] = node.pop(old)

    return mutate


NEGATIVE = {
    "deployment field typo": (
        "Deployment",
        _rename("spec.template.spec", "terminationGracePeriodSeconds", "terminationGracePeriod"),
        "terminationGracePeriod",
    ),
    "container field typo": (
        "Deployment",
        _rename("spec.template.spec.containers.0", "readinessProbe", "readynessProbe"),
        "readynessProbe",
    ),
    "unknown built-in kind": ("Deployment", _set("kind", "Deploymnet"), "Deploymnet"),
    "unknown built-in apiVersion": ("Deployment", _set("apiVersion", "apps/v2"), "apps/v2"),
    "pdb wrong type": ("PodDisruptionBudget", _set("spec.maxUnavailable", [1]), "maxUnavailable"),
    "scaledobject field typo": (
        "ScaledObject",
        _rename("spec", "minReplicaCount", "minReplicaCont"),
        "minReplicaCont",
    ),
    "scaledobject wrong type": (
        "ScaledObject",
        _set("spec.maxReplicaCount", "20"),
        "maxReplicaCount",
    ),
    "sqs trigger metadata typo": (
        "ScaledObject",
        _rename("spec.triggers.0.metadata", "scaleOnInFlight", "scaleOnInflight"),
        "scaleOnInflight",
    ),
    "sqs trigger without region": (
        "ScaledObject",
        lambda d: d["spec"]["triggers"][0]["metadata"].pop("awsRegion"),
        "awsRegion",
    ),
    "sqs trigger bad boolean": (
        "ScaledObject",
        _set("spec.triggers.0.metadata.scaleOnInFlight", "yes"),
        "scaleOnInFlight",
    ),
    "high-priority trigger metadata typo": (
        "ScaledObject",
        _rename("spec.triggers.1.metadata", "queueURL", "queueUrl"),
        "queueUrl",
    ),
    "two triggers with one name": (
        "ScaledObject",
        _set("spec.triggers.1.name", "region-queue"),
        "'region-queue' is given more than once",
    ),
    "trigger auth unknown provider": (
        "TriggerAuthentication",
        _set("spec.podIdentity.provider", "aws-kiam"),
        "provider",
    ),
    "trigger auth roleArn with identityOwner": (
        "TriggerAuthentication",
        _set(
            "spec.podIdentity",
            {
                "provider": "aws",
                "roleArn": "arn:aws:iam::123456789012:role/x",
                "identityOwner": "workload",
            },
        ),
        "podIdentity",
    ),
    "keda kind without schema": ("ScaledObject", _set("kind", "ScaledJob"), "no schema"),
    "karpenter v1beta1": ("NodePool", _set("apiVersion", "karpenter.sh/v1beta1"), "no schema"),
    "nodepool v1beta1 policy": (
        "NodePool",
        _set("spec.disruption.consolidationPolicy", "WhenUnderutilized"),
        "consolidationPolicy",
    ),
    "nodepool without consolidateAfter": (
        "NodePool",
        lambda d: d["spec"]["disruption"].pop("consolidateAfter"),
        "consolidateAfter",
    ),
    "nodepool misspelt well-known label": (
        "NodePool",
        _set("spec.template.spec.requirements.3.key", "karpenter.k8s.aws/instance-gpu-counts"),
        "instance-gpu-counts",
    ),
    "nodepool Gt with two values": (
        "NodePool",
        _set("spec.template.spec.requirements.3.values", ["0", "1"]),
        "values",
    ),
    "nodepool unknown capacity type": (
        "NodePool",
        _set("spec.template.spec.requirements.0.values", ["spot", "ondemand"]),
        "ondemand",
    ),
    "nodepool kubelet moved to the node class in v1": (
        "NodePool",
        _set("spec.template.spec.kubelet", {"maxPods": 110}),
        "kubelet",
    ),
    "nodeclass IMDS typo": (
        "EC2NodeClass",
        _set("spec.metadataOptions.httpTokens", "require"),
        "httpTokens",
    ),
    "nodeclass unknown alias family": (
        "EC2NodeClass",
        _set("spec.amiSelectorTerms", [{"alias": "ubuntu@latest"}]),
        "alias",
    ),
    "nodeclass role and instance profile": (
        "EC2NodeClass",
        _set("spec.instanceProfile", "KarpenterNodeInstanceProfile"),
        "is valid under each of",
    ),
    "nodeclass restricted tag": (
        "EC2NodeClass",
        lambda d: d["spec"]["tags"].update({"karpenter.sh/nodepool": "x"}),
        "karpenter.sh/nodepool",
    ),
}


@pytest.mark.parametrize("case", NEGATIVE)
def test_a_broken_manifest_fails(case: str) -> None:
    kind, mutate, expected = NEGATIVE[case]
    document = copy.deepcopy(KINDS[kind])
    mutate(document)
    problems = validate_document(document)
    assert problems, case
    assert any(expected in problem for problem in problems), problems


def test_an_unknown_kind_is_a_failure_not_a_warning() -> None:
    """kubernetes-validate's own command line only warns about a kind it has no schema for."""
    document = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    (problem,) = validate_document(document)
    assert "Widget" in problem and "unknown kind" in problem


def test_strict_mode_is_what_catches_unknown_fields() -> None:
    document = copy.deepcopy(deployment())
    document["spec"]["template"]["spec"]["terminationGracePeriod"] = 110
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=False)  # lenient: passes
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_duplicate_keys_are_refused() -> None:
    text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n"
    with pytest.raises(ConfigurationError, match="duplicate key 'name'"):
        load_documents(text)


# ---------------------------------------------------------------------- placeholders
def test_every_placeholder_has_a_source_and_every_source_is_an_output() -> None:
    used = set().union(*(placeholders(path.read_text()) for path in FILES))
    assert used == set(FROM_OUTPUTS) | FROM_COMMAND_LINE
    assert not set(FROM_OUTPUTS) & FROM_COMMAND_LINE
    for template in TEMPLATES.values():
        assert set(FROM_OUTPUTS.values()) <= set(template["Outputs"])


def test_placeholders_only_in_quoted_strings() -> None:
    """So the committed files parse and validate as they are (a bare ${X} is fine YAML, but a
    value that needs a number or a pattern would not be)."""
    for path in FILES:
        for line in path.read_text().splitlines():
            if line.lstrip().startswith("#"):
                continue
            for match in re.finditer(r"\$\{[A-Z_]+\}", line):
                before, after = line[: match.start()], line[match.end() :]
                assert before.endswith('"') and after.startswith('"'), (path.name, line)


@pytest.mark.parametrize(
    "image",
    [
        "repo/worker",
        "repo/worker:latest",
        "localhost:5000/worker",
        "repo/worker@sha256:abc",
    ],
)
def test_an_image_without_a_fixed_version_is_refused(image: str) -> None:
    with pytest.raises(ConfigurationError, match="--worker-image"):
        check_image(image)


def test_images_with_a_version_or_digest_are_accepted() -> None:
    digest = "sha256:" + "a" * 64
    for image in (
        "123456789012.dkr.ecr.us-west-2.amazonaws.com/inference-worker:1.0",
        "localhost:5000/worker:2",
        f"repo/worker@{digest}",
        f"repo/worker:1.0@{digest}",
    ):
        assert check_image(image) == image


def test_render_refuses_missing_and_unsafe_values() -> None:
    text = 'value: "${QUEUE_URL}"'
    with pytest.raises(ConfigurationError, match="no value for QUEUE_URL"):
        render(text, {})
    for unsafe in ('a"b', "a\nb", "${X}", ""):
        with pytest.raises(ConfigurationError, match="cannot go into a manifest"):
            render(text, {"QUEUE_URL": unsafe})


# ---------------------------------------------------------------------- names and selectors
def test_one_namespace_and_consistent_labels() -> None:
    (namespace,) = [d for d in DOCUMENTS if d["kind"] == "Namespace"]
    name = namespace["metadata"]["name"]
    for document in DOCUMENTS:
        if document["kind"] in {"Namespace", "NodePool", "EC2NodeClass"}:
            assert "namespace" not in document["metadata"], document["kind"]
        else:
            assert document["metadata"]["namespace"] == name, document["kind"]
        labels = document["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "inference-orchestrator"
    for template in TEMPLATES.values():
        assert template["Parameters"]["WorkerNamespace"]["Default"] == name


def test_selectors_match_the_pods() -> None:
    selector = deployment()["spec"]["selector"]["matchLabels"]
    pod_labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert KINDS["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    assert KINDS["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"] == selector
    (spread,) = pod_spec()["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == selector


def test_the_service_account_is_the_one_the_role_trusts() -> None:
    account = KINDS["ServiceAccount"]["metadata"]
    assert pod_spec()["serviceAccountName"] == account["name"]
    for template in TEMPLATES.values():
        assert template["Parameters"]["WorkerServiceAccount"]["Default"] == account["name"]
    # Pod Identity, not IRSA: an IRSA annotation would shadow the pod identity credentials.
    assert "eks.amazonaws.com/role-arn" not in account.get("annotations", {})
    assert set(account["annotations"].values()) == {"${WORKER_ROLE_ARN}"}


def test_keda_scales_the_deployment_with_its_authentication() -> None:
    scaled = KINDS["ScaledObject"]["spec"]
    target = scaled["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
    assert target["name"] == deployment()["metadata"]["name"]
    assert len(scaled["triggers"]) == 2
    for trigger in scaled["triggers"]:
        assert trigger["authenticationRef"] == {
            "name": KINDS["TriggerAuthentication"]["metadata"]["name"],
            "kind": "TriggerAuthentication",
        }
    assert KINDS["TriggerAuthentication"]["spec"] == {"podIdentity": {"provider": "aws"}}
    assert "replicas" not in deployment()["spec"]  # the HPA owns the count


def test_the_queue_and_region_agree() -> None:
    standard, high = triggers()["region-queue"], triggers()["high-priority-queue"]
    assert standard["type"] == high["type"] == "aws-sqs-queue"
    metadata = standard["metadata"]
    assert metadata["queueURL"] == env_value("WORKER_QUEUE_URL") == "${QUEUE_URL}"
    assert high["metadata"]["queueURL"] == env_value("WORKER_HIGH_PRIORITY_QUEUE_URL")
    assert env_value("WORKER_HIGH_PRIORITY_QUEUE_URL") == "${HIGH_PRIORITY_QUEUE_URL}"
    assert metadata["awsRegion"] == env_value("WORKER_REGION") == "${AWS_REGION}"
    assert high["metadata"]["awsRegion"] == "${AWS_REGION}"
    assert env_value("AWS_REGION") == "${AWS_REGION}"
    assert env_value("WORKER_DEAD_LETTER_QUEUE_URL") == "${DEAD_LETTER_QUEUE_URL}"
    tags = KINDS["EC2NodeClass"]["spec"]["tags"]
    assert tags["inference-orchestrator/region"] == "${AWS_REGION}"


def test_scaling_settings() -> None:
    scaled = KINDS["ScaledObject"]["spec"]
    assert scaled["minReplicaCount"] == 0
    for trigger in scaled["triggers"]:
        metadata = trigger["metadata"]
        assert metadata["scaleOnInFlight"] == "true"
        # Either queue wakes the Deployment from zero on its first message.
        assert metadata["activationQueueLength"] == "0"
        # One replica per batch's worth of messages, in each queue.
        assert metadata["queueLength"] == env_value("WORKER_BATCH_SIZE")
    # The same metadata but the queue: the HPA takes the larger of the two proposals.
    standard, high = triggers()["region-queue"], triggers()["high-priority-queue"]
    assert {k: v for k, v in standard["metadata"].items() if k != "queueURL"} == {
        k: v for k, v in high["metadata"].items() if k != "queueURL"
    }
    gpus = int(container()["resources"]["limits"]["nvidia.com/gpu"])
    limit = int(KINDS["NodePool"]["spec"]["limits"]["nvidia.com/gpu"])
    assert scaled["maxReplicaCount"] * gpus <= limit
    scale_down = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert scale_down["stabilizationWindowSeconds"] >= 60


# ---------------------------------------------------------------------- the worker contract
def test_the_environment_is_the_workers_contract() -> None:
    names = set(env())
    assert names >= WORKER_ENV, WORKER_ENV - names
    assert env()["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env_value("WORKER_ID") == "$(POD_NAME)"
    order = [item["name"] for item in container()["env"]]
    assert order.index("POD_NAME") < order.index("WORKER_ID")  # $(VAR) needs it defined first
    for name, source in FROM_OUTPUTS.items():
        if name not in {"WORKER_ROLE_ARN"}:
            assert f"${{{name}}}" in {str(v.get("value")) for v in env().values()}, source
    assert env_value("RESULTS_PREFIX") == "${RESULTS_PREFIX}"
    assert default("ResultsPrefix") == "results/"  # the worker's own default


def test_drain_fits_the_grace_period_and_the_spot_notice() -> None:
    drain = int(env_value("WORKER_DRAIN_SECONDS"))
    grace = pod_spec()["terminationGracePeriodSeconds"]
    assert drain == 90
    assert drain + 10 <= grace < SPOT_NOTICE_SECONDS
    # The visibility timeout is shorter than the drain budget's limit of usefulness: a batch
    # handed back at the end of the grace period is visible again within one timeout.
    assert int(env_value("WORKER_VISIBILITY_TIMEOUT")) <= int(
        default("RegionQueueVisibilityTimeout")
    )


def test_attempts_fit_the_redrive_policy() -> None:
    """The worker fails a request itself (recording why) before SQS's redrive moves it."""
    for template in TEMPLATES.values():
        max_receive = int(template["Parameters"]["RegionQueueMaxReceiveCount"]["Default"])
        assert int(env_value("WORKER_MAX_ATTEMPTS")) <= max_receive


def test_probes_ports_and_metrics_agree() -> None:
    port = int(env_value("WORKER_HTTP_PORT"))
    (http,) = container()["ports"]
    assert (http["name"], http["containerPort"]) == ("http", port)
    assert container()["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container()["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    (ingress,) = KINDS["NetworkPolicy"]["spec"]["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": port}]  # probes and scraping only
    annotations = deployment()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_every_stop_reaches_the_worker_as_a_sigterm() -> None:
    """Karpenter's termination controller does not evict karpenter.sh/do-not-disrupt pods,
    even when it drains a node for a Spot interruption: with the annotation the worker would
    get no SIGTERM (so no drain) before EC2 reclaims the instance."""
    annotations = deployment()["spec"]["template"]["metadata"]["annotations"]
    assert "karpenter.sh/do-not-disrupt" not in annotations
    # Consolidation never moves a running worker; only empty nodes go.
    disruption = KINDS["NodePool"]["spec"]["disruption"]
    assert disruption["consolidationPolicy"] == "WhenEmpty"
    # A loose budget: a mass Spot reclaim must not queue evictions past the 2-minute notice.
    budget = KINDS["PodDisruptionBudget"]["spec"]
    assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert int(str(budget["maxUnavailable"]).rstrip("%")) >= 50
    # One GPU per node: a reclaimed node stops one worker.
    requirements = KINDS["NodePool"]["spec"]["template"]["spec"]["requirements"]
    gpus = {r["operator"]: r["values"] for r in requirements if r["key"].endswith("gpu-count")}
    assert gpus == {"Gt": ["0"], "Lt": ["2"]}


def test_non_root_and_locked_down() -> None:
    pod = pod_spec()["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container()["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    namespace = KINDS["Namespace"]["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/enforce"] == "restricted"


def test_dockerfile_user_matches_the_pod() -> None:
    dockerfile = (PRIMARY.parent / "docker" / "worker.Dockerfile").read_text()
    (user,) = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    uid, _, gid = user.partition(":")
    pod = pod_spec()["securityContext"]
    assert (int(uid), int(gid)) == (pod["runAsUser"], pod["runAsGroup"])
    (exposed,) = re.findall(r"^EXPOSE\s+(\d+)", dockerfile, re.M)
    assert int(exposed) == int(env_value("WORKER_HTTP_PORT"))


# ---------------------------------------------------------------------- GPU scheduling
def test_gpu_pods_land_on_the_gpu_node_pool() -> None:
    node_pool = KINDS["NodePool"]
    requests = container()["resources"]["requests"]
    limits = container()["resources"]["limits"]
    assert requests["nvidia.com/gpu"] == limits["nvidia.com/gpu"] == "1"
    assert pod_spec()["nodeSelector"] == {"karpenter.sh/nodepool": node_pool["metadata"]["name"]}
    (taint,) = node_pool["spec"]["template"]["spec"]["taints"]
    assert taint["key"] == "nvidia.com/gpu" and taint["effect"] == "NoSchedule"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod_spec()[
        "tolerations"
    ]
    reference = node_pool["spec"]["template"]["spec"]["nodeClassRef"]
    assert reference == {
        "group": "karpenter.k8s.aws",
        "kind": "EC2NodeClass",
        "name": KINDS["EC2NodeClass"]["metadata"]["name"],
    }


def test_the_node_pool_prefers_spot_and_falls_back() -> None:
    spec = KINDS["NodePool"]["spec"]
    requirements = {
        (r["key"], r["operator"]): r.get("values") for r in spec["template"]["spec"]["requirements"]
    }
    assert set(requirements[("karpenter.sh/capacity-type", "In")]) == {"spot", "on-demand"}
    assert requirements[("karpenter.k8s.aws/instance-gpu-count", "Gt")] == ["0"]
    assert requirements[("karpenter.k8s.aws/instance-category", "In")] == ["g"]
    assert {"cpu", "memory", "nvidia.com/gpu"} <= set(spec["limits"])
    assert spec["disruption"]["budgets"]


def test_the_node_class_is_locked_down() -> None:
    spec = KINDS["EC2NodeClass"]["spec"]
    assert spec["metadataOptions"]["httpTokens"] == "required"
    assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
    for mapping in spec["blockDeviceMappings"]:
        assert mapping["ebs"]["encrypted"] is True
    discovery = {"tags": {"karpenter.sh/discovery": "${CLUSTER_NAME}"}}
    assert spec["subnetSelectorTerms"] == spec["securityGroupSelectorTerms"] == [discovery]
    assert spec["role"] == "${KARPENTER_NODE_ROLE}"


def test_manifest_files_are_the_apply_order() -> None:
    names = [path.name for path in FILES]
    assert names == sorted(names)
    assert names[0].startswith("00-namespace")
    assert Path(MANIFEST_DIR).is_dir()
