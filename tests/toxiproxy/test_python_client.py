"""A suite written against toxiproxy-python (the PyPI client), run unchanged against devamb's
Toxiproxy API: proxies created, toxics added and removed, and their effect on real connections
to a real upstream."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from toxiproxy import Toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from tests.toxiproxy.conftest import Api, EchoServer, connect, reset_by_peer, round_trip


@pytest.fixture
def toxiproxy(toxiproxy_api: Api) -> Iterator[Toxiproxy]:
    server = Toxiproxy()
    server.update_api_consumer(toxiproxy_api.host, toxiproxy_api.port)
    yield server
    server.destroy_all()


def test_running_and_version(toxiproxy: Toxiproxy) -> None:
    assert toxiproxy.running()
    assert b'"version"' in toxiproxy.version()


def test_create_proxy_relays_to_the_upstream(toxiproxy: Toxiproxy, echo: EchoServer) -> None:
    proxy = toxiproxy.create(upstream=echo.address, name="echo")
    assert proxy.enabled is True
    assert proxy.upstream == echo.address
    assert not proxy.listen.endswith(":0")  # the port it got
    assert round_trip(proxy.listen)[0] == b"ping"
    assert set(toxiproxy.proxies()) == {"echo"}  # the profile's own services are not proxies
    with pytest.raises(ProxyExists):
        toxiproxy.create(upstream=echo.address, name="echo")


def test_latency_toxic_delays_then_goes(toxiproxy: Toxiproxy, echo: EchoServer) -> None:
    proxy = toxiproxy.create(upstream=echo.address, name="slow")
    proxy.add_toxic(type="latency", attributes={"latency": 300, "jitter": 0})
    toxic = proxy.get_toxic("latency_downstream")
    assert toxic is not None
    assert (toxic.type, toxic.stream, toxic.toxicity) == ("latency", "downstream", 1.0)
    assert toxic.attributes == {"latency": 300, "jitter": 0}
    got, took = round_trip(proxy.listen)
    assert got == b"ping"
    assert took >= 0.29
    proxy.destroy_toxic("latency_downstream")
    assert proxy.toxics() == {}
    assert round_trip(proxy.listen)[0] == b"ping"


def test_upstream_latency_toxic(toxiproxy: Toxiproxy, echo: EchoServer) -> None:
    proxy = toxiproxy.create(upstream=echo.address, name="slow_up")
    proxy.add_toxic(name="lag", type="latency", stream="upstream",
                    attributes={"latency": 250})
    assert set(proxy.toxics()) == {"lag"}
    got, took = round_trip(proxy.listen)
    assert got == b"ping"
    assert took >= 0.24


def test_reset_peer_toxic_resets_connections(toxiproxy: Toxiproxy, echo: EchoServer) -> None:
    proxy = toxiproxy.create(upstream=echo.address, name="flaky")
    proxy.add_toxic(type="reset_peer", attributes={"timeout": 0})
    assert reset_by_peer(proxy.listen)
    proxy.destroy_toxic("reset_peer_downstream")
    assert not reset_by_peer(proxy.listen)


def test_disable_and_enable(toxiproxy: Toxiproxy, echo: EchoServer) -> None:
    proxy = toxiproxy.create(upstream=echo.address, name="switch")
    with proxy.down():
        assert toxiproxy.get_proxy("switch").enabled is False
        with pytest.raises(OSError):
            round_trip(proxy.listen)
    assert toxiproxy.get_proxy("switch").enabled is True
    assert round_trip(proxy.listen)[0] == b"ping"  # the same address again


def test_reset_enables_proxies_and_removes_toxics(toxiproxy: Toxiproxy,
                                                  echo: EchoServer) -> None:
    proxy = toxiproxy.create(upstream=echo.address, name="resettable")
    proxy.add_toxic(type="reset_peer")
    proxy.disable()
    assert toxiproxy.reset()
    again = toxiproxy.get_proxy("resettable")
    assert again.enabled is True
    assert again.toxics() == {}
    assert round_trip(proxy.listen)[0] == b"ping"


def test_populate(toxiproxy: Toxiproxy, echo: EchoServer) -> None:
    made = toxiproxy.populate([
        {"name": "one", "upstream": echo.address, "listen": "127.0.0.1:0"},
        {"name": "two", "upstream": echo.address, "listen": "127.0.0.1:0"},
    ])
    assert sorted(p.name for p in made) == ["one", "two"]
    for proxy in made:
        assert round_trip(proxy.listen)[0] == b"ping"


def test_errors(toxiproxy: Toxiproxy, echo: EchoServer) -> None:
    proxy = toxiproxy.create(upstream=echo.address, name="strict")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="no_such_toxic")
    proxy.add_toxic(type="latency", attributes={"latency": 10})
    with pytest.raises(ProxyExists):  # the client's name for every 409
        proxy.add_toxic(type="latency", attributes={"latency": 10})
    with pytest.raises(NotFound):
        proxy.destroy_toxic("no_such_toxic")
    proxy.destroy()
    with pytest.raises(NotFound):
        proxy.destroy()


def _echo(conn: socket.socket, data: bytes = b"ping") -> tuple[bytes, float]:
    start = time.monotonic()
    conn.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = conn.recv(65536)
        if not chunk:
            break
        got += chunk
    return got, time.monotonic() - start


def test_toxics_act_on_open_connections(toxiproxy: Toxiproxy, echo: EchoServer) -> None:
    proxy = toxiproxy.create(upstream=echo.address, name="pooled")
    with connect(proxy.listen) as conn:  # opened before any toxic, as a pool's would be
        assert _echo(conn)[0] == b"ping"
        proxy.add_toxic(type="latency", attributes={"latency": 300})
        got, took = _echo(conn)
        assert got == b"ping" and took >= 0.29
        proxy.destroy_toxic("latency_downstream")
        assert _echo(conn)[0] == b"ping"
        proxy.add_toxic(type="reset_peer")
        with pytest.raises(ConnectionResetError):
            _echo(conn)


def test_timeout_toxic_closes_open_connections(toxiproxy: Toxiproxy, echo: EchoServer) -> None:
    proxy = toxiproxy.create(upstream=echo.address, name="stuck")
    with connect(proxy.listen) as conn:
        assert _echo(conn)[0] == b"ping"
        proxy.add_toxic(type="timeout", attributes={"timeout": 200})
        conn.sendall(b"ping")
        assert conn.recv(65536) == b""  # no answer; closed once the timeout passed
