"""The shared core: each contract between components is defined here, once.

It imports no component. Nothing is imported here either: a caller imports the module it
needs (`orchestrator.core.request`, `orchestrator.core.sqs`, ...), so the Lambda's cold start
pays only for what it uses.
"""
