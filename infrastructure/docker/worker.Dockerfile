# syntax=docker/dockerfile:1
# The GPU inference worker image: `orchestrator worker` with the user's model code on top.
#
# Build from the repository root (the context needs pyproject.toml, uv.lock and src/):
#
#   docker build -f infrastructure/docker/worker.Dockerfile \
#       --build-arg MODEL_DIR=examples \
#       --build-arg MODEL_REQUIREMENTS=infrastructure/docker/example-model-requirements.txt \
#       -t <account>.dkr.ecr.<region>.amazonaws.com/inference-worker:<tag> .
#
# MODEL_DIR is copied to /app/model/<MODEL_DIR> and /app/model is on PYTHONPATH, so
# WORKER_HANDLER=examples.digits:DigitsModel names examples/digits.py. MODEL_REQUIREMENTS lists
# the model's own packages (torch, scikit-learn, ...), installed under the lock's versions.
#
# Base: python:3.12 slim, pinned by tag (pin the digest too in production:
# python:3.12.11-slim-bookworm@sha256:...). The GPU driver comes from the node (Karpenter's
# AL2023 NVIDIA AMI and the NVIDIA container toolkit); PyTorch and JAX bring their CUDA
# libraries as wheels, so no CUDA base image is needed for them. docs/deployment.md says
# when a CUDA runtime base is worth its size, and how to use one.
# checkov:skip=CKV_DOCKER_7:FROM uses the PYTHON_IMAGE argument, pinned just below by tag.
ARG PYTHON_IMAGE=python:3.12.11-slim-bookworm

# ------------------------------------------------------------------------------ build
FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m pip install --no-cache-dir "uv==${UV_VERSION}" \
    && uv venv --python /usr/local/bin/python3.12 /opt/venv
WORKDIR /src

# 1. The package's runtime dependencies with its worker extra, exactly as uv.lock pins them
#    (hashes checked). Only the lock inputs are copied, so this layer survives code changes.
COPY pyproject.toml uv.lock README.md ./
COPY test-tools/pyproject.toml test-tools/pyproject.toml
RUN uv export --frozen --no-default-groups --extra worker --no-emit-project \
        --no-emit-workspace --format requirements-txt --no-header --quiet \
        -o /opt/requirements.txt \
    && uv pip install --python /opt/venv/bin/python --require-hashes -r /opt/requirements.txt

# 2. The model's packages, constrained to the versions above.
ARG MODEL_REQUIREMENTS=infrastructure/docker/example-model-requirements.txt
COPY ${MODEL_REQUIREMENTS} /opt/model-requirements.txt
RUN uv pip install --python /opt/venv/bin/python --constraint /opt/requirements.txt \
        -r /opt/model-requirements.txt

# 3. The orchestrator package itself (its `orchestrator` command and `worker` subcommand).
COPY src/ src/
RUN uv pip install --python /opt/venv/bin/python --no-deps .

# ------------------------------------------------------------------------------ runtime
FROM ${PYTHON_IMAGE} AS runtime
# The same uid/gid as the pod's securityContext (infrastructure/k8s/20-deployment.yaml).
RUN groupadd --system --gid 10001 worker \
    && useradd --system --uid 10001 --gid worker --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin worker
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app/model \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# 4. The user's model code: the last layer, so a model change rebuilds only this.
ARG MODEL_DIR=examples
COPY ${MODEL_DIR} /app/model/${MODEL_DIR}

USER 10001:10001
WORKDIR /app/model
# /healthz, /readyz and /metrics (WORKER_HTTP_PORT).
EXPOSE 8080
# For `docker run` and ECS; Kubernetes ignores it and uses the Deployment's probes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('WORKER_HTTP_PORT', '8080') + '/healthz', timeout=3)"]
# Kubernetes sends SIGTERM; the worker drains (WORKER_DRAIN_SECONDS) and exits 0. The exec
# form makes the worker PID 1, so the signal reaches it directly.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/venv/bin/orchestrator", "worker"]
