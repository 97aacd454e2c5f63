"""The routing simulator: a discrete-event model of the whole request path.

It drives the real routing code (`orchestrator.core.routing`, `orchestrator.core.depth`) and
the real stranded-work rule (`orchestrator.core.stranding`) through their public interfaces,
and compares the strategies against baselines and an oracle (`orchestrator simulate`).
"""
