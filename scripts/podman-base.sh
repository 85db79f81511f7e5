#!/usr/bin/env bash
# Prepare podman and a local Python base image, for building and testing the image on a
# machine that reaches Debian's mirror but no image registry.
#
#   scripts/podman-base.sh [--install] [IMAGE]     (default IMAGE: local/debian-python:bookworm)
#
#   --install  apt-get install podman and what it needs first (CI does; needs root)
#
# 1. podman's engine settings (/etc/containers/containers.conf.d/syncjob.conf): runc as
#    the runtime and explicit rlimits; crun fails on some hosts' cgroups and on the
#    default rlimits.
# 2. The base IMAGE, unless podman already has it (then this step takes no time): a
#    Debian bookworm root made by debootstrap (python3, venv, pip, CA certificates) from
#    the mirror apt already uses, imported with `podman import`. It stands in for
#    python:3.11-slim-bookworm: `podman build --build-arg BASE_IMAGE=IMAGE .`
#
# The base is Debian's python 3.11, so pip installs into /usr/local as in python:slim
# (Debian's EXTERNALLY-MANAGED marker is removed for that).
set -euo pipefail

IMAGE="local/debian-python:bookworm"
INSTALL=0
for arg in "$@"; do
    case "$arg" in
        --install) INSTALL=1 ;;
        -h | --help)
            sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        -*)
            echo "podman-base.sh: unknown option: $arg (see --help)" >&2
            exit 2
            ;;
        *) IMAGE="$arg" ;;
    esac
done

say() { echo "podman-base.sh: $*" >&2; }

if ((INSTALL)); then
    say "apt-get install podman buildah runc debootstrap uidmap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        podman buildah runc debootstrap uidmap fuse-overlayfs slirp4netns \
        containernetworking-plugins iptables debian-archive-keyring >/dev/null
fi
command -v podman >/dev/null || {
    say "podman is missing: apt-get install podman buildah runc debootstrap uidmap (or --install)"
    exit 1
}

# 1. Engine settings, in a drop-in so the machine's own containers.conf stays untouched.
conf=/etc/containers/containers.conf.d/syncjob.conf
if [[ ! -f "$conf" ]]; then
    mkdir -p "$(dirname "$conf")"
    cat >"$conf" <<'CONF'
# Written by syncjob's scripts/podman-base.sh: runc, since crun fails on this host's
# cgroups and on the default rlimits.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
CONF
fi

# 2. The base image, built once per machine.
if podman image exists "$IMAGE"; then
    say "$IMAGE is there: nothing to do"
    exit 0
fi
command -v debootstrap >/dev/null || {
    say "debootstrap is missing: apt-get install debootstrap (or --install)"
    exit 1
}

# The Debian mirror apt is configured with (deb822 .sources or one-line sources.list).
mirror() {
    local file
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$file" ]] || continue
        awk '/^URIs:/ {for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) {print $i; exit}}' \
            "$file"
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$file" ]] || continue
        awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) {print $i; exit}}' \
            "$file"
    done
}
MIRROR="$(mirror | head -n 1)"
[[ -n "$MIRROR" ]] || {
    say "no Debian mirror found in /etc/apt/sources.list{,.d/}"
    exit 1
}

root="$(mktemp -d /var/tmp/syncjob-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
say "debootstrap bookworm from $MIRROR (a few minutes)"
start=$SECONDS
debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
    bookworm "$root" "$MIRROR" >"$root.log" 2>&1 || {
    tail -n 20 "$root.log" >&2
    rm -f "$root.log"
    say "debootstrap failed"
    exit 1
}
rm -f "$root.log"
rm -f "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED
# What python:slim leaves out as well: apt's lists and caches.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$IMAGE" >/dev/null
say "$IMAGE imported ($((SECONDS - start))s)"
