"""Offline validation of Kubernetes manifests: no cluster, no network.

- Built-in kinds are checked by ``kubernetes-validate`` in strict mode against the schemas of
  `KUBERNETES_VERSION` that ship inside that package (unknown fields are errors).
- KEDA and Karpenter kinds are checked against this project's JSON schemas in
  ``infrastructure/schemas/`` (written from those projects' documented fields, types and
  enums, with ``additionalProperties: false``), with ``jsonschema``.

Unlike ``kubernetes-validate``'s command line, which only *warns* about a kind it has no schema
for, everything here is an error: an unknown kind, an apiVersion without a schema, a missing
schema for the pinned version, or a fallback to another version.

Both libraries come with the development environment (``make venv``), not with the package;
`validate_documents` raises `ValidatorUnavailableError` when they are missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from orchestrator.deploy.config import INFRASTRUCTURE

KUBERNETES_VERSION = "1.31"
"""The Kubernetes minor version the manifests are checked against (EKS standard support)."""

SCHEMA_DIR = INFRASTRUCTURE / "schemas"
CUSTOM_SCHEMAS: Mapping[tuple[str, str], str] = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_scaledobject.schema.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): (
        "keda.sh_v1alpha1_triggerauthentication.schema.json"
    ),
    ("karpenter.sh/v1", "NodePool"): "karpenter.sh_v1_nodepool.schema.json",
    ("karpenter.k8s.aws/v1", "EC2NodeClass"): "karpenter.k8s.aws_v1_ec2nodeclass.schema.json",
}
"""(apiVersion, kind) -> this project's schema file."""

CUSTOM_GROUPS = frozenset({"keda.sh", "eventing.keda.sh", "karpenter.sh", "karpenter.k8s.aws"})
"""API groups whose kinds must have a schema of ours (kubernetes-validate knows none)."""


class ValidatorUnavailableError(RuntimeError):
    """kubernetes-validate or jsonschema is not installed."""


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


@cache
def _custom_validator(filename: str) -> Any:
    import jsonschema

    schema = json.loads((SCHEMA_DIR / filename).read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _where(path: Iterable[Any]) -> str:
    return ".".join(str(part) for part in path) or "(document)"


def _name(document: Mapping[str, Any]) -> str:
    return f"{document.get('kind')}/{(document.get('metadata') or {}).get('name')}"


def validate_document(document: Mapping[str, Any]) -> list[str]:
    """Problems with one manifest (empty when it is valid)."""
    try:
        import jsonschema  # noqa: F401
        import kubernetes_validate
    except ImportError as exc:
        raise ValidatorUnavailableError(
            "offline manifest validation needs kubernetes-validate and jsonschema "
            "(`make venv` installs them)"
        ) from exc

    api_version = str(document.get("apiVersion", ""))
    kind = str(document.get("kind", ""))
    name = _name(document)
    schema_file = CUSTOM_SCHEMAS.get((api_version, kind))
    if schema_file:
        validator = _custom_validator(schema_file)
        errors = sorted(validator.iter_errors(dict(document)), key=lambda e: list(e.path))
        problems = [f"{name}: {_where(e.absolute_path)}: {e.message}" for e in errors]
        return problems + [f"{name}: {problem}" for problem in _beyond_schema(kind, document)]
    if _group(api_version) in CUSTOM_GROUPS:
        return [f"{name}: no schema for {kind} in {api_version} (infrastructure/schemas)"]
    try:
        used = kubernetes_validate.validate(dict(document), KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{name}: {_where(error.path)}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{name}: {error.message} (an unknown kind or apiVersion)"]
    except kubernetes_validate.VersionNotSupportedError as error:
        return [f"{name}: kubernetes-validate has no schemas for {error.version}"]
    if used != KUBERNETES_VERSION:
        return [f"{name}: validated against Kubernetes {used}, not {KUBERNETES_VERSION}"]
    return []


def _beyond_schema(kind: str, document: Mapping[str, Any]) -> list[str]:
    """Rules the projects enforce that a JSON schema cannot state."""
    if kind != "ScaledObject":
        return []
    # KEDA's admission webhook: "triggerName ... is defined multiple times in the
    # ScaledObject, but it must be unique".
    triggers = (document.get("spec") or {}).get("triggers") or []
    names = [str(t["name"]) for t in triggers if isinstance(t, Mapping) and t.get("name")]
    repeated = sorted({n for n in names if names.count(n) > 1})
    return [f"spec.triggers: trigger name {n!r} is given more than once" for n in repeated]


def validate_documents(documents: Iterable[Mapping[str, Any]]) -> list[str]:
    problems: list[str] = []
    for document in documents:
        problems.extend(validate_document(document))
    return problems


def bundled_schema_dir() -> Path:
    """kubernetes-validate's strict schema folder for `KUBERNETES_VERSION` (may not exist)."""
    import kubernetes_validate

    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    return root / f"v{KUBERNETES_VERSION}.0-local-strict"
