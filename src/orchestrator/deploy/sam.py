"""The primary stack: ``sam build`` and ``sam deploy`` command lines, run by an injected runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from orchestrator.deploy.config import ConfigurationError
from orchestrator.deploy.stacks import RegionQueue

Runner = Callable[[Sequence[str]], None]
"""Runs one command line; raises (``subprocess.CalledProcessError``) when it fails."""

# Characters SAM's --parameter-overrides parser treats specially in an unquoted value.
_NEEDS_QUOTES = frozenset(" \"'\\")


def sam_executable() -> str:
    """The ``sam`` of this virtualenv when there is one, else the one on PATH."""
    beside = Path(sys.executable).with_name("sam")
    if beside.exists():
        return str(beside)
    return shutil.which("sam") or "sam"


def command_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for ``sam``: python3.12 on PATH, which ``sam build`` needs.

    When none is on PATH but this interpreter is a 3.12 (the project's .venv is), its
    directory is put first, so ``python -m deployer`` works without activating the venv.
    """
    env = dict(os.environ if environ is None else environ)
    here = Path(sys.executable).parent
    if shutil.which("python3.12", path=env.get("PATH")) is None and (here / "python3.12").exists():
        env["PATH"] = os.pathsep.join(filter(None, [str(here), env.get("PATH")]))
    return env


def subprocess_runner(cwd: Path) -> Runner:
    def run(argv: Sequence[str]) -> None:
        subprocess.run(list(argv), cwd=cwd, check=True, env=command_environment())

    return run


def format_override(key: str, value: str) -> str:
    """One ``Key=Value`` argument of ``--parameter-overrides``, quoted when SAM needs it."""
    if value and not (_NEEDS_QUOTES & set(value)):
        return f"{key}={value}"
    return f'{key}="' + value.replace('"', '\\"') + '"'


def remote_queue_parameters(remote: Sequence[RegionQueue]) -> dict[str, str]:
    """``RemoteRegionQueues`` (region=url,...) and ``RemoteRegionQueueArns`` (arn,...), and
    the same for the high-priority queues: ``RemoteRegionHighPriorityQueues`` and
    ``RemoteRegionHighPriorityQueueArns``.

    The template turns the URL lists into JSON with Fn::Split on "=" and Fn::Join, and uses "|"
    as a marker, so a URL must not contain any of "=,|" (SQS queue URLs never do).
    """
    for queue in remote:
        for url in (queue.url, queue.high_url):
            if any(ch in url for ch in '=,|"') or not url.startswith("https://"):
                raise ConfigurationError(f"{queue.region}: unexpected queue URL {url!r}")
        for arn in (queue.arn, queue.high_arn):
            if "," in arn or not arn.startswith("arn:"):
                raise ConfigurationError(f"{queue.region}: unexpected queue ARN {arn!r}")
    return {
        "RemoteRegionQueues": ",".join(f"{q.region}={q.url}" for q in remote),
        "RemoteRegionQueueArns": ",".join(q.arn for q in remote),
        "RemoteRegionHighPriorityQueues": ",".join(f"{q.region}={q.high_url}" for q in remote),
        "RemoteRegionHighPriorityQueueArns": ",".join(q.high_arn for q in remote),
    }


def primary_parameters(
    env: str,
    remote: Sequence[RegionQueue],
    config_overrides: Mapping[str, str],
    extra: Mapping[str, str],
) -> dict[str, str]:
    """Every parameter override of the primary stack.

    A command-line ``--parameter-overrides`` replaces samconfig's list entirely, so its entries
    are carried over; and parameters left out would keep their *previous* values on an update
    (SAM sends UsePreviousValue), so the remote-queue parameters are always sent, empty too.
    """
    parameters = {**config_overrides, **extra}
    parameters["Environment"] = env
    parameters.update(remote_queue_parameters(remote))
    return parameters


def build_command(sam: str, *, config_file: Path, env: str) -> list[str]:
    return [sam, "build", "--config-file", str(config_file), "--config-env", env]


def deploy_command(
    sam: str,
    *,
    config_file: Path,
    env: str,
    template_file: Path,
    stack_name: str,
    region: str,
    parameters: Mapping[str, str],
    profile: str | None = None,
) -> list[str]:
    command = [
        sam,
        "deploy",
        "--config-file",
        str(config_file),
        "--config-env",
        env,
        "--template-file",
        str(template_file),
        "--stack-name",
        stack_name,
        "--region",
        region,
        "--no-fail-on-empty-changeset",
    ]
    if profile:
        command += ["--profile", profile]
    command += ["--parameter-overrides", *(format_override(k, v) for k, v in parameters.items())]
    return command
