"""Read CloudFormation / SAM YAML: the short tags (`!Ref`, `!GetAtt`, `!Sub`, ...) and the
intrinsic functions whose value a local stack can know without deploying anything.

`load_template(path)` returns the template as plain data, each short tag turned into its long
form (`!Ref X` -> ``{"Ref": "X"}``, `!GetAtt A.B` -> ``{"Fn::GetAtt": ["A", "B"]}``);
`read_template(path)` does the same but parses each file once per process.
`Resolver(template, parameters, pseudo).resolve(value)` evaluates parameters, pseudo
parameters, conditions, mappings, `Fn::Sub/Join/If/Select/Split/FindInMap`; a reference to a
resource becomes a `ResourceRef`, which the caller resolves once the resource exists, and a
string built from one (`!Sub "${Queue}"`, `!Join`) becomes `Unresolved`. With
``placeholders=True`` a reference becomes the text ``<Ref:Id>`` / ``<Id.Attribute>`` instead,
so whole strings (REGION_QUEUES, a dashboard body) can be checked without deploying:
`TemplateEvaluator`, which the template and deployer tests use, is that mode for a whole
template and one parameter set. This is the one CloudFormation reader of the repository.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ACCOUNT_ID = "123456789012"  # moto's default account
_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


class TemplateError(ValueError):
    """The template cannot be read, or lacks something the local stack needs."""


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """`!Ref Resource` (attribute None) or `!GetAtt Resource.Attribute`."""

    logical_id: str
    attribute: str | None = None


@dataclass(frozen=True, slots=True)
class Unresolved:
    """A value that depends on something only a deployment knows (e.g. a queue URL in a !Sub)."""

    expression: str


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


@functools.cache
def _loader() -> type[yaml.SafeLoader]:
    class CfnLoader(yaml.SafeLoader):
        """SafeLoader that turns CloudFormation short tags into their long forms."""

    def construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if suffix == "Ref":
            return {"Ref": value}
        if suffix == "Condition":
            return {"Condition": value}
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {f"Fn::{suffix}": value}

    CfnLoader.add_multi_constructor("!", construct)
    return CfnLoader


def load_template(path: Path) -> dict[str, Any]:
    """The template at `path` as plain data; `TemplateError` if it is missing or not YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"{path}: {exc.strerror or exc}") from exc
    try:
        document = yaml.load(text, Loader=_loader())  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path}: no Resources section")
    return document


def read_template(path: Path) -> dict[str, Any]:
    """`load_template(path)`, parsed once per process (and again if the file changes); each
    caller gets its own copy, free to change."""
    resolved = path.resolve()
    try:
        modified = resolved.stat().st_mtime_ns
    except OSError:
        modified = 0  # load_template names the problem
    return copy.deepcopy(_parsed(resolved, modified))


@functools.lru_cache(maxsize=16)
def _parsed(path: Path, modified: int) -> dict[str, Any]:
    return load_template(path)


def pseudo_parameters(region: str, stack_name: str) -> dict[str, str]:
    return {
        "AWS::Region": region,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/{stack_name}/local",
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
    }


class Resolver:
    """Evaluates the intrinsic functions of one template for one region."""

    def __init__(
        self,
        template: Mapping[str, Any],
        pseudo: Mapping[str, str],
        parameters: Mapping[str, Any] | None = None,
        *,
        placeholders: bool = False,
    ) -> None:
        self._placeholders = placeholders
        overrides = parameters or {}
        declared = template.get("Parameters") or {}
        self.parameters: dict[str, Any] = {}
        for name, declaration in declared.items():
            value = overrides.get(name, (declaration or {}).get("Default"))
            if (declaration or {}).get("Type") == "CommaDelimitedList" and isinstance(value, str):
                value = [item.strip() for item in value.split(",")] if value else []
            self.parameters[name] = value
        self.pseudo = dict(pseudo)
        self.resources: Mapping[str, Any] = template.get("Resources") or {}
        self._conditions: Mapping[str, Any] = template.get("Conditions") or {}
        self._mappings: Mapping[str, Any] = template.get("Mappings") or {}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Condition" and isinstance(argument, str):
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key[4:], argument)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            raise TemplateError(f"unknown condition {name!r}")
        return bool(self.resolve(self._conditions[name]))

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return self._resource(name)
        raise TemplateError(f"!Ref to unknown name {name!r}")

    def _resource(self, logical_id: str, attribute: str | None = None) -> Any:
        if not self._placeholders:
            return ResourceRef(logical_id, attribute)
        return f"<{logical_id}.{attribute}>" if attribute else f"<Ref:{logical_id}>"

    def _function(self, name: str, argument: Any) -> Any:
        if name == "GetAtt":
            logical_id, attribute = (self.resolve(part) for part in argument)
            return self._resource(str(logical_id), str(attribute))
        if name == "Sub":
            return self._sub(argument)
        args = self.resolve(argument)
        if name == "Join":
            delimiter, items = args
            if isinstance(items, Unresolved) or any(_unknown(item) for item in items):
                return Unresolved(f"Fn::Join {argument!r}")
            return str(delimiter).join(str(item) for item in items)
        if name == "If":
            condition, if_true, if_false = argument
            return self.resolve(if_true if self.condition(condition) else if_false)
        if name == "Equals":
            return str(args[0]) == str(args[1])
        if name == "Not":
            return not args[0]
        if name == "And":
            return all(args)
        if name == "Or":
            return any(args)
        if name == "Select":
            return args[1][int(args[0])]
        if name == "Split":
            if _unknown(args[1]):
                return Unresolved(f"Fn::Split {argument!r}")
            return str(args[1]).split(str(args[0]))
        if name == "FindInMap":
            try:
                return self._mappings[str(args[0])][str(args[1])][str(args[2])]
            except KeyError as exc:
                raise TemplateError(f"Fn::FindInMap {args!r}: no such entry") from exc
        return Unresolved(f"Fn::{name}")

    def _sub(self, argument: Any) -> str | Unresolved:
        if isinstance(argument, list):
            text, variables = argument[0], self.resolve(argument[1])
        else:
            text, variables = argument, {}
        unknown: list[str] = []

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} is written as ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            else:
                head, _, attribute = name.partition(".")
                if head in self.resources:
                    value = self._resource(head, attribute or None)
                else:
                    value = self._ref(name)
            if _unknown(value):
                unknown.append(name)
            return str(value)

        result = _SUB_VARIABLE.sub(replace, str(text))
        return Unresolved(f"Fn::Sub {text!r}") if unknown else result


def _unknown(value: Any) -> bool:
    return isinstance(value, ResourceRef | Unresolved)


class TemplateEvaluator(Resolver):
    """A whole template evaluated for one parameter set, without deploying it: references to
    resources become placeholders (``<Ref:Id>``, ``<Id.Attribute>``).

    `TemplateError` for a parameter the template does not declare, or a declared one with
    neither a value nor a default: a deployment would refuse both.
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, Any] | None = None,
        *,
        region: str = "us-east-1",
        stack_name: str = "stack",
    ) -> None:
        given = dict(parameters or {})
        declared = template.get("Parameters") or {}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise TemplateError(f"not parameters of the template: {unknown}")
        missing = [
            name
            for name, spec in declared.items()
            if name not in given and "Default" not in (spec or {})
        ]
        if missing:
            raise TemplateError(f"parameters without a value: {missing}")
        values = {name: str(value) for name, value in given.items()}
        super().__init__(template, pseudo_parameters(region, stack_name), values, placeholders=True)
        self.template = template

    def properties(self, logical_id: str) -> dict[str, Any]:
        """The resource's evaluated ``Properties``."""
        resource = self.template["Resources"][logical_id]
        return dict(self.resolve(resource.get("Properties") or {}))

    def output(self, name: str) -> Any:
        """The evaluated ``Value`` of output `name`."""
        return self.resolve(self.template["Outputs"][name]["Value"])
