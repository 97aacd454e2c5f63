"""Read the CloudFormation templates and evaluate their intrinsic functions for a parameter set.

Resources are not created: ``Ref`` of a resource gives ``<Ref:LogicalId>`` and ``Fn::GetAtt``
gives ``<LogicalId.Attribute>``, which is enough to check what the template computes from its
parameters (REGION_QUEUES, the dashboard body, the IAM statements).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

INFRASTRUCTURE = Path(__file__).resolve().parents[2] / "infrastructure"
PRIMARY = INFRASTRUCTURE / "template.yaml"
REGION = INFRASTRUCTURE / "region.yaml"

NO_VALUE = object()


def load(path: Path) -> dict[str, Any]:
    document, matches = decode(str(path))
    if document is None:
        raise AssertionError(f"cannot parse {path}: {matches}")
    return document


class Evaluator:
    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, str] | None = None,
        *,
        region: str = "us-east-1",
        account: str = "123456789012",
        stack_name: str = "stack",
    ) -> None:
        self.template = template
        given = parameters or {}
        unknown = set(given) - set(template.get("Parameters", {}))
        if unknown:
            raise AssertionError(f"not parameters of the template: {sorted(unknown)}")
        self.values: dict[str, Any] = {}
        for name, spec in template.get("Parameters", {}).items():
            raw = given.get(name, spec.get("Default"))
            if raw is None:
                raise AssertionError(f"parameter {name} has no value")
            raw = str(raw)
            self.values[name] = raw.split(",") if spec["Type"] == "CommaDelimitedList" else raw
        self.values.update(
            {
                "AWS::Region": region,
                "AWS::AccountId": account,
                "AWS::StackName": stack_name,
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
            }
        )

    # ------------------------------------------------------------------ conditions
    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    # ------------------------------------------------------------------ values
    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.values:
            return self.values[name]
        if name in self.template.get("Resources", {}):
            return f"<Ref:{name}>"
        raise AssertionError(f"Ref to unknown {name}")

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], {k: self.resolve(v) for k, v in argument[1].items()}
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".")[0] in self.template.get("Resources", {}):
                return f"<{name}>"
            return str(self._ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Condition":
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key[4:], argument)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _function(self, name: str, argument: Any) -> Any:
        if name == "If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.condition(condition) else when_false)
        if name == "Sub":
            return self._sub(argument)
        if name == "GetAtt":
            logical, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return f"<{logical}.{attribute}>"
        if name == "Join":
            delimiter, items = argument
            if not isinstance(delimiter, str):
                raise AssertionError("Fn::Join delimiter must be a literal string")
            return delimiter.join(str(v) for v in self.resolve(items))
        if name == "Split":
            delimiter, text = argument
            return str(self.resolve(text)).split(delimiter)
        if name == "Select":
            index, items = argument
            return self.resolve(items)[int(self.resolve(index))]
        if name == "FindInMap":
            mapping, top, second = (self.resolve(a) for a in argument)
            return self.template["Mappings"][mapping][str(top)][second]
        if name == "Equals":
            left, right = (self.resolve(a) for a in argument)
            return str(left) == str(right)
        if name == "Not":
            return not self.resolve(argument[0])
        if name == "And":
            return all(self.resolve(a) for a in argument)
        if name == "Or":
            return any(self.resolve(a) for a in argument)
        raise AssertionError(f"Fn::{name} is not evaluated by this helper")

    def properties(self, logical_id: str) -> dict[str, Any]:
        return self.resolve(self.template["Resources"][logical_id].get("Properties", {}))

    def output(self, name: str) -> Any:
        return self.resolve(self.template["Outputs"][name]["Value"])
