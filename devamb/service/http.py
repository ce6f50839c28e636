"""The HTTP listener: the front end (front.py), one per service, routing to the active target."""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import TYPE_CHECKING

from devamb.faults.chain import Plan
from devamb.inspect.exchange import Exchange
from devamb.inspect.replay import replay_of
from devamb.proxy.connection import cut, reset
from devamb.proxy.errors import CutConnection, UpstreamFailed, error_response
from devamb.proxy.front import FrontServer, Refusal
from devamb.proxy.headers import HOP, REPLAY, TARGET_OVERRIDE, looped, new_via
from devamb.proxy.listen import bind
from devamb.proxy.request import ClientGone, FrontRequest
from devamb.proxy.response import Response, StreamResponse
from devamb.proxy.sniff import Http2Switch
from devamb.service.core import Service
from devamb.service.listener_tls import alpn_for
from devamb.service.recorder import Recorder
from devamb.service.shaping import install
from devamb.targets.base import MIRROR_OF, TargetUnavailable

if TYPE_CHECKING:
    from devamb.proxy.h2front import H2FrontServer
    from devamb.service.http2 import Http2Listener

SHUTDOWN_GRACE = 3.0  # default drain of a lone listener; the engine passes its own grace
ANSWERED_BY_DEVAMB = "devamb"  # the target recorded for a request devamb answered itself


class HttpListener:
    def __init__(self, service: Service, recorder: Recorder) -> None:
        self.service = service
        self.recorder = recorder
        self.via = new_via()  # this listener's own Via element: seen again, it is a loop
        self._server: FrontServer | None = None
        # HTTP/2 clients (prior knowledge, or ALPN h2 with tls) are served as an http2
        # service serves them: one exchange per stream, relayed over h2c or h2 (TLS); made at
        # the first such client, so HTTP/1 alone never imports the HTTP/2 code (issue 22)
        self._http2: Http2Listener | None = None
        self._h2_front: H2FrontServer | None = None

    async def start(self) -> None:
        spec = self.service.spec
        tls = spec.tls.context(alpn_for("http")) if spec.tls is not None else None
        server = FrontServer(
            self._handle, self._refused, ssl=tls,
            connection=lambda http1: Http2Switch(http1, self._embedded_http2),
        )
        self.service.bound = await bind(server, self.service.name, spec.listen)
        self._server = server

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> int:
        """Drain for up to `grace` seconds; how many exchanges (and HTTP/2 calls) were cut."""
        cut = 0
        if self._server is not None:
            http2 = self._http2
            if http2 is None:
                cut = await self._server.stop(grace)
            else:
                cut, cut2 = await asyncio.gather(self._server.stop(grace), http2.stop(grace))
                cut += cut2
            self._server = None  # (kept while draining: `hurry` ends the drain)
            self.service.bound = None
        return cut

    def hurry(self) -> None:
        """A drain in progress (`stop`) ends now, cutting what is still in flight."""
        if self._server is not None:
            self._server.hurry()
        if self._http2 is not None:
            self._http2.hurry()

    def _embedded_http2(self) -> H2FrontServer:
        if self._h2_front is None:
            from devamb.service.http2 import Http2Listener

            self._http2 = Http2Listener(self.service, self.recorder)
            self._h2_front = self._http2.embedded()
        return self._h2_front

    @staticmethod
    async def _before_upstream(
        plan: Plan, request: FrontRequest, exchange: Exchange
    ) -> StreamResponse | None:
        """Faults that act before the upstream; a response here is the answer. The plan's byte
        shaping goes on the request first: whatever answers (an abort too) is shaped."""
        if plan.refuses:
            reset(request.transport)
            exchange.error = "fault down: connection refused"
            return Response(status=499)  # never sent: the connection is gone
        shaping = plan.shaping()
        if shaping is not None:
            install(shaping, request, exchange)
        for fault in plan.fired:
            response = await fault.before_upstream(request, exchange)
            if response is not None:
                return response
        return None

    def _answer_self(
        self, status: int, code: str, reason: str, remote: str | None, method: str | None,
        path: str | None, headers: list[tuple[str, str]],
    ) -> None:
        """Record a request devamb answered itself: its target is "devamb", its error the
        reason, its request headers the client's (nothing went upstream), so that `traffic`,
        `~t devamb`, `show` and the TUI show it beside the others."""
        service = self.service
        exchange = self.recorder.begin(service, ANSWERED_BY_DEVAMB, remote)
        exchange.method = method
        exchange.path = path
        exchange.request_headers = headers
        exchange.status = status
        exchange.error = reason
        exchange.own_notes()["devamb"] = {"error": code}
        exchange.finish()
        self.recorder.finish(service, exchange)

    def _refused(self, refusal: Refusal, remote: str | None) -> bytes:
        """The front end refused a request (400, 414, 431, 501, 505): record it, give the body."""
        self._answer_self(
            refusal.status, refusal.code, refusal.reason, remote, refusal.method, refusal.path,
            refusal.headers,
        )
        response = error_response(
            refusal.status, refusal.code, refusal.reason, self.service.name, ANSWERED_BY_DEVAMB,
            self.service.redaction.text,
        )
        return response.body

    def _refuse(
        self, request: FrontRequest, status: int, code: str, reason: str, target: str
    ) -> StreamResponse:
        self._answer_self(
            status, code, reason, request.remote, request.method, request.raw_path,
            list(request.headers.items()),
        )
        service = self.service
        return error_response(status, code, reason, service.name, target, service.redaction.text)

    async def _handle(self, request: FrontRequest) -> StreamResponse:
        service = self.service
        names = request.names  # (lowered)
        if "via" in names and looped(request.headers, self.via):
            reason = f"the request came back to {service.name!r}'s own listener (its Via)"
            return self._refuse(request, 508, "loop-detected", reason, ANSWERED_BY_DEVAMB)
        if HOP.get() is not self.via:  # (the connection's task keeps it for its next requests)
            HOP.set(self.via)  # the Via this request gets on its way upstream (proxy/headers.py)
        replay = request.headers.get(REPLAY) if REPLAY in names else None
        replayed = None if replay is None else replay_of(replay, self.recorder.replay_token)
        allowed = service.spec.target_header or replayed is not None
        name = request.headers.get(TARGET_OVERRIDE) if allowed else None
        if name is not None and name not in service.targets:
            known = ", ".join(service.targets)
            reason = f"no target {name!r}; known: {known}"
            return self._refuse(request, 400, "unknown-target", reason, name)
        target = service.targets[name or service.active]  # (service.target, inline: hot)
        if not request.raw_path.startswith("/"):  # asterisk-form (OPTIONS *) or absolute-form
            reason = f"request target {request.raw_path[:200]!r} is not a path"
            return self._refuse(request, 400, "bad-request-target", reason, target.name)
        exchange = self.recorder.begin(service, target.spec.name, request.remote)
        exchange.method = request.method
        exchange.path = request.raw_path
        exchange.replay_of = replayed
        if replayed is not None and MIRROR_OF in request.headers:  # a split's mirrored copy
            exchange.own_notes()["mirror_of"] = replayed
            service.counters.mirror_began()  # its numbers are kept apart from the service's
        faults = service.faults
        plan = (
            faults.roll_http(request.method, request.path, request.headers)
            if faults.chain.armed or faults.header_faults
            else None
        )
        response: StreamResponse | None = None
        try:
            try:
                if plan is not None:
                    exchange.faults = plan.names
                    response = await self._before_upstream(plan, request, exchange)
                if response is None:
                    policy = service.policy
                    if policy.trivial:
                        response = await target.handle_http(request, exchange)
                    else:
                        response = await policy.call(target, request, exchange)
            except UpstreamFailed as exc:
                exchange.error = exc.reason
                response = error_response(
                    exc.status, exc.code, exc.reason, service.name, target.name,
                    service.redaction.text,
                )
            except TargetUnavailable as exc:
                exchange.error = exc.reason
                response = error_response(
                    exc.status, "target-unavailable", exc.reason, service.name, target.name,
                    service.redaction.text,
                )
            if request.response_filter is not None and not response.detached:
                # shaped: sent here rather than by the front end, so that the record covers
                # the time shaping takes and a cut it makes (see service/shaping.py)
                transport = request.transport
                if transport is not None and not transport.is_closing():
                    await response.complete(request)
        except CutConnection as exc:  # a fault cut the request body or the response short
            exchange.error = exc.reason
            cut(request.transport, with_reset=exc.reset)
            if response is None:  # (else the client saw its status line: it is recorded)
                response = Response(status=499)  # never sent: the connection is gone
        except ClientGone as exc:
            exchange.error = str(exc)
            raise
        except asyncio.CancelledError:
            exchange.error = "client went away"
            raise
        finally:
            if response is not None and exchange.status is None:
                exchange.status = response.status
            exchange.duration_ms = (perf_counter() - exchange.started) * 1000  # (finish)
            self.recorder.finish(service, exchange)
        return response
