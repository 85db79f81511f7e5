#!/usr/bin/env bash
# Build syncjob: wheel and sdist, the test suite, the container image; optionally push it.
# The original's scripts/build-config-syncer.sh, for this Python project.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/build.sh [-t TAG] [-i IMAGE] [--push] [--skip-tests]

Builds syncjob, from the repository's folder wherever it is called from:
  1. the wheel and sdist into dist/         (python -m build)
  2. the test suite                         (tox), unless --skip-tests
  3. the image IMAGE:TAG from ./Dockerfile  (docker build)
  4. pushes IMAGE:TAG                       with --push

Options:
  -t, --tag TAG      image tag (default: the package version, syncjob/__init__.py)
  -i, --image IMAGE  image name (default: $IMAGE, else ghcr.io/syncjob/syncjob;
                     replace it with your registry's)
      --push         push IMAGE:TAG after building it (docker login first)
      --skip-tests   do not run tox
  -h, --help         show this help

Where no Docker engine runs (`docker info` fails), step 3 is skipped with a message
and the script exits 0 after steps 1-2; with --push it exits 1, since the image asked
for cannot be pushed.

Examples:
  scripts/build.sh                        # dist/, tests, ghcr.io/syncjob/syncjob:<version>
  scripts/build.sh -t v1.0.0
  scripts/build.sh -t v1.0.0 --push
  scripts/build.sh --skip-tests
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
if ! "$PYTHON" -c "import build" 2>/dev/null; then
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

if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
    echo "==> image $IMAGE:$TAG NOT built: no Docker engine here (docker info fails)."
    echo "    dist/ holds the wheel and sdist; build the image where Docker runs:"
    echo "    docker build -t $IMAGE:$TAG ."
    if ((PUSH)); then
        echo "build.sh: --push asked for, but nothing was built or pushed" >&2
        exit 1
    fi
    exit 0
fi

echo "==> image $IMAGE:$TAG"
DOCKER_BUILDKIT=1 docker build \
    --build-arg "VERSION=$VERSION" \
    --tag "$IMAGE:$TAG" \
    .

if ((PUSH)); then
    echo "==> push $IMAGE:$TAG"
    docker push "$IMAGE:$TAG"
fi
echo "==> done: $IMAGE:$TAG"
