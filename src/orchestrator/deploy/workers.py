"""The GPU workers' part of ``orchestrator deploy``: its options, and the manifests it writes.

After the stacks are deployed (or, with ``--manifests-only``, read), every region's manifests
are filled in from its outputs (`orchestrator.deploy.manifests`), written under ``--k8s-dir``
and validated offline (`orchestrator.deploy.schemas`) before anyone applies them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

from orchestrator.deploy.config import K8S_OUT
from orchestrator.deploy.manifests import (
    DEFAULT_HANDLER,
    WorkerSettings,
    load_documents,
    region_values,
    write_region_manifests,
)

Say = Callable[[str], None]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    workers = parser.add_argument_group("GPU workers (EKS)")
    workers.add_argument(
        "--cluster-name",
        metavar="NAME|REGION=NAME,...",
        help="EKS cluster of the workers, one for every region or one per region: the stacks "
        "create the pod identity associations, the manifests select its subnets",
    )
    workers.add_argument(
        "--worker-image", help="worker image; when given, the k8s manifests are written"
    )
    workers.add_argument(
        "--worker-handler",
        default=DEFAULT_HANDLER,
        help=f"WORKER_HANDLER, MODULE:ATTR of the model code (default {DEFAULT_HANDLER})",
    )
    workers.add_argument(
        "--karpenter-node-role",
        help="IAM role of Karpenter's nodes (default KarpenterNodeRole-<cluster>)",
    )
    workers.add_argument(
        "--k8s-dir",
        type=Path,
        default=K8S_OUT,
        help="where the manifests go, one folder per region (default build/k8s)",
    )
    workers.add_argument(
        "--manifests-only",
        action="store_true",
        help="deploy nothing: read the existing stacks' outputs and write the manifests",
    )


def settings(args: argparse.Namespace, clusters: Mapping[str, str]) -> WorkerSettings:
    return WorkerSettings(
        image=args.worker_image,
        handler=args.worker_handler,
        clusters=clusters,
        node_role=args.karpenter_node_role,
    )


def write_manifests(
    out_dir: Path,
    outputs: Mapping[str, Mapping[str, str]],
    worker: WorkerSettings,
    say: Say,
    err: TextIO,
) -> int:
    """Fill infrastructure/k8s in for every region of ``outputs``, write it, validate it.

    Every region's values are worked out before anything is written, so a missing output or
    cluster name leaves no half-written folder. The exit status: 1 when a manifest is invalid.
    """
    from orchestrator.deploy.schemas import ValidatorUnavailableError, validate_documents

    values = {region: region_values(region, outputs[region], worker) for region in outputs}
    say("")
    say(f"Worker manifests ({out_dir})")
    problems: list[str] = []
    checked = True
    for region, region_outputs in outputs.items():
        written = write_region_manifests(out_dir, region, values[region], region_outputs)
        documents = [
            document
            for path in written
            if path.suffix == ".yaml"
            for document in load_documents(path.read_text(encoding="utf-8"), str(path))
        ]
        try:
            problems += validate_documents(documents)
        except ValidatorUnavailableError as error:
            checked = False
            say(f"  note: not validated offline: {error}")
        folder = written[0].parent
        cluster = values[region]["CLUSTER_NAME"]
        say(f"  {region:<16} {folder}/  (cluster {cluster})")
        say(f"    kubectl --context <{cluster}> apply -f {folder}/")
        queue = region_outputs.get("InterruptionQueueName")
        if queue:
            say(f"    Karpenter: --set settings.interruptionQueue={queue}")
    for problem in problems:
        print(f"error: {problem}", file=err)
    if problems:
        return 1
    if checked:
        say("  validated offline (Kubernetes schemas in strict mode, KEDA and Karpenter schemas)")
    return 0
