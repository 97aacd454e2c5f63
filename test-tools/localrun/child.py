"""Processes a local stack starts (the moto server, the workers) die with it.

`die_with_parent()` asks Linux to send this process SIGTERM when its parent dies, so a stack
killed without its clean stop (SIGKILL, a crash) leaves nothing running behind it: no
worker long-polling a server that is gone, no server holding a port. The parent passes its
pid in `PARENT_PID_ENV`, which closes the race of a parent that died before the request.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

PARENT_PID_ENV = "LOCALRUN_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    if sys.platform != "linux":
        return  # elsewhere the stack's clean stop is the only stop
    name = ctypes.util.find_library("c")
    if name:
        ctypes.CDLL(name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    parent = os.environ.get(PARENT_PID_ENV)
    if parent and os.getppid() != int(parent):  # it died before prctl took effect
        sys.exit(0)


def child_environ() -> dict[str, str]:
    """This process's environment without any AWS setting (no profile or key of a real
    account reaches a child), unbuffered, with this process as the parent to die with."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environ.update(
        {
            "PYTHONUNBUFFERED": "1",
            "AWS_EC2_METADATA_DISABLED": "true",
            PARENT_PID_ENV: str(os.getpid()),
        }
    )
    return environ
