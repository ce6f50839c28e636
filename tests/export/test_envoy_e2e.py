"""Each mapping row end to end: the real Envoy runs the bootstrap exported from one profile in
front of real upstreams on 127.0.0.1, and does what the profile says (one Envoy per module)."""

from __future__ import annotations

import json
import ssl
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from devamb.export.bootstrap import EnvoyExport, export_envoy
from devamb.export.load import load_for_export
from tests.certs import certificates
from tests.export.envoy_run import RunningEnvoy
from tests.export.servers import EchoServer, HttpServer, echo_through, request, serving
from tests.export.tls import localhost_certificate
from tests.grpc.greeter import Client, Greeter, Types, compile_set

TOKEN = "tok-Zq81-envoy-reads-me"


@dataclass
class Stack:
    envoy: RunningEnvoy
    export: EnvoyExport
    a: HttpServer
    b: HttpServer
    flaky: HttpServer
    secure: HttpServer
    shadow: HttpServer
    types: Types
    server_names: list[str | None]

    def port(self, service: str) -> int:
        return self.envoy.ports[service]


PROFILE = """\
version: 1
name: e2e
services:
  direct:
    listen: 9001
    targets:
      one:
        url: http://127.0.0.1:{a}/base
        headers: {{X-Token: "Bearer ${{E2E_TOKEN}}", X-Plain: "100% literal"}}
  pool:
    listen: 9002
    targets:
      both: {{endpoints: [http://127.0.0.1:{a}, http://127.0.0.1:{b}], balance: round_robin}}
  split:
    listen: 9003
    target: canary
    targets:
      a: http://127.0.0.1:{a}
      b: http://127.0.0.1:{b}
      shadow: http://127.0.0.1:{shadow}
      canary: {{split: {{a: 80, b: 20}}, mirror: shadow}}
  retry:
    listen: 9004
    retries: {{attempts: 3, on: [503], backoff: 10ms, max_backoff: 20ms}}
    targets: {{flaky: http://127.0.0.1:{flaky}}}
  slow-try:
    listen: 9013
    per_try_timeout: 200ms
    retries: {{attempts: 2, on: [timeout], backoff: 10ms}}
    targets: {{flaky: http://127.0.0.1:{flaky}}}
  faulty:
    listen: 9005
    header_faults: true
    faults:
      half: {{kind: abort, status: 429, probability: 0.5, match: {{path: /half*}}}}
      slow: {{kind: latency, delay: 300ms, match: {{path: /slow}}}}
    targets: {{a: http://127.0.0.1:{a}}}
  mock:
    listen: 9006
    targets:
      m:
        mock:
          routes:
            - match: {{method: GET, path: /hello}}
              respond: {{json: {{hi: there}}}}
            - match: {{path: "/users/{{id}}"}}
              respond: {{status: 201, body: made}}
          fallback: {{status: 418, body: nope}}
  secure:
    listen: 9007
    targets:
      tls: {{url: "https://127.0.0.1:{secure}", tls: {{ca: {ca}}}}}
  checked:
    listen: 9010
    targets:
      pool:
        endpoints: [http://127.0.0.1:{a}, http://127.0.0.1:{sick}]
        health: {{path: /healthz, interval: 1s, timeout: 1s, healthy: 1, unhealthy: 1}}
  sticky:
    listen: 9009
    targets:
      users: {{endpoints: [http://127.0.0.1:{a}, http://127.0.0.1:{b}], balance: hash,
               hash_on: "header:X-User"}}
  named:
    listen: 9012
    targets:
      tls: {{url: "https://localhost:{named}", tls: {{ca: {sni_ca}}}}}
  rpc:
    listen: 9011
    protocol: grpc
    targets: {{greeter: "http://127.0.0.1:{grpc}"}}
  tcp:
    listen: 9008
    protocol: tcp
    targets: {{echo: "tcp://127.0.0.1:{echo}"}}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("envoy-e2e")
    ca, cert, key = certificates(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    a, b, flaky = HttpServer("a"), HttpServer("b"), HttpServer("flaky")
    secure, echo, shadow = HttpServer("secure", context), EchoServer(), HttpServer("shadow")
    sick = HttpServer("sick")
    sick.healthy = False
    types = Types(compile_set(folder / "greet.pb"))
    sni_ca, sni_cert, sni_key = localhost_certificate(folder)
    server_names: list[str | None] = []
    by_name = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    by_name.load_cert_chain(sni_cert, sni_key)
    by_name.sni_callback = lambda _sock, name, _ctx: server_names.append(name)
    named = HttpServer("named", by_name)
    with serving(a, b, flaky, secure, echo, shadow, sick, named), Greeter(types) as greeter:
        profile = folder / "devamb.yaml"
        profile.write_text(PROFILE.format(a=a.port, b=b.port, flaky=flaky.port,
                                          secure=secure.port, echo=echo.port, ca=ca,
                                          shadow=shadow.port, sick=sick.port,
                                          grpc=greeter.port, named=named.port,
                                          sni_ca=sni_ca))
        export = export_envoy(load_for_export(profile, environ={}))
        envoy = RunningEnvoy(export.text, folder, env={"E2E_TOKEN": TOKEN})
        try:
            yield Stack(envoy, export, a, b, flaky, secure, shadow, types, server_names)
        finally:
            envoy.stop()


def _json(body: bytes) -> dict[str, object]:
    data = json.loads(body)
    assert isinstance(data, dict)
    return data


def test_url_target_headers_and_path_prefix(stack: Stack) -> None:
    """Headers from ${VAR} arrive with the value Envoy read from its environment; the URL's
    path prefixes the request's; Host is the target's."""
    status, _, body = request(stack.port("direct"), "/charge?x=1")
    seen = _json(body)
    headers = seen["headers"]
    assert status == 200 and seen["path"] == "/base/charge?x=1"
    assert isinstance(headers, dict)
    assert headers["x-token"] == f"Bearer {TOKEN}"
    assert headers["x-plain"] == "100% literal"
    assert headers["host"] == f"127.0.0.1:{stack.a.port}"
    assert stack.export.env_vars == ("E2E_TOKEN",)


def test_pool_reaches_both_endpoints(stack: Stack) -> None:
    upstreams = Counter(_json(request(stack.port("pool"))[2])["upstream"] for _ in range(20))
    assert set(upstreams) == {"a", "b"}
    assert abs(upstreams["a"] - upstreams["b"]) <= 2  # round robin


def test_split_weights_hold(stack: Stack) -> None:
    upstreams = Counter(_json(request(stack.port("split"))[2])["upstream"] for _ in range(400))
    share = upstreams["b"] / 400
    assert 0.1 < share < 0.3, upstreams  # 20 % expected; 5 standard deviations either side


def test_health_checks_keep_traffic_off_a_failing_endpoint(stack: Stack) -> None:
    """Envoy waits for the first round of checks before it serves (cluster warming)."""
    upstreams = {_json(request(stack.port("checked"))[2])["upstream"] for _ in range(20)}
    assert upstreams == {"a"}


def test_split_mirrors_each_request(stack: Stack) -> None:
    request(stack.port("split"), "/mirrored-once")
    deadline = time.monotonic() + 30  # the copy travels on its own
    while time.monotonic() < deadline:
        if any(path == "/mirrored-once" for path, _ in stack.shadow.hits):
            break
        time.sleep(0.05)
    assert any(path == "/mirrored-once" for path, _ in stack.shadow.hits)


def test_hash_on_keeps_a_user_on_one_endpoint(stack: Stack) -> None:
    for user in range(8):
        seen = {_json(request(stack.port("sticky"), headers={"X-User": f"u{user}"})[2])[
            "upstream"] for _ in range(5)}
        assert len(seen) == 1


def test_latency_fault_and_header_delay(stack: Stack) -> None:
    started = time.monotonic()
    assert request(stack.port("faulty"), "/slow")[0] == 200
    assert time.monotonic() - started >= 0.25  # Envoy's timer runs in whole milliseconds
    started = time.monotonic()
    assert request(stack.port("faulty"), "/x", headers={"x-devamb-fault-delay": "200"})[0] == 200
    assert time.monotonic() - started >= 0.15


def test_target_header_picks_another_target(stack: Stack) -> None:
    for _ in range(5):
        seen = _json(request(stack.port("split"), headers={"X-Devamb-Target": "b"})[2])
        assert seen["upstream"] == "b"


def test_a_503_is_retried(stack: Stack) -> None:
    stack.flaky.hits.clear()
    stack.flaky.statuses[:] = [503, 503]
    status, _, _ = request(stack.port("retry"))
    assert status == 200
    assert len(stack.flaky.hits) == 3  # two 503s, then the answer


def test_a_try_cut_by_per_try_timeout_is_retried(stack: Stack) -> None:
    """`on: [timeout]` is exported as Envoy's `reset`, which retries a timed-out try."""
    stack.flaky.hits.clear()
    stack.flaky.delays[:] = [1.0]
    status, _, _ = request(stack.port("slow-try"))
    assert status == 200
    assert len(stack.flaky.hits) == 2


def test_abort_fires_at_its_percentage_on_its_paths(stack: Stack) -> None:
    statuses = Counter(request(stack.port("faulty"), "/half/1")[0] for _ in range(400))
    assert set(statuses) == {200, 429}
    assert 0.35 < statuses[429] / 400 < 0.65, statuses
    assert all(request(stack.port("faulty"), "/other")[0] == 200 for _ in range(20))


def test_header_faults(stack: Stack) -> None:
    status, _, _ = request(stack.port("faulty"), "/x", headers={"x-devamb-fault-abort": "418"})
    assert status == 418


def test_mock_routes_answer_from_direct_response(stack: Stack) -> None:
    status, headers, body = request(stack.port("mock"), "/hello")
    assert (status, json.loads(body)) == (200, {"hi": "there"})
    assert headers["content-type"] == "application/json"
    assert request(stack.port("mock"), "/hello", method="POST")[0] == 418  # GET only
    status, _, body = request(stack.port("mock"), "/users/7")
    assert (status, body) == (201, b"made")
    assert request(stack.port("mock"), "/users/7/x")[:3:2] == (418, b"nope")


def test_tls_upstream_verified_with_the_profile_ca(stack: Stack) -> None:
    status, _, body = request(stack.port("secure"), "/s")
    assert status == 200 and _json(body)["upstream"] == "secure"


def test_tls_upstream_by_name_gets_sni(stack: Stack) -> None:
    """A LOGICAL_DNS cluster: SNI and the certificate's DNS name are the URL's host."""
    status, _, body = request(stack.port("named"), "/n")
    headers = _json(body)["headers"]
    assert status == 200 and isinstance(headers, dict)
    assert str(headers["host"]).startswith("localhost:")
    assert "localhost" in stack.server_names


def test_grpc_calls_cross_over_http2(stack: Stack) -> None:
    client = Client(stack.types, stack.port("rpc"))
    try:
        reply = client.say(client.hello(name="envoy", times=2), timeout=30)
        assert (reply.text, reply.count) == ("hello envoy", 2)
        streamed = [r.text for r in client.many(client.hello(name="n", times=3), timeout=30)]
        assert streamed == ["n 0", "n 1", "n 2"]
        with pytest.raises(grpc.RpcError) as failed:
            client.say(client.hello(name="fail"), timeout=30)
        assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        client.close()


def test_bytes_cross_tcp_proxy(stack: Stack) -> None:
    data = bytes(range(256)) * 400  # 100 KiB
    assert echo_through(stack.port("tcp"), data) == data


def test_metrics_and_ready(stack: Stack) -> None:
    status, text = stack.envoy.admin("/stats/prometheus")
    assert status == 200 and "envoy_cluster_upstream_rq" in text
    status, _, body = request(stack.port("devamb-metrics"), "/ready")
    assert (status, body.strip()) == (200, b"LIVE")
    status, _, body = request(stack.port("devamb-metrics"), "/stats/prometheus")
    assert status == 200 and b"envoy_http_downstream_rq_total" in body
    assert request(stack.port("devamb-metrics"), "/quitquitquit", method="POST")[0] == 404


def test_the_secret_is_in_envoy_not_in_the_export(stack: Stack) -> None:
    assert TOKEN not in stack.export.text
    assert "%ENVIRONMENT(E2E_TOKEN)%" in stack.export.text

