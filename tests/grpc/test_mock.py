"""A mock target answering gRPC calls of a real grpcio client from `grpc:` rules, encoded
with the service's schema; problems with the rules at file:line:col."""

from __future__ import annotations

import asyncio
import shutil
import textwrap
from pathlib import Path
from typing import Any

import grpc
import pytest

from devamb.engine.assembly import load_profile
from devamb.profile import ProfileError
from tests.conftest import EngineFactory
from tests.grpc.greeter import GREET, Client, Types, compile_set

PROFILE = """
version: 1
services:
  g:
    listen: 0
    protocol: grpc
    target: fake
    proto: [protos/*.proto]
    targets:
      fake:
        mock:
          grpc:
            - method: /test.greet.Greeter/Say
              response: {text: hi from the mock, count: 7}
              delay: 10ms
            - method: /test.greet.Greeter/Gather
              status: RESOURCE_EXHAUSTED
              message: "too many: ünï 100%"
"""


@pytest.fixture(scope="module")
def types(tmp_path_factory: pytest.TempPathFactory) -> Types:
    return Types(compile_set(tmp_path_factory.mktemp("set") / "greet.pb"))


def _protos(folder: Path) -> None:
    (folder / "protos").mkdir(exist_ok=True)
    shutil.copy(GREET, folder / "protos")


async def test_the_mock_answers_a_grpcio_client(make_engine: EngineFactory, types: Types,
                                                tmp_path: Path) -> None:
    _protos(tmp_path)
    engine = await make_engine(PROFILE)
    bound = engine.services["g"].bound
    assert bound is not None
    client = Client(types, bound[1])

    def calls() -> dict[str, Any]:
        try:
            out: dict[str, Any] = {"Say": client.say(client.hello(name="x"), timeout=10)}
            for name, call in (
                ("Gather", lambda: client.gather(iter([client.hello(name="a")] * 3), timeout=10)),
                ("Many", lambda: list(client.many(client.hello(name="a"), timeout=10))),
            ):
                with pytest.raises(grpc.RpcError) as failed:
                    call()
                out[name] = (failed.value.code(), failed.value.details())
            return out
        finally:
            client.close()

    out = await asyncio.to_thread(calls)
    assert (out["Say"].text, out["Say"].count) == ("hi from the mock", 7)
    assert out["Gather"] == (grpc.StatusCode.RESOURCE_EXHAUSTED, "too many: ünï 100%")
    assert out["Many"] == (grpc.StatusCode.UNIMPLEMENTED,
                           "mock: no gRPC rule for /test.greet.Greeter/Many")
    records = engine.store.recent(3)
    by = {r.notes["grpc"]["method"]: r for r in records}
    say = by["Say"].notes
    assert say["mock"] == {"matched": 0, "route": "grpc[0] /test.greet.Greeter/Say"}
    assert (say["grpc"]["code"], say["grpc"]["schema"], by["Say"].target) == ("OK", "proto",
                                                                             "fake")
    assert [m["json"] for m in say["grpc"]["messages"]] == [
        {"name": "x"}, {"text": "hi from the mock", "count": "7"}]
    gather = by["Gather"].notes["grpc"]
    assert (gather["requests"], gather["responses"], gather["code"], gather["message"]) == (
        3, 0, "RESOURCE_EXHAUSTED", "too many: ünï 100%")
    assert by["Many"].notes["grpc"]["code"] == "UNIMPLEMENTED"
    assert by["Many"].notes["mock"] == {"matched": None, "route": None}
    details = engine.services["g"].targets["fake"].details()
    assert [(r["name"], r["hits"]) for r in details["routes"]] == [
        ("grpc /test.greet.Greeter/Say", 1), ("grpc /test.greet.Greeter/Gather", 1)]
    assert (details["matched"], details["unmatched_count"]) == (2, 1)
    assert details["unmatched"][0]["path"] == "/test.greet.Greeter/Many"


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "devamb.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    return [str(p).replace(f"{tmp_path}/", "") for p in caught.value.problems]


def test_rules_the_schema_cannot_encode_are_problems_at_the_rule(tmp_path: Path) -> None:
    _protos(tmp_path)
    text = PROFILE.replace("""            - method: /test.greet.Greeter/Gather""", """\
            - method: /test.greet.Greeter/Nope
            - method: /test.greet.Greeter/Talk
              response: {text: 5, nope: 1}
            - method: /test.greet.Greeter/Gather""")
    problems = _problems(tmp_path, text)
    assert problems[0] == ("devamb.yaml:16:15: services.g.targets.fake.mock.grpc.1: the "
                           "service's schema has no method /test.greet.Greeter/Nope")
    assert problems[1].startswith("devamb.yaml:17:15: services.g.targets.fake.mock.grpc.2: "
                                  "the response is not a test.greet.Reply: ")
    assert len(problems) == 2
    no_schema = PROFILE.replace("    proto: [protos/*.proto]\n", "")
    assert _problems(tmp_path, no_schema)[0] == (
        "devamb.yaml:12:15: services.g.targets.fake.mock.grpc.0: cannot encode the response "
        "of /test.greet.Greeter/Say: the service has no schema (add proto: or descriptor_set: "
        "to it)")


def test_rule_shapes_and_protocols(tmp_path: Path) -> None:
    _protos(tmp_path)
    bad = PROFILE.replace("status: RESOURCE_EXHAUSTED", "status: SLEEPY").replace(
        "/test.greet.Greeter/Say", "Say")
    assert _problems(tmp_path, bad) == [
        "devamb.yaml:13:23: services.g.targets.fake.mock.grpc.0.method: 'Say' is not a gRPC "
        "method: /pkg.Service/Method",
        "devamb.yaml:17:23: services.g.targets.fake.mock.grpc.1.status: 'SLEEPY' is not a gRPC "
        "status: a name such as UNAVAILABLE, or a number",
    ]
    http = PROFILE.replace("protocol: grpc", "protocol: http").replace(
        "    proto: [protos/*.proto]\n", "")
    assert _problems(tmp_path, http) == [
        "devamb.yaml:10:9: services.g.targets.fake.mock: 'grpc:' rules serve http2 and grpc "
        "services; this is an http service"]
    routes = PROFILE.replace("          grpc:", "          routes: []\n          grpc:")
    assert _problems(tmp_path, routes) == [
        "devamb.yaml:11:9: services.g.targets.fake.mock: a mock on a grpc service answers from "
        "'grpc:' rules; 'routes' and 'fallback' serve http services"]


RECORDED = """
version: 1
services:
  g:
    listen: 0
    protocol: grpc
    target: {target}
    proto: [protos/*.proto]
    targets:
      up: http://127.0.0.1:{port}
      recorded: {{mock: mocks/g.yaml}}
"""


async def test_recording_a_grpc_service_writes_rules_a_mock_answers_with(
        make_engine: EngineFactory, types: Types, tmp_path: Path) -> None:
    from tests.grpc.greeter import Greeter

    _protos(tmp_path)
    (tmp_path / "mocks").mkdir()
    (tmp_path / "mocks" / "g.yaml").write_text("grpc: []\n")
    with Greeter(types) as server:
        engine = await make_engine(RECORDED.format(target="up", port=server.port))
        bound = engine.services["g"].bound
        assert bound is not None
        await engine.start_recording("g", to=str(tmp_path / "mocks" / "g.yaml"))
        client = Client(types, bound[1])

        def calls() -> None:
            try:
                with pytest.raises(grpc.RpcError):
                    client.say(client.hello(name="fail"), timeout=10)
                client.say(client.hello(name="first"), timeout=10)
                client.say(client.hello(name="ada", times=3), timeout=10)  # the latest answer
                list(client.many(client.hello(name="s", times=2), timeout=10))  # streaming
                inner = types.cls("test.greet.Inner")
                for tags in (["a"], ["b"]):  # the same answer to either: one rule
                    list(client.many(client.hello(name="one", times=1, inner=inner(tags=tags)),
                                     timeout=10))
            finally:
                client.close()

        await asyncio.to_thread(calls)
        for _ in range(500):
            session = engine.desks.recording.sessions["g"].to_json()
            if session["recorded"] + sum(session["skipped"].values()) >= 6:
                break
            await asyncio.sleep(0.01)
        (written,) = await engine.stop_recording("g")
    assert written["recorded"] == 5 and written["skipped"] == {"streaming response": 1}
    text = (tmp_path / "mocks" / "g.yaml").read_text()
    import yaml

    say = "/test.greet.Greeter/Say"
    ada = {"text": "hello ada", "count": "3"}
    assert yaml.safe_load(text)["grpc"] == [  # answers differed: one rule per request, then any
        {"method": say, "request": {"name": "fail"}, "status": "NOT_FOUND",
         "message": "no such name: ünïcode 100%"},
        {"method": say, "request": {"name": "first"}, "response": {"text": "hello first"}},
        {"method": say, "request": {"name": "ada", "times": 3}, "response": ada},
        {"method": say, "response": ada},
        {"method": "/test.greet.Greeter/Many", "response": {"text": "one 0"}},
    ]
    assert text.startswith("# Recorded by devamb from service 'g': 5 gRPC calls, 5 rules.")
    offline = await make_engine(RECORDED.format(target="recorded", port=1))
    bound = offline.services["g"].bound
    assert bound is not None
    again = Client(types, bound[1])

    def replay() -> list[Any]:
        try:
            out = [again.say(again.hello(name=n), timeout=10).text for n in ("x", "first")]
            with pytest.raises(grpc.RpcError) as failed:
                again.say(again.hello(name="fail"), timeout=10)
            return [*out, failed.value.code()]
        finally:
            again.close()

    assert await asyncio.to_thread(replay) == ["hello ada", "hello first",
                                               grpc.StatusCode.NOT_FOUND]


def test_a_rule_in_a_mock_file_is_placed_in_that_file(tmp_path: Path) -> None:
    _protos(tmp_path)
    (tmp_path / "mocks").mkdir()
    (tmp_path / "mocks" / "g.yaml").write_text(
        "grpc:\n  - method: /test.greet.Greeter/Say\n    response: {text: ok}\n"
        "  - method: /test.greet.Greeter/Gone\n")
    problems = _problems(tmp_path, RECORDED.format(target="recorded", port=1))
    assert problems == ["mocks/g.yaml:4:5: grpc[1]: the service's schema has no method "
                        "/test.greet.Greeter/Gone"]


async def test_a_call_that_is_not_grpc_gets_415_from_the_mock(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    from devamb.proxy.h2upstream import H2Upstream

    _protos(tmp_path)
    engine = await make_engine(PROFILE.replace("protocol: grpc", "protocol: http2"))
    bound = engine.services["g"].bound
    assert bound is not None
    client = H2Upstream("127.0.0.1", bound[1], 5.0)
    try:
        stream = await client.open([(b":method", b"GET"), (b":scheme", b"http"),
                                    (b":authority", b"x"), (b":path", b"/hello")], end=True)
        first = await stream.next()
        body = b""
        while (item := await stream.next()).kind == "data":
            body += item.data
            stream.ack(item.flow)
    finally:
        client.close()
    assert dict(first.headers)[b":status"] == b"415"
    assert b"answers gRPC calls only" in body
    (record,) = engine.store.recent(1)
    assert record.status == 415 and "grpc" not in record.notes


MATCHING = """
version: 1
services:
  g:
    listen: 0
    protocol: grpc
    target: fake
    proto: [protos/*.proto]
    targets:
      fake:
        mock:
          grpc:
            - method: /test.greet.Greeter/Say
              request: {name: ada, inner: {tags: [x, y]}}
              response: {text: tagged ada}
            - method: /test.greet.Greeter/Say
              request: {name: zed, times: 0}
              response: {text: zed without times}
            - method: /test.greet.Greeter/Say
              request: {name: zed}
              response: {text: any zed}
            - method: /test.greet.Greeter/Gather
              request: {name: only}
              response: {text: only}
"""


async def test_rules_choose_by_the_fields_of_the_first_request(
        make_engine: EngineFactory, types: Types, tmp_path: Path) -> None:
    _protos(tmp_path)
    engine = await make_engine(MATCHING)
    bound = engine.services["g"].bound
    assert bound is not None
    client = Client(types, bound[1])
    Inner = types.cls("test.greet.Inner")

    def calls() -> list[Any]:
        try:
            hello, say = client.hello, client.say
            out = [say(hello(name="ada", inner=Inner(tags=["x", "y"]), times=9), timeout=10).text,
                   say(hello(name="zed"), timeout=10).text,
                   say(hello(name="zed", times=2), timeout=10).text]
            for call in (lambda: say(hello(name="ada", inner=Inner(tags=["x"])), timeout=10),
                         lambda: client.gather(iter([hello(name="other")]), timeout=10)):
                with pytest.raises(grpc.RpcError) as failed:
                    call()
                out.append((failed.value.code(), failed.value.details()))
            return out
        finally:
            client.close()

    assert await asyncio.to_thread(calls) == [
        "tagged ada", "zed without times", "any zed",
        (grpc.StatusCode.UNIMPLEMENTED,
         "mock: no gRPC rule for /test.greet.Greeter/Say matches the request"),
        (grpc.StatusCode.UNIMPLEMENTED,
         "mock: no gRPC rule for /test.greet.Greeter/Gather matches the request"),
    ]


def test_request_fields_the_input_message_does_not_have_are_problems(tmp_path: Path) -> None:
    _protos(tmp_path)
    text = MATCHING.replace("request: {name: zed}", "request: {nope: 1}")
    (problem,) = _problems(tmp_path, text)
    assert problem.startswith("devamb.yaml:19:15: services.g.targets.fake.mock.grpc.2: the "
                              "request is not a test.greet.Hello: ")
    text = MATCHING.replace("request: {name: zed}", "request: [zed]")
    assert _problems(tmp_path, text) == [
        "devamb.yaml:20:24: services.g.targets.fake.mock.grpc.2.request: expected the request "
        "fields as a mapping, got a list"]
