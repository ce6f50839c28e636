"""Live reload: profile edits applied as diffs, bad edits rejected whole, files watched."""

from __future__ import annotations

import asyncio
import os
import socket
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from tests.upstreams import HttpUpstream


def write(path: Path, text: str, *, atomic: bool = False) -> None:
    text = textwrap.dedent(text)
    if atomic:  # as many editors save: a new file renamed over the old one
        tmp = path.with_suffix(".swp")
        tmp.write_text(text)
        os.replace(tmp, path)
    else:
        path.write_text(text)


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def watched(tmp_path: Path, upstream: HttpUpstream, upstream2: HttpUpstream):
    path = tmp_path / "devamb.yaml"
    port = free_port()
    write(path, f"""
    services:
      api:
        listen: {port}
        target: a
        targets: {{a: "{upstream.url}", b: "{upstream2.url}"}}
    """)
    engine = Engine(load_profile(path))
    await engine.start(watch=True)
    await asyncio.sleep(0.2)  # let the watcher settle
    yield engine, path, port
    await engine.stop()


async def who(port: int, client: aiohttp.ClientSession, path: str = "/who") -> str:
    async with client.get(f"http://127.0.0.1:{port}{path}") as resp:
        return (await resp.json())["upstream"]


async def test_changed_target_applies_to_the_next_request(watched, upstream2) -> None:
    engine, path, port = watched
    async with aiohttp.ClientSession() as client:
        assert await who(port, client) == "up"
        write(path, path.read_text().replace("target: a", "target: b"))
        await until(lambda: engine.services["api"].active == "b")
        assert await who(port, client) == "up2"


async def test_added_and_removed_services(watched, upstream) -> None:
    engine, path, port = watched
    extra = free_port()
    original = path.read_text()
    write(path, original + textwrap.indent(textwrap.dedent(f"""
    web:
      listen: {extra}
      targets: {{e: echo}}
    """), "  "))
    await until(lambda: "web" in engine.services)
    async with aiohttp.ClientSession() as client:
        async with client.get(f"http://127.0.0.1:{extra}/hi") as resp:
            assert (await resp.json())["service"] == "web"
        write(path, original)
        await until(lambda: "web" not in engine.services)
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.get(f"http://127.0.0.1:{extra}/hi")
        assert await who(port, client) == "up"  # the untouched service kept serving


async def test_listen_port_change_rebinds(watched) -> None:
    engine, path, port = watched
    new_port = free_port()
    write(path, path.read_text().replace(f"listen: {port}", f"listen: {new_port}"), atomic=True)
    await until(lambda: engine.services["api"].bound == ("127.0.0.1", new_port))
    async with aiohttp.ClientSession() as client:
        assert await who(new_port, client) == "up"
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.get(f"http://127.0.0.1:{port}/who")


async def test_bad_edit_is_rejected_and_the_old_config_serves(watched) -> None:
    engine, path, port = watched
    good = path.read_text()
    seen: list[dict] = []

    async def collect() -> None:
        async for event in engine.events():
            if event["type"] in ("rejected", "reloaded"):
                seen.append(event)

    task = asyncio.create_task(collect())
    write(path, good.replace("target: a", "target: nope"), atomic=True)
    await until(lambda: engine.config_errors)
    [error] = (await engine.status())["errors"]
    assert error.endswith("devamb.yaml:5:13: services.api.target: 'nope' is not one of a, b")
    async with aiohttp.ClientSession() as client:
        assert await who(port, client) == "up"
    write(path, good.replace("target: a", "target: b"), atomic=True)
    await until(lambda: not engine.config_errors)
    await until(lambda: any(e["type"] == "reloaded" for e in seen))
    task.cancel()
    assert seen[0]["type"] == "rejected" and "'nope'" in seen[0]["errors"][0]
    assert engine.services["api"].active == "b"


async def test_runtime_switch_survives_reload_of_other_services(watched) -> None:
    engine, path, _port = watched
    await engine.switch("api", "b")
    extra = free_port()
    write(path, path.read_text() + f"  web:\n    listen: {extra}\n    targets: {{e: echo}}\n")
    await until(lambda: "web" in engine.services)
    assert engine.services["api"].active == "b"  # api's text did not change: choice kept


async def test_requests_flowing_during_reloads_do_not_fail(watched) -> None:
    engine, path, port = watched
    failures: list[str] = []
    statuses: list[int] = []
    stop = asyncio.Event()

    async def traffic() -> None:
        async with aiohttp.ClientSession() as client:
            while not stop.is_set():
                try:
                    async with client.get(f"http://127.0.0.1:{port}/bytes/200000") as resp:
                        await resp.read()
                        statuses.append(resp.status)
                except aiohttp.ClientError as exc:
                    failures.append(repr(exc))

    workers = [asyncio.create_task(traffic()) for _ in range(4)]
    text = path.read_text()
    for i in range(6):
        write(path, text.replace("target: a", "target: b" if i % 2 == 0 else "target: a"),
              atomic=True)
        want = "b" if i % 2 == 0 else "a"
        await until(lambda want=want: engine.services["api"].active == want)
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*workers)
    assert failures == [] and len(statuses) > 20 and set(statuses) == {200}


async def test_dotenv_change_reaches_injected_headers(
    tmp_path: Path, upstream: HttpUpstream
) -> None:
    (tmp_path / ".env").write_text("TOKEN=first-token\n")
    write(tmp_path / "devamb.yaml", f"""
    services:
      api:
        listen: 0
        targets:
          a: {{url: "{upstream.url}", headers: {{X-Token: "${{TOKEN}}"}}}}
    """)
    engine = Engine(load_profile(tmp_path / "devamb.yaml"))
    await engine.start(watch=True)
    try:
        await asyncio.sleep(0.2)
        host, port = engine.services["api"].bound  # type: ignore[misc]

        async def token() -> str:
            async with aiohttp.ClientSession() as client, client.get(
                f"http://{host}:{port}/t"
            ) as resp:
                return dict((await resp.json())["headers"])["X-Token"]

        assert await token() == "first-token"
        (tmp_path / ".env").write_text("TOKEN=second-token\n")
        await until(lambda: engine.services["api"].spec.targets["a"].headers["X-Token"]
                    == "second-token")
        assert await token() == "second-token"
        assert engine.services["api"].bound == (host, port)  # port 0 kept its port
    finally:
        await engine.stop()


async def test_edits_that_are_not_utf8_or_too_large_are_rejected_with_positions(watched) -> None:
    engine, path, port = watched
    good = path.read_bytes()
    path.write_bytes(good + b"# caf\xe9\n")
    await until(lambda: engine.config_errors)
    [error] = engine.config_errors
    line = good.count(b"\n") + 1
    assert error.endswith(f"devamb.yaml:{line}:6: not UTF-8")
    async with aiohttp.ClientSession() as client:
        assert await who(port, client) == "up"
    path.write_bytes(good + b"#" * (8 * 2**20) + b"\n")
    await until(lambda: "at most 8 MiB" in "".join(engine.config_errors))
    async with aiohttp.ClientSession() as client:
        assert await who(port, client) == "up"


async def test_concurrent_reloads_apply_cleanly(watched) -> None:
    engine, path, _port = watched
    write(path, path.read_text().replace("target: a", "target: b"))
    results = await asyncio.gather(*(engine.reload() for _ in range(5)))
    assert results == [True] * 5 and engine.services["api"].active == "b"
    assert engine.config_errors == []
