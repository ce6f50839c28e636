"""Each row of the mapping table, as Envoy configuration, and the report lines of what does not
map exactly (at the profile's FILE:LINE:COL)."""

from __future__ import annotations

from pathlib import Path

from tests.certs import ca_pem
from tests.export.helpers import (
    cluster,
    export_text,
    http_filters,
    lines,
    listener,
    parsed,
    routes,
    saying,
)


def test_url_targets_clusters_and_tls(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_bytes(ca_pem())
    export = export_text(tmp_path, """\
        version: 1
        services:
          api:
            listen: 9001
            target: local
            targets:
              local: http://127.0.0.1:8001
              remote: {url: "https://api.example.com/v2", tls: {ca: ca.pem}}
              lax: {url: "https://lax.example.com", tls: {verify: false}}
        """)
    local = cluster(export, "api/local")
    assert local["type"] == "STATIC"
    assert local["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"] == {
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 8001}},
        "hostname": "127.0.0.1:8001"}
    remote = cluster(export, "api/remote")
    assert remote["type"] == "LOGICAL_DNS"
    tls = remote["transport_socket"]["typed_config"]
    assert tls["sni"] == "api.example.com"
    validation = tls["common_tls_context"]["validation_context"]
    assert validation["trusted_ca"] == {"inline_string": ca_pem().decode()}
    assert validation["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "api.example.com"}}]
    lax = cluster(export, "api/lax")["transport_socket"]["typed_config"]
    assert "validation_context" not in lax["common_tls_context"]
    assert lax["sni"] == "lax.example.com"
    api = routes(export, "api")
    assert api[-1] == {"match": {"prefix": "/"}, "route": {
        "cluster": "api/local", "timeout": "30s", "auto_host_rewrite": True}}
    remote_route = next(r for r in api if r["route"]["cluster"] == "api/remote")
    assert remote_route["match"]["headers"] == [
        {"name": "x-devamb-target", "string_match": {"exact": "remote"}}]
    assert remote_route["route"]["regex_rewrite"] == {
        "pattern": {"regex": "^/"}, "substitution": "/v2/"}
    assert listener(export, "api")["address"] == {
        "socket_address": {"address": "127.0.0.1", "port_value": 9001}}


def test_headers_name_the_variable_never_its_value(tmp_path: Path) -> None:
    export = export_text(tmp_path, """\
        version: 1
        services:
          api:
            listen: 9001
            targets:
              local:
                url: http://127.0.0.1:8001
                headers: {Authorization: "Bearer ${TOKEN:-dev}", X-Cost: "5% $$ off"}
        """, environ={"TOKEN": "value-from-env-123"})
    added = routes(export, "api")[-1]["request_headers_to_add"]
    assert [h["header"] for h in added] == [
        {"key": "Authorization", "value": "Bearer %ENVIRONMENT(TOKEN)%"},
        {"key": "X-Cost", "value": "5%% $ off"}]
    assert "value-from-env-123" not in export.text
    assert export.env_vars == ("TOKEN",)
    assert saying(export, "default is not exported") == [
        "devamb.yaml:8:19: services.api.targets.local.headers.Authorization: ${TOKEN}'s "
        "default is not exported: Envoy reads TOKEN from its environment (from a Kubernetes "
        "Secret in the k8s export)"]


def test_pools_balance_health_outlier(tmp_path: Path) -> None:
    export = export_text(tmp_path, """\
        version: 1
        services:
          api:
            listen: 9001
            target: rr
            targets:
              rr:
                endpoints: [http://127.0.0.1:8001, http://127.0.0.1:8002]
                health: {path: /healthz, interval: 2s, timeout: 500ms, healthy: 2, unhealthy: 3}
                outlier: {consecutive_failures: 4, eject_for: 10s, max_ejected: 50%}
              least: {endpoints: [http://a.internal:80, http://b.internal:80],
                      balance: least_requests}
              random: {endpoints: [http://127.0.0.1:8001], balance: random}
              by-user: {endpoints: [http://127.0.0.1:8001], balance: hash,
                        hash_on: "header:X-User"}
              by-cookie: {endpoints: [http://127.0.0.1:8001], balance: hash,
                          hash_on: "cookie:sid"}
              by-ip: {endpoints: [http://127.0.0.1:8001], balance: hash, hash_on: client_ip}
              by-path: {endpoints: [http://127.0.0.1:8001], balance: hash, hash_on: path}
        """)
    rr = cluster(export, "api/rr")
    assert rr["lb_policy"] == "ROUND_ROBIN"
    assert len(rr["load_assignment"]["endpoints"][0]["lb_endpoints"]) == 2
    assert rr["health_checks"] == [{"timeout": "0.500s", "interval": "2s",
                                    "healthy_threshold": 2, "unhealthy_threshold": 3,
                                    "http_health_check": {"path": "/healthz"}}]
    assert rr["outlier_detection"] == {
        "consecutive_gateway_failure": 4, "enforcing_consecutive_gateway_failure": 100,
        "enforcing_consecutive_5xx": 0, "base_ejection_time": "10s",
        "max_ejection_percent": 50, "interval": "1s"}
    least = cluster(export, "api/least")
    assert (least["lb_policy"], least["type"]) == ("LEAST_REQUEST", "STRICT_DNS")
    assert cluster(export, "api/random")["lb_policy"] == "RANDOM"
    assert cluster(export, "api/by-user")["lb_policy"] == "RING_HASH"
    policies = {r["route"]["cluster"]: r["route"].get("hash_policy") for r in routes(
        export, "api")}
    assert policies["api/by-user"] == [{"header": {"header_name": "X-User"}}]
    assert policies["api/by-cookie"] == [{"cookie": {"name": "sid"}}]
    assert policies["api/by-ip"] == [{"connection_properties": {"source_ip": True}}]
    assert policies["api/by-path"] == [{"header": {"header_name": ":path"}}]
    assert saying(export, "ketama")
    assert saying(export, "times the number of its ejections")


def test_tcp_health_check(tmp_path: Path) -> None:
    export = export_text(tmp_path, """\
        version: 1
        services:
          cache:
            listen: 6390
            protocol: tcp
            targets:
              pool: {endpoints: [tcp://127.0.0.1:6379, tcp://127.0.0.1:6380],
                     health: {interval: 2s}}
        """)
    check = cluster(export, "cache/pool")["health_checks"][0]
    assert check["tcp_health_check"] == {} and check["interval"] == "2s"
    proxy = listener(export, "cache")["filter_chains"][0]["filters"][0]
    assert proxy["name"] == "envoy.filters.network.tcp_proxy"
    assert proxy["typed_config"]["cluster"] == "cache/pool"


def test_split_sticky_and_mirror(tmp_path: Path) -> None:
    export = export_text(tmp_path, """\
        version: 1
        services:
          api:
            listen: 9001
            target: canary
            target_header: false
            targets:
              stable: http://127.0.0.1:8001
              next: {url: http://127.0.0.1:8002, headers: {X-Canary: "yes"}}
              shadow: http://127.0.0.1:8003
              debug: echo
              canary:
                split: {stable: 90, next: 10, debug: 0}
                sticky: header:X-User
                mirror: shadow
        """)
    route = routes(export, "api")[-1]
    assert route["route"]["weighted_clusters"] == {"clusters": [
        {"name": "api/stable", "weight": 90},
        {"name": "api/next", "weight": 10, "request_headers_to_add": [
            {"header": {"key": "X-Canary", "value": "yes"},
             "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]}]}
    assert route["route"]["hash_policy"] == [{"header": {"header_name": "X-User"}}]
    assert route["route"]["request_mirror_policies"] == [{"cluster": "api/shadow"}]
    assert saying(export, "sticky keys choose the endpoint within a member only")
    assert len(routes(export, "api")) == 1  # target_header: false


def test_split_members_that_cannot_be_exported(tmp_path: Path) -> None:
    export = export_text(tmp_path, """\
        version: 1
        services:
          api:
            listen: 9001
            target: canary
            targets:
              live: http://127.0.0.1:8001
              debug: echo
              canary: {split: {live: 50, debug: 50}, mirror: debug}
        """)
    assert routes(export, "api")[-1]["route"]["weighted_clusters"]["clusters"] == [
        {"name": "api/live", "weight": 50}]
    assert saying(export, "canary.split.debug: member not exported (echo target)")
    assert saying(export, "canary.mirror: mirror not exported (echo target)")


def test_retries_timeouts_breaker(tmp_path: Path) -> None:
    export = export_text(tmp_path, """\
        version: 1
        services:
          orders:
            listen: 9001
            timeout: 10s
            connect_timeout: 1s
            per_try_timeout: 3s
            retries: {attempts: 3, on: [connect-failure, reset, timeout, 502, 503],
                      backoff: 100ms, max_backoff: 1s, budget: 0.2}
            circuit_breaker: {failures: 5, window: 10s, open_for: 15s, max_requests: 50,
                              max_pending: 10}
            targets: {local: http://127.0.0.1:8001}
        """)
    route = routes(export, "orders")[-1]["route"]
    assert route["timeout"] == "10s"
    assert route["retry_policy"] == {
        "retry_on": "connect-failure,reset,retriable-status-codes",
        "num_retries": 2,
        "retry_back_off": {"base_interval": "0.100s", "max_interval": "1s"},
        "retriable_status_codes": [502, 503],
        "per_try_timeout": "3s",
        "retriable_request_headers": [{"name": ":method", "string_match": {
            "safe_regex": {"regex": "GET|HEAD|OPTIONS|PUT|DELETE|TRACE"}}}],
    }
    local = cluster(export, "orders/local")
    assert local["connect_timeout"] == "1s"
    assert local["circuit_breakers"] == {"thresholds": [{
        "priority": "DEFAULT", "max_requests": 50, "max_pending_requests": 10,
        "retry_budget": {"budget_percent": {"value": 20.0}, "min_retry_concurrency": 3}}]}
    assert local["outlier_detection"]["consecutive_gateway_failure"] == 5
    assert local["outlier_detection"]["base_ejection_time"] == "15s"
    assert saying(export, "devamb.yaml:5:5: services.orders.timeout: Envoy's route timeout")
    assert saying(export, "'timeout' is exported as Envoy's 'reset'")
    assert saying(export, "exported as outlier detection")


def test_unsafe_retries_have_no_method_filter(tmp_path: Path) -> None:
    export = export_text(tmp_path, """\
        version: 1
        services:
          api:
            listen: 9001
            retries: {unsafe: true, on: [5xx]}
            targets: {local: http://127.0.0.1:8001}
        """)
    policy = routes(export, "api")[-1]["route"]["retry_policy"]
    assert policy["retry_on"] == "5xx" and "retriable_request_headers" not in policy


def test_http_faults(tmp_path: Path) -> None:
    export = export_text(tmp_path, """\
        version: 1
        services:
          pay:
            listen: 9001
            header_faults: true
            faults:
              flaky: {kind: abort, status: 503, probability: 0.25,
                      match: {method: POST, path: /charge*, header: {X-Env: "test*"}}}
              slow: {kind: latency, delay: 300ms, jitter: 100ms}
              later: {kind: abort, enabled: false}
              counted: {kind: abort, times: 3}
              trickle: {kind: bandwidth, rate: 2KiB}
              cut: {kind: reset}
            targets: {local: http://127.0.0.1:8001}
        """)
    filters = {f["name"]: f["typed_config"] for f in http_filters(export, "pay")}
    assert list(filters)[-1] == "envoy.filters.http.router"
    assert filters["devamb.fault.flaky"]["abort"] == {
        "http_status": 503, "percentage": {"numerator": 250000, "denominator": "MILLION"}}
    assert filters["devamb.fault.flaky"]["headers"] == [
        {"name": ":method", "string_match": {"safe_regex": {"regex": "POST"}}},
        {"name": ":path", "string_match": {"safe_regex": {"regex": r"/charge.*(\?.*)?"}}},
        {"name": "x-env", "string_match": {"safe_regex": {"regex": "test.*"}}}]
    assert filters["devamb.fault.slow"]["delay"]["fixed_delay"] == "0.300s"
    assert filters["devamb.fault.trickle"]["response_rate_limit"]["fixed_limit"] == {
        "limit_kbps": 2}
    assert filters["devamb.fault.header"]["abort"]["header_abort"] == {}
    assert "x-devamb-fault-abort" in filters["devamb.header_faults"]["default_source_code"][
        "inline_string"]
    assert "devamb.fault.later" not in filters and "devamb.fault.cut" not in filters
    assert saying(export, "faults.later: disabled at start")
    assert saying(export, "faults.counted.times: 'times' is dropped")
    assert saying(export, "faults.slow.jitter: Envoy's delay is fixed")
    assert saying(export, "faults.cut: reset fault not exported")


def test_tcp_split_and_tcp_faults(tmp_path: Path) -> None:
    export = export_text(tmp_path, """\
        version: 1
        services:
          db:
            listen: 5433
            protocol: tcp
            target: both
            faults: {lag: {kind: latency, delay: 50ms}}
            targets:
              a: tcp://127.0.0.1:5432
              b: tcp://127.0.0.1:5434
              both: {split: {a: 3, b: 1}}
        """)
    proxy = listener(export, "db")["filter_chains"][0]["filters"][0]["typed_config"]
    assert proxy["weighted_clusters"] == {"clusters": [
        {"name": "db/a", "weight": 3}, {"name": "db/b", "weight": 1}]}
    assert saying(export, "faults.lag: latency fault not exported: Envoy has no faults for TCP")


def test_redis_shards(tmp_path: Path) -> None:
    export = export_text(tmp_path, """\
        version: 1
        services:
          cache:
            listen: 6380
            protocol: tcp
            targets:
              sharded:
                shards: {a: tcp://127.0.0.1:7001, b: tcp://127.0.0.1:7002}
                key: redis
                auth: ${REDIS_PASSWORD}
                eject_after: 3
        """, environ={"REDIS_PASSWORD": "redis-pass-from-env"})
    proxy = listener(export, "cache")["filter_chains"][0]["filters"][0]
    assert proxy["name"] == "envoy.filters.network.redis_proxy"
    config = proxy["typed_config"]
    assert config["prefix_routes"] == {"catch_all_route": {"cluster": "cache/sharded"}}
    assert config["downstream_auth_passwords"] == [{"environment_variable": "REDIS_PASSWORD"}]
    sharded = cluster(export, "cache/sharded")
    assert sharded["lb_policy"] == "RING_HASH"
    options = sharded["typed_extension_protocol_options"]["envoy.filters.network.redis_proxy"]
    assert options["auth_password"] == {"environment_variable": "REDIS_PASSWORD"}
    assert "redis-pass-from-env" not in export.text
    assert saying(export, "not ketama (MD5)")


def test_mock_routes(tmp_path: Path) -> None:
    export = export_text(tmp_path, """\
        version: 1
        services:
          pay:
            listen: 9001
            target: mock
            targets:
              mock:
                mock:
                  routes:
                    - match: {method: [GET, HEAD], path: /status}
                      respond: {json: {ok: true}, headers: {X-Mock: "1"}}
                    - match: {path: "/items/{id}/*.json", query: {page: 2},
                              headers: {X-Key: {present: true}}}
                      respond: {status: 204}
                    - match: {path: /echo}
                      respond: {body: "you said {{query.q}}"}
                    - match: {path: /charge, json: {amount: 1}}
                      respond: {status: 402}
                  fallback: {proxy: live}
              live: http://127.0.0.1:8001
        """)
    found = routes(export, "pay")
    mock_routes = [r for r in found if "x-devamb-target" not in str(r["match"])]
    assert mock_routes[0] == {
        "match": {"path": "/status", "headers": [
            {"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD"}}}]},
        "direct_response": {"status": 200, "body": {"inline_string": '{"ok": true}'}},
        "response_headers_to_add": [
            {"header": {"key": "X-Mock", "value": "1"},
             "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
            {"header": {"key": "Content-Type", "value": "application/json"},
             "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]}
    assert mock_routes[1]["match"] == {
        "safe_regex": {"regex": r"/items/[^/]+/[^/]*\.json"},
        "headers": [{"name": "x-key", "present_match": True}],
        "query_parameters": [{"name": "page", "string_match": {"exact": "2"}}]}
    assert mock_routes[1]["direct_response"] == {"status": 204}
    assert mock_routes[-1]["route"]["cluster"] == "pay/live"  # the proxy fallback
    assert len(mock_routes) == 3
    assert saying(export, "devamb.yaml:15:15: services.pay.targets.mock.mock.routes.2: route "
                          "'ANY /echo' not exported: its body is a {{…}} template")
    assert saying(export, "routes.3: route 'ANY /charge' not exported: it matches JSON body")


def test_admin_and_metrics(tmp_path: Path) -> None:
    from devamb.export.bootstrap import Options

    export = export_text(tmp_path, """\
        version: 1
        services: {api: {listen: 9001, targets: {local: "http://127.0.0.1:8001"}}}
        """, options=Options(admin_port=9911, metrics_port=9912))
    data = parsed(export)
    assert data["admin"] == {"address": {"socket_address": {"address": "127.0.0.1",
                                                            "port_value": 9911}}}
    metrics = listener(export, "devamb-metrics")
    assert metrics["address"]["socket_address"]["port_value"] == 9912
    paths = [r["match"]["path"] for r in routes(export, "devamb-metrics")]
    assert paths == ["/stats/prometheus", "/ready"]
    admin = cluster(export, "devamb/admin")
    assert admin["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"][
        "address"]["socket_address"]["port_value"] == 9911


def test_what_is_not_mapped_is_listed_with_why(tmp_path: Path) -> None:
    export = export_text(tmp_path, """\
        version: 1
        services:
          api:
            listen: 9001
            inspect: {keep: 10}
            targets: {debug: echo}
          cache:
            listen: 9002
            protocol: tcp
            targets: {debug: echo}
        scenarios:
          storm:
            steps: [{at: 0s, service: api, clear: true}]
        """)
    assert lines(export) == [
        "devamb.yaml:3:3: services.api: service not exported: its target 'debug' has no "
        "Envoy equivalent",
        "devamb.yaml:5:5: services.api.inspect: recording is devamb's own: not exported",
        "devamb.yaml:6:15: services.api.targets.debug: not exported: echo is devamb's own "
        "test upstream; Envoy has none",
        "devamb.yaml:7:3: services.cache: service not exported: its target 'debug' has no "
        "Envoy equivalent",
        "devamb.yaml:10:15: services.cache.targets.debug: not exported: echo is devamb's own "
        "test upstream; Envoy has none",
        "devamb.yaml:12:3: scenarios.storm: scenarios drive devamb's live faults: not "
        "exported",
    ]
    assert [item["name"] for item in parsed(export)["static_resources"]["listeners"]] == [
        "devamb-metrics"]


def test_http2_and_grpc_upstreams_speak_http2(tmp_path: Path) -> None:
    export = export_text(tmp_path, """\
        version: 1
        services:
          rpc: {listen: 9001, protocol: grpc, targets: {local: "http://127.0.0.1:50051"}}
        """)
    options = cluster(export, "rpc/local")["typed_extension_protocol_options"]
    assert options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"][
        "explicit_http_config"] == {"http2_protocol_options": {}}


def test_listen_hosts_and_a_missing_target_set(tmp_path: Path) -> None:
    from devamb.export.bootstrap import Options

    export = export_text(tmp_path, """\
        version: 1
        services:
          a: {listen: "localhost:9001", targets: {local: "http://localhost:8001"}}
          b: {listen: "[::1]:9002", targets: {local: "http://127.0.0.1:8002"}}
        """, options=Options(target_set="staging"))
    assert listener(export, "a")["address"]["socket_address"]["address"] == "127.0.0.1"
    assert listener(export, "b")["address"]["socket_address"]["address"] == "::1"
    assert cluster(export, "a/local")["type"] == "LOGICAL_DNS"
    assert saying(export, "services.a.targets: has no target 'staging': its 'local' is "
                          "exported")


def test_docker_targets_are_listed_with_why(tmp_path: Path) -> None:
    export = export_text(tmp_path, """\
        version: 1
        services:
          web:
            listen: 9001
            target: named
            targets:
              named: {docker: {container: web-dev, port: 8000}}
              local: http://127.0.0.1:8001
        """)
    assert saying(export, "devamb.yaml:7:7: services.web.targets.named: not exported: a "
                          "docker target starts a container on the laptop")
    assert saying(export, "services.web: service not exported: its target 'named'")


def test_a_privileged_port_is_reported(tmp_path: Path) -> None:
    export = export_text(tmp_path, """\
        version: 1
        services: {web: {listen: 80, targets: {local: "http://127.0.0.1:8001"}}}
        """)
    assert saying(export, "devamb.yaml:2:18: services.web.listen: a port below 1024")
