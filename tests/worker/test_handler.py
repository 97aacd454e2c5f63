"""--handler MODULE:ATTR: a function, a class with load() and predict(), or an object."""

from __future__ import annotations

import sys
import textwrap

import pytest

from orchestrator.worker.exceptions import HandlerLoadError
from orchestrator.worker.handler import load_handler


@pytest.fixture
def module(tmp_path, monkeypatch):
    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        sys.modules.pop(name, None)
        return name

    return write


def test_a_function_is_a_model_with_nothing_to_load(module):
    name = module("fn_model", "def predict(requests):\n    return [r * 2 for r in requests]\n")
    model = load_handler(f"{name}:predict")
    model.load()
    assert model.predict([1, 2]) == [2, 4]


def test_a_class_is_instantiated_and_loaded_once_before_predict(module):
    name = module(
        "class_model",
        """
        class Model:
            def __init__(self):
                self.weights = None
            def load(self):
                self.weights = 10
            def predict(self, requests):
                return [r * self.weights for r in requests]
        """,
    )
    model = load_handler(f"{name}:Model")
    model.load()
    assert model.predict([1, 2]) == [10, 20]


def test_an_instance_with_predict_is_used_as_is(module):
    name = module(
        "instance_model",
        """
        class _M:
            def predict(self, requests):
                return ["ok"] * len(requests)
        model = _M()
        """,
    )
    assert load_handler(f"{name}:model").predict([1]) == ["ok"]


@pytest.mark.parametrize(
    ("source", "spec", "message"),
    [
        ("", "no_colon", "MODULE:ATTR"),
        ("", "missing_mod_xyz:f", "cannot import"),
        ("x = 1\n", "{name}:y", "has no attribute"),
        ("x = 1\n", "{name}:x", "neither a function"),
        ("class M:\n    pass\n", "{name}:M", "no predict"),
        (
            "class M:\n    def __init__(self, a): pass\n    def predict(self, r): pass\n",
            "{name}:M",
            "without arguments",
        ),
        (
            "raise RuntimeError('boom at import')\n",
            "{name}:f",
            "raised RuntimeError: boom at import",
        ),
    ],
)
def test_a_bad_handler_says_what_is_wrong(module, source, spec, message):
    name = module(f"bad_{abs(hash(source)) % 10_000}", source) if source else "unused"
    with pytest.raises(HandlerLoadError, match=message):
        load_handler(spec.format(name=name))
