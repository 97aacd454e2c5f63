"""The templates the infrastructure tests check, and the repository's one CloudFormation
reader (`localrun.cfn`) under the names those tests use.

`Evaluator(template, parameters, region=..., stack_name=...)` evaluates the intrinsic functions
for a parameter set without deploying: ``Ref`` of a resource gives ``<Ref:LogicalId>`` and
``Fn::GetAtt`` gives ``<LogicalId.Attribute>``. `load` parses each template once per session.
"""

from __future__ import annotations

from localrun.cfn import TemplateEvaluator as Evaluator
from localrun.cfn import read_template as load
from localrun.templates import PRIMARY_TEMPLATE, REGION_TEMPLATE, infrastructure_dir

PRIMARY = infrastructure_dir() / PRIMARY_TEMPLATE
REGION = infrastructure_dir() / REGION_TEMPLATE

__all__ = ["PRIMARY", "REGION", "Evaluator", "load"]
