"""Service tests: the Docker fixtures of tests/targets/docker (one engine, cleaned up)."""

from __future__ import annotations

from tests.targets.docker.conftest import docker_client, test_network  # noqa: F401
