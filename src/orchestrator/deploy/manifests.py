"""The worker's Kubernetes manifests, filled in for one region from its stack outputs.

``infrastructure/k8s/*.yaml`` are valid manifests as committed: every per-region value is a
``"${NAME}"`` placeholder inside a quoted string (so the files parse, and validate, as they
are). `render` replaces each placeholder with the region's value; `write_region_manifests`
writes the results as ``<out>/<region>/<file>``, ready for ``kubectl apply -f``.

Where each value comes from:

- `FROM_OUTPUTS`: a stack output (region.yaml in a remote region, template.yaml in the primary
  one; both templates declare every one of these outputs);
- `FROM_COMMAND_LINE`: ``orchestrator deploy`` options (image, handler, cluster, node role)
  and the region itself.

The same substitution works by hand: ``envsubst < 20-deployment.yaml`` with the variables set.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.deploy.config import INFRASTRUCTURE, ConfigurationError

MANIFEST_DIR = INFRASTRUCTURE / "k8s"
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")

FROM_OUTPUTS: Mapping[str, str] = {
    "QUEUE_URL": "RegionQueueUrl",
    "HIGH_PRIORITY_QUEUE_URL": "RegionHighPriorityQueueUrl",
    "DEAD_LETTER_QUEUE_URL": "RegionDeadLetterQueueUrl",
    "WORKER_ROLE_ARN": "WorkerRoleArn",
    "RESULTS_BUCKET": "ResultsBucketName",
    "RESULTS_PREFIX": "ResultsPrefix",
    "REQUEST_TABLE_NAME": "RequestTableName",
    "REQUEST_TABLE_REGION": "RequestTableRegion",
    "WORKERS_TABLE_NAME": "WorkersTableName",
}
"""Placeholder -> the stack output that fills it."""

FROM_COMMAND_LINE = frozenset(
    {"AWS_REGION", "CLUSTER_NAME", "WORKER_IMAGE", "WORKER_HANDLER", "KARPENTER_NODE_ROLE"}
)
"""Placeholders the deploy command fills from its options and the region."""

# Stack outputs worth having next to the manifests (Karpenter's and KEDA's installation).
EXTRA_OUTPUTS = ("InterruptionQueueName", "InterruptionQueueArn", "KedaOperatorRoleArn")

DEFAULT_HANDLER = "examples.digits:DigitsModel"
# A value lands inside a double-quoted YAML scalar: these would end it or change it.
_UNSAFE = re.compile(r'["\\\n\r\t]|\$\{')


@dataclass(frozen=True)
class WorkerSettings:
    """What the command line says about the workers of every region."""

    image: str
    handler: str = DEFAULT_HANDLER
    clusters: Mapping[str, str] = field(default_factory=dict)
    """Region -> EKS cluster name; ``"*"`` is every region not listed."""
    node_role: str | None = None
    """Karpenter's node IAM role; default ``KarpenterNodeRole-<cluster>`` (Karpenter's docs)."""

    def cluster(self, region: str) -> str | None:
        return self.clusters.get(region) or self.clusters.get("*")


def parse_clusters(value: str | None, regions: Sequence[str]) -> dict[str, str]:
    """``--cluster-name``: one name for every region, or ``region=name,...``."""
    if not value:
        return {}
    items = [item.strip() for item in value.split(",") if item.strip()]
    if len(items) == 1 and "=" not in items[0]:
        return {"*": _cluster_name(items[0])}
    clusters: dict[str, str] = {}
    for item in items:
        region, sep, name = item.partition("=")
        if not sep:
            raise ConfigurationError(f"--cluster-name {item!r}: use NAME or region=NAME,...")
        if region not in regions:
            raise ConfigurationError(f"--cluster-name {item!r}: {region} is not deployed here")
        clusters[region] = _cluster_name(name)
    return clusters


def _cluster_name(name: str) -> str:
    if not re.fullmatch(r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}", name):
        raise ConfigurationError(f"--cluster-name {name!r} is not an EKS cluster name")
    return name


def manifest_files(directory: Path = MANIFEST_DIR) -> list[Path]:
    """The manifests in apply order (their names start with a number)."""
    return sorted(directory.glob("*.yaml"))


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def region_values(
    region: str, outputs: Mapping[str, str], settings: WorkerSettings
) -> dict[str, str]:
    """Every placeholder's value for one region; a missing one is a `ConfigurationError`."""
    missing = sorted(key for key in FROM_OUTPUTS.values() if not outputs.get(key))
    if missing:
        raise ConfigurationError(
            f"{region}: stack outputs {', '.join(missing)} are missing (deploy the stack first)"
        )
    values = {name: outputs[key] for name, key in FROM_OUTPUTS.items()}
    cluster = settings.cluster(region) or outputs.get("ClusterName")
    if not cluster:
        raise ConfigurationError(
            f"{region}: no EKS cluster name (give --cluster-name NAME or region=NAME,...)"
        )
    values.update(
        AWS_REGION=region,
        CLUSTER_NAME=cluster,
        WORKER_IMAGE=check_image(settings.image),
        WORKER_HANDLER=settings.handler,
        KARPENTER_NODE_ROLE=settings.node_role or f"KarpenterNodeRole-{cluster}",
    )
    return values


def check_image(image: str) -> str:
    """An image reference with a fixed version: a tag other than ``latest``, or a digest."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2] if ":" in last else ""
    if digest:
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise ConfigurationError(f"--worker-image {image!r}: not a sha256 digest")
    elif not tag or tag == "latest":
        raise ConfigurationError(
            f"--worker-image {image!r}: give a version tag or a digest, not latest "
            "(every node must run the same image)"
        )
    return image


def render(text: str, values: Mapping[str, str], source: str = "manifest") -> str:
    """``text`` with every ``${NAME}`` replaced; unknown or unsafe values are refused."""
    missing = sorted(placeholders(text) - set(values))
    if missing:
        raise ConfigurationError(f"{source}: no value for {', '.join(missing)}")
    for name in placeholders(text):
        value = values[name]
        if not value or _UNSAFE.search(value):
            raise ConfigurationError(f"{source}: {name}={value!r} cannot go into a manifest")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def write_region_manifests(
    out_dir: Path,
    region: str,
    values: Mapping[str, str],
    outputs: Mapping[str, str],
    *,
    source_dir: Path = MANIFEST_DIR,
) -> list[Path]:
    """Write ``out_dir/<region>/*.yaml`` and ``values.json``; the paths written."""
    target = out_dir / region
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for path in manifest_files(source_dir):
        rendered = render(path.read_text(encoding="utf-8"), values, path.name)
        (target / path.name).write_text(rendered, encoding="utf-8")
        written.append(target / path.name)
    summary: dict[str, Any] = {
        "region": region,
        "values": dict(values),
        "outputs": {key: outputs[key] for key in EXTRA_OUTPUTS if key in outputs},
    }
    values_file = target / "values.json"
    values_file.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return [*written, values_file]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (PyYAML keeps the last one silently)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_documents(text: str, source: str = "manifest") -> list[dict[str, Any]]:
    """The YAML documents of one file; each must be an object with apiVersion, kind, name."""
    try:
        documents = [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{source}: not valid YAML ({exc})") from exc
    for index, document in enumerate(documents):
        where = f"{source} document {index + 1}"
        if not isinstance(document, dict):
            raise ConfigurationError(f"{where}: not a mapping")
        for key in ("apiVersion", "kind"):
            if not isinstance(document.get(key), str):
                raise ConfigurationError(f"{where}: no {key}")
        if not isinstance((document.get("metadata") or {}).get("name"), str):
            raise ConfigurationError(f"{where}: no metadata.name")
    return documents
