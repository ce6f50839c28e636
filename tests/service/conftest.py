"""Service tests: the Docker fixtures of tests/targets (one engine, containers cleaned up)."""

from __future__ import annotations

from tests.targets.conftest import docker_client, test_network  # noqa: F401
