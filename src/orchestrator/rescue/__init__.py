"""Stranded-work rescue: a scheduled function that moves a stalled region queue's backlog to
healthy regions (docs/rescue.md).

The Lambda entry is `orchestrator.rescue.handler.lambda_handler`; the rule it applies and the
choice of targets are pure functions in `orchestrator.core.stranding`, shared with the
simulator.
"""
