# syntax=docker/dockerfile:1
#
# syncjob image: `docker build -t ghcr.io/syncjob/syncjob:0.1.0 .` (or scripts/build.sh).
# Try it: `docker run --rm --read-only --tmpfs /tmp ghcr.io/syncjob/syncjob:0.1.0 demo`
# (the demo writes into a temporary folder; a real pass writes only beside its config).
#
# - build stage: builds the wheel from this checkout (`pip wheel --no-deps`);
# - final stage: installs that wheel only (its dependencies come from PyPI), compiles all
#   bytecode at build time, and runs as UID/GID 65532, with nothing to write at run time:
#   it works with a read-only root filesystem. The only writes are beside the config
#   (CONFIG_PATH's folder: the config, its state, lock and temporary files), which is a
#   mounted volume in every deployment (see deploy/README.md).
#
# The base is pinned by patch version. To pin by digest as well, append it:
#   FROM python:3.11.14-slim-bookworm@sha256:<digest>
# (`docker buildx imagetools inspect python:3.11.14-slim-bookworm` prints the digest).

FROM python:3.11.14-slim-bookworm AS build

WORKDIR /src
# Only what the wheel is made of: the package, its metadata, README (the long
# description) and LICENSE. Nothing else of the checkout enters the image.
COPY pyproject.toml README.md LICENSE ./
COPY syncjob/ syncjob/
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps --wheel-dir /dist .


FROM python:3.11.14-slim-bookworm

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
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# The wheel is bind-mounted from the build stage, so it leaves no layer behind.
# compileall: the official python images delete every .pyc of the standard library, so
# without it each run would compile the stdlib modules it imports from source, every
# time (nothing can be cached on a read-only filesystem): a slower no-op pass.
RUN --mount=type=bind,from=build,source=/dist,target=/dist \
    pip install --no-cache-dir /dist/*.whl \
    && python -m compileall -q -j 0 /usr/local/lib/python3.*/

# Numeric, so `runAsNonRoot` can check it without a passwd entry.
USER 65532:65532
# HTTP_PORT of `syncjob --loop` (/healthz /ready /metrics /status).
EXPOSE 8080
ENTRYPOINT ["syncjob"]
