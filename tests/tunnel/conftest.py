"""A real sshd per test module as the bastion, and the profile text that points at it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.sshd import Sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    server = Sshd(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


@pytest.fixture
def own_sshd(tmp_path: Path) -> Iterator[Sshd]:
    """An sshd of the test's own, for tests that kill, restart or freeze it."""
    server = Sshd(tmp_path / "sshd").start()
    yield server
    server.stop()  # SIGKILL reaches stopped sessions too


async def both_go_through(
    client: aiohttp.ClientSession, base: str, tcp: tuple[str, int]
) -> None:
    """An HTTP exchange and a TCP round trip through the bastion succeed (after it came back:
    each waits for the reconnect)."""
    async with client.get(f"{base}/hello") as response:
        assert response.status == 200, await response.text()
    reader, writer = await asyncio.open_connection(*tcp)
    writer.write(b"again")
    assert await reader.readexactly(5) == b"again"
    writer.close()


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
