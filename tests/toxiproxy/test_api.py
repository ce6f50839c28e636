"""The Toxiproxy API by hand-written requests: Toxiproxy's JSON shapes, status codes and error
bodies (as its Go source writes them), the proxies as services of the engine, the guards."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from devamb.engine.core import Engine
from devamb.toxiproxy.api import ToxiproxyServer
from tests.conftest import EngineFactory

PROFILE = """
version: 1
services:
  cache:
    listen: 0
    protocol: tcp
    targets:
      local: tcp://127.0.0.1:9
"""


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base

    async def call(self, method: str, path: str, body: Any = None, *, raw: str | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        async with self.session.request(method, self.base + path, data=data,
                                        headers=headers) as response:
            text = await response.text()
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = None
            return response.status, response.headers.get("Content-Type", ""), parsed


@pytest.fixture
async def engine(make_engine: EngineFactory) -> Engine:
    return await make_engine(PROFILE)


@pytest.fixture
async def api(engine: Engine) -> AsyncIterator[Client]:
    server = ToxiproxyServer(engine, "127.0.0.1", 0)
    await server.start()
    async with aiohttp.ClientSession() as session:
        yield Client(session, f"http://{server.address}")
    await server.stop()


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    yield f"{host}:{port}"
    server.close()


async def _proxy(api: Client, echo: str, name: str = "redis") -> dict[str, Any]:
    status, _, proxy = await api.call("POST", "/proxies",
                                      {"name": name, "upstream": echo, "listen": "127.0.0.1:0"})
    assert status == 201
    return proxy


async def test_proxy_shapes(api: Client, echo: str) -> None:
    proxy = await _proxy(api, echo)
    assert list(proxy) == ["name", "listen", "upstream", "enabled", "toxics"]
    assert proxy["name"] == "redis" and proxy["upstream"] == echo and proxy["enabled"] is True
    assert proxy["toxics"] == [] and proxy["listen"].startswith("127.0.0.1:")
    assert await api.call("GET", "/proxies/redis") == (200, "application/json", proxy)
    assert (await api.call("GET", "/proxies"))[2] == {"redis": proxy}
    status, _, toxic = await api.call("POST", "/proxies/redis/toxics",
                                      {"type": "latency", "attributes": {"latency": 100}})
    assert status == 200  # Toxiproxy answers 200 here, not 201
    assert toxic == {"attributes": {"latency": 100, "jitter": 0}, "name": "latency_downstream",
                     "type": "latency", "stream": "downstream", "toxicity": 1.0}
    await api.call("POST", "/proxies/redis/toxics",
                   {"name": "cut", "type": "limit_data", "stream": "upstream",
                    "toxicity": 0.5, "attributes": {"bytes": 10}})
    status, _, toxics = await api.call("GET", "/proxies/redis/toxics")
    assert [t["name"] for t in toxics] == ["cut", "latency_downstream"]  # upstream ones first
    status, _, updated = await api.call("POST", "/proxies/redis/toxics/cut",
                                        {"attributes": {"bytes": 20}})
    assert status == 200
    assert updated["attributes"] == {"bytes": 20} and updated["toxicity"] == 0.5
    assert (await api.call("GET", "/proxies/redis/toxics/cut"))[2] == updated
    assert (await api.call("DELETE", "/proxies/redis/toxics/cut"))[0] == 204
    assert (await api.call("DELETE", "/proxies/redis"))[0] == 204
    assert (await api.call("GET", "/proxies"))[2] == {}


async def test_error_bodies(api: Client, echo: str) -> None:
    def error(message: str, status: int) -> tuple[int, str, Any]:
        return status, "text/plain; charset=utf-8", {"error": message, "status": status}

    assert await api.call("GET", "/proxies/nope") == error("proxy not found", 404)
    assert await api.call("DELETE", "/proxies/nope") == error("proxy not found", 404)
    assert await api.call("GET", "/proxies/nope/toxics") == error("proxy not found", 404)
    assert await api.call("POST", "/proxies", {"upstream": echo}) == error(
        "missing required field: name", 400)
    assert await api.call("POST", "/proxies", {"name": "x"}) == error(
        "missing required field: upstream", 400)
    status, _, body = await api.call("POST", "/proxies", raw="{not json")
    assert status == 400 and body["error"].startswith("bad request body: ")
    await _proxy(api, echo)
    assert await api.call("POST", "/proxies", {"name": "redis", "upstream": echo}) == error(
        "proxy already exists", 409)
    assert await api.call("POST", "/proxies", {"name": "cache", "upstream": echo}) == error(
        "proxy already exists", 409)  # a service of the profile has the name
    assert await api.call("POST", "/proxies/redis/toxics", {"type": "nope"}) == error(
        "invalid toxic type", 400)
    assert await api.call("POST", "/proxies/redis/toxics",
                          {"type": "latency", "stream": "sideways"}) == error(
        "stream was invalid, can be either upstream or downstream", 400)
    status, _, body = await api.call("POST", "/proxies/redis/toxics",
                                     {"type": "latency", "attributes": {"latency": "slow"}})
    assert status == 400 and body["error"].startswith("bad request body: ")
    await api.call("POST", "/proxies/redis/toxics", {"type": "timeout"})
    assert await api.call("POST", "/proxies/redis/toxics", {"type": "timeout"}) == error(
        "toxic already exists", 409)
    assert await api.call("GET", "/proxies/redis/toxics/nope") == error("toxic not found", 404)
    assert await api.call("DELETE", "/proxies/redis/toxics/nope") == error(
        "toxic not found", 404)
    assert await api.call("POST", "/proxies/redis/toxics/nope", {}) == error(
        "toxic not found", 404)


async def test_populate_reset_version(api: Client, echo: str) -> None:
    status, _, body = await api.call("POST", "/populate", [
        {"name": "a", "upstream": echo, "listen": "127.0.0.1:0"},
        {"name": "b", "upstream": echo, "enabled": False},
    ])
    assert status == 201
    assert [(p["name"], p["enabled"]) for p in body["proxies"]] == [("a", True), ("b", False)]
    assert list(body) == ["proxies"]
    status, _, again = await api.call("POST", "/populate", [
        {"name": "a", "upstream": echo, "listen": body["proxies"][0]["listen"]}])
    assert again["proxies"][0] == body["proxies"][0]  # the same: kept as it is
    status, _, body = await api.call("POST", "/populate", [{"name": "c"}])
    assert (status, body) == (400, {"error": "missing required field: upstream at proxy 1",
                                    "status": 400})
    await api.call("POST", "/proxies/a/toxics", {"type": "bandwidth", "attributes": {"rate": 1}})
    assert (await api.call("POST", "/reset"))[0] == 204
    proxies = (await api.call("GET", "/proxies"))[2]
    assert {n: (p["enabled"], p["toxics"]) for n, p in proxies.items()} == {
        "a": (True, []), "b": (True, [])}
    status, kind, version = await api.call("GET", "/version")
    assert status == 200 and kind == "application/json;charset=utf-8" and "version" in version


async def test_proxies_are_services_of_the_engine(api: Client, echo: str,
                                                   engine: Engine) -> None:
    proxy = await _proxy(api, echo)
    await api.call("POST", "/proxies/redis/toxics", {"type": "latency", "name": "lag",
                                                     "toxicity": 0.25,
                                                     "attributes": {"latency": 50, "jitter": 5}})
    service = next(s for s in (await engine.status())["services"] if s["name"] == "redis")
    assert service["protocol"] == "tcp" and service["listening"] is True
    faults = (await engine.faults("redis"))["redis"]
    assert [(f["name"], f["kind"], f["probability"], f["direction"], f["params"]["delay"],
             f["params"]["jitter"]) for f in faults] == [
        ("lag", "latency", 0.25, "downstream", 0.05, 0.005)]
    host, port = proxy["listen"].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"hello")
    assert await reader.readexactly(5) == b"hello"
    writer.close()
    for _ in range(200):  # the connection is recorded once it ends
        if any(e["service"] == "redis" for e in await engine.exchanges()):
            break
        await asyncio.sleep(0.05)
    recorded = [e for e in await engine.exchanges() if e["service"] == "redis"]
    assert [(e["protocol"], e["bytes_in"], e["bytes_out"]) for e in recorded] == [("tcp", 5, 5)]
    await api.call("POST", "/proxies/redis", {"enabled": False})
    service = next(s for s in (await engine.status())["services"] if s["name"] == "redis")
    assert service["listening"] is False
    await api.call("DELETE", "/proxies/redis")
    assert "redis" not in engine.services
    assert await engine.reload()  # a reload of the profile file keeps proxies (none now)
    await _proxy(api, echo, "again")
    assert await engine.reload()
    assert "again" in engine.services


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Host": "evil.example:8474"},
    {"User-Agent": "Mozilla/5.0"},
])
async def test_browsers_and_other_hosts_are_refused(api: Client, headers: dict[str, str]) -> None:
    status, _, _ = await api.call("GET", "/proxies", headers=headers)
    assert status == 403


async def test_loopback_hosts_are_welcome(api: Client) -> None:
    for host in ("localhost:8474", "127.0.0.1", "[::1]:8474"):
        assert (await api.call("GET", "/proxies", headers={"Host": host}))[0] == 200


@pytest.mark.parametrize(("toxic", "fault"), [
    ({"type": "latency", "attributes": {"latency": 100, "jitter": 10}},
     {"kind": "latency", "direction": "downstream", "params": {"delay": 0.1, "jitter": 0.01}}),
    ({"type": "bandwidth", "stream": "upstream", "attributes": {"rate": 5}},
     {"kind": "bandwidth", "direction": "upstream", "params": {"rate": 5000}}),
    ({"type": "slicer", "attributes": {"average_size": 8, "size_variation": 2, "delay": 500}},
     {"kind": "slicer", "params": {"size": 8, "delay": 0.0005}}),
    ({"type": "limit_data", "attributes": {"bytes": 3}},
     {"kind": "limit_data", "params": {"bytes": 3}}),
    ({"type": "reset_peer", "stream": "upstream"},
     {"kind": "reset", "direction": "upstream", "params": {"after_bytes": 0}}),
    ({"type": "timeout", "attributes": {"timeout": 1500}},
     {"kind": "timeout", "params": {"timeout": 1.5}}),
    ({"type": "slow_close", "attributes": {"delay": 250}},
     {"kind": "slow_close", "params": {"delay": 0.25}}),
    ({"type": "noop"}, None),
    ({"type": "bandwidth", "attributes": {"rate": 0}}, None),  # no limit, as in Toxiproxy
])
async def test_each_toxic_becomes_its_fault(api: Client, echo: str, engine: Engine,
                                            toxic: dict[str, Any],
                                            fault: dict[str, Any] | None) -> None:
    await _proxy(api, echo)
    status, _, shown = await api.call("POST", "/proxies/redis/toxics", {**toxic, "name": "t"})
    assert status == 200 and shown["type"] == toxic["type"]
    faults = (await engine.faults("redis"))["redis"]
    if fault is None:
        assert faults == []
        return
    [made] = faults
    assert made["name"] == "t" and made["kind"] == fault["kind"]
    assert made.get("direction") == fault.get("direction", made.get("direction"))
    for key, value in fault["params"].items():
        assert made["params"][key] == value


async def test_limit_data_cuts_a_real_connection(api: Client, echo: str) -> None:
    proxy = await _proxy(api, echo)
    await api.call("POST", "/proxies/redis/toxics",
                   {"type": "limit_data", "attributes": {"bytes": 3}})
    host, port = proxy["listen"].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"hello")
    assert await reader.read() == b"hel"  # then the end
    writer.close()


async def test_a_profile_service_of_the_same_name_replaces_a_proxy(
    api: Client, echo: str, engine: Engine
) -> None:
    await _proxy(api, echo, "late")
    path = engine.profile.path
    path.write_text(path.read_text() + "  late:\n    listen: 0\n    protocol: tcp\n"
                    "    targets:\n      local: tcp://127.0.0.1:9\n")
    assert await engine.reload()
    assert engine.services["late"].target().name == "local"  # the file's service
    assert (await api.call("GET", "/proxies"))[2] == {}
    assert (await api.call("POST", "/proxies/late/toxics", {"type": "timeout"}))[0] == 404
    assert await engine.faults("late") == {"late": []}


async def test_update_rebinds_and_keeps_the_toxics(api: Client, echo: str,
                                                   engine: Engine) -> None:
    proxy = await _proxy(api, echo)
    await api.call("POST", "/proxies/redis/toxics", {"type": "latency", "name": "lag",
                                                     "attributes": {"latency": 1}})
    status, _, moved = await api.call("PATCH", "/proxies/redis", {"listen": "127.0.0.1:0"})
    assert status == 200
    assert moved["listen"] != proxy["listen"] and moved["toxics"] == proxy["toxics"] + [
        {"attributes": {"latency": 1, "jitter": 0}, "name": "lag", "type": "latency",
         "stream": "downstream", "toxicity": 1.0}]
    assert [f["name"] for f in (await engine.faults("redis"))["redis"]] == ["lag"]
    host, port = moved["listen"].rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"hi")
    assert await reader.readexactly(2) == b"hi"
    writer.close()
    status, _, same = await api.call("POST", "/proxies/redis", {"enabled": True})
    assert (status, same) == (200, moved)


async def test_listen_forms(api: Client, echo: str) -> None:
    for name, listen in (("empty", ""), ("local", "localhost:0")):
        status, _, proxy = await api.call("POST", "/proxies",
                                          {"name": name, "upstream": echo, "listen": listen})
        assert status == 201 and proxy["listen"].startswith("127.0.0.1:")
        assert not proxy["listen"].endswith(":0")


async def test_an_update_to_a_taken_port_keeps_the_proxy(api: Client, echo: str) -> None:
    proxy = await _proxy(api, echo)
    await api.call("POST", "/proxies/redis/toxics", {"type": "timeout", "name": "hole"})
    status, _, body = await api.call("POST", "/proxies/redis", {"listen": echo})  # taken
    assert status == 500 and "already in use" in body["error"]
    status, _, kept = await api.call("GET", "/proxies/redis")
    assert status == 200 and kept["listen"] == proxy["listen"]
    assert [t["name"] for t in kept["toxics"]] == ["hole"]
