"""The container image, built from this checkout and run the way Kubernetes runs it.

Every run is `--read-only --user 65532:65532` (the manifests' securityContext) and, where
the pass needs no peer, `--network none`. podman builds and runs it; the base is the local
image that scripts/podman-base.sh makes (no image registry is needed), and the wheels are
prepared on this host, so the build itself has no network either.

`tox -e image` runs this module; .ci/run prepares podman and the base first. Without podman
(or not as root) the tests skip and say how to install it; with SYNCJOB_REQUIRE_INTEGRATION=1
(CI) they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_alertagent import FakeAlertAgent
from tests.targets import PROMETHEUS_YML, Prometheus, http_request, require_binary

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = os.environ.get("SYNCJOB_BASE_IMAGE", "local/debian-python:bookworm")
IMAGE = "localhost/syncjob:image-test"
USER = "65532:65532"  # runAsUser and runAsGroup of every manifest
HOW = (
    "apt-get install podman buildah runc debootstrap uidmap, then run "
    "scripts/podman-base.sh as root (or: tox -e image after .ci/run's preparation)"
)

pytestmark = pytest.mark.integration


def _unavailable(message: str) -> None:
    if os.environ.get("SYNCJOB_REQUIRE_INTEGRATION") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _version() -> str:
    match = re.search(r'^__version__ = "(.+)"$', (ROOT / "syncjob/__init__.py").read_text(), re.M)
    assert match
    return match[1]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The image, built with no network from the local base and wheels made here."""
    if shutil.which("podman") is None:
        _unavailable(f"podman is not installed: {HOW}")
    if os.geteuid() != 0:
        _unavailable(f"the image tests run podman as root: {HOW}")
    if _podman("image", "exists", BASE_IMAGE).returncode != 0:
        _unavailable(f"no base image {BASE_IMAGE}: run scripts/podman-base.sh ({HOW})")
    # syncjob's dependencies and its build backend, from PyPI onto this host (same Python
    # minor and architecture as the base); syncjob itself is built inside the image.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wheels = tmp_path_factory.mktemp("wheels")
    fetched = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         "--wheel-dir", str(wheels), *project["build-system"]["requires"],
         *project["project"]["dependencies"]],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr
    built = _podman(
        "build", "--network", "none", "--quiet",
        "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
        "--build-arg", "PIP_NO_INDEX=1",
        "--build-context", f"wheels={wheels}",
        "--tag", IMAGE, str(ROOT),
        timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    yield IMAGE
    _podman("rmi", "--force", IMAGE)


def _run(
    image: str, *args: str, options: tuple[str, ...] = (), timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`podman run` as Kubernetes would: read-only root, UID and GID 65532, and no tmpfs
    podman would add on its own (/tmp, /var/tmp, /run: Kubernetes adds none)."""
    name = f"syncjob-image-test-{uuid.uuid4().hex[:12]}"
    try:
        return _podman(
            "run", "--rm", "--name", name, "--read-only", "--read-only-tmpfs=false",
            "--user", USER, *options, image, *args,
            timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        _podman("rm", "--force", name)  # the client is gone, the container is not
        raise


def test_version(image: str) -> None:
    run = _run(image, "--version", options=("--network", "none"))
    assert (run.returncode, run.stdout.strip()) == (0, f"syncjob {_version()}"), run.stderr


def test_demo_runs_with_a_tmpfs_on_tmp(image: str) -> None:
    run = _run(image, "demo", options=("--network", "none", "--tmpfs", "/tmp"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "written" in run.stdout
    assert "in sync" in run.stdout


def test_demo_without_a_writable_place_says_so_in_one_line(image: str) -> None:
    run = _run(image, "demo", options=("--network", "none"))
    assert run.returncode == 73, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("syncjob: error: no writable temporary directory"), line
    assert "--tmpfs /tmp" in line


# --- a real pass: Prometheus on this host, the config folder bind-mounted ---------------

SERVED = b"""\
global:
  scrape_interval: 15s
scrape_configs:
  - job_name: synced-by-the-image
    static_configs:
      - targets: ["127.0.0.1:9"]
"""
# promtool refuses it (one job name twice); syncjob's own checks let it through.
CHECKER_REFUSES = SERVED + SERVED[SERVED.index(b"  - job_name") :]


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """The folder a pod shares between syncjob and Prometheus, writable by 65532 only."""
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "prometheus.yml").write_text(PROMETHEUS_YML)
    uid, gid = (int(n) for n in USER.split(":"))
    for path in (folder, folder / "prometheus.yml"):
        os.chown(path, uid, gid)
    folder.chmod(0o755)
    return folder


@pytest.fixture
def prometheus_on_host(config_dir: Path, tmp_path: Path) -> Iterator[Prometheus]:
    """The real Prometheus reading the shared folder; its data lives elsewhere."""
    with Prometheus(config_dir / "prometheus.yml", workdir=tmp_path / "prom") as target:
        yield target


def _pass(
    image: str, agent: FakeAlertAgent, target: Prometheus, config_dir: Path
) -> tuple[subprocess.CompletedProcess[str], float, list[dict[str, object]]]:
    """One pass in a container kept until `podman diff` has looked at its root filesystem."""
    promtool = require_binary("promtool", "prometheus")
    name = f"syncjob-image-test-{uuid.uuid4().hex[:12]}"
    env = {
        "ALERTAGENT_ENDPOINT": agent.url,
        "CLUSTER_ID": "cluster-1",
        "CONFIG_TYPE": "prometheus",
        "CONFIG_PATH": "/etc/prometheus/prometheus.yml",
        "RELOAD_URL": target.reload_url,
        # The manifests' wiring: the target's own promtool, copied to /checker.
        "CHECK_COMMAND": "/checker/promtool check config {path}",
        "HTTP_TIMEOUT": "5s",
    }
    started = time.monotonic()
    try:  # the container goes, whatever happens: a hung pass is killed by `rm --force`
        run = _podman(
            "run", "--name", name, "--read-only", "--read-only-tmpfs=false", "--user", USER,
            "--network", "host",  # the peers are on this host's loopback
            "--volume", f"{config_dir}:/etc/prometheus",
            "--volume", f"{promtool}:/checker/promtool:ro",
            *(f"--env={k}={v}" for k, v in env.items()),
            image,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        diff = _podman("diff", name)
        assert diff.returncode == 0, diff.stderr
        # podman makes the mount points (and /etc, their parent) before the pass starts.
        mounts = {"/etc", "/etc/prometheus", "/checker", "/checker/promtool"}
        changed = [line for line in diff.stdout.splitlines() if line.split()[-1] not in mounts]
        assert not changed, f"the container's root changed: {changed}"
    finally:
        _podman("rm", "--force", name)
    records = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    return run, elapsed, records


def test_a_real_pass_writes_the_config_and_prometheus_runs_it(
    image: str, fake_agent: FakeAlertAgent, prometheus_on_host: Prometheus, config_dir: Path
) -> None:
    before = {p.name for p in config_dir.iterdir()}
    fake_agent.set_config(SERVED)
    since = time.time()

    first, _, records = _pass(image, fake_agent, prometheus_on_host, config_dir)
    assert first.returncode == 0, first.stdout + first.stderr
    assert records[-1]["outcome"] == "written", records
    config = config_dir / "prometheus.yml"
    assert config.read_bytes() == SERVED
    assert (config.stat().st_uid, config.stat().st_gid) == (65532, 65532)

    # Prometheus took it: its reload metrics, its runtime info and the config it serves.
    assert prometheus_on_host.reload_ok()
    assert prometheus_on_host.reload_timestamp() >= int(since)
    status, body = http_request("GET", f"{prometheus_on_host.url}/api/v1/status/runtimeinfo")
    assert status == 200
    assert json.loads(body)["data"]["reloadConfigSuccess"] is True
    status, body = http_request("GET", f"{prometheus_on_host.url}/api/v1/status/config")
    assert "synced-by-the-image" in json.loads(body)["data"]["yaml"]

    # Only the config's folder was written: the config and syncjob's own dot files.
    after = {p.name for p in config_dir.iterdir()}
    assert after - before, "nothing new beside the config"
    assert all(name.startswith(".prometheus.yml.") for name in after - before), after
    assert not [n for n in after if n.endswith(".tmp") or ".staged" in n], after
    for path in config_dir.iterdir():
        assert (path.stat().st_uid, path.stat().st_gid) == (65532, 65532), path

    # The no-change pass, timed inside (syncjob's own figure) and around the container.
    second, elapsed, records = _pass(image, fake_agent, prometheus_on_host, config_dir)
    assert second.returncode == 0, second.stdout + second.stderr
    assert records[-1]["outcome"] == "in sync", records
    assert {p.name for p in config_dir.iterdir()} == after
    print(
        f"\nno-change pass in the container: {records[-1]['duration_ms']} ms "
        f"(podman run, start to exit: {elapsed:.2f} s)"
    )


def test_the_targets_own_checker_refuses_in_the_image(
    image: str, fake_agent: FakeAlertAgent, prometheus_on_host: Prometheus, config_dir: Path
) -> None:
    fake_agent.set_config(CHECKER_REFUSES)
    run, _, records = _pass(image, fake_agent, prometheus_on_host, config_dir)
    assert run.returncode == 65, run.stdout + run.stderr
    assert "/checker/promtool refused the config" in records[-1]["msg"], records[-1]
    assert (config_dir / "prometheus.yml").read_text() == PROMETHEUS_YML
    assert prometheus_on_host.reload_ok()
