"""`mock:` targets through a real engine: templated answers, state, fallbacks, files, delays."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import textwrap
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devamb.engine.assembly import load_profile
from devamb.engine.core import Engine
from devamb.profile.problems import ProfileError
from devamb.targets.mock.target import MockTarget, MockTargetSpec
from tests.conftest import EngineFactory, listen_url
from tests.upstreams import HttpUpstream

MOCK = """
routes:
  - name: one user
    match:
      method: GET
      path: /users/{id}
    respond:
      headers: {X-User-Id: "{{path.id}}"}
      json:
        id: "{{path.id}}"
        page: "{{query.page|1}}"
        caller: "{{headers.X-User|anonymous}}"
  - match: {method: POST, path: /orders, json: {kind: express}}
    respond:
      status: 201
      json: {amount: "{{json.amount}}", text: "for {{json.customer.name}}", kind: express}
  - match: {method: POST, path: /orders}
    respond: {status: 202, body: "queued {{json.amount|?}}"}
  - match: {path: /once}
    times: 2
    respond: {body: "still here"}
  - match: {path: /flaky}
    sequence:
      - {status: 503, body: down}
      - {status: 200, body: up}
  - match: {path: /cycle}
    repeat: cycle
    sequence: [{body: a}, {body: b}, {body: c}]
  - match: {path: /slow}
    delay: 200ms
    respond: {body: slow}
  - match: {path: /slower}
    delay: 10s
    respond: {body: quick after all, delay: 100ms}
  - match: {path: /logo.png}
    respond: {file: bodies/logo.png}
  - match: {path: /big}
    respond: {file: bodies/big.bin, headers: {Content-Type: application/x-big}}
"""


def write_mock(folder: Path, text: str = MOCK, name: str = "mocks/api.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    bodies = path.parent / "bodies"
    bodies.mkdir(exist_ok=True)
    (bodies / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (bodies / "big.bin").write_bytes(hashlib.sha256(b"x").digest() * 65536)  # 2 MiB
    return path


def profile(live: str = "http://127.0.0.1:9", extra: str = "", target: str = "mock") -> str:
    return f"""
    version: 1
    services:
      api:
        listen: 0
        target: {target}
        targets:
          live: {live}
          mock:
            mock: mocks/api.yaml{extra}
    """


async def call(
    engine: Engine, method: str, path: str, *, service: str = "", **kwargs: Any
) -> tuple[int, dict[str, str], bytes]:
    """One request to the service (the only one, or `service`)."""
    name = service or next(iter(engine.services))
    async with aiohttp.ClientSession() as client, client.request(
        method, listen_url(engine, name) + path, **kwargs
    ) as resp:
        return resp.status, dict(resp.headers), await resp.read()


def mock_target(engine: Engine, name: str = "mock") -> MockTarget:
    target = engine.services["api"].targets[name]
    assert isinstance(target, MockTarget)
    return target


async def test_templates_fill_in_path_query_headers_and_json(
    tmp_path: Path, make_engine: EngineFactory
) -> None:
    write_mock(tmp_path)
    engine = await make_engine(profile())
    status, headers, body = await call(engine, "GET", "/users/42?page=3", headers={"X-User": "ada"})
    assert status == 200 and headers["X-User-Id"] == "42"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"id": "42", "page": "3", "caller": "ada"}
    _, _, body = await call(engine, "GET", "/users/7")
    assert json.loads(body) == {"id": "7", "page": "1", "caller": "anonymous"}
    order = {"kind": "express", "amount": 12.5, "customer": {"name": "Ada"}}
    status, _, body = await call(engine, "POST", "/orders", json=order)
    assert status == 201
    assert json.loads(body) == {"amount": 12.5, "text": "for Ada", "kind": "express"}
    status, headers, body = await call(engine, "POST", "/orders", json={"amount": 3})
    assert (status, body) == (202, b"queued 3")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    status, _, body = await call(engine, "POST", "/orders", data=b"not json")
    assert (status, body) == (202, b"queued ?")


async def test_times_and_sequences_keep_state_per_route(
    tmp_path: Path, make_engine: EngineFactory
) -> None:
    write_mock(tmp_path)
    engine = await make_engine(profile())
    once = [(await call(engine, "GET", "/once"))[0] for _ in range(3)]
    assert once == [200, 200, 404]
    flaky = [(await call(engine, "GET", "/flaky"))[:3:2] for _ in range(3)]
    assert flaky == [(503, b"down"), (200, b"up"), (200, b"up")]  # repeat: last
    cycle = [(await call(engine, "GET", "/cycle"))[2] for _ in range(5)]
    assert cycle == [b"a", b"b", b"c", b"a", b"b"]
    details = mock_target(engine).details()
    hits = {r["name"]: r["hits"] for r in details["routes"]}
    assert hits["ANY /once"] == 2 and hits["ANY /flaky"] == 3 and hits["ANY /cycle"] == 5
    assert next(r for r in details["routes"] if r["name"] == "ANY /once")["left"] == 0
    assert details["unmatched_count"] == 1
    assert details["unmatched"][0]["path"] == "/once"
    assert "answered its 2 times already" in details["unmatched"][0]["closest"]


async def test_concurrent_requests_each_get_their_own_turn(
    tmp_path: Path, make_engine: EngineFactory
) -> None:
    write_mock(tmp_path)
    engine = await make_engine(profile())
    bodies = await asyncio.gather(*(call(engine, "GET", "/cycle") for _ in range(30)))
    assert sorted(b for _, _, b in bodies) == [b"a"] * 10 + [b"b"] * 10 + [b"c"] * 10


async def test_unmatched_requests_get_a_404_naming_the_closest_routes(
    tmp_path: Path, make_engine: EngineFactory
) -> None:
    write_mock(tmp_path)
    engine = await make_engine(profile())
    status, headers, body = await call(engine, "DELETE", "/users/42?token=secret")
    assert status == 404 and headers["x-devamb-error"] == "no-mock-route"
    answer = json.loads(body)
    assert answer["reason"] == "no route of mock 'mock' matches DELETE /users/42"
    assert answer["closest"][0] == {
        "index": 0, "route": "one user", "why": "method DELETE is not GET",
    }
    details = mock_target(engine).details()
    assert details["unmatched_count"] == 1 and details["matched"] == 0
    assert details["unmatched"][0]["method"] == "DELETE"
    assert details["unmatched"][0]["path"] == "/users/42"  # never the query: it may hold tokens
    assert details["fallback"] == "404 (default)"
    status_json = await engine.status()
    shown = status_json["services"][0]["targets"][1]
    assert shown["kind"] == "mock" and shown["address"] == "mock mocks/api.yaml (10 routes)"
    assert shown["details"]["unmatched_count"] == 1
    recorded = engine.store.all()[-1]
    assert (recorded.status, recorded.target) == (404, "mock")


async def test_a_fixed_fallback_answers_unmatched_requests(
    tmp_path: Path, make_engine: EngineFactory
) -> None:
    fallback = "fallback: {status: 418, json: {error: '{{method}} {{query.q}}'}}"
    write_mock(tmp_path, f"routes: []\n{fallback}\n")
    engine = await make_engine(profile())
    status, _, body = await call(engine, "PATCH", "/anything?q=x")
    assert status == 418 and json.loads(body) == {"error": "PATCH x"}
    assert mock_target(engine).details()["fallback"] == "status 418"
    assert mock_target(engine).details()["unmatched_count"] == 1


async def test_a_proxy_fallback_passes_unmatched_requests_to_another_target(
    tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    write_mock(tmp_path, MOCK + "fallback: {proxy: live}\n")
    engine = await make_engine(profile(upstream.url))
    status, _, body = await call(engine, "GET", "/users/1")
    assert status == 200 and json.loads(body)["id"] == "1"  # the mock's
    status, _, body = await call(engine, "GET", "/not/mocked?x=1")
    assert status == 200
    answer = json.loads(body)
    assert answer["upstream"] == "up" and answer["path"] == "/not/mocked?x=1"
    # a body the mock read to match on reaches the upstream whole, with or without a length
    payload = json.dumps({"kind": "standard", "pad": "x" * 5000}).encode()
    for send in (payload, _chunks(payload)):
        status, _, body = await call(engine, "PUT", "/orders", data=send)
        answer = json.loads(body)
        assert answer["upstream"] == "up"
        assert answer["body_sha256"] == hashlib.sha256(payload).hexdigest()
    assert mock_target(engine).details()["unmatched_count"] == 3
    assert mock_target(engine).details()["fallback"] == "proxy live"


async def test_the_profile_fallback_wins_over_the_files(
    tmp_path: Path, make_engine: EngineFactory, upstream: HttpUpstream
) -> None:
    write_mock(tmp_path, MOCK + "fallback: {status: 410}\n")
    engine = await make_engine(profile(upstream.url, "\n            fallback: {proxy: live}"))
    status, _, body = await call(engine, "GET", "/elsewhere")
    assert status == 200 and json.loads(body)["upstream"] == "up"


async def test_with_the_upstream_gone_a_proxy_fallback_answers_502(
    tmp_path: Path, make_engine: EngineFactory
) -> None:
    write_mock(tmp_path, MOCK + "fallback: {proxy: live}\n")
    engine = await make_engine(profile("http://127.0.0.1:9"))
    status, _, body = await call(engine, "GET", "/elsewhere")
    assert status == 502 and json.loads(body)["error"] == "connect-failed"
    assert (await call(engine, "GET", "/users/5"))[0] == 200


async def test_file_bodies_are_streamed_with_a_guessed_type(
    tmp_path: Path, make_engine: EngineFactory
) -> None:
    folder = write_mock(tmp_path).parent
    engine = await make_engine(profile())
    status, headers, body = await call(engine, "GET", "/logo.png")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert body == (folder / "bodies" / "logo.png").read_bytes()
    status, headers, body = await call(engine, "GET", "/big")
    assert headers["Content-Type"] == "application/x-big"
    assert headers["Content-Length"] == str(2 * 1024 * 1024)
    assert hashlib.sha256(body).digest() == hashlib.sha256(
        (folder / "bodies" / "big.bin").read_bytes()
    ).digest()
    status, headers, body = await call(engine, "HEAD", "/big")
    assert status == 200 and body == b""
    record = engine.store.all()[-2]
    assert record.bytes_out == 2 * 1024 * 1024  # counted, while only a preview is kept
    assert len(record.response_body.data) == record.response_body.limit


async def test_delays_hold_the_answer(tmp_path: Path, make_engine: EngineFactory) -> None:
    write_mock(tmp_path)
    engine = await make_engine(profile())
    start = time.monotonic()
    assert (await call(engine, "GET", "/slow"))[2] == b"slow"
    assert time.monotonic() - start >= 0.2
    start = time.monotonic()
    assert (await call(engine, "GET", "/slower"))[2] == b"quick after all"  # respond's delay wins
    assert 0.1 <= time.monotonic() - start < 5


async def test_an_inline_mock_in_the_profile(make_engine: EngineFactory) -> None:
    engine = await make_engine("""
    version: 1
    services:
      api:
        listen: 0
        targets:
          mock:
            mock:
              routes:
                - match: {path: "/hello/{name}"}
                  respond: {body: "hello {{path.name}}"}
              fallback: {status: 400, body: "say hello"}
    """)
    assert (await call(engine, "GET", "/hello/ada"))[2] == b"hello ada"
    assert (await call(engine, "GET", "/bye"))[:3:2] == (400, b"say hello")
    assert engine.services["api"].targets["mock"].spec.describe() == "mock inline (1 route)"


def test_the_spec_changes_when_the_mock_file_does_and_names_its_files(tmp_path: Path) -> None:
    mock = write_mock(tmp_path)
    path = tmp_path / "devamb.yaml"
    path.write_text(textwrap.dedent(profile()))
    first = load_profile(path).services["api"].targets["mock"]
    assert isinstance(first, MockTargetSpec)
    assert first.watched_files() == (
        mock.resolve(),
        (mock.parent / "bodies" / "logo.png").resolve(),
        (mock.parent / "bodies" / "big.bin").resolve(),
    )
    assert load_profile(path).services["api"] == load_profile(path).services["api"]
    mock.write_text(mock.read_text().replace("still here", "changed"))
    assert load_profile(path).services["api"].targets["mock"] != first


BAD_PROFILES = [
    (
        "mocks/api.yaml",
        "routes:\n  - match: {path: /a}\n    respond: {status: 99}\n",
        ["mocks/api.yaml:3:23: routes[0].respond.status: 99 is out of range 100..599"],
    ),
    (
        "mocks/other.yaml",
        "routes: []\n",
        ["devamb.yaml:10:15: services.api.targets.mock.mock: cannot read mock file "
         "'mocks/api.yaml': No such file or directory"],
    ),
    (
        "mocks/api.yaml",
        "routes: []\nfallback: {proxy: nowhere}\n",
        ["mocks/api.yaml:2:19: fallback.proxy: 'nowhere' is not another target of this "
         "service; expected one of live"],
    ),
]


@pytest.mark.parametrize(("name", "text", "expected"), BAD_PROFILES)
def test_mock_problems_are_profile_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str, expected: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(text)
    (tmp_path / "devamb.yaml").write_text(textwrap.dedent(profile()))
    with pytest.raises(ProfileError) as caught:
        load_profile(tmp_path / "devamb.yaml")
    assert [str(p) for p in caught.value.problems] == expected


def test_a_tcp_service_cannot_use_a_mock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "devamb.yaml").write_text(textwrap.dedent("""
    version: 1
    services:
      cache:
        listen: 0
        protocol: tcp
        targets:
          mock: {mock: {routes: []}}
    """))
    with pytest.raises(ProfileError) as caught:
        load_profile(tmp_path / "devamb.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "devamb.yaml:8:14: services.cache.targets.mock.mock: mock targets serve grpc and http "
        "and http2 services only; this is a tcp service"
    ]


async def _chunks(data: bytes) -> Any:
    for i in range(0, len(data), 1000):
        yield data[i : i + 1000]


async def test_a_mock_file_edited_while_requests_flow_is_reloaded_without_failures(
    tmp_path: Path, make_engine: EngineFactory
) -> None:
    mock = write_mock(tmp_path)
    engine = await make_engine(profile())
    seen: list[tuple[int, bytes]] = []
    stop = asyncio.Event()

    async def traffic() -> None:
        while not stop.is_set():
            status, _, body = await call(engine, "GET", "/static-answer")
            seen.append((status, body))

    added = "  - match: {path: /static-answer}\n    respond: {body: v1}\n"
    mock.write_text(mock.read_text() + added)
    assert await engine.reload()
    task = asyncio.get_running_loop().create_task(traffic())
    await asyncio.sleep(0.1)
    mock.write_text(mock.read_text().replace("body: v1", "body: v2"))
    assert await engine.reload()
    await asyncio.sleep(0.1)
    stop.set()
    await task
    assert {status for status, _ in seen} == {200}
    bodies = [body for _, body in seen]
    assert bodies[0] == b"v1" and bodies[-1] == b"v2"
    assert bodies == sorted(bodies)  # never back to v1 once v2 answered


async def test_a_broken_mock_file_is_rejected_with_its_position_until_fixed(
    tmp_path: Path, make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mock = write_mock(tmp_path)
    engine = await make_engine(profile())
    good = mock.read_text()
    mock.write_text(good.replace("status: 201", "status: 2010"))
    assert not await engine.reload()
    assert engine.config_errors == [
        "mocks/api.yaml:15:15: routes[1].respond.status: 2010 is out of range 100..599"
    ]
    status, _, _ = await call(engine, "POST", "/orders", json={"kind": "express"})
    assert status == 201  # the previous mock keeps serving
    mock.write_text(good.replace("status: 201", "status: 200"))
    assert await engine.reload()
    assert engine.config_errors == []
    assert (await call(engine, "POST", "/orders", json={"kind": "express"}))[0] == 200


async def test_the_watcher_sees_an_editor_style_replace_of_the_mock_file(tmp_path: Path) -> None:
    mock = write_mock(tmp_path, "routes:\n  - respond: {body: before}\n")
    path = tmp_path / "devamb.yaml"
    path.write_text(textwrap.dedent(profile()))
    engine = Engine(load_profile(path))
    await engine.start(watch=True)
    try:
        assert (await call(engine, "GET", "/x"))[2] == b"before"
        await asyncio.sleep(0.2)  # the watcher is up
        replacement = mock.with_name(".api.yaml.swp")
        replacement.write_text("routes:\n  - respond: {body: after}\n")
        replacement.replace(mock)
        deadline = time.monotonic() + 3
        while (await call(engine, "GET", "/x"))[2] != b"after":
            assert time.monotonic() < deadline, "the edit was not applied within 3 s"
            await asyncio.sleep(0.05)
    finally:
        await engine.stop()


async def test_the_example_profile_answers_as_its_comments_say(
    tmp_path: Path, make_engine: EngineFactory
) -> None:
    root = Path(__file__).resolve().parents[3] / "profiles"
    shutil.copytree(root / "mocks", tmp_path / "mocks")
    text = (root / "mocks.yaml").read_text().replace("listen: 9101", "listen: 0")
    engine = await make_engine(text)
    status, headers, body = await call(engine, "GET", "/customers/42?plan=pro")
    assert (status, headers["X-Customer"]) == (200, "42")
    assert json.loads(body) == {"id": "42", "name": "Ada Lovelace", "plan": "pro"}
    status, _, body = await call(engine, "POST", "/charges", json={"amount": 1200})
    assert status == 201
    assert json.loads(body) == {"id": "ch_1", "amount": 1200, "currency": "usd", "by": "anonymous"}
    assert (await call(engine, "POST", "/charges", json={"amount": 5}))[0] == 402
    assert [(await call(engine, "POST", "/charges/ch_1/refund"))[0] for _ in range(3)] == [
        503, 200, 200,
    ]
    assert [(await call(engine, "GET", "/coupons/WELCOME"))[0] for _ in range(2)] == [200, 404]
    assert (await call(engine, "GET", "/terms"))[2].startswith(b"Payments terms")
    await engine.switch("payments", "partial")
    status, _, body = await call(engine, "GET", "/not/mocked")
    assert status == 200 and json.loads(body)["target"] == "echo"
    await engine.switch("payments", "inline")
    assert (await call(engine, "GET", "/healthz"))[2] == b'{"ok": true}'
    assert (await call(engine, "GET", "/other"))[0] == 503


async def test_mocks_falling_back_to_each_other_are_refused_a_loop(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine("""
    version: 1
    services:
      api:
        listen: 0
        target: a
        targets:
          a: {mock: {routes: [], fallback: {proxy: b}}}
          b: {mock: {routes: [], fallback: {proxy: a}}}
    """)
    status, _, body = await call(engine, "GET", "/x")
    assert status == 502
    assert json.loads(body)["reason"] == (
        "mock 'a' cannot fall back to 'b': fallbacks loop: a -> b -> a"
    )
