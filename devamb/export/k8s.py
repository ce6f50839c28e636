"""Kubernetes objects: a ConfigMap with the bootstrap, and a Deployment with Envoy as the
ambassador container (a Deployment of its own, or the app's Deployment given as a file).

Secrets stay in the cluster: each variable Envoy reads (`%ENVIRONMENT(VAR)%`) is filled from
the key VAR of a Secret the user creates; no value is ever written here."""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devamb.export.bootstrap import PROMETHEUS_PATH, EnvoyExport, Options
from devamb.export.context import Config
from devamb.export.defaults import ENVOY_IMAGE
from devamb.export.dump import dump_all
from devamb.export.load import ExportError

CONTAINER = "devamb-ambassador"
CONFIG_DIR = "/etc/devamb"
ENVOY_UID = 101  # the `envoy` user of the official image


@dataclass(frozen=True)
class K8sOptions:
    namespace: str | None = None
    image: str = ENVOY_IMAGE
    app_deployment: Path | None = None


def k8s_name(text: str) -> str:
    """A DNS-1123 label: lowercase letters, digits and '-'."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:40] or "devamb"


def secret_name(profile_name: str) -> str:
    return f"{k8s_name(profile_name)}-devamb-secrets"


def _meta(name: str, namespace: str | None, base: str) -> Config:
    meta: Config = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {"app.kubernetes.io/name": base, "app.kubernetes.io/managed-by": "devamb"}
    return meta


def config_map(export: EnvoyExport, name: str, base: str, namespace: str | None) -> Config:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name, namespace, base),
            "data": {"envoy.yaml": export.text}}


def ambassador(export: EnvoyExport, options: Options, k8s: K8sOptions, secret: str) -> Config:
    probe = {"httpGet": {"path": "/ready", "port": "metrics"}}  # the admin itself is loopback
    container: Config = {
        "name": CONTAINER,
        "image": k8s.image,
        "args": ["envoy", "-c", f"{CONFIG_DIR}/envoy.yaml", "--disable-hot-restart",
                 "--log-level", "info"],
        "ports": [{"name": "metrics", "containerPort": options.metrics_port}],
    }
    if export.env_vars:
        container["env"] = [
            {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": var}}}
            for var in export.env_vars
        ]
    container.update({
        "readinessProbe": {**probe, "periodSeconds": 5},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 6},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                      "limits": {"memory": "256Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": ENVOY_UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "devamb-envoy", "mountPath": CONFIG_DIR, "readOnly": True},
                         {"name": "devamb-tmp", "mountPath": "/tmp"}],
    })
    return container


def _volumes(config_name: str) -> list[Config]:
    return [{"name": "devamb-envoy", "configMap": {"name": config_name}},
            {"name": "devamb-tmp", "emptyDir": {}}]


def _annotations(export: EnvoyExport, options: Options) -> Config:
    digest = hashlib.sha256(export.text.encode()).hexdigest()[:16]
    return {"devamb.dev/envoy-config": digest,  # a new bootstrap rolls the pods
            "prometheus.io/scrape": "true", "prometheus.io/port": str(options.metrics_port),
            "prometheus.io/path": PROMETHEUS_PATH}


def read_app_deployment(path: Path) -> Config:
    """The app's Deployment; ExportError naming the file when it is not one we can extend."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except OSError as exc:
        raise ExportError(f"{path}: cannot read the app Deployment: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: not YAML: {exc}".splitlines()[0]) from None
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise ExportError(f"{path}: expected one Deployment object, found "
                          f"{len(docs)} YAML documents" if len(docs) != 1 else
                          f"{path}: expected a Deployment object (a mapping)")
    doc = docs[0]
    if doc.get("kind") != "Deployment" or doc.get("apiVersion") != "apps/v1":
        raise ExportError(f"{path}: not a Deployment (kind: {doc.get('kind')!r}, apiVersion: "
                          f"{doc.get('apiVersion')!r}; expected Deployment, apps/v1)")
    pod = _at(doc, "spec", "template", "spec")
    containers = pod.get("containers") if isinstance(pod, dict) else None
    if not isinstance(containers, list) or not containers:
        raise ExportError(f"{path}: spec.template.spec.containers: the Deployment has no "
                          "containers")
    for i, container in enumerate(containers):
        if not isinstance(container, dict) or not isinstance(container.get("name"), str):
            raise ExportError(f"{path}: spec.template.spec.containers[{i}] has no name "
                              f"(each container needs one)")
        if container["name"] == CONTAINER:
            raise ExportError(f"{path}: already has a {CONTAINER} container (export into the "
                              f"app's own Deployment, not into an export)")
    return doc


def _at(doc: Any, *keys: str) -> Any:
    for key in keys:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def k8s_objects(export: EnvoyExport, profile_name: str, options: Options,
                k8s: K8sOptions) -> list[Config]:
    base = k8s_name(profile_name)
    config_name = f"{base}-envoy"
    secret = secret_name(profile_name)
    container = ambassador(export, options, k8s, secret)
    if k8s.app_deployment is None:
        labels = {"app.kubernetes.io/name": base}
        deployment: Config = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _meta(base, k8s.namespace, base),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels, "annotations": _annotations(export, options)},
                    "spec": {"containers": [container], "volumes": _volumes(config_name)},
                },
            },
        }
    else:
        deployment = copy.deepcopy(read_app_deployment(k8s.app_deployment))
        if k8s.namespace:
            deployment.setdefault("metadata", {})["namespace"] = k8s.namespace
        template = deployment["spec"]["template"]
        meta = template.setdefault("metadata", {})
        meta["annotations"] = {**(meta.get("annotations") or {}),
                               **_annotations(export, options)}
        pod = template["spec"]
        pod["containers"] = [*pod["containers"], container]
        taken = {v.get("name") for v in pod.get("volumes") or [] if isinstance(v, dict)}
        pod["volumes"] = [*(pod.get("volumes") or []),
                          *(v for v in _volumes(config_name) if v["name"] not in taken)]
    namespace = k8s.namespace or _at(deployment, "metadata", "namespace")
    return [config_map(export, config_name, base, namespace), deployment]


def k8s_text(objects: list[Config], export: EnvoyExport, profile_name: str) -> str:
    head = "# Kubernetes objects exported by devamb: the Envoy ambassador sidecar\n"
    if export.env_vars:
        keys = " ".join(f"--from-literal={v}=..." for v in export.env_vars)
        head += (f"# Envoy reads {', '.join(export.env_vars)} from the Secret "
                 f"{secret_name(profile_name)}; create it first:\n"
                 f"#   kubectl create secret generic {secret_name(profile_name)} {keys}\n")
    return head + dump_all(objects)
