"""The inspection desk: recorded exchanges listed, shown, exported (HAR, curl), replayed, and
the event stream."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

from devamb import __version__
from devamb.control.events import ExchangeCompleted
from devamb.control.protocol import Conflict, ControlError, Event, ExchangeSummary, NotFound
from devamb.engine.context import EngineContext
from devamb.inspect.curl import to_curl
from devamb.inspect.diff import diff_details
from devamb.inspect.exchange import Exchange
from devamb.inspect.filter import FilterError, compile_filter
from devamb.inspect.har import to_har
from devamb.inspect.redaction import Redaction
from devamb.inspect.replay import check_replayable, send_replay
from devamb.service.core import Service


def compiled(filter_text: str) -> Callable[[Exchange], bool]:
    """The filter expression as a predicate; a bad one is a ControlError that shows its column."""
    try:
        return compile_filter(filter_text)
    except FilterError as exc:
        caret = " " * (exc.column - 1) + "^"
        raise ControlError(f"bad filter: {exc.message}\n  {filter_text}\n  {caret}") from None


def listen_url(service: Service) -> str:
    """Where the service's listener answers, as a base URL."""
    host, port = service.bound or (service.spec.listen.host, service.spec.listen.port)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


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
        details = [self._redaction(e).detail(e) for e in self._select(None, filter)]
        base_urls = {name: listen_url(s) for name, s in self.ctx.services.items()}
        return to_har(details, __version__, base_urls=base_urls)

    async def export_curl(self, exchange_id: int) -> str:
        exchange = self._recorded(exchange_id)
        service = self.ctx.services.get(exchange.service)
        base = listen_url(service) if service else None
        detail = self._redaction(exchange).detail(exchange)
        target = service.targets.get(exchange.target) if service else None
        injected = {n.lower() for n in target.injected_headers()} if target else set()
        if injected:  # the target adds these again behind the listener: leave them out
            detail["request_headers"] = [
                h for h in detail["request_headers"] if h[0].lower() not in injected
            ]
        return to_curl(detail, base)

    async def replay(
        self,
        exchange_id: int,
        target: str | None = None,
        diff: bool = False,
        ignore: list[str] | None = None,
    ) -> dict[str, Any]:
        """Send a recorded request again (to `target`, default its own); optionally diff."""
        original = self._recorded(exchange_id)
        check_replayable(original)
        service = self.ctx.service(original.service)
        target = target or original.target
        if target not in service.targets:
            known = ", ".join(service.targets)
            raise NotFound(f"service {service.name!r} has no target {target!r}; known: {known}")
        token = self.ctx.recorder.replay_token
        await send_replay(original, listen_url(service), target, token)
        copy = next(
            (e for e in reversed(self.ctx.store.all()) if e.replay_of == original.id), None
        )
        if copy is None:
            raise Conflict("the replay was sent but not recorded (store full?)")
        result: dict[str, Any] = {"exchange": service.redaction.summary(copy)}
        if diff:
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
