"""Evaluate the CloudFormation templates' intrinsic functions for a parameter set.

Resources are not created: ``Ref`` of a resource gives ``<Ref:LogicalId>`` and ``Fn::GetAtt``
gives ``<LogicalId.Attribute>``, which is enough to check what the template computes from its
parameters (REGION_QUEUES, the dashboard body, the IAM statements). The evaluation itself is
the local stack's (`localrun.cfn`), so tests and the local stack read templates one way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from localrun.cfn import Resolver, load_template, pseudo_parameters

INFRASTRUCTURE = Path(__file__).resolve().parents[2] / "infrastructure"
PRIMARY = INFRASTRUCTURE / "template.yaml"
REGION = INFRASTRUCTURE / "region.yaml"


def load(path: Path) -> dict[str, Any]:
    return load_template(path)


class Evaluator(Resolver):
    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, str] | None = None,
        *,
        region: str = "us-east-1",
        stack_name: str = "stack",
    ) -> None:
        given = parameters or {}
        declared = template.get("Parameters", {})
        unknown = set(given) - set(declared)
        if unknown:
            raise AssertionError(f"not parameters of the template: {sorted(unknown)}")
        missing = [n for n, spec in declared.items() if n not in given and "Default" not in spec]
        if missing:
            raise AssertionError(f"parameters without a value: {missing}")
        values = {name: str(value) for name, value in given.items()}
        super().__init__(template, pseudo_parameters(region, stack_name), values, placeholders=True)
        self.template = template

    def properties(self, logical_id: str) -> dict[str, Any]:
        return dict(self.resolve(self.template["Resources"][logical_id].get("Properties", {})))

    def output(self, name: str) -> Any:
        return self.resolve(self.template["Outputs"][name]["Value"])
