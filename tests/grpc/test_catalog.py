"""Which schema decodes a call: the profile's, else reflection asked once (a failure to reach
the upstream is asked again later), with real upstreams."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from devamb.grpc.catalog import Catalog
from devamb.grpc.framing import frame
from devamb.grpc.tap import GrpcTap
from devamb.proxy.h2upstream import H2Upstream
from tests.conftest import free_port
from tests.grpc.greeter import SERVICE, Greeter, Types, compile_set

HEADERS = [(b":path", f"/{SERVICE}/Say".encode()), (b"content-type", b"application/grpc")]


@pytest.fixture(scope="module")
def types(tmp_path_factory: pytest.TempPathFactory) -> Types:
    return Types(compile_set(tmp_path_factory.mktemp("set") / "greet.pb"))


async def _call(catalog: Catalog, upstream: H2Upstream, port: int, types: Types) -> dict[str, Any]:
    notes: dict[str, Any] = {}
    tap = GrpcTap.open(notes, HEADERS)
    assert tap is not None
    catalog.reflect(tap, ("127.0.0.1", port), upstream, f"127.0.0.1:{port}")
    tap.request_data(frame(types.Hello(name="ada").SerializeToString()))
    await Catalog.settle(tap)
    return notes["grpc"]


async def test_an_upstream_that_could_not_be_asked_is_asked_again_later(types: Types) -> None:
    port = free_port()
    upstream = H2Upstream("127.0.0.1", port, 2.0)
    catalog = Catalog(None, "test")
    try:
        down = await _call(catalog, upstream, port, types)  # nothing listens: raw
        assert down["schema"] == "raw"
        assert down["messages"][0]["raw"] == [{"field": 1, "type": "string", "value": "ada"}]
        with Greeter(types, reflection=True, port=port) as server:
            assert server.port == port
            again = await _call(catalog, upstream, port, types)  # not before RETRY_AFTER
            assert again["schema"] == "raw" and server.calls == []
            (retry_at,) = catalog._retry.values()
            assert retry_at > asyncio.get_running_loop().time() + 20
            catalog._retry = {k: 0.0 for k in catalog._retry}  # as if RETRY_AFTER had passed
            up = await _call(catalog, upstream, port, types)
            assert up["schema"] == "reflection"
            assert up["messages"][0]["json"] == {"name": "ada"}
            asked = [m for m in server.calls if "ServerReflection" in m]
            later = await _call(catalog, upstream, port, types)  # the answer is kept
            assert later["schema"] == "reflection"
            assert [m for m in server.calls if "ServerReflection" in m] == asked
    finally:
        catalog.forget()
        upstream.close()
        await asyncio.sleep(0)


async def test_the_profiles_schema_comes_first(types: Types, tmp_path: Any) -> None:
    from devamb.grpc.schema import Schema

    schema = Schema.from_set(compile_set(tmp_path / "s.pb"), "descriptor_set")
    catalog = Catalog(schema)
    notes: dict[str, Any] = {}
    tap = GrpcTap.open(notes, HEADERS)
    assert tap is not None and catalog.known(tap)
    tap.request_data(frame(types.Hello(name="x", times=1).SerializeToString()))
    tap.close()
    assert notes["grpc"]["schema"] == "descriptor_set"
    assert notes["grpc"]["messages"][0]["json"] == {"name": "x", "times": 1}
    other = GrpcTap.open({}, [(b":path", b"/other.Svc/M"), (b"content-type", b"application/grpc")])
    assert other is not None and not catalog.known(other)
