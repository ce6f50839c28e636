"""Redis shards end to end: the real Envoy's redis_proxy, from an exported profile, spreads keys
over two real redis-servers, with the password read from Envoy's environment (AUTH checked
against it downstream, sent upstream)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from devamb.export.bootstrap import export_envoy
from devamb.export.load import load_for_export
from tests.export.envoy_run import RunningEnvoy
from tests.targets.shards.real_redis import RedisServer

PASSWORD = "pw-redis-e2e-5k7m"


class Resp:
    """A blocking RESP client: one command, one reply (enough for SET, GET, AUTH, DBSIZE)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")

    def __call__(self, *args: str) -> object:
        out = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        self.sock.sendall(out.encode())
        line = self.file.readline().rstrip(b"\r\n")
        kind, body = line[:1], line[1:].decode()
        if kind == b"$":
            size = int(body)
            return None if size < 0 else self.file.read(size + 2)[:-2].decode()
        if kind == b":":
            return int(body)
        return body if kind == b"+" else RuntimeError(body)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningEnvoy, list[int]]]:
    folder = tmp_path_factory.mktemp("envoy-redis")
    servers = [RedisServer(folder, None, "--requirepass", PASSWORD).start() for _ in range(2)]
    try:
        profile = folder / "devamb.yaml"
        profile.write_text(
            "version: 1\nservices:\n  cache:\n    listen: 6380\n    protocol: tcp\n"
            "    targets:\n      sharded:\n        key: redis\n        auth: ${REDIS_PASSWORD}\n"
            f"        shards: {{a: {servers[0].url}, b: {servers[1].url}}}\n")
        export = export_envoy(load_for_export(profile, environ={}))
        assert PASSWORD not in export.text and export.env_vars == ("REDIS_PASSWORD",)
        envoy = RunningEnvoy(export.text, folder, env={"REDIS_PASSWORD": PASSWORD})
        try:
            yield envoy, [s.port for s in servers]
        finally:
            envoy.stop()
    finally:
        for server in servers:
            server.kill()


def test_keys_spread_over_both_shards_through_redis_proxy(
        stack: tuple[RunningEnvoy, list[int]]) -> None:
    envoy, ports = stack
    client = Resp(envoy.ports["cache"])
    try:
        assert isinstance(client("GET", "k"), RuntimeError)  # AUTH first
        assert client("AUTH", PASSWORD) == "OK"
        for i in range(100):
            assert client("SET", f"key:{i}", f"value {i}") == "OK"
        assert [client("GET", f"key:{i}") for i in range(100)] == [
            f"value {i}" for i in range(100)]
    finally:
        client.close()
    sizes = []
    for port in ports:
        direct = Resp(port)
        try:
            assert direct("AUTH", PASSWORD) == "OK"
            sizes.append(direct("DBSIZE"))
        finally:
            direct.close()
    assert sum(n for n in sizes if isinstance(n, int)) == 100
    assert all(isinstance(n, int) and n > 10 for n in sizes), sizes  # both shards hold keys


def test_a_wrong_password_is_refused(stack: tuple[RunningEnvoy, list[int]]) -> None:
    client = Resp(stack[0].ports["cache"])
    try:
        reply = client("AUTH", "not-it")
        assert isinstance(reply, RuntimeError) and "invalid password" in str(reply)
    finally:
        client.close()

