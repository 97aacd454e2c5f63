"""What `sam build` put into the distributor's artifact: only what the Lambda runs.

Run by `make build` right after `sam build`, with ORCHESTRATOR_ARTIFACT_DIR naming the built
function's folder; skipped in a plain `pytest` run that has no artifact to read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ARTIFACT = os.environ.get("ORCHESTRATOR_ARTIFACT_DIR")
pytestmark = pytest.mark.skipif(not ARTIFACT, reason="set ORCHESTRATOR_ARTIFACT_DIR (make build)")

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


def _root() -> Path:
    assert ARTIFACT is not None
    root = Path(ARTIFACT)
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


def test_artifact_holds_only_the_distributor_its_core_and_runtime_dependencies() -> None:
    root = _root()
    assert _top_level_names(root) == ALLOWED_TOP_LEVEL
    package = sorted(p.name for p in (root / "orchestrator").iterdir() if p.name != "__pycache__")
    assert package == ["__init__.py", "core", "distributor"]


def test_artifact_size_is_within_budget() -> None:
    root = _root()
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    print(f"\nartifact: {size / 1e6:.1f} MB")
    assert size / 1e6 <= MAX_ARTIFACT_MB


def test_handler_imports_from_the_artifact_alone() -> None:
    """The handler path in the template resolves inside the artifact, with boto3 from outside
    (as the runtime provides it) and nothing else of the development environment."""
    import boto3

    boto3_site = str(Path(boto3.__file__).resolve().parents[1])
    code = (
        "import sys; sys.path[:0] = [sys.argv[1]]; sys.path.append(sys.argv[2]);"
        "import orchestrator.distributor.handler as h; assert callable(h.lambda_handler);"
        "import importlib.util as u;"
        "assert u.find_spec('orchestrator.cli') is None, 'cli in artifact';"
        "print(h.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(_root()), boto3_site],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(_root().resolve())) or ARTIFACT in done.stdout
