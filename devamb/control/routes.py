"""The control API's route table: every EngineControl operation written once.

Each route names the EngineControl method it carries, its HTTP method and path, its typed
arguments (each from the path, the query string or the JSON body) and the kind of answer (JSON,
Prometheus text, or a stream of JSON lines). The server's handlers (control/server.py) and the
client's methods (control/client.py) are both derived from this table, and
tests/control/test_signatures.py holds it to the EngineControl Protocol.

Refusals answer {"error": MESSAGE} with the ControlError's status: 400 bad arguments (also a bad
filter, an unknown fault kind, invalid fault parameters), 404 an unknown name (service, target,
exchange, fault, scenario), 409 a state that refuses the request (e.g. already recording).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote, urlencode

from devamb.control.protocol import ControlError, Event, ExchangeSummary, Status

R = TypeVar("R")
Where = Literal["path", "query", "body"]
Kind = Literal["json", "text", "stream"]
JsonObject = dict[str, Any]

# EngineControl methods that never cross the socket: `close` releases the client's connection.
LOCAL = frozenset({"close"})


@dataclass(frozen=True)
class Arg:
    """One parameter of the EngineControl method, found on the wire in `where` under `wire`
    (default: its own name). `type` is str, int, float, bool, dict or list (of strings).

    An optional argument that is absent (or null, or an empty query value) is not passed, so
    the method's own default applies."""

    name: str
    where: Where
    type: type
    required: bool = True
    wire: str = ""
    problem: str = ""  # what a bad value is told (default: what the route expects)
    check: Callable[[Any], bool] | None = None  # a further condition on a well-typed value

    @property
    def key(self) -> str:
        return self.wire or self.name

    def parse(self, raw: object) -> object:
        """The value from its wire form; ValueError when it is not what the route takes."""
        if self.where != "body":  # path and query values are text
            text = str(raw)
            value = text == "1" if self.type is bool else self.type(text)  # int("x"): ValueError
        elif _is(raw, self.type):
            value = raw
        else:
            raise ValueError(raw)
        if self.check is not None and not self.check(value):
            raise ValueError(raw)
        return value


def _is(value: object, kind: type) -> bool:
    """JSON typing: a bool is no number, a float may be written whole, a list holds strings."""
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, int | float)
    if kind is list:
        return isinstance(value, list) and all(isinstance(i, str) for i in value)
    return isinstance(value, kind)


def _same(value: Any, *_: Any) -> Any:
    return value


def _nothing(_: Any) -> None:
    return None


@dataclass(frozen=True)
class Route(Generic[R]):
    """One operation. `answer` shapes the method's result (or each streamed item) for the
    wire, given the arguments; `unwrap` turns what the client receives back into the result."""

    name: str  # the EngineControl method
    method: Literal["GET", "POST"]
    path: str  # aiohttp's syntax: "/v1/exchanges/{id}"
    args: tuple[Arg, ...] = ()
    kind: Kind = "json"
    answer: Callable[[Any, JsonObject], Any] = _same
    unwrap: Callable[[Any], R] = _same

    @property
    def has_body(self) -> bool:
        return any(a.where == "body" for a in self.args)

    def expected(self) -> str:
        """The body's fields, e.g. "expected {service, to?, filter?}"."""
        fields = [a.key + ("" if a.required else "?") for a in self.args if a.where == "body"]
        return "expected {" + ", ".join(fields) + "}"

    def _problem(self, arg: Arg) -> str:
        if arg.problem:
            return arg.problem
        if arg.where == "body":
            return self.expected()
        if arg.type is int:
            return f"{arg.key} must be a whole number"
        return f"{arg.key} is required"

    # -- the server's side ---------------------------------------------------------------------

    def decode(
        self, path: Mapping[str, str], query: Mapping[str, str], body: Mapping[str, Any]
    ) -> JsonObject:
        """The method's keyword arguments from a request; ControlError (400) if they are bad."""
        values: JsonObject = {}
        for arg in self.args:
            source = path if arg.where == "path" else query if arg.where == "query" else body
            raw = source.get(arg.key)
            if raw is None or (raw == "" and arg.where != "body"):
                if arg.required:
                    raise ControlError(self._problem(arg))
                continue
            try:
                values[arg.name] = arg.parse(raw)
            except ValueError:
                raise ControlError(self._problem(arg)) from None
        return values

    # -- the client's side ---------------------------------------------------------------------

    def encode(self, values: Mapping[str, Any]) -> tuple[str, JsonObject | None]:
        """The URL (path and query) and the JSON body (None: no body) of a call."""
        unknown = set(values) - {a.name for a in self.args}
        if unknown:
            raise TypeError(f"{self.name}() got unexpected arguments {sorted(unknown)}")
        path = self.path
        query: dict[str, str] = {}
        body: JsonObject | None = {} if self.has_body else None
        for arg in self.args:
            value = values.get(arg.name)
            if arg.where == "path":
                path = path.replace("{" + arg.key + "}", quote(str(value), safe=""))
            elif arg.where == "query":
                if value is not None and value != "":
                    query[arg.key] = ("1" if value else "0") if arg.type is bool else str(value)
            elif body is not None:
                body[arg.key] = value
        return path + (f"?{urlencode(query)}" if query else ""), body


def _exchange_id() -> Arg:
    return Arg("exchange_id", "path", int, wire="id", problem="an exchange id is a whole number")


def _filter(where: Where = "query") -> Arg:
    return Arg("filter", where, str, required=False)


def _service(required: bool = True, where: Where = "body") -> Arg:
    return Arg("service", where, str, required=required)


class Routes:
    """The table; each attribute is named after its route's EngineControl method."""

    status: Route[Status] = Route("status", "GET", "/v1/status")
    switch: Route[None] = Route(
        "switch", "POST", "/v1/switch",
        (_service(), Arg("target", "body", str),
         Arg("on_switch", "body", str, required=False)),
        answer=lambda _, a: {"service": a["service"], "target": a["target"]},
        unwrap=_nothing,
    )  # fmt: skip
    exchanges: Route[list[ExchangeSummary]] = Route(
        "exchanges", "GET", "/v1/exchanges",
        (Arg("limit", "query", int, required=False), _filter()),
    )  # fmt: skip
    clear_exchanges: Route[None] = Route(
        "clear_exchanges", "POST", "/v1/exchanges/clear",
        answer=lambda _, a: {"cleared": True}, unwrap=_nothing,
    )  # fmt: skip
    exchange: Route[JsonObject] = Route("exchange", "GET", "/v1/exchanges/{id}", (_exchange_id(),))
    slow_statements: Route[JsonObject] = Route(
        "slow_statements", "GET", "/v1/services/{name}/slow",
        (Arg("service", "path", str, wire="name"),
         Arg("limit", "query", int, required=False, check=lambda n: n > 0,
             problem="limit must be a whole number above 0")),
    )  # fmt: skip
    export_curl: Route[str] = Route(
        "export_curl", "GET", "/v1/exchanges/{id}/curl", (_exchange_id(),),
        answer=lambda text, a: {"curl": text}, unwrap=lambda data: data["curl"],
    )  # fmt: skip
    export_grpcurl: Route[str] = Route(
        "export_grpcurl", "GET", "/v1/exchanges/{id}/grpcurl", (_exchange_id(),),
        answer=lambda text, a: {"grpcurl": text}, unwrap=lambda data: data["grpcurl"],
    )  # fmt: skip
    replay: Route[JsonObject] = Route(
        "replay", "POST", "/v1/exchanges/{id}/replay",
        (_exchange_id(),
         Arg("target", "body", str, required=False, problem="target must be a string"),
         Arg("diff", "body", bool, required=False, problem="diff must be true or false"),
         Arg("ignore", "body", list, required=False,
             problem="ignore must be a list of field names")),
    )  # fmt: skip
    export_har: Route[JsonObject] = Route("export_har", "GET", "/v1/export/har", (_filter(),))
    events: Route[Event] = Route("events", "GET", "/v1/events", (_filter(),), kind="stream")
    shutdown: Route[JsonObject | None] = Route(
        "shutdown", "POST", "/v1/shutdown",
        (Arg("grace", "body", float, required=False, check=lambda g: g >= 0,
             problem="grace must be a number of seconds, 0 or more"),
         Arg("wait", "body", bool, required=False, problem="wait must be true or false")),
        answer=lambda report, a: {"stopping": True, **(report or {})},
    )  # fmt: skip
    metrics: Route[str] = Route("metrics", "GET", "/metrics", kind="text")
    container_logs: Route[str] = Route(
        "container_logs", "GET", "/v1/logs",
        (_service(where="query"), Arg("target", "query", str),
         Arg("tail", "query", int, required=False), Arg("follow", "query", bool, required=False)),
        kind="stream", answer=lambda line, a: {"line": line}, unwrap=lambda data: data["line"],
    )  # fmt: skip
    start_recording: Route[JsonObject] = Route(
        "start_recording", "POST", "/v1/record/start",
        (_service(), Arg("to", "body", str, required=False), _filter("body")),
    )  # fmt: skip
    stop_recording: Route[list[JsonObject]] = Route(
        "stop_recording", "POST", "/v1/record/stop", (_service(required=False),)
    )
    faults: Route[dict[str, list[JsonObject]]] = Route(
        "faults", "GET", "/v1/faults", (_service(required=False, where="query"),)
    )
    add_fault: Route[JsonObject] = Route(
        "add_fault", "POST", "/v1/faults", (_service(), Arg("fault", "body", dict))
    )
    set_fault: Route[None] = Route(
        "set_fault", "POST", "/v1/faults/toggle",
        (_service(), Arg("name", "body", str), Arg("enabled", "body", bool)),
        answer=lambda _, a: {"service": a["service"], "name": a["name"],
                             "enabled": a["enabled"]},
        unwrap=_nothing,
    )  # fmt: skip
    remove_fault: Route[None] = Route(
        "remove_fault", "POST", "/v1/faults/remove", (_service(), Arg("name", "body", str)),
        answer=lambda _, a: {"service": a["service"], "removed": a["name"]}, unwrap=_nothing,
    )  # fmt: skip
    clear_faults: Route[None] = Route(
        "clear_faults", "POST", "/v1/faults/clear", (_service(required=False),),
        answer=lambda _, a: {"cleared": a.get("service") or "all"}, unwrap=_nothing,
    )  # fmt: skip
    scenarios: Route[list[JsonObject]] = Route("scenarios", "GET", "/v1/scenarios")
    start_scenario: Route[None] = Route(
        "start_scenario", "POST", "/v1/scenarios/start", (Arg("name", "body", str),),
        answer=lambda _, a: {"scenario": a["name"], "action": "start"}, unwrap=_nothing,
    )  # fmt: skip
    stop_scenario: Route[None] = Route(
        "stop_scenario", "POST", "/v1/scenarios/stop", (Arg("name", "body", str),),
        answer=lambda _, a: {"scenario": a["name"], "action": "stop"}, unwrap=_nothing,
    )  # fmt: skip


ROUTES = Routes()


# Every route, in registration order (a literal path such as /v1/exchanges/clear before the
# /v1/exchanges/{id} pattern); each attribute of Routes is named after its method (a test says so).
TABLE: tuple[Route[Any], ...] = tuple(v for v in vars(Routes).values() if isinstance(v, Route))
