"""HTTP faults as `envoy.filters.http.fault` filters, one per fault; `header_faults` as Envoy's
header-controlled faults (a Lua filter renames devamb's request headers to Envoy's)."""

from __future__ import annotations

import re

from devamb.export.context import Config, Context, duration, percent
from devamb.faults.spec import FaultSpec, Match
from devamb.service.spec import ServiceSpec

FAULT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
LUA_TYPE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
HEADER_FAULTS_LUA = """\
function envoy_on_request(handle)
  local headers = handle:headers()
  local delay = headers:get("x-devamb-fault-delay")
  if delay ~= nil then headers:replace("x-envoy-fault-delay-request", delay) end
  local abort = headers:get("x-devamb-fault-abort")
  if abort ~= nil then headers:replace("x-envoy-fault-abort-request", abort) end
end
"""
NOT_MAPPED = {
    "reset": "Envoy's fault filter cannot reset a connection",
    "timeout": "Envoy's fault filter cannot hold a request without answering",
    "slicer": "Envoy cannot slice writes",
    "limit_data": "Envoy cannot cut a connection after N bytes",
    "slow_close": "Envoy cannot delay closing a connection",
    "malformed": "Envoy cannot send a malformed response",
    "down": "Envoy cannot refuse connections on a schedule",
}


def glob_regex(glob: str) -> str:
    """An fnmatch glob (`*`, `?`) as an RE2 regex for the whole value."""
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)


def _matchers(match: Match | None) -> list[Config]:
    if match is None:
        return []
    out: list[Config] = []
    if match.methods:
        methods = "|".join(sorted(match.methods))
        out.append({"name": ":method", "string_match": {"safe_regex": {"regex": methods}}})
    if match.path is not None:
        regex = glob_regex(match.path) + r"(\?.*)?"
        out.append({"name": ":path", "string_match": {"safe_regex": {"regex": regex}}})
    for name, pattern in sorted(match.headers.items()):
        out.append({"name": name.lower(),
                    "string_match": {"safe_regex": {"regex": glob_regex(pattern)}}})
    return out


def fault_filters(ctx: Context, spec: ServiceSpec) -> list[Config]:
    filters: list[Config] = []
    if spec.header_faults:
        filters.append({"name": "devamb.header_faults", "typed_config": {
            "@type": LUA_TYPE,
            "default_source_code": {"inline_string": HEADER_FAULTS_LUA},
        }})
        filters.append({"name": "devamb.fault.header", "typed_config": {
            "@type": FAULT_TYPE,
            "abort": {"header_abort": {}, "percentage": percent(1.0)},
            "delay": {"header_delay": {}, "percentage": percent(1.0)},
        }})
    for name, fault in spec.faults.items():
        config = _fault(ctx, spec, name, fault)
        if config is not None:
            filters.append({"name": f"devamb.fault.{name}", "typed_config": config})
    return filters


def _fault(ctx: Context, spec: ServiceSpec, name: str, fault: FaultSpec) -> Config | None:
    path = ("services", spec.name, "faults", name)
    if fault.kind in NOT_MAPPED or spec.protocol == "tcp":
        why = NOT_MAPPED.get(fault.kind, "Envoy has no faults for TCP proxying")
        ctx.note(path, f"{fault.kind} fault not exported: {why}")
        return None
    if not fault.enabled:
        ctx.note(path, "disabled at start: not exported (Envoy cannot switch it on later)")
        return None
    for key, value in (("times", fault.times), ("after", fault.after or None),
                       ("for", fault.duration)):
        if value is not None:
            ctx.note((*path, key), f"'{key}' is dropped: Envoy's fault fires at its "
                                   "percentage for as long as it runs")
    config: Config = {"@type": FAULT_TYPE}
    share = percent(fault.probability)
    params = fault.params
    if fault.kind == "abort":
        if spec.protocol == "grpc" and params.grpc_status is not None:
            config["abort"] = {"grpc_status": params.grpc_status, "percentage": share}
        else:
            config["abort"] = {"http_status": params.status, "percentage": share}
        if params.body or params.headers:
            ctx.note(path, "Envoy's abort answers with its own body and no extra headers")
    elif fault.kind == "latency":
        if params.on == "response" or params.per_message:
            ctx.note(path, "Envoy delays requests only; this latency fault is not exported")
            return None
        if params.jitter:
            ctx.note((*path, "jitter"), "Envoy's delay is fixed: the jitter is dropped")
        config["delay"] = {"fixed_delay": duration(params.delay), "percentage": share}
    elif fault.kind == "bandwidth":
        if fault.direction != "downstream":
            ctx.note(path, "Envoy limits the response body only; this fault is not exported")
            return None
        kib = max(1, round(params.rate / 1024))
        if kib * 1024 != params.rate:
            ctx.note(path, f"Envoy limits in KiB/s: {kib} KiB/s")
        config["response_rate_limit"] = {"fixed_limit": {"limit_kbps": kib}, "percentage": share}
    else:
        ctx.note(path, f"{fault.kind} fault not exported")
        return None
    headers = _matchers(fault.match)
    if headers:
        config["headers"] = headers
    return config
