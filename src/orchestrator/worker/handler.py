"""Loading the user's model code named by ``--handler MODULE:ATTR``.

`ATTR` may be:

- a function ``fn(requests) -> results``;
- a class with ``predict(requests) -> results`` and optionally ``load()``: instantiated with
  no arguments, ``load()`` called once before the first batch (on the thread that runs every
  ``predict``, which matters for CUDA contexts);
- an object (an instance) with ``predict`` and optionally ``load``.

The current directory is put first on ``sys.path`` (as uvicorn and gunicorn do), so
``--handler my_model:Model`` works from the directory holding ``my_model.py``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from orchestrator.worker.exceptions import HandlerLoadError
from orchestrator.worker.request import Request

Results = Sequence[Any]


class Model(Protocol):
    def load(self) -> None: ...

    def predict(self, requests: list[Request]) -> Results: ...


class FunctionModel:
    """A plain function as a model: nothing to load."""

    def __init__(self, fn: Callable[[list[Request]], Results]) -> None:
        self._fn = fn

    def load(self) -> None:
        return None

    def predict(self, requests: list[Request]) -> Results:
        return self._fn(requests)


class ObjectModel:
    """An object with ``predict`` and maybe ``load``."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def load(self) -> None:
        load = getattr(self._target, "load", None)
        if callable(load):
            load()

    def predict(self, requests: list[Request]) -> Results:
        return self._target.predict(requests)


def as_model(target: Any) -> Model:
    """Adapt a function, a class or an object to `Model` (module docstring)."""
    if inspect.isclass(target):
        if not callable(getattr(target, "predict", None)):
            raise HandlerLoadError(f"class {target.__name__} has no predict(requests) method")
        try:
            instance = target()
        except TypeError as exc:
            raise HandlerLoadError(
                f"class {target.__name__} must be constructible without arguments: {exc}"
            ) from exc
        return ObjectModel(instance)
    if callable(getattr(target, "predict", None)):
        return ObjectModel(target)
    if callable(target):
        return FunctionModel(target)
    raise HandlerLoadError(
        f"{target!r} is neither a function, nor a class or object with predict(requests)"
    )


def load_handler(spec: str) -> Model:
    """Import ``MODULE:ATTR`` and adapt it; `HandlerLoadError` says what is wrong."""
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path:
        raise HandlerLoadError(f"expected MODULE:ATTR, got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerLoadError(f"cannot import {module_name!r}: {exc}") from exc
    except Exception as exc:  # the user's module failed while importing: say so, by flag
        raise HandlerLoadError(
            f"importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise HandlerLoadError(f"{module_name!r} has no attribute {attr_path!r}") from None
    return as_model(target)
