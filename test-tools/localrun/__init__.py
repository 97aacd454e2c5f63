"""The local stack: the whole system on one machine (docs/local-stack.md).

Modules, bottom up:

- `cfn`, `templates`: read infrastructure/*.yaml into queue, table and function specs;
- `server`: moto's server in a thread, and `LocalSession` (local endpoint, fake credentials);
- `resources`, `stack`, `stackfile`: create the specs' resources, describe them
  (`LocalStack`), advertise them in `.local-stack.json`;
- `lambda_runtime`, `poller`, `distributor`: Lambda's SQS event source locally, driving the
  real `orchestrator.distributor.handler`;
- `workers`, `depths`, `traffic`, `summary`, `report`: simulated GPU consumers, queue depth
  sampling, demo traffic, the audit and the HTML report;
- `demo`, `console`, `invoke`: the `make demo`, `make local` and `make invoke` entry points.

Nothing is imported here: each entry point pulls in only what it needs.
"""
