"""infrastructure/docker/worker.Dockerfile, read without a Docker engine.

The file is parsed into instructions (continuations joined, comments dropped) and its stages;
the checks are what an image reviewer looks for: a pinned base, a non-root user, the worker
command as exec-form entry point, dependencies from the lock, the model code last, no secrets.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "infrastructure" / "docker"
DOCKERFILE = DOCKER / "worker.Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def parse(text: str) -> list[Instruction]:
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "a continuation line ends the file"
    instructions = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
    return instructions


INSTRUCTIONS = parse(DOCKERFILE.read_text(encoding="utf-8"))


def stages(instructions: list[Instruction] = INSTRUCTIONS) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def final_stage(instructions: list[Instruction] = INSTRUCTIONS) -> list[Instruction]:
    return stages(instructions)[-1]


def global_args(instructions: list[Instruction] = INSTRUCTIONS) -> dict[str, str]:
    """ARGs before the first FROM, with their defaults."""
    args: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, value = instruction.arguments.partition("=")
            args[name] = value
    return args


def stage_arg(stage: list[Instruction], name: str) -> str:
    for instruction in stage:
        if instruction.keyword == "ARG" and instruction.arguments.startswith(name + "="):
            return instruction.arguments.partition("=")[2]
    raise AssertionError(f"no ARG {name} with a default")


def check_base_image(instructions: list[Instruction]) -> None:
    args = global_args(instructions)
    for instruction in instructions:
        if instruction.keyword == "FROM":
            assert instruction.arguments.split()[0] == "${PYTHON_IMAGE}", instruction
    base = args["PYTHON_IMAGE"]
    repository, _, tag = base.partition("@")[0].partition(":")
    assert repository == "python"
    # A full version, not a moving tag: 3.12.<patch>-slim-<debian release>.
    assert re.fullmatch(r"3\.12\.\d+-slim-[a-z]+", tag), base


def check_user(instructions: list[Instruction]) -> None:
    stage = final_stage(instructions)
    users = [i.arguments for i in stage if i.keyword == "USER"]
    assert users, "the final stage sets no USER (it would run as root)"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, users  # numeric: runAsNonRoot can verify it
    assert gid.isdigit() and int(gid) != 0, users
    keywords = [i.keyword for i in stage]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    assert "RUN" not in keywords[keywords.index("USER") :]  # nothing runs as root afterwards


def check_entrypoint(instructions: list[Instruction]) -> None:
    stage = final_stage(instructions)
    (entrypoint,) = [i.arguments for i in stage if i.keyword == "ENTRYPOINT"]
    command = json.loads(entrypoint)  # exec form: the worker is PID 1 and gets SIGTERM itself
    assert Path(command[0]).name == "orchestrator"
    assert command[1:] == ["worker"]
    assert not [i for i in instructions if i.keyword == "CMD"]
    (signal,) = [i.arguments for i in stage if i.keyword == "STOPSIGNAL"]
    assert signal == "SIGTERM"


def test_the_base_image_is_python_312_pinned_by_tag() -> None:
    check_base_image(INSTRUCTIONS)


def test_the_final_stage_runs_as_a_non_root_user() -> None:
    check_user(INSTRUCTIONS)


def test_the_entry_point_is_the_worker_command_in_exec_form() -> None:
    check_entrypoint(INSTRUCTIONS)


GOOD = DOCKERFILE.read_text(encoding="utf-8")
BROKEN = {
    "moving base tag": (check_base_image, ("3.12.11-slim-bookworm", "3.12-slim")),
    "latest base": (check_base_image, ("python:3.12.11-slim-bookworm", "python:latest")),
    "root user": (check_user, ("USER 10001:10001", "USER root")),
    "uid 0": (check_user, ("USER 10001:10001", "USER 0:0")),
    "no user": (check_user, ("USER 10001:10001", "")),
    "shell form": (
        check_entrypoint,
        ('ENTRYPOINT ["/opt/venv/bin/orchestrator", "worker"]', "ENTRYPOINT orchestrator worker"),
    ),
    "another command": (
        check_entrypoint,
        ('"/opt/venv/bin/orchestrator", "worker"]', '"/opt/venv/bin/orchestrator", "send"]'),
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_the_checks_catch_a_broken_dockerfile(case: str) -> None:
    check, (good, bad) = BROKEN[case]
    assert good in GOOD
    with pytest.raises((AssertionError, ValueError)):
        check(parse(GOOD.replace(good, bad)))


def test_dependencies_come_from_the_lock_with_the_worker_extra() -> None:
    build = stages()[0]
    runs = " ".join(i.arguments for i in build if i.keyword == "RUN")
    assert "uv export --frozen" in runs
    assert "--extra worker" in runs
    assert "--no-default-groups" in runs  # no development tools in the image
    assert "--require-hashes" in runs
    copied = [i.arguments for i in build if i.keyword == "COPY"]
    assert "pyproject.toml uv.lock README.md ./" in copied
    # uv's version is the project's (Makefile and the dev group pin the same).
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    (pinned,) = re.findall(r"^UV_VERSION := (\S+)", makefile, re.M)
    assert stage_arg(build, "UV_VERSION") == pinned
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "worker" in pyproject["project"]["optional-dependencies"]


def test_the_model_code_is_the_last_layer() -> None:
    build = stages()[0]
    keywords = [(i.keyword, i.arguments) for i in build]
    package = next(n for n, (k, a) in enumerate(keywords) if k == "RUN" and "--no-deps ." in a)
    model_reqs = next(n for n, (k, a) in enumerate(keywords) if "MODEL_REQUIREMENTS" in a)
    locked = next(n for n, (k, a) in enumerate(keywords) if k == "RUN" and "uv export" in a)
    assert locked < model_reqs < package  # code changes keep the dependency layers
    copies = [i.arguments for i in final_stage() if i.keyword == "COPY"]
    assert copies[-1].startswith("${MODEL_DIR} /app/model/")
    assert stage_arg(final_stage(), "MODEL_DIR")
    env = " ".join(i.arguments for i in final_stage() if i.keyword == "ENV")
    assert "PYTHONPATH=/app/model" in env


SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|ACCESS_KEY|CREDENTIAL|PRIVATE)", re.I)


def test_no_secrets_in_the_image_definition() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)
    assert not re.search(r"aws_secret_access_key|BEGIN [A-Z ]*PRIVATE KEY", text, re.I)
    for instruction in INSTRUCTIONS:
        if instruction.keyword in {"ARG", "ENV"}:
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", instruction.arguments) or [
                instruction.arguments.split()[0]
            ]
            for name in names:
                assert not SECRET_NAME.search(name), instruction
        if instruction.keyword in {"COPY", "ADD"}:
            assert ".aws" not in instruction.arguments and ".env" not in instruction.arguments
    assert not [i for i in INSTRUCTIONS if i.keyword == "ADD"]  # COPY only: no remote URLs


def test_the_build_context_leaves_local_state_out() -> None:
    ignored = {
        line.strip()
        for line in (DOCKER / "worker.Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".aws", ".aws-sam", "**/.env", "**/__pycache__"} <= ignored


def test_what_the_build_copies_exists() -> None:
    for instruction in INSTRUCTIONS:
        if instruction.keyword != "COPY" or instruction.arguments.startswith("--from"):
            continue
        *sources, _ = shlex.split(instruction.arguments)
        for source in sources:
            if source.startswith("${"):
                continue  # an ARG, checked below
            assert (ROOT / source).exists(), source
    requirements = stage_arg(stages()[0], "MODEL_REQUIREMENTS")
    assert (ROOT / requirements).is_file()


@pytest.mark.parametrize("path", ["infrastructure/docker/example-model-requirements.txt"])
def test_model_requirements_are_pinned(path: str) -> None:
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\],]+==[0-9][^\s]*", line), line
