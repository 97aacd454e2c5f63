"""Runnable model examples for the worker (``--handler examples.digits:DigitsModel``)."""
