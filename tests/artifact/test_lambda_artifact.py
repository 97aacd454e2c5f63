"""What `sam build` put into each Lambda artifact: only what that function runs.

Run by `make build` right after `sam build`, with ORCHESTRATOR_ARTIFACT_DIR naming the build
folder (.aws-sam/build); skipped in a plain `pytest` run that has no artifact to read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BUILD_DIR = os.environ.get("ORCHESTRATOR_ARTIFACT_DIR")
pytestmark = pytest.mark.skipif(not BUILD_DIR, reason="set ORCHESTRATOR_ARTIFACT_DIR (make build)")
# function logical id -> (its component package, its handler module)
FUNCTIONS = {
    "DistributorFunction": ("distributor", "orchestrator.distributor.handler"),
    "RescueFunction": ("rescue", "orchestrator.rescue.handler"),
}

# Top-level importable names the distributor needs: the package, its two runtime dependencies
# (Powertools, pydantic) and what they pull in. boto3 comes with the runtime.
ALLOWED_TOP_LEVEL = {
    "orchestrator",
    "aws_lambda_powertools",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "typing_inspection",
    "jmespath",
}
# pydantic-core's compiled extension is most of it; the budget keeps an accidental dependency
# (or a second copy of boto3: ~25 MB) from slipping in.
MAX_ARTIFACT_MB = 15.0


def _root(function: str) -> Path:
    assert BUILD_DIR is not None
    root = Path(BUILD_DIR) / function
    assert root.is_dir(), f"{root} does not exist: run sam build first"
    return root


def _top_level_names(root: Path) -> set[str]:
    names = set()
    for entry in root.iterdir():
        if entry.name.endswith((".dist-info", ".egg-info")) or entry.name == "__pycache__":
            continue
        if entry.name in ("requirements.txt", "Makefile"):
            continue
        names.add(entry.name.removesuffix(".py").split(".")[0])
    return names


@pytest.mark.parametrize("function", FUNCTIONS)
def test_artifact_holds_only_its_component_the_core_and_runtime_dependencies(
    function: str,
) -> None:
    root = _root(function)
    assert _top_level_names(root) == ALLOWED_TOP_LEVEL
    package = sorted(p.name for p in (root / "orchestrator").iterdir() if p.name != "__pycache__")
    assert package == sorted(["__init__.py", "core", FUNCTIONS[function][0]])


@pytest.mark.parametrize("function", FUNCTIONS)
def test_artifact_size_is_within_budget(function: str) -> None:
    root = _root(function)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    print(f"\n{function} artifact: {size / 1e6:.1f} MB")
    assert size / 1e6 <= MAX_ARTIFACT_MB


@pytest.mark.parametrize("function", FUNCTIONS)
def test_handler_imports_from_the_artifact_alone(function: str) -> None:
    """The handler path in the template resolves inside the artifact, with boto3 from outside
    (as the runtime provides it) and nothing else of the development environment."""
    import boto3

    boto3_site = str(Path(boto3.__file__).resolve().parents[1])
    code = (
        "import sys; sys.path[:0] = [sys.argv[1]]; sys.path.append(sys.argv[2]);"
        "import importlib as i, importlib.util as u; h = i.import_module(sys.argv[3]);"
        "assert callable(h.lambda_handler);"
        "assert u.find_spec('orchestrator.cli') is None, 'cli in artifact';"
        "assert u.find_spec('orchestrator.worker') is None, 'worker in artifact';"
        "print(h.__file__)"
    )
    root = _root(function)
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(root), boto3_site, FUNCTIONS[function][1]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(root.resolve())) or str(root) in done.stdout
