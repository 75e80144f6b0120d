"""Kubernetes manifests (deploy/k8s/): valid for a pinned Kubernetes, offline, and in step with the rest.

No cluster here. ``kubernetes-validate`` checks every object against the JSON schemas it bundles
for :data:`KUBERNETES_VERSION` (and the newest it bundles), strictly: an unknown or misspelled
field is an error, not silently dropped as ``kubectl apply`` would. :func:`agreement_problems`
then checks what no schema knows: that the probes, ports, command, user, limits and names agree
with the app, deploy/Dockerfile, deploy/compose.yaml and each other; it is shown to fail on
altered copies of the manifests.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shlex
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from superkart_lib.contract import integrity
from superkart_lib.production import server
from tests.conftest import ROOT, dockerfile_lines

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
#: The Kubernetes version the manifests are written for (the oldest they are checked against).
KUBERNETES_VERSION = "1.31"
#: The newest version kubernetes-validate 1.37.0 bundles: no API the manifests use is gone there.
NEWEST_KUBERNETES = "1.37"
#: A Secret template that must not be applied with the rest (kustomization.yaml leaves it out).
SECRET_TEMPLATE = "secret.example.yaml"
NAME = "superkart-api"


# --- reading the files -------------------------------------------------------------------------


def documents(directory: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file name, object) for every YAML document of every ``*.yaml`` file in ``directory``."""
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path.name, document


def kubernetes_objects(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The Kubernetes objects by (kind, name): kustomize's own file is not one."""
    return {
        (document["kind"], document["metadata"]["name"]): document
        for _, document in documents(directory)
        if document.get("kind") != "Kustomization"
    }


def final_stage(lines: list[str]) -> list[str]:
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    return lines[last_from:]


def instruction(lines: list[str], keyword: str) -> str | None:
    """The arguments of the last ``keyword`` instruction, or None."""
    found = [line.split(None, 1)[1] for line in lines if line.split(None, 1)[0].upper() == keyword]
    return found[-1] if found else None


def option(words: list[str], *names: str) -> str | None:
    """The value after the first of ``names`` in ``words`` (``--uid 10001`` or ``--uid=10001``)."""
    for i, word in enumerate(words):
        for name in names:
            if word == name and i + 1 < len(words):
                return words[i + 1]
            if word.startswith(name + "="):
                return word.split("=", 1)[1]
    return None


def dockerfile_ids(lines: list[str]) -> tuple[int | None, int | None]:
    """The uid of the final stage's ``useradd``, and the gid when the Dockerfile pins one."""
    uid = gid = None
    for line in lines:
        if not line.upper().startswith("RUN "):
            continue
        for command in line[4:].split("&&"):
            words = shlex.split(command)
            if "useradd" in words:
                uid = option(words, "--uid", "-u")
                gid = option(words, "--gid", "-g") or gid
            if "groupadd" in words:
                gid = option(words, "--gid", "-g") or gid
    return _number(uid), _number(gid)


def _number(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def memory_bytes(quantity: str, binary_letters: bool = False) -> int:
    """Bytes of a Kubernetes memory quantity (``512Mi``, ``1G``); compose's ``512M`` is MiB: ``binary_letters``."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?|[kmgtb]?|)", str(quantity).strip())
    assert match is not None, f"not a memory quantity: {quantity!r}"
    number, unit = match.groups()
    powers = {"k": 1, "m": 2, "g": 3, "t": 4}
    if not unit or unit == "b":
        return int(float(number))
    base = 1024 if unit.endswith("i") or binary_letters else 1000
    return int(float(number) * base ** powers[unit[0].lower()])


def millicores(quantity: str) -> int:
    """Thousandths of a CPU: ``500m``, ``1``, ``"1.5"``."""
    text = str(quantity).strip()
    return int(text[:-1]) if text.endswith("m") else int(float(text) * 1000)


@functools.cache
def app_routes() -> dict[str, set[str]]:
    """Path -> HTTP methods of the API's routes, read from the app without loading any model."""
    from superkart_lib.production.app import create_app

    app = create_app(Path("/nonexistent-package"))  # the model loads only when the app starts
    routes: dict[str, set[str]] = {}
    for route in app.routes:
        methods = getattr(route, "methods", None)
        if methods:
            routes.setdefault(route.path, set()).update(methods)  # type: ignore[attr-defined]
    return routes


# --- the agreement check ------------------------------------------------------------------------


def agreement_problems(k8s_dir: Path, deploy_dir: Path = DEPLOY) -> list[str]:
    """What the manifests in ``k8s_dir`` say that the app or the other deploy files contradict.

    Parameters
    ----------
    k8s_dir : Path
        A directory of manifests shaped like deploy/k8s/.
    deploy_dir : Path
        Where ``Dockerfile`` and ``compose.yaml`` are.

    Returns
    -------
    list of str
        One line per disagreement; empty when everything agrees.
    """
    problems: list[str] = []
    objects = kubernetes_objects(k8s_dir)
    deployment = objects.get(("Deployment", NAME))
    if deployment is None:
        return [f"no Deployment {NAME!r}"]
    template = deployment["spec"]["template"]
    labels: dict[str, str] = template["metadata"].get("labels", {})
    pod = template["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    api = containers.get("api")
    if api is None:
        return ["the Deployment has no container named 'api'"]
    ports = {p.get("name"): p["containerPort"] for p in api.get("ports", [])}
    docker = dockerfile_lines(deploy_dir / "Dockerfile")
    stage = final_stage(docker)

    def subset(selector: dict[str, str] | None, what: str) -> None:
        if not selector or any(labels.get(key) != value for key, value in selector.items()):
            problems.append(f"{what} {selector} does not select the Deployment's pod labels {labels}")

    # The probes ask the app for routes it has.
    routes = app_routes()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = api.get(probe, {}).get("httpGet")
        if get is None:
            problems.append(f"{probe}: missing, or not an httpGet probe")
            continue
        if "GET" not in routes.get(get["path"], set()):
            problems.append(f"{probe}: path {get['path']!r} is not a GET route of the app")
        if get["port"] not in ports and get["port"] not in ports.values():
            problems.append(f"{probe}: port {get['port']!r} is not a port of the api container")

    # The command, its port, the container port and EXPOSE.
    cmd_text = instruction(stage, "CMD") or "[]"
    cmd = json.loads(cmd_text) if cmd_text.startswith("[") else shlex.split(cmd_text)
    command = api.get("command", []) + api.get("args", [])
    if command != cmd:
        problems.append(f"api command {command} is not the Dockerfile's CMD {cmd}")
    port = option([str(word) for word in command], "--port")
    expose = instruction(stage, "EXPOSE")
    exposed = {int(word.split("/")[0]) for word in (expose or "").split()}
    if "http" not in ports:
        problems.append("the api container has no port named 'http'")
    elif str(ports["http"]) != port or ports["http"] not in exposed:
        problems.append(f"container port http={ports['http']}, command --port {port}, Dockerfile EXPOSE {expose}")

    # The user the Dockerfile creates.
    uid, gid = dockerfile_ids(stage)
    context = {**pod.get("securityContext", {}), **api.get("securityContext", {})}
    if context.get("runAsUser") != uid:
        problems.append(f"runAsUser {context.get('runAsUser')} is not the Dockerfile's useradd uid {uid}")
    # Without a pinned gid in the Dockerfile (useradd picks one), the pod uses the uid's number.
    if context.get("runAsGroup") != (gid if gid is not None else uid):
        problems.append(f"runAsGroup {context.get('runAsGroup')} is not the Dockerfile's gid {gid} (or uid {uid})")

    # The Service, HPA and PDB reach this Deployment and its pods.
    subset(deployment["spec"]["selector"].get("matchLabels"), "the Deployment's selector")
    service = objects.get(("Service", NAME))
    if service is None:
        problems.append(f"no Service {NAME!r}")
    else:
        subset(service["spec"].get("selector"), "the Service's selector")
        for service_port in service["spec"]["ports"]:
            target = service_port.get("targetPort")
            if not isinstance(target, str) or target not in ports:
                problems.append(f"Service port {service_port.get('port')} targets {target!r}, not a named api port")
    hpa = objects.get(("HorizontalPodAutoscaler", NAME), {})
    target_ref = hpa.get("spec", {}).get("scaleTargetRef", {})
    if (target_ref.get("apiVersion"), target_ref.get("kind"), target_ref.get("name")) != (
        "apps/v1",
        "Deployment",
        deployment["metadata"]["name"],
    ):
        problems.append(f"the HorizontalPodAutoscaler targets {target_ref}, not the Deployment")
    pdb = objects.get(("PodDisruptionBudget", NAME))
    if pdb is None:
        problems.append(f"no PodDisruptionBudget {NAME!r}")
    else:
        subset(pdb["spec"]["selector"].get("matchLabels"), "the PodDisruptionBudget's selector")
        if pdb["spec"].get("minAvailable", 0) >= hpa.get("spec", {}).get("minReplicas", 1):
            problems.append(
                "the PodDisruptionBudget's minAvailable is not below the HPA's minReplicas: drains would block"
            )

    # Stopping: the pod is killed only after the preStop sleep and the server's own grace period.
    pre_stop = api.get("lifecycle", {}).get("preStop", {})
    sleep = pre_stop.get("sleep", {}).get("seconds")
    if sleep is None and pre_stop.get("exec", {}).get("command", [""])[0] == "sleep":
        sleep = float(pre_stop["exec"]["command"][1])
    if sleep is None:
        problems.append("the api container has no preStop sleep")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if not grace > (sleep or 0) + server.DRAIN_SECONDS + server.GRACE_PERIOD:
        problems.append(
            f"terminationGracePeriodSeconds {grace} is not above the preStop sleep {sleep} "
            f"+ the server's DRAIN_SECONDS {server.DRAIN_SECONDS} + GRACE_PERIOD {server.GRACE_PERIOD}"
        )

    # The limits are compose's, and the image is compose's.
    compose_api = yaml.safe_load((deploy_dir / "compose.yaml").read_text())["services"]["api"]
    compose_limits = compose_api["deploy"]["resources"]["limits"]
    limits = api.get("resources", {}).get("limits", {})
    if memory_bytes(limits.get("memory", "0")) != memory_bytes(compose_limits["memory"], binary_letters=True):
        problems.append(f"memory limit {limits.get('memory')} is not compose's {compose_limits['memory']}")
    if millicores(limits.get("cpu", "0")) != millicores(compose_limits["cpus"]):
        problems.append(f"cpu limit {limits.get('cpu')} is not compose's {compose_limits['cpus']}")
    if api.get("image") != compose_api["image"]:
        problems.append(f"api image {api.get('image')} is not compose's {compose_api['image']}")

    # The signing key comes from the Secret the template describes, under the name the app reads.
    keys = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in api.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    secret = yaml.safe_load((k8s_dir / SECRET_TEMPLATE).read_text())
    reference = keys.get(integrity.SIGNING_KEY_ENV)
    if reference is None:
        problems.append(f"{integrity.SIGNING_KEY_ENV} is not set from a Secret")
    elif reference["name"] != secret["metadata"]["name"] or reference["key"] not in secret.get("stringData", {}):
        problems.append(f"{integrity.SIGNING_KEY_ENV} reads {reference}, which {SECRET_TEMPLATE} does not define")

    problems += _model_delivery_problems(k8s_dir, pod, api, command)
    return problems


def _model_delivery_problems(k8s_dir: Path, pod: dict[str, Any], api: dict[str, Any], command: list[str]) -> list[str]:
    """The package the command serves is a read-only emptyDir that an init container fills from the model image."""
    problems = []
    model_path = option([str(word) for word in command], "--model")
    mounts = {m["mountPath"]: m for m in api.get("volumeMounts", [])}
    mount = mounts.get(model_path)
    if mount is None:
        return [f"nothing is mounted at the command's --model {model_path}"]
    if mount.get("readOnly") is not True:
        problems.append(f"{model_path} is not mounted read-only")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    if "emptyDir" not in volumes.get(mount["name"], {}):
        problems.append(f"volume {mount['name']!r} at {model_path} is not an emptyDir")
    model_copy = [
        line.split()[-1] for line in dockerfile_lines(k8s_dir / "Dockerfile.model") if line.startswith("COPY")
    ]
    fillers = [
        c
        for c in pod.get("initContainers", [])
        if any(m["name"] == mount["name"] for m in c.get("volumeMounts", []))
        and str(c.get("image", "")).startswith("superkart-model:")
    ]
    if not fillers:
        problems.append(f"no init container of a superkart-model image fills volume {mount['name']!r}")
    for filler in fillers:
        sources = {word.rstrip("/.") for word in filler.get("command", [])[1:-1]}
        if not model_copy or model_copy[-1].rstrip("/") not in sources:
            problems.append(f"init container {filler['name']} copies {sources}, not Dockerfile.model's {model_copy}")
    return problems


# --- the tests --------------------------------------------------------------------------------


def test_manifests_agree_with_the_app_and_the_other_deploy_files():
    assert agreement_problems(K8S) == []


MUTATIONS = {
    "a probe path": ("path: /healthz", "path: /health", "livenessProbe: path '/health'"),
    "the container port": ("containerPort: 8000", "containerPort: 8080", "container port http=8080"),
    "the user": ("runAsUser: 10001", "runAsUser: 1000", "runAsUser 1000"),
    "the grace period": ("terminationGracePeriodSeconds: 22", "terminationGracePeriodSeconds: 16", "above the preStop"),
    "the memory limit": ("memory: 512Mi", "memory: 1Gi", "memory limit 1Gi"),
    "the signing key variable": (
        "- name: SUPERKART_SIGNING_KEY",
        "- name: SIGNING_KEY",
        "SUPERKART_SIGNING_KEY is not",
    ),
    "the model mount": ("mountPath: /model\n", "mountPath: /models\n", "nothing is mounted at the command's --model"),
}


@pytest.mark.parametrize("change", MUTATIONS, ids=list(MUTATIONS))
def test_agreement_check_reports_a_changed_value(change, tmp_path):
    before, after, expected = MUTATIONS[change]
    copy_dir = tmp_path / "k8s"
    shutil.copytree(K8S, copy_dir)
    deployment = copy_dir / "deployment.yaml"
    text = deployment.read_text()
    assert text.count(before) == 1, before
    deployment.write_text(text.replace(before, after))
    problems = agreement_problems(copy_dir)
    assert any(expected in problem for problem in problems), problems


def test_agreement_check_reports_a_service_aimed_at_no_port(tmp_path):
    copy_dir = tmp_path / "k8s"
    shutil.copytree(K8S, copy_dir)
    service = copy_dir / "service.yaml"
    service.write_text(service.read_text().replace("targetPort: http", "targetPort: web"))
    assert any("targets 'web'" in problem for problem in agreement_problems(copy_dir))


@pytest.mark.parametrize("version", [KUBERNETES_VERSION, NEWEST_KUBERNETES])
def test_every_manifest_validates_strictly(version):
    checked = []
    for name, document in documents(K8S):
        if document.get("kind") == "Kustomization":  # kustomize's file: checked below, no schema
            continue
        # Raises on any error, an unknown field included, and on a kind/apiVersion it has no schema for.
        assert kubernetes_validate.validate(document, version, strict=True) == version, name
        checked.append(document["kind"])
    kinds = {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Secret"}
    assert sorted(checked) == sorted(kinds)


def test_strict_validation_refuses_a_misspelled_field():
    (deployment,) = [d for _, d in documents(K8S) if d["kind"] == "Deployment"]
    broken = copy.deepcopy(deployment)
    api = broken["spec"]["template"]["spec"]["containers"][0]
    api["readinesProbe"] = api.pop("readinessProbe")  # kubectl apply would drop it without a word
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_validation_needs_no_network(monkeypatch):
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("validation tried to use the network")

    for name in ("create_connection", "getaddrinfo"):
        monkeypatch.setattr(socket, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    for _, document in documents(K8S):
        if document.get("kind") != "Kustomization":
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_kustomization_applies_every_manifest_but_the_secret_template():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {name for name, document in documents(K8S) if document.get("kind") != "Kustomization"}
    assert set(kustomization["resources"]) == manifests - {SECRET_TEMPLATE}
    assert len(kustomization["resources"]) == len(set(kustomization["resources"]))
    images = {image["name"] for image in kustomization.get("images", [])}
    pod = kubernetes_objects(K8S)[("Deployment", NAME)]["spec"]["template"]["spec"]
    used = {c["image"].split(":")[0] for c in pod["containers"] + pod.get("initContainers", [])}
    assert images == used


def test_secret_template_holds_no_real_key():
    secret = yaml.safe_load((K8S / SECRET_TEMPLATE).read_text())
    assert "data" not in secret  # base64 would hide what it is
    assert all(value.startswith("PLACEHOLDER") for value in secret["stringData"].values())


def test_pods_run_unprivileged_on_a_read_only_root():
    pod = kubernetes_objects(K8S)[("Deployment", NAME)]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"] + pod["initContainers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["capabilities"]["drop"] == ["ALL"], container["name"]
        assert "privileged" not in context and "add" not in context["capabilities"]
        assert {"requests", "limits"} <= set(container["resources"]), container["name"]
    # The server writes nowhere but /tmp: a small emptyDir, the only writable mount of the api.
    (api,) = pod["containers"]
    writable = [m["mountPath"] for m in api["volumeMounts"] if not m.get("readOnly")]
    assert writable == ["/tmp"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (tmp,) = [m for m in api["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "sizeLimit" in volumes[tmp["name"]]["emptyDir"]
