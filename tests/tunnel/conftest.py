"""A real sshd per test module as the bastion, and the profile text that points at it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sshd import Sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    server = Sshd(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


def known_hosts(folder: Path, *servers: Sshd) -> Path:
    path = folder / "known_hosts"
    path.write_text("".join(s.known_hosts_line() + "\n" for s in servers))
    return path


def bastion_yaml(server: Sshd, folder: Path, name: str = "jump", **more: object) -> str:
    """A `bastions:` entry for `server` (keys indented for the section), trusted in a
    known_hosts file of the test's own unless `known_hosts` is given."""
    keys = {
        "host": "127.0.0.1", "port": server.port, "user": server.user,
        "identity_file": str(server.client_key),
        "known_hosts": str(known_hosts(folder, server)), "keepalive": "2s", **more,
    }
    return f"  {name}: {json.dumps(keys)}\n"
