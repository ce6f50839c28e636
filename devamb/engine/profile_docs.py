"""What each key of devamb.yaml means: its type, default and one line, beside the loader's
key tables.

The keys themselves come from the JSON Schema (devamb/engine/json_schema.py), which imports the
loader's tables; `places()` walks it into one `Section` per mapping, and `DOCS` describes every
(section, key) there. tests/profile/test_profile_docs.py fails when a key has no entry here or an
entry names a key the loader no longer has, so the generated reference (docs/reference/profile.md,
written at each site build by scripts/mkdocs_hooks.py) and the schema's editor hints cannot drift.

A path names a place: `services.<service>.targets.<target>(pool)` is a pool target's mapping;
`services.<service>.faults.<fault>` holds the keys every fault kind has, `…(latency)` latency's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

NAMED = {"services": "service", "targets": "target", "faults": "fault", "scenarios": "scenario",
         "bastions": "bastion"}


@dataclass(frozen=True)
class KeyDoc:
    type: str
    default: str  # "required", "none" (unset: the feature is off), or the value as written
    text: str  # one line


@dataclass(frozen=True)
class Section:
    """One mapping of the profile: where it is, which kind it is (a target or fault kind), and
    its keys with their schemas."""

    path: str
    kind: str  # "" unless the mapping is one kind of several (`url`, `latency`, …)
    keys: dict[str, dict[str, Any]]

    def doc_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key


def _objects(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in node.get("anyOf", ()) if "properties" in b]


def places(schema: dict[str, Any]) -> Iterator[Section]:
    """Every mapping of the profile, outermost first. Where a value is one of several kinds of
    mapping (targets, faults), the keys all kinds share come first, at the bare path."""
    yield from _walk(schema, "")


def _walk(node: dict[str, Any], path: str) -> Iterator[Section]:
    branches = _objects(node)
    if len(branches) > 1:
        first = branches[0]["properties"]
        common = [k for k in first if all(k in b["properties"] for b in branches)]
        if common:
            yield from _mapping({k: first[k] for k in common}, path, "")
        for b in branches:
            own = {k: v for k, v in b["properties"].items() if k not in common}
            yield from _mapping(own, f"{path}({b['title']})", b["title"])
    elif branches:
        yield from _walk(branches[0], path)
    elif "properties" in node:
        yield from _mapping(node["properties"], path, "")
    elif isinstance(node.get("additionalProperties"), dict):
        name = NAMED.get(path.rsplit(".", 1)[-1], "name")
        yield from _walk(node["additionalProperties"], f"{path}.<{name}>")
    elif isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")


def _mapping(keys: dict[str, dict[str, Any]], path: str, kind: str) -> Iterator[Section]:
    section = Section(path, kind, keys)
    yield section
    for key, value in keys.items():
        yield from _walk(value, section.doc_path(key))


def describe(schema: dict[str, Any]) -> None:
    """Put each key's line into the schema (`description`), for editors' hints."""
    for section in places(schema):
        for key, value in section.keys.items():
            doc = DOCS.get(section.doc_path(key))
            if doc is not None:
                value["description"] = doc.text


S = "services.<service>"
T = f"{S}.targets.<target>"
F = f"{S}.faults.<fault>"
M = f"{T}(mock).mock"
R = f"{M}.routes[]"
D = KeyDoc
DURATION, SIZE = "duration", "size"

DOCS: dict[str, KeyDoc] = {
    # the top level
    "version": D("integer", "1", "The schema version; 1 is the only one."),
    "name": D("string", "the folder's name", "The profile's name, shown in `status` and the TUI."),
    "services": D("mapping", "required", "Service name → service: one dependency of the app each."),
    "scenarios": D("mapping", "none", "Scenario name → a timeline of fault changes."),
    "inspect": D("mapping", "none", "Recording limits shared by every service."),
    "inspect.budget": D(SIZE, "64MiB", "Bytes all recorded exchanges may use together."),
    "toxiproxy_api": D("bool, port or HOST:PORT", "off",
                       "Also serve a Toxiproxy-compatible API there (loopback only)."),
    "export": D("mapping", "none", "What `devamb export` writes for Envoy and Kubernetes."),
    "export.targets": D("mapping", "the active target",
                        "Service → the target to export for it."),
    "export.hosts": D("mapping", "none",
                      "Upstream `HOST:PORT` → the `HOST:PORT` the exported cluster uses."),
    "bastions": D("mapping", "none",
                  "Bastion name → an SSH bastion targets reach upstreams through."),
    # a bastion
    "bastions.<bastion>.host": D("string", "required",
                                 "The host name, or a `Host` alias of `~/.ssh/config`."),
    "bastions.<bastion>.port": D("integer", "from ~/.ssh/config, else 22", "The SSH port."),
    "bastions.<bastion>.user": D("string", "from ~/.ssh/config, else your login",
                                 "The user to log in as."),
    "bastions.<bastion>.identity_file": D("path", "ssh-agent and OpenSSH's keys",
                                          "A private key, readable by you only."),
    "bastions.<bastion>.known_hosts": D("path", "~/.ssh/known_hosts",
                                        "The known_hosts file host keys are checked against."),
    "bastions.<bastion>.accept_new": D("bool", "false",
                                       "Accept and record the key of a host not known yet."),
    "bastions.<bastion>.jump": D("string or list", "none",
                                 "Bastions passed through first, in order (like `ProxyJump`)."),
    "bastions.<bastion>.keepalive": D(DURATION, "15s",
                                      "Interval of SSH keepalives; `0s` for none."),
    "bastions.<bastion>.passphrase": D("${VAR}", "none", "The identity file's passphrase."),
    "bastions.<bastion>.password": D("${VAR}", "none", "A password for password authentication."),
    # a scenario
    "scenarios.<scenario>.steps": D("list", "required", "The fault changes, each at its time."),
    "scenarios.<scenario>.loop": D("bool", "false", "Start again after `length`."),
    "scenarios.<scenario>.length": D(DURATION, "the last step's time", "A loop's period."),
    "scenarios.<scenario>.steps[].at": D(DURATION, "required",
                                         "When, from the start of the scenario (or of each loop)."),
    "scenarios.<scenario>.steps[].service": D("string", "required", "The service it changes."),
    "scenarios.<scenario>.steps[].add": D("fault", "none",
        "A fault to add, as in `faults:`, with an optional `name`."),
    "scenarios.<scenario>.steps[].on": D("string", "none", "Turn this fault of the service on."),
    "scenarios.<scenario>.steps[].off": D("string", "none", "Turn this fault of the service off."),
    "scenarios.<scenario>.steps[].remove": D("string", "none", "Remove this fault of the service."),
    "scenarios.<scenario>.steps[].clear": D("bool", "false",
                                            "Remove added faults and turn the profile's off."),
    # a service
    f"{S}.listen": D("port or HOST:PORT", "required",
                     "Where the service listens; the host defaults to 127.0.0.1, 0 picks a port."),
    f"{S}.protocol": D("http | tcp | http2 | grpc | postgres | redis", "http",
                       "What the service speaks."),
    f"{S}.target": D("string", "the only target", "The target that is active at start."),
    f"{S}.targets": D("mapping", "required", "Target name → target: where traffic can go."),
    f"{S}.timeout": D(DURATION, "30s",
                      "HTTP: connect and wait for the response headers; TCP: connect."),
    f"{S}.keep_host": D("bool", "false", "Send the client's `Host` header upstream unchanged."),
    f"{S}.target_header": D("bool", "true",
        "Honour `X-Devamb-Target: NAME`, routing one request to another target."),
    f"{S}.faults": D("mapping", "none", "Fault name → fault."),
    f"{S}.header_faults": D("bool", "false", "Let clients ask for faults with request headers."),
    f"{S}.inspect": D("mapping", "see its keys", "What the service records and masks."),
    f"{S}.connect_timeout": D(DURATION, "none",
                              "HTTP: the longest wait for a connection to the upstream."),
    f"{S}.per_try_timeout": D(DURATION, "none",
                              "HTTP: the longest wait for the response headers of one try."),
    f"{S}.retries": D("mapping", "none", "HTTP: retry failed requests."),
    f"{S}.circuit_breaker": D("mapping", "none",
                              "HTTP: stop calling a failing target for a while."),
    f"{S}.proto": D("glob or list of globs", "none",
                    "http2, grpc: `.proto` files compiled at load to decode gRPC messages."),
    f"{S}.descriptor_set": D("path", "none",
                             "http2, grpc: a FileDescriptorSet file, instead of `proto`."),
    f"{S}.tls": D("mapping", "none", "The listener terminates TLS with this certificate."),
    f"{S}.on_switch": D("drain | close | keep", "drain (postgres, redis), keep (tcp)",
                        "tcp, postgres, redis: what a switch does to open connections."),
    f"{S}.redact_params": D("bool", "false",
                            "postgres: values bound to statement parameters are not recorded."),
    f"{S}.inspect.bodies": D(SIZE, "64KiB", "Bytes of each body kept as a preview."),
    f"{S}.inspect.keep": D("integer", "5000", "Exchanges kept for this service."),
    f"{S}.inspect.redact": D("list", "none", "More header and JSON field names to mask."),
    f"{S}.inspect.redaction": D("bool", "true",
        "`false` shows the named headers and fields (secrets stay masked)."),
    f"{S}.retries.attempts": D("integer", "3", "Tries in all, the first included (1-10)."),
    f"{S}.retries.on": D("list", "[connect-failure, reset, 502, 503, 504]", "What is retried."),
    f"{S}.retries.backoff": D(DURATION, "100ms",
                              "The base of the exponential backoff (full jitter)."),
    f"{S}.retries.max_backoff": D(DURATION, "2s", "The longest wait between tries."),
    f"{S}.retries.unsafe": D("bool", "false", "Also retry methods that are not idempotent."),
    f"{S}.retries.budget": D("number", "0.2", "The most extra load retries may add (a share)."),
    f"{S}.retries.methods": D("list", "none",
                              "http2, grpc: `:path` globs of the calls safe to retry."),
    f"{S}.circuit_breaker.failures": D("integer", "5", "Failures within `window` that open it."),
    f"{S}.circuit_breaker.window": D(DURATION, "10s", "How far back failures count."),
    f"{S}.circuit_breaker.open_for": D(DURATION, "10s", "How long the circuit stays open."),
    f"{S}.circuit_breaker.half_open_requests": D("integer", "1",
                                                 "Trial requests let through after `open_for`."),
    f"{S}.circuit_breaker.max_requests": D("integer", "none", "Concurrent requests to the target."),
    f"{S}.circuit_breaker.max_pending": D("integer", "0",
                                          "Requests that may wait for a slot at `max_requests`."),
    f"{S}.tls.cert": D("path", "required", "The listener's certificate chain (PEM)."),
    f"{S}.tls.key": D("path", "required", "The certificate's private key (PEM)."),
    # targets
    f"{T}(url).url": D("URL", "required", "`http://`, `https://` or `tcp://HOST:PORT`."),
    f"{T}(url).headers": D("mapping", "none", "Headers added to every request."),
    f"{T}(url).tls": D("mapping", "verify", "How `https://` upstreams are checked."),
    f"{T}(url).via": D("string", "none", "A bastion the upstream is reached through."),
    f"{T}(url).tls.verify": D("bool", "true", "`false` accepts any certificate."),
    f"{T}(url).tls.ca": D("path", "the system's CAs", "PEM CA certificates trusted instead."),
    f"{T}(echo).echo": D("null", "required",
                         "Answers with a description of the request (TCP: the bytes back)."),
    f"{T}(docker).docker": D("mapping", "required", "A container: found, or run from an image."),
    f"{T}(docker).docker.container": D("string", "none", "One container, by name or id."),
    f"{T}(docker).docker.label": D("string or list", "none",
                                   "Every running container with the label(s), in turn."),
    f"{T}(docker).docker.compose": D("service or {project, service}", "none",
                                     "The containers of a Compose service."),
    f"{T}(docker).docker.compose.project": D("string", "the profile's name",
                                             "The Compose project."),
    f"{T}(docker).docker.compose.service": D("string", "required", "The Compose service."),
    f"{T}(docker).docker.image": D("string", "none", "Run a container of this image on switch."),
    f"{T}(docker).docker.port": D("integer", "required",
                                  "The container's port the app listens on."),
    f"{T}(docker).docker.env": D("mapping", "none", "image: environment variables."),
    f"{T}(docker).docker.command": D("string or list", "the image's", "image: the command."),
    f"{T}(docker).docker.volumes": D("list", "none",
                                     "image: `./host:/path[:ro]` or `volume:/path` mounts."),
    f"{T}(docker).docker.network": D("string", "Docker's default",
                                     "image: `host` or a network name."),
    f"{T}(docker).docker.run": D("on-switch | on-up", "on-switch",
                                 "image: start the container at switch or with the engine."),
    f"{T}(docker).docker.wait": D(DURATION, "30s", "image: how long the port may take to answer."),
    f"{T}(docker).docker.labels": D("mapping", "none", "image: extra container labels."),
    f"{T}(pool).endpoints": D("list of URLs", "required", "The replicas."),
    f"{T}(pool).balance": D("round_robin | least_requests | random | hash", "round_robin",
                            "How an endpoint is picked."),
    f"{T}(pool).hash_on": D("header:NAME | cookie:NAME | client_ip | path", "none",
                            "Required with `balance: hash`: what is hashed."),
    f"{T}(pool).health": D("mapping", "none", "Active health checks."),
    f"{T}(pool).outlier": D("mapping", "none", "Passive ejection of failing endpoints."),
    f"{T}(pool).dns_ttl": D(DURATION, "30s", "How often host names are resolved again."),
    f"{T}(pool).headers": D("mapping", "none", "Headers added to every request."),
    f"{T}(pool).tls": D("mapping", "verify", "`{verify, ca}` for `https://` endpoints."),
    f"{T}(pool).via": D("string", "none", "A bastion every endpoint is reached through."),
    f"{T}(pool).health.path": D("string", "required (http)",
                                "The path of a `GET` that must answer 2xx/3xx."),
    f"{T}(pool).health.interval": D(DURATION, "5s", "Time between two checks of an endpoint."),
    f"{T}(pool).health.timeout": D(DURATION, "1s", "How long one check may take."),
    f"{T}(pool).health.healthy": D("integer", "2", "Passes in a row that bring an endpoint back."),
    f"{T}(pool).health.unhealthy": D("integer", "3", "Failures in a row that take it out."),
    f"{T}(pool).outlier.consecutive_failures": D("integer", "5",
                                                 "Failed exchanges in a row that eject it."),
    f"{T}(pool).outlier.eject_for": D(DURATION, "30s", "How long an ejected endpoint stays out."),
    f"{T}(pool).outlier.max_ejected": D("percent", "50%", "The most endpoints out at once."),
    f"{T}(split).split": D("mapping", "required", "Other targets of the service → weight."),
    f"{T}(split).sticky": D("header:NAME | cookie:NAME | client_ip | path", "none",
                            "HTTP: the same key always reaches the same member."),
    f"{T}(split).mirror": D("string", "none", "HTTP: a target that gets a copy of each request."),
    f"{T}(split).mirror_max_body": D(SIZE, "64KiB", "Bodies above this are not mirrored."),
    f"{T}(shards).shards": D("list or mapping of URLs", "required", "The shards."),
    f"{T}(shards).key": D("redis | header:NAME | path:N | query:NAME", "required",
                          "What picks the shard."),
    f"{T}(shards).eject_after": D("integer", "0 (never)",
                                  "Failures in a row that take a shard out."),
    f"{T}(shards).eject_for": D(DURATION, "30s", "How long an ejected shard stays out."),
    f"{T}(shards).default": D("string", "none", "HTTP: the shard of requests without the key."),
    f"{T}(shards).auth": D("${VAR}", "none", "Redis: the password sent to every shard."),
    f"{T}(mock).mock": D("path or mapping", "required", "A mock file, or its routes inline."),
    f"{T}(mock).fallback": D("{proxy: TARGET} or a respond", "404 naming the closest routes",
                             "What unmatched requests get."),
    f"{M}.routes": D("list", "none", "The routes, tried in order."),
    f"{M}.fallback": D("{proxy: TARGET} or a respond", "404 naming the closest routes",
                       "What unmatched requests get."),
    f"{M}.grpc": D("list", "none", "http2, grpc: gRPC rules, by method."),
    f"{R}.name": D("string", "none", "Shown in status."),
    f"{R}.match": D("mapping", "everything", "What requests the route answers."),
    f"{R}.respond": D("mapping", "required, or sequence", "The answer (exactly one of the two)."),
    f"{R}.sequence": D("list", "none", "One answer per call, in turn."),
    f"{R}.repeat": D("last | cycle", "last",
                     "After the sequence: the last again, or from the start."),
    f"{R}.times": D("integer", "none", "Answer this many times, then stop matching."),
    f"{R}.delay": D(DURATION, "0", "Wait before answering."),
    f"{R}.match.method": D("string or list", "any", "The method(s)."),
    f"{R}.match.path": D("string", "any", "The path: literal, `{name}` segments or a regex."),
    f"{R}.match.query": D("mapping", "none",
                          "Parameters: a value, `{regex: …}` or `{present: true|false}`."),
    f"{R}.match.headers": D("mapping", "none", "Headers, in the same forms as `query`."),
    f"{R}.match.json": D("mapping", "none", "Dotted fields of a JSON body → value."),
    f"{R}.respond.status": D("integer", "200", "The status."),
    f"{R}.respond.headers": D("mapping", "none", "Response headers."),
    f"{R}.respond.body": D("string", "empty", "A text body (templates filled)."),
    f"{R}.respond.json": D("any", "none", "A JSON body (templates filled)."),
    f"{R}.respond.file": D("path", "none", "A body read from a file, relative to the mock file."),
    f"{R}.respond.delay": D(DURATION, "the route's", "Wait before this answer."),
    f"{R}.respond.template": D("bool", "true", "`false` sends `{{` as written."),
    f"{M}.grpc[].method": D("/pkg.Service/Method", "required", "The call's `:path`."),
    f"{M}.grpc[].request": D("mapping", "any", "Only when the first request has these fields."),
    f"{M}.grpc[].response": D("mapping", "an empty message",
                              "The output message as JSON."),
    f"{M}.grpc[].status": D("gRPC status", "OK", "The call's `grpc-status`."),
    f"{M}.grpc[].message": D("string", "empty", "The `grpc-message`, with a status other than OK."),
    f"{M}.grpc[].delay": D(DURATION, "0", "Wait before answering."),
    # faults: every kind
    f"{F}.kind": D("string", "required", "One of the fault kinds below."),
    f"{F}.enabled": D("bool", "true", "On at start."),
    f"{F}.probability": D("number 0..1", "1", "Chance it fires, per request, call or connection."),
    f"{F}.direction": D("downstream | upstream | both", "downstream",
                        "Where kinds that shape bytes act."),
    f"{F}.match": D("mapping", "everything", "Only the exchanges that match every part given."),
    f"{F}.times": D("integer", "none", "Fire this many times, then turn off."),
    f"{F}.after": D("integer", "0", "Let this many matching exchanges through first."),
    f"{F}.for": D(DURATION, "none", "Turn off this long after being turned on."),
    f"{F}.match.method": D("string or list", "any", "HTTP: the method(s)."),
    f"{F}.match.path": D("glob", "any", "HTTP: the path (gRPC: `/pkg.Service/Method`)."),
    f"{F}.match.header": D("mapping", "none", "HTTP: header name → glob."),
    f"{F}.match.sql": D("string", "none",
                        "postgres: statements whose text contains it (a glob with * ? [)."),
    f"{F}.match.command": D("glob", "none", "redis: the command name, any case."),
    f"{F}.match.key": D("glob", "none", "redis: the command's key, any case."),
    f"{F}(latency).delay": D(DURATION, "required", "How long to wait."),
    f"{F}(latency).jitter": D(DURATION, "0", "Spread of the wait around `delay`."),
    f"{F}(latency).distribution": D("uniform | normal | lognormal", "uniform",
                                    "How the jitter is drawn."),
    f"{F}(latency).on": D("request | response", "request",
                          "HTTP: wait before the upstream, or before the response."),
    f"{F}(latency).per_message": D("bool", "false",
                                   "http2, grpc: delay each message in `direction` instead."),
    f"{F}(abort).status": D("integer 200-599", "503", "The status answered."),
    f"{F}(abort).body": D("string", "empty", "The body answered."),
    f"{F}(abort).headers": D("mapping", "none", "Headers answered."),
    f"{F}(abort).grpc_status": D("gRPC status", "from the HTTP status",
                                 "gRPC: the `grpc-status` answered (a name or 1-16)."),
    f"{F}(abort).grpc_message": D("string", "none", "gRPC: the `grpc-message` answered."),
    f"{F}(reset).after_bytes": D("integer", "none", "Reset after this many bytes in `direction`."),
    f"{F}(reset).code": D("HTTP/2 error code", "INTERNAL_ERROR",
                          "http2, grpc: the RST_STREAM (or GOAWAY) code."),
    f"{F}(reset).scope": D("stream | connection", "stream",
                           "http2, grpc: reset the call, or the client's whole connection."),
    f"{F}(timeout).timeout": D(DURATION, "0 (until the fault goes)",
                               "Close the held exchange after this long."),
    f"{F}(bandwidth).rate": D(SIZE, "required", "Bytes per second."),
    f"{F}(slicer).size": D(SIZE, "64", "Bytes per piece."),
    f"{F}(slicer).delay": D(DURATION, "10ms", "Time between pieces."),
    f"{F}(limit_data).bytes": D(SIZE, "required", "Close after this many bytes."),
    f"{F}(slow_close).delay": D(DURATION, "required", "How long the end is delayed."),
    f"{F}(malformed).mode": D("bad-chunk | garbage | empty | short-body", "bad-chunk",
                              "How the response is broken."),
    f"{F}(error).sqlstate": D("string", "required (postgres)", "postgres: the error's SQLSTATE."),
    f"{F}(error).message": D("string", "one naming the fault", "postgres: the error's message."),
    f"{F}(error).reply": D("string", "required (redis)", "redis: the error reply (`-ERR …`)."),
}
