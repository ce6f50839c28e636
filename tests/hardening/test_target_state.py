"""Target states say what is known: `unknown` until a connection is tried, then what the last
attempt (a real exchange's, or status's connect probe) found: reachable, refused, DNS failure.

Real upstreams on 127.0.0.1 port 0, a port with nothing listening, and a name that never
resolves (`nosuch.invalid`, RFC 2606); a real engine in-process and as a subprocess for the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devamb.cluster import reachability as base
from tests.certs import certificates
from tests.conftest import EngineFactory, free_port, listen_url
from tests.hardening.engine_process import EngineProcess
from tests.replicas import eventually
from tests.ui.test_features import text_of
from tests.ui.waiting import settled, until
from tests.upstreams import HttpUpstream, TcpUpstream
from ui.app import make_app
from ui.screens.target_detail import TargetDetail
from ui.screens.target_picker import TargetPicker
from ui.widgets.services_table import ServicesTable

PROFILE = """
version: 1
name: states
services:
  api:
    listen: 0
    target: {active}
    timeout: 5s
    targets:
      up: {up}
      closed: http://127.0.0.1:{closed}
      nosuch: http://nosuch.invalid:8080
      debug: echo
"""


def _resolves_nothing() -> bool:
    """`nosuch.invalid` fails to resolve (any resolver must fail it; a test box may hijack it)."""
    try:
        socket.getaddrinfo("nosuch.invalid", 8080)
    except socket.gaierror:
        return True
    return False


needs_dns_failure = pytest.mark.skipif(
    not _resolves_nothing(), reason="this machine's resolver answers for nosuch.invalid"
)


@pytest.fixture
async def closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


def states(status: dict[str, Any], service: str = "api") -> dict[str, str]:
    [svc] = [s for s in status["services"] if s["name"] == service]
    return {t["name"]: t["state"] for t in svc["targets"]}


async def get(url: str) -> int:
    async with aiohttp.ClientSession() as client, client.get(url + "/x") as response:
        await response.read()
        return response.status


@needs_dns_failure
async def test_unknown_until_tried_then_what_the_probe_found(
    make_engine: EngineFactory, upstream: HttpUpstream, closed_port: int
) -> None:
    engine = await make_engine(PROFILE.format(active="up", up=upstream.url, closed=closed_port))
    targets = engine.services["api"].targets
    # nothing was tried yet: no connection is opened before anyone looks or sends
    assert {n: t.state for n, t in targets.items()} == {
        "up": "unknown", "closed": "unknown", "nosuch": "unknown", "debug": "ready",
    }

    async def known() -> bool:
        return "unknown" not in states(await engine.status()).values()  # type: ignore[arg-type]

    await eventually(known, timeout=20, what="status's probes to decide")
    status = await engine.status()
    assert states(status) == {  # type: ignore[arg-type]
        "up": "reachable", "closed": "refused", "nosuch": "dns-failure", "debug": "ready",
    }
    [svc] = status["services"]
    details = {t["name"]: t["details"] for t in svc["targets"]}
    assert details["closed"]["reach"]["reason"] == "connection refused"
    assert details["closed"]["reach"]["address"] == f"127.0.0.1:{closed_port}"
    assert "nosuch.invalid" in details["nosuch"]["reach"]["reason"]
    assert details["up"]["reach"]["reason"] is None


class LateUpstream:
    """An HTTP/1.1 server started later on a port chosen before: answers `200 ok`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server: asyncio.Server | None = None
        self.open: set[asyncio.StreamWriter] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open.add(writer)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open.discard(writer)
            writer.close()

    async def __aenter__(self) -> LateUpstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.open):
            writer.transport.abort()
        await self.server.wait_closed()


async def test_real_exchanges_set_the_state_without_a_probe(
    make_engine: EngineFactory, closed_port: int
) -> None:
    engine = await make_engine(
        PROFILE.format(active="closed", up="http://127.0.0.1:9", closed=closed_port)
    )
    url = listen_url(engine, "api")
    closed = engine.services["api"].targets["closed"]
    assert await get(url) == 502
    assert closed.state == "refused"  # no status was asked for: the exchange said so
    async with LateUpstream(closed_port):  # it comes up: the next new connection says so
        assert await get(url) == 200
        assert closed.state == "reachable"
    # it goes away again: the kept-alive connection is gone, the reconnect is refused
    assert await get(url) == 502
    assert closed.state == "refused"


async def test_a_target_that_comes_back_is_seen_without_traffic(
    make_engine: EngineFactory, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "PROBE_EVERY", 0.0)  # (5 s between probes by default)
    engine = await make_engine(
        PROFILE.format(active="closed", up="http://127.0.0.1:9", closed=closed_port)
    )

    async def state_is(wanted: str) -> bool:
        return states(await engine.status())["closed"] == wanted  # type: ignore[arg-type]

    await eventually(lambda: state_is("refused"), timeout=10, what="the first probe")
    async with LateUpstream(closed_port):
        await eventually(lambda: state_is("reachable"), timeout=10, what="a probe to see it back")


async def test_tcp_relays_set_the_state(make_engine: EngineFactory, closed_port: int) -> None:
    async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hi")
        await writer.drain()
        writer.close()

    up = await TcpUpstream(hello).start()
    try:
        engine = await make_engine(f"""
            version: 1
            name: tcpstates
            services:
              db:
                listen: 0
                protocol: tcp
                target: closed
                targets:
                  closed: tcp://127.0.0.1:{closed_port}
                  up: tcp://127.0.0.1:{up.port}
            """)
        host, port = engine.services["db"].bound  # type: ignore[misc]
        _, writer = await asyncio.open_connection(host, port)
        targets = engine.services["db"].targets
        await eventually(lambda: targets["closed"].state == "refused", what="the refused relay")
        writer.close()
        await engine.switch("db", "up")
        reader, writer = await asyncio.open_connection(host, port)
        assert await asyncio.wait_for(reader.read(), 10) == b"hi"
        writer.close()
        await eventually(lambda: targets["up"].state == "reachable", what="the relayed connection")
    finally:
        await up.stop()


@needs_dns_failure
async def test_the_cli_shows_the_states(tmp_path: Path, upstream: HttpUpstream) -> None:
    closed = free_port()
    engine = EngineProcess(
        tmp_path, PROFILE.format(active="closed", up=upstream.url, closed=closed)
    )
    await engine.start()
    try:
        env = {**os.environ, "COLUMNS": "200"}

        def cli(*args: str) -> str:
            done = subprocess.run(
                [sys.executable, "-m", "devamb", *args], cwd=tmp_path, env=env,
                capture_output=True, text=True, timeout=60,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        async def decided() -> bool:
            status = await engine.control.status()
            return "unknown" not in states(status).values()  # type: ignore[arg-type]

        await eventually(decided, timeout=20, what="the probes")
        listed = states(json.loads(await asyncio.to_thread(cli, "status", "--json")))
        assert listed == {
            "up": "reachable", "closed": "refused", "nosuch": "dns-failure", "debug": "ready",
        }
        text = await asyncio.to_thread(cli, "status")
        assert "ready" not in text.split("\n")[2]  # the active target's row: not `ready`
        assert "refused" in text
        assert f"api/closed: refused 127.0.0.1:{closed}: connection refused" in text
        assert "api/nosuch: dns-failure" in text
    finally:
        await engine.close()


@needs_dns_failure
async def test_the_tui_shows_the_states(
    make_engine: EngineFactory, upstream: HttpUpstream, closed_port: int
) -> None:
    engine = await make_engine(
        PROFILE.format(active="closed", up=upstream.url, closed=closed_port)
    )
    app = make_app(engine, poll_status=True)
    async with app.run_test(size=(120, 30)) as pilot:
        await settled(pilot)
        table = app.main.query_one(ServicesTable)
        await until(
            pilot, lambda: str(table.get_cell("api", "state")) == "refused", "the table's state"
        )
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, TargetPicker), "the picker")
        picker = app.screen
        prompts = {
            option.id: str(option.prompt)
            for option in picker.query_one("OptionList")._options  # type: ignore[attr-defined]
        }
        assert prompts["closed"].rstrip().endswith("refused")
        assert prompts["up"].rstrip().endswith("reachable")
        assert prompts["debug"].rstrip().endswith("ready")
        await until(pilot, lambda: "dns-failure" in str(
            engine.services["api"].targets["nosuch"].state), "the name to fail")
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, TargetDetail), "the target detail")
        overview = text_of(app.screen.query(".detail-section")[0])
        assert f"Connect  127.0.0.1:{closed_port}: refused (connection refused)" in overview


async def test_a_listener_that_never_accepts_is_a_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(base, "PROBE_TIMEOUT", 0.5)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # never accepted: once its queue is full, new SYNs are dropped
        port = listener.getsockname()[1]
        queued = []
        for _ in range(3):
            client = socket.socket()
            client.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                client.connect(("127.0.0.1", port))
            queued.append(client)
        try:
            reach = base.Reachability("127.0.0.1", port)
            probe = reach.probe()
            assert probe is not None
            await asyncio.wait_for(probe, 10)
            assert (reach.state, reach.reason) == ("timeout", "no connection within 0.5s")
        finally:
            for client in queued:
                client.close()


async def test_a_name_with_several_addresses_all_refusing_is_refused() -> None:
    # `localhost` may give ::1 and 127.0.0.1: asyncio then joins both errors into one message
    reach = base.Reachability("localhost", free_port())
    probe = reach.probe()
    assert probe is not None
    await asyncio.wait_for(probe, 10)
    assert (reach.state, reach.reason) == ("refused", "connection refused")


def test_connect_errors_are_classified() -> None:
    joined = OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 1, 0, 0), "
                     "[Errno 111] Connect call failed ('127.0.0.1', 1)")
    mixed = OSError("Multiple exceptions: [Errno 99] Cannot assign requested address, "
                    "[Errno 111] Connect call failed ('127.0.0.1', 1)")
    cases = {
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)"): "refused",
        joined: "refused",
        mixed: "unreachable",
        OSError(113, "No route to host"): "unreachable",
        socket.gaierror(-2, "Name or service not known"): "dns-failure",
        TimeoutError(): "timeout",
    }
    for error, state in cases.items():
        assert base.classify(error, "host")[0] == state, error
    assert base.classify(OSError(113, "x"), "h") == ("unreachable", "no route to host")


async def test_https_targets_are_probed_with_their_tls_settings(
    make_engine: EngineFactory, tmp_path: Path
) -> None:
    pytest.importorskip("cryptography")
    ca, cert, key = certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        engine = await make_engine(f"""
            version: 1
            name: tls
            services:
              api:
                listen: 0
                target: trusted
                targets:
                  strict: https://127.0.0.1:{port}
                  trusted: {{url: "https://127.0.0.1:{port}", tls: {{ca: "{ca}"}}}}
            """)

        async def decided() -> bool:
            return "unknown" not in states(await engine.status()).values()  # type: ignore[arg-type]

        await eventually(decided, timeout=10, what="the probes")
        # a plain connect would say reachable: the probe makes the handshake the exchanges make
        assert states(await engine.status()) == {  # type: ignore[arg-type]
            "strict": "tls-failure", "trusted": "reachable",
        }
        reason = engine.services["api"].targets["strict"].details()["reach"]["reason"]
        assert "CERTIFICATE_VERIFY_FAILED" in reason
    finally:
        server.close()


# -- pools: each endpoint's last connection, and the pool's state made of them ------------------

POOLS = """
version: 1
name: pools
services:
  api:
    listen: 0
    target: {active}
    timeout: 5s
    targets:
      mixed:
        endpoints: [{up}, "http://127.0.0.1:{closed}", "http://nosuch.invalid:8080"]
      dead:
        endpoints: ["http://127.0.0.1:{closed}", "http://nosuch.invalid:8080"]
      refusing:
        endpoints: ["http://127.0.0.1:{closed}"]
      alive:
        endpoints: [{up}]
"""


def endpoint_reach(status: dict[str, Any], target: str) -> dict[str, dict[str, Any]]:
    [svc] = [s for s in status["services"] if s["name"] == "api"]
    [pool] = [t for t in svc["targets"] if t["name"] == target]
    return {e["endpoint"]: e["reach"] for e in pool["details"]["endpoints"]}


@needs_dns_failure
async def test_a_pool_state_comes_from_its_endpoints(
    make_engine: EngineFactory, upstream: HttpUpstream, closed_port: int
) -> None:
    engine = await make_engine(POOLS.format(active="alive", up=upstream.url, closed=closed_port))
    targets = engine.services["api"].targets
    # nothing was tried yet (no health checks, no traffic, no status): not `ready`
    assert {n: t.state for n, t in targets.items()} == dict.fromkeys(
        ("mixed", "dead", "refusing", "alive"), "unknown"
    )

    async def known() -> bool:
        return "unknown" not in states(await engine.status()).values()  # type: ignore[arg-type]

    await eventually(known, timeout=20, what="status's probes of the endpoints")
    status = await engine.status()
    assert states(status) == {  # type: ignore[arg-type]
        "mixed": "degraded",  # one answers, one refuses, one does not resolve
        "dead": "unreachable",  # none can be connected to, for different reasons
        "refusing": "refused",
        "alive": "ready",
    }
    reach = endpoint_reach(status, "mixed")  # type: ignore[arg-type]
    closed = f"http://127.0.0.1:{closed_port}"
    assert reach[upstream.url]["state"] == "reachable"
    assert (reach[closed]["state"], reach[closed]["reason"]) == ("refused", "connection refused")
    assert reach["http://nosuch.invalid:8080"]["state"] == "dns-failure"
    assert "nosuch.invalid" in reach["http://nosuch.invalid:8080"]["reason"]
    # health and ejection are what they were: routable, nothing ejected
    [svc] = status["services"]
    [mixed] = [t for t in svc["targets"] if t["name"] == "mixed"]
    assert mixed["details"]["routable"] == 3
    assert {e["state"] for e in mixed["details"]["endpoints"]} == {"unknown"}


async def test_a_pools_exchanges_set_its_endpoints_reach(
    make_engine: EngineFactory, upstream: HttpUpstream, closed_port: int
) -> None:
    engine = await make_engine(f"""
        version: 1
        name: poolx
        services:
          api:
            listen: 0
            target: pair
            timeout: 5s
            targets:
              pair:
                endpoints: [{upstream.url}, "http://127.0.0.1:{closed_port}"]
                balance: round_robin
        """)
    pool = engine.services["api"].targets["pair"]
    url = listen_url(engine, "api")
    assert sorted([await get(url), await get(url)]) == [200, 502]
    # no status was read, so no probe: the two exchanges' connections said it
    reach = {e.key: e.reach.state for e in pool.endpoints}  # type: ignore[attr-defined]
    assert reach == {upstream.url: "reachable", f"http://127.0.0.1:{closed_port}": "refused"}
    assert pool.state == "degraded"
    async with LateUpstream(closed_port):  # it comes up: its next new connection says so
        for _ in range(4):
            await get(url)
        assert pool.state == "ready"


async def test_a_pool_with_its_endpoints_ejected_stays_unavailable(
    make_engine: EngineFactory, closed_port: int
) -> None:
    engine = await make_engine(f"""
        version: 1
        name: poolej
        services:
          api:
            listen: 0
            target: one
            timeout: 5s
            targets:
              one:
                endpoints: ["http://127.0.0.1:{closed_port}"]
                outlier: {{consecutive_failures: 1, eject_for: 60s, max_ejected: 100%}}
        """)
    pool = engine.services["api"].targets["one"]
    url = listen_url(engine, "api")
    assert await get(url) == 502
    assert await get(url) == 503  # ejected: nothing routable, as before
    status = await engine.status()
    assert states(status)["one"] == "unavailable"  # type: ignore[arg-type]
    [endpoint] = pool.details()["endpoints"]
    assert (endpoint["state"], endpoint["routable"]) == ("ejected", False)
    assert endpoint["reach"]["state"] == "refused"  # and why it was ejected


async def test_a_tcp_pools_relays_set_its_endpoints_reach(
    make_engine: EngineFactory, closed_port: int
) -> None:
    async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hi")
        await writer.drain()
        writer.close()

    up = await TcpUpstream(hello).start()
    try:
        engine = await make_engine(f"""
            version: 1
            name: tcppool
            services:
              db:
                listen: 0
                protocol: tcp
                target: pair
                targets:
                  pair:
                    endpoints: [tcp://127.0.0.1:{up.port}, tcp://127.0.0.1:{closed_port}]
                    balance: round_robin
            """)
        host, port = engine.services["db"].bound  # type: ignore[misc]
        for _ in range(2):
            reader, writer = await asyncio.open_connection(host, port)
            await asyncio.wait_for(reader.read(), 10)
            writer.close()
        pool = engine.services["db"].targets["pair"]
        reach = {e.key: e.reach.state for e in pool.endpoints}  # type: ignore[attr-defined]

        async def decided() -> bool:
            nonlocal reach
            reach = {e.key: e.reach.state for e in pool.endpoints}  # type: ignore[attr-defined]
            return "unknown" not in reach.values()

        await eventually(decided, what="both relays' outcomes")
        assert reach == {
            f"tcp://127.0.0.1:{up.port}": "reachable",
            f"tcp://127.0.0.1:{closed_port}": "refused",
        }
        assert pool.state == "degraded"
    finally:
        await up.stop()


async def test_a_pools_health_checks_set_its_endpoints_reach(
    make_engine: EngineFactory, upstream: HttpUpstream, closed_port: int
) -> None:
    engine = await make_engine(f"""
        version: 1
        name: poolhc
        services:
          api:
            listen: 0
            target: pair
            targets:
              pair:
                endpoints: [{upstream.url}, "http://127.0.0.1:{closed_port}"]
                health: {{path: /x, interval: 60s, timeout: 5s}}
        """)
    pool = engine.services["api"].targets["pair"]
    endpoints = {e.key: e for e in pool.endpoints}  # type: ignore[attr-defined]
    closed = endpoints[f"http://127.0.0.1:{closed_port}"]
    await eventually(lambda: closed.health == "unhealthy", what="the first health checks")
    await eventually(lambda: endpoints[upstream.url].health == "healthy", what="the good one")
    assert closed.reach.state == "refused"  # the check's connection said so, with no probe
    assert endpoints[upstream.url].reach.state == "reachable"
    assert pool.state == "degraded"


@needs_dns_failure
async def test_the_cli_shows_the_pools_endpoints(tmp_path: Path, upstream: HttpUpstream) -> None:
    closed = free_port()
    engine = EngineProcess(tmp_path, POOLS.format(active="mixed", up=upstream.url, closed=closed))
    await engine.start()
    try:
        env = {**os.environ, "COLUMNS": "200"}

        def cli(*args: str) -> str:
            done = subprocess.run(
                [sys.executable, "-m", "devamb", *args], cwd=tmp_path, env=env,
                capture_output=True, text=True, timeout=60,
            )
            assert done.returncode == 0, done.stderr
            return done.stdout

        async def decided() -> bool:
            status = await engine.control.status()
            return "unknown" not in states(status).values()  # type: ignore[arg-type]

        await eventually(decided, timeout=20, what="the probes")
        status = json.loads(await asyncio.to_thread(cli, "status", "--json"))
        assert states(status)["mixed"] == "degraded"
        reach = endpoint_reach(status, "mixed")
        assert {r["state"] for r in reach.values()} == {"reachable", "refused", "dns-failure"}
        text = await asyncio.to_thread(cli, "status")
        assert "degraded" in text.split("\n")[2]  # the active target's row
        assert (
            f"api/mixed: refused http://127.0.0.1:{closed} (127.0.0.1:{closed}): "
            "connection refused"
        ) in text
        assert "api/mixed: dns-failure http://nosuch.invalid:8080" in text
        assert "api/mixed: reachable" not in text
    finally:
        await engine.close()


@needs_dns_failure
async def test_the_tui_shows_the_pools_endpoints(
    make_engine: EngineFactory, upstream: HttpUpstream, closed_port: int
) -> None:
    engine = await make_engine(POOLS.format(active="mixed", up=upstream.url, closed=closed_port))
    app = make_app(engine, poll_status=True)
    async with app.run_test(size=(160, 40)) as pilot:
        await settled(pilot)
        table = app.main.query_one(ServicesTable)
        await until(
            pilot, lambda: str(table.get_cell("api", "state")) == "degraded", "the table's state"
        )
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, TargetPicker), "the picker")
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, TargetDetail), "the target detail")
        expected = {
            upstream.url: "reachable",
            f"http://127.0.0.1:{closed_port}": "refused (connection refused)",
            "http://nosuch.invalid:8080": "dns-failure",
        }

        def endpoint_rows() -> dict[str, str]:
            [endpoints] = [
                s for s in app.screen.query(".detail-section") if s.border_title == "Endpoints"
            ]
            shown = text_of(endpoints)
            assert "Connect" in shown
            return {line.split()[0]: line for line in shown.splitlines() if "://" in line}

        # "degraded" needs one failing endpoint; the other's probe (a DNS lookup that can be
        # slow on a loaded machine) may still be running: the detail refreshes every second.
        await until(
            pilot,
            lambda: all(state in endpoint_rows().get(url, "") for url, state in expected.items()),
            "every endpoint's reach in the detail",
        )


async def test_a_named_endpoints_pinned_connections_set_its_reach(
    make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    port = int(upstream.url.rsplit(":", 1)[1])
    engine = await make_engine(f"""
        version: 1
        name: pinned
        services:
          api:
            listen: 0
            target: named
            targets:
              named:
                endpoints: ["http://localhost:{port}"]
        """)
    pool = engine.services["api"].targets["named"]
    [endpoint] = pool.endpoints  # type: ignore[attr-defined]
    assert endpoint.address is not None  # resolved at start: connections go to that address
    assert await get(listen_url(engine, "api")) == 200
    assert endpoint.reach.state == "reachable"  # no status read: the exchange's connection said
    assert pool.state == "ready"
