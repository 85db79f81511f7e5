#!/usr/bin/env bash
# Build syncjob: wheel and sdist, the test suite, the container image; optionally push it.
# The original's scripts/build-config-syncer.sh, for this Python project.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/build.sh [-t TAG] [-i IMAGE] [--push] [--skip-tests]
                        [--engine docker|podman] [--base IMAGE] [--wheels DIR]

Builds syncjob, from the repository's folder wherever it is called from:
  1. the wheel and sdist into dist/         (python -m build)
  2. the test suite                         (tox), unless --skip-tests
  3. the image IMAGE:TAG from ./Dockerfile  (docker or podman build)
  4. pushes IMAGE:TAG                       with --push

Options:
  -t, --tag TAG      image tag (default: the package version, syncjob/__init__.py)
  -i, --image IMAGE  image name (default: $IMAGE, else ghcr.io/syncjob/syncjob;
                     replace it with your registry's)
      --push         push IMAGE:TAG after building it (docker login / podman login first)
      --skip-tests   do not run tox
      --engine E     docker or podman (default: docker where `docker info` answers,
                     else podman where it is installed). Docker builds with buildx
                     when it is there, else with its legacy builder
      --base IMAGE   the Dockerfile's BASE_IMAGE (default: its pinned python slim);
                     scripts/podman-base.sh makes local/debian-python:bookworm
                     where no registry is reachable
      --wheels DIR   build with no network at all: first `pip wheel` syncjob's
                     dependencies and setuptools into DIR on this host (same Python
                     and architecture as the base), then install only from DIR
  -h, --help         show this help

Where neither engine runs (no `docker info`, no podman), step 3 is skipped with a
message and the script exits 0 after steps 1-2; with --push it exits 1, since the
image asked for cannot be pushed.

Examples:
  scripts/build.sh                        # dist/, tests, ghcr.io/syncjob/syncjob:<version>
  scripts/build.sh -t v1.0.0
  scripts/build.sh -t v1.0.0 --push
  scripts/build.sh --skip-tests
  scripts/podman-base.sh && scripts/build.sh --skip-tests --engine podman \
      --base local/debian-python:bookworm --wheels build/wheels
USAGE
}

die() {
    echo "build.sh: $*" >&2
    exit 2
}

cd "$(dirname "${BASH_SOURCE[0]}")/.."

IMAGE="${IMAGE:-ghcr.io/syncjob/syncjob}"
TAG=""
PUSH=0
SKIP_TESTS=0
ENGINE=""
BASE=""
WHEELS=""
PYTHON="${PYTHON:-python3}"

while (($#)); do
    case "$1" in
        -t | --tag)
            [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a tag (see --help)"
            TAG="$2"
            shift 2
            ;;
        -i | --image)
            [[ $# -ge 2 && -n "$2" ]] || die "$1 needs an image name (see --help)"
            IMAGE="$2"
            shift 2
            ;;
        --engine)
            [[ $# -ge 2 && ("$2" == docker || "$2" == podman) ]] ||
                die "$1 needs docker or podman (see --help)"
            ENGINE="$2"
            shift 2
            ;;
        --base)
            [[ $# -ge 2 && -n "$2" ]] || die "$1 needs an image (see --help)"
            BASE="$2"
            shift 2
            ;;
        --wheels)
            [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a folder (see --help)"
            WHEELS="$2"
            shift 2
            ;;
        --push)
            PUSH=1
            shift
            ;;
        --skip-tests)
            SKIP_TESTS=1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            die "unknown option: $1 (see --help)"
            ;;
    esac
done

VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' syncjob/__init__.py)"
[[ -n "$VERSION" ]] || die "cannot read __version__ from syncjob/__init__.py"
TAG="${TAG:-$VERSION}"

echo "==> wheel and sdist into dist/ (syncjob $VERSION)"
# `-m build --version`, not `import build`: a build/ folder in the checkout imports too.
if ! "$PYTHON" -m build --version >/dev/null 2>&1; then
    die "the 'build' package is missing: $PYTHON -m pip install build"
fi
"$PYTHON" -m build --outdir dist .

if ((SKIP_TESTS)); then
    echo "==> tests skipped (--skip-tests)"
else
    command -v tox >/dev/null || die "tox is missing: $PYTHON -m pip install tox (or --skip-tests)"
    echo "==> tests (tox)"
    tox
fi

docker_runs() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }
if [[ -z "$ENGINE" ]]; then
    if docker_runs; then
        ENGINE=docker
    elif command -v podman >/dev/null; then
        ENGINE=podman
    fi
elif [[ "$ENGINE" == docker ]] && ! docker_runs; then
    die "--engine docker: no Docker engine answers (docker info fails)"
elif [[ "$ENGINE" == podman ]] && ! command -v podman >/dev/null; then
    die "--engine podman: podman is not installed (apt-get install podman buildah runc)"
fi
if [[ -z "$ENGINE" ]]; then
    echo "==> image $IMAGE:$TAG NOT built: no Docker engine (docker info fails) and no podman."
    echo "    dist/ holds the wheel and sdist; build the image where either runs:"
    echo "    docker build -t $IMAGE:$TAG .    (or podman build)"
    if ((PUSH)); then
        echo "build.sh: --push asked for, but nothing was built or pushed" >&2
        exit 1
    fi
    exit 0
fi

args=(--build-arg "VERSION=$VERSION" --tag "$IMAGE:$TAG")
[[ -z "$BASE" ]] || args+=(--build-arg "BASE_IMAGE=$BASE")
if [[ -n "$WHEELS" ]]; then
    echo "==> wheels for an offline build into $WHEELS"
    mkdir -p "$WHEELS"
    # syncjob's own wheel is built inside the image from this checkout; only its
    # dependencies and the build backend (pyproject.toml's lists) come from DIR.
    mapfile -t requirements < <("$PYTHON" -c 'import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))
print("\n".join(p["build-system"]["requires"] + p["project"]["dependencies"]))')
    "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$WHEELS" \
        "${requirements[@]}"
    args+=(--build-context "wheels=$WHEELS" --build-arg PIP_NO_INDEX=1 --network none)
fi

echo "==> image $IMAGE:$TAG ($ENGINE)"
if [[ "$ENGINE" == podman ]]; then
    podman build "${args[@]}" .
elif docker buildx version >/dev/null 2>&1; then
    docker buildx build --load "${args[@]}" .
elif [[ -n "$WHEELS" ]]; then
    die "--wheels with docker needs buildx (--build-context): install docker-buildx-plugin, or --engine podman"
else
    # No buildx: Docker's legacy builder, which builds this Dockerfile too (it uses no
    # BuildKit-only syntax); Docker >= 23 would otherwise refuse for want of buildx.
    DOCKER_BUILDKIT=0 docker build "${args[@]}" .
fi

if ((PUSH)); then
    echo "==> push $IMAGE:$TAG"
    "$ENGINE" push "$IMAGE:$TAG"
fi
echo "==> done: $IMAGE:$TAG"
