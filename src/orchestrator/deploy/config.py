"""Names, paths and settings of a deployment: what the command line and samconfig.toml say."""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.core.regions import is_region_name

REPO_ROOT = Path(__file__).resolve().parents[3]  # a source checkout: src/orchestrator/deploy
INFRASTRUCTURE = REPO_ROOT / "infrastructure"
PRIMARY_TEMPLATE = INFRASTRUCTURE / "template.yaml"
REGION_TEMPLATE = INFRASTRUCTURE / "region.yaml"
SAMCONFIG = REPO_ROOT / "samconfig.toml"
BUILT_TEMPLATE = REPO_ROOT / ".aws-sam" / "build" / "template.yaml"
K8S_OUT = REPO_ROOT / "build" / "k8s"

ENVIRONMENTS = ("dev", "prod")
PROJECT_TAG = "inference-orchestrator"
# Parameters of region.yaml that must not be copied from the primary stack's settings:
# an SNS topic ARN belongs to one region.
REGION_LOCAL_PARAMETERS = frozenset({"AlarmTopicArn"})
# Parameters the deployer computes itself; a user override of them is an error.
COMPUTED_PARAMETERS = frozenset(
    {
        "Environment",
        "RemoteRegionQueues",
        "RemoteRegionQueueArns",
        "RemoteRegionHighPriorityQueues",
        "RemoteRegionHighPriorityQueueArns",
        "PrimaryRegion",
        "ClusterName",
    }
)


class ConfigurationError(ValueError):
    """The command line or samconfig.toml asks for something that cannot be deployed."""


def primary_stack_default(env: str) -> str:
    return f"inference-orchestrator-{env}"


def region_stack_name(env: str) -> str:
    """Name of the region.yaml stack (the same name in every region)."""
    return f"inference-orchestrator-region-{env}"


def check_region(region: str) -> str:
    region = region.strip()
    if not is_region_name(region):
        raise ConfigurationError(f"{region!r} is not an AWS region name (like us-west-2)")
    return region


def parse_regions(primary: str, regions: str | Sequence[str]) -> tuple[list[str], list[str]]:
    """The remote regions, in order, without duplicates; and notes about what was dropped.

    The primary region may be listed (the published system names all three regions): its
    queue is part of the primary stack, so it is dropped with a note rather than rejected.
    """
    primary = check_region(primary)
    items = regions.split(",") if isinstance(regions, str) else list(regions)
    remote: list[str] = []
    notes: list[str] = []
    for item in items:
        if not item.strip():
            continue
        region = check_region(item)
        if region == primary:
            notes.append(f"{region} is the primary region: its queue is in the primary stack")
        elif region in remote:
            notes.append(f"{region} is listed twice")
        else:
            remote.append(region)
    return remote, notes


def parse_key_values(items: Iterable[str], what: str) -> dict[str, str]:
    """``Key=Value`` items (the value may contain ``=``) into an ordered dict."""
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9]+", key):
            raise ConfigurationError(f"{what} {item!r} is not Key=Value")
        result[key] = value
    return result


def parse_overrides(value: str | Sequence[str] | None, what: str) -> dict[str, str]:
    """samconfig's ``parameter_overrides``/``tags``: one shell-quoted string or a list."""
    if value is None:
        return {}
    items = shlex.split(value) if isinstance(value, str) else [str(v) for v in value]
    return parse_key_values(items, what)


@dataclass(frozen=True)
class SamEnvironment:
    """What samconfig.toml says about one environment (``--config-env``)."""

    name: str
    stack_name: str
    region: str | None
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def read_samconfig(path: Path, env: str) -> SamEnvironment:
    """Read ``[env.global.parameters]`` and ``[env.deploy.parameters]`` (deploy wins)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc
    section = document.get(env)
    if not isinstance(section, dict):
        raise ConfigurationError(f"{path} has no [{env}] environment")
    merged: dict[str, Any] = {}
    for command in ("global", "deploy"):
        merged.update((section.get(command) or {}).get("parameters") or {})
    return SamEnvironment(
        name=env,
        stack_name=str(merged.get("stack_name") or primary_stack_default(env)),
        region=merged.get("region"),
        parameter_overrides=parse_overrides(
            merged.get("parameter_overrides"), f"{path} parameter_overrides item"
        ),
        tags=parse_overrides(merged.get("tags"), f"{path} tags item"),
    )


class _TemplateLoader(yaml.SafeLoader):
    """Reads a CloudFormation YAML template; short-form tags are kept as plain values."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


_TemplateLoader.add_multi_constructor("!", _any_tag)


def template_parameters(path: Path) -> list[str]:
    """Names of a template's Parameters."""
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=_TemplateLoader)
    return list((document or {}).get("Parameters") or {})
