"""The local stack: the whole system on one machine (docs/local-stack.md).

A development tool beside the shipped package: it adds the `local`, `demo` and `invoke`
subcommands to the `orchestrator` command, and uses the core's contracts (`orchestrator.core`:
request, attributes, dead letters, SQS helpers, the stack file, the background loop) instead
of copies of them.

Modules, bottom up:

- `cfn`, `templates`: read infrastructure/*.yaml into queue, table, bucket and function specs
  (`cfn` is the repository's one CloudFormation reader; the template tests use it too);
- `child`, `moto_process`, `moto_fixes`, `server`: moto's server in a process of its own (atomic
  DynamoDB writes and SQS receives, linear queue scans), and `LocalSession` (local endpoint, fake
  credentials);
- `resources`, `stack`, `stackfile`: create the specs' resources (`StackResources`), start a
  whole stack, and write the stack file the core's `LocalStack` reader reads;
- `lambda_runtime`, `poller`, `distributor`: Lambda's SQS event source locally, driving the
  real `orchestrator.distributor.handler`; `rescue_timer`: the real `orchestrator.rescue`
  on a schedule;
- `models`, `worker_main`, `workers`: the simulated model, and the real worker
  (`orchestrator worker`) as one process per GPU serving it;
- `depths`, `traffic`, `evidence`, `summary`, `audit`, `demo_text`, `report`: queue depth
  sampling, demo traffic, what a run left behind, its figures, the exactly-once audit, the
  printed summary and the HTML report;
- `demo`; `console` with `console_view` and `hints`; `invoke` with `event_file` and
  `invoke_report`: the `orchestrator demo`, `local` and `invoke` commands.

Nothing is imported here: each entry point pulls in only what it needs.
"""
