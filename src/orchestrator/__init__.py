"""Multi-Region Inference Orchestrator.

One subpackage per component, over a small shared core:

- `orchestrator.core`: the contracts every component shares (request, forwarded-message
  attributes, dead letter, request record, region names, SQS helpers, routing, errors);
- `orchestrator.distributor`: the SQS-triggered Lambda (the only code in its artifact, with
  the core);
- `orchestrator.cli`: the `orchestrator` command and its subcommands;
- `orchestrator.deploy`: the multi-region deploy command.

Components import the core and never each other (checked by import-linter in `make test`).
Nothing is imported here, so loading one component never loads another.
"""

__version__ = "0.2.0"
