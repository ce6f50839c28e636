"""The inspection desk: recorded exchanges listed, shown, exported (HAR, curl, grpcurl),
replayed (HTTP/1.1 and HTTP/2 unary calls), and the event stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

from devamb import __version__
from devamb.control.events import ExchangeCompleted
from devamb.control.protocol import Conflict, ControlError, Event, ExchangeSummary, NotFound
from devamb.engine.context import EngineContext
from devamb.inspect.exchange import Exchange
from devamb.inspect.redaction import Redaction
from devamb.service.core import Service
from devamb.wire import TCP_PROTOCOLS

# The exports, the filter language, replay and diff are imported by the call that uses them,
# not at the engine's start (its RSS, issue 22).

RECORD_WAIT_STEPS = 500  # x 10 ms: how long a replay's record may take to be stored


def compiled(filter_text: str) -> Callable[[Exchange], bool]:
    """The filter expression as a predicate; a bad one is a ControlError that shows its column."""
    from devamb.inspect.filter import FilterError, compile_filter

    try:
        return compile_filter(filter_text)
    except FilterError as exc:
        caret = " " * (exc.column - 1) + "^"
        raise ControlError(f"bad filter: {exc.message}\n  {filter_text}\n  {caret}") from None


def listen_address(service: Service) -> tuple[str, int]:
    """Where the service's listener answers: host and port."""
    host, port = service.bound or (service.spec.listen.host, service.spec.listen.port)
    return host, port


def listen_url(service: Service) -> str:
    """Where the service's listener answers, as a base URL."""
    host, port = listen_address(service)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def schema_files(service: Service) -> tuple[list[str], list[str], str | None]:
    """The schema files a grpc/http2 service decodes with, as grpcurl options: .proto files (by
    name, each folder an import path) or a descriptor set. Read from the spec's `schema`
    (its `origin`: proto | descriptor_set | reflection) and `schema_files` where the profile
    names them (`proto:` / `descriptor_set:`)."""
    origin = getattr(getattr(service.spec, "schema", None), "origin", None)
    files = [Path(f) for f in getattr(service.spec, "schema_files", None) or ()]
    if origin == "descriptor_set" and files:
        return [], [], str(files[0])
    if origin != "proto":
        return [], [], None
    import_paths = list(dict.fromkeys(str(f.parent) for f in files))
    return [f.name for f in files], import_paths, None


class InspectionDesk:
    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx

    async def exchanges(
        self, limit: int = 100, filter: str | None = None
    ) -> list[ExchangeSummary]:
        return [self._redaction(e).summary(e) for e in self._select(limit, filter)]

    async def exchange(self, exchange_id: int) -> dict[str, Any]:
        exchange = self._recorded(exchange_id)
        return self._redaction(exchange).detail(exchange)

    async def clear_exchanges(self) -> None:
        self.ctx.store.clear()

    async def export_har(self, filter: str | None = None) -> dict[str, Any]:
        from devamb.inspect.har import to_har

        details = [self._redaction(e).detail(e) for e in self._select(None, filter)]
        base_urls = {name: listen_url(s) for name, s in self.ctx.services.items()}
        return to_har(details, __version__, base_urls=base_urls)

    async def slow_statements(self, service: str, limit: int = 10) -> dict[str, Any]:
        from devamb.inspect.slow import Sample, slowest

        if service not in self.ctx.services:
            raise NotFound(f"no service {service!r}")
        samples = (Sample(e.id, e.method, e.path, e.notes, e.duration_ms, e.error)
                   for e in self.ctx.store.all() if e.service == service)
        return slowest(service, samples, limit)

    async def export_curl(self, exchange_id: int) -> str:
        exchange = self._recorded(exchange_id)
        if exchange.protocol in TCP_PROTOCOLS:
            raise ControlError(f"exchange {exchange_id} is a {exchange.protocol} exchange; "
                               f"curl export is for HTTP")
        service = self.ctx.services.get(exchange.service)
        base = listen_url(service) if service else None
        detail = self._redaction(exchange).detail(exchange)
        target = service.targets.get(exchange.target) if service else None
        injected = {n.lower() for n in target.injected_headers()} if target else set()
        if injected:  # the target adds these again behind the listener: leave them out
            detail["request_headers"] = [
                h for h in detail["request_headers"] if h[0].lower() not in injected
            ]
        from devamb.inspect.curl import to_curl

        return to_curl(detail, base)

    async def export_grpcurl(self, exchange_id: int) -> str:
        exchange = self._recorded(exchange_id)
        service = self.ctx.services.get(exchange.service)
        if service is None:
            raise ControlError(f"exchange {exchange_id}: its service "
                               f"{exchange.service!r} is gone")
        detail = self._redaction(exchange).detail(exchange)
        host, port = listen_address(service)
        protos, import_paths, protoset = schema_files(service)
        from devamb.inspect.grpcurl import GrpcurlError, to_grpcurl

        try:
            return to_grpcurl(
                detail, f"{f'[{host}]' if ':' in host else host}:{port}",
                protos=protos, import_paths=import_paths, protoset=protoset,
            )
        except GrpcurlError as exc:
            raise ControlError(str(exc)) from None

    async def replay(
        self,
        exchange_id: int,
        target: str | None = None,
        diff: bool = False,
        ignore: list[str] | None = None,
    ) -> dict[str, Any]:
        """Send a recorded request again (to `target`, default its own); optionally diff."""
        from devamb.inspect.replay import H2_PROTOCOLS, check_replayable, send_replay

        original = self._recorded(exchange_id)
        check_replayable(original)
        service = self.ctx.service(original.service)
        target = target or original.target
        if target not in service.targets:
            known = ", ".join(service.targets)
            raise NotFound(f"service {service.name!r} has no target {target!r}; known: {known}")
        token = self.ctx.recorder.replay_token
        earlier = {e.id for e in self.ctx.store.all() if e.replay_of == original.id}
        if original.protocol in H2_PROTOCOLS:
            sent_to = service.targets.get(original.target)
            injected = sent_to.injected_headers() if sent_to is not None else {}
            from devamb.service.replay_h2 import send_h2_replay

            await send_h2_replay(
                original, listen_address(service), target, token, leave_out=injected
            )
        else:
            await send_replay(original, listen_url(service), target, token)
        copy = await self._copy_of(original.id, earlier)
        if copy is None:
            raise Conflict("the replay was sent but not recorded (store full?)")
        result: dict[str, Any] = {"exchange": service.redaction.summary(copy)}
        if diff:
            from devamb.inspect.diff import diff_details

            before, after = service.redaction.detail(original), service.redaction.detail(copy)
            differences = diff_details(before, after, ignore_fields=ignore or ())
            result["diff"] = [d.to_json() for d in differences]
        return result

    async def events(self, filter: str | None = None) -> AsyncGenerator[Event, None]:
        """Every event from now on; with a filter, only the exchanges that match it."""
        matches = compiled(filter) if filter else None
        async for event in self.ctx.bus.subscribe():
            if matches is not None and (
                not isinstance(event, ExchangeCompleted) or not matches(event.record)
            ):
                continue
            yield event.to_json()

    async def _copy_of(self, original: int, earlier: set[int]) -> Exchange | None:
        """The replay's record: the listener stores it as its stream ends, which may be just
        after the client saw the end (an HTTP/2 stream), so it is waited for a little."""
        for _ in range(RECORD_WAIT_STEPS):
            copy = next(
                (e for e in reversed(self.ctx.store.all())
                 if e.replay_of == original and e.id not in earlier),
                None,
            )
            if copy is not None:
                return copy
            await asyncio.sleep(0.01)
        return None

    def _select(self, limit: int | None, filter_text: str | None) -> list[Exchange]:
        store = self.ctx.store
        if not filter_text:
            return store.recent(limit) if limit is not None else store.all()
        matches = compiled(filter_text)
        chosen = [e for e in store.all() if matches(e)]
        if limit is None:
            return chosen
        return chosen[-limit:] if limit > 0 else []

    def _redaction(self, exchange: Exchange) -> Redaction:
        service = self.ctx.services.get(exchange.service)
        return service.redaction if service else Redaction(secrets=self.ctx.profile.secrets)

    def _recorded(self, exchange_id: int) -> Exchange:
        exchange = self.ctx.store.get(exchange_id)
        if exchange is None:
            raise NotFound(f"no exchange {exchange_id} (it may have aged out of the store)")
        return exchange
