# syncjob image: `docker build -t ghcr.io/syncjob/syncjob:0.1.0 .` (or scripts/build.sh;
# podman builds it too). Try it:
#   docker run --rm --read-only --tmpfs /tmp --user 65532:65532 ghcr.io/syncjob/syncjob:0.1.0 demo
# (the demo writes into a temporary folder and removes it; with no writable /tmp it exits 73
# with one line. A real pass writes only beside its config.)
#
# - build stage: builds the wheel from this checkout (`pip wheel --no-deps`) and installs
#   it with its dependencies into a virtual environment, /opt/syncjob;
# - final stage: that environment only (no wheel, no pip cache), all bytecode compiled at
#   build time, run as UID/GID 65532 with nothing to write at run time: it works with a
#   read-only root filesystem. The only writes are beside the config (CONFIG_PATH's folder:
#   the config, its state, lock and temporary files), which is a mounted volume in every
#   deployment (see deploy/README.md). Run it with the group as well (`--user 65532:65532`,
#   runAsGroup): a UID alone runs with GID 0 and leaves root-group files behind.
#
# Build arguments:
#   BASE_IMAGE    both stages' base: a Debian bookworm image with python3 and pip on PATH
#                 as `python` and `pip`. The default is pinned by patch version; to pin by
#                 digest as well, append it: python:3.11.14-slim-bookworm@sha256:<digest>
#                 (`docker buildx imagetools inspect python:3.11.14-slim-bookworm`).
#                 Where no registry is reachable, scripts/podman-base.sh makes one locally.
#   PIP_NO_INDEX  set to 1 to build with no network at all: every wheel (syncjob's
#                 dependencies and the build backend, setuptools) then comes from the
#                 `wheels` build context, e.g. prepared with `pip wheel -w WHEELS`
#                 of pyproject.toml's dependencies and setuptools on a host of the same
#                 Python and architecture, and passed as `--build-context wheels=WHEELS`
#                 (scripts/build.sh --wheels WHEELS does both). Without it, PyPI.
#
# No BuildKit-only instruction (no RUN --mount): Docker's BuildKit, Docker's legacy builder
# (Docker without buildx) and podman/buildah all build it.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm

# pip's --find-links: the `wheels` build context when one is given (it replaces this
# stage), else just the LICENSE (legacy builders need a file to copy).
FROM scratch AS wheels
COPY LICENSE /

FROM ${BASE_IMAGE} AS build
ARG PIP_NO_INDEX
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY --from=wheels / /wheels/
# Only what the wheel is made of: the package, its metadata, README (the long
# description) and LICENSE. Nothing else of the checkout enters the image.
COPY pyproject.toml README.md LICENSE ./
COPY syncjob/ syncjob/
# A virtual environment is one folder to copy, wherever the base keeps its Python (the
# venv's python links to the base's, the same in both stages).
RUN pip wheel --no-cache-dir --find-links /wheels --no-deps --wheel-dir /dist . \
    && python -m venv --without-pip /opt/syncjob \
    && pip --python /opt/syncjob/bin/python install --no-cache-dir --find-links /wheels /dist/*.whl


FROM ${BASE_IMAGE}

ARG VERSION=0.1.0
ARG SOURCE=https://github.com/syncjob/syncjob
LABEL org.opencontainers.image.title="syncjob" \
      org.opencontainers.image.description="Keeps a Prometheus or Alertmanager configuration in step with AlertAgent" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}"

# PYTHONDONTWRITEBYTECODE: never try to write .pyc at run time (the root filesystem is
# read-only); everything is compiled below instead.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/syncjob/bin:$PATH

COPY --from=build /opt/syncjob /opt/syncjob
# compileall: the official python images delete every .pyc of the standard library, so
# without it each run would compile the stdlib modules it imports from source, every
# time (nothing can be cached on a read-only filesystem): a slower no-op pass. Every
# folder on the environment's sys.path: the standard library and syncjob's packages.
RUN python -c "import compileall, os, sys; sys.exit(not all(compileall.compile_dir(p, quiet=1, workers=0) for p in sys.path if os.path.isdir(p)))"

# Numeric, so `runAsNonRoot` can check it without a passwd entry.
USER 65532:65532
# HTTP_PORT of `syncjob --loop` (/healthz /ready /metrics /status).
EXPOSE 8080
ENTRYPOINT ["syncjob"]
