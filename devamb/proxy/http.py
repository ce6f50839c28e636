"""The HTTP listener: the front end (front.py), one per service, routing to the active target."""

from __future__ import annotations

import asyncio

from devamb.faults.base import CutConnection
from devamb.faults.chain import Plan
from devamb.faults.connection import cut, reset
from devamb.inspect.exchange import Exchange
from devamb.inspect.recorder import Recorder
from devamb.inspect.replay import replay_of
from devamb.proxy.errors import UpstreamFailed, error_response
from devamb.proxy.front import FrontServer
from devamb.proxy.headers import REPLAY, TARGET_OVERRIDE
from devamb.proxy.listen import bind_failure
from devamb.proxy.request import ClientGone, FrontRequest
from devamb.proxy.response import Response, StreamResponse
from devamb.service import Service
from devamb.targets.base import TargetUnavailable

SHUTDOWN_GRACE = 3.0  # seconds in-flight exchanges get to finish when the listener stops


class HttpListener:
    def __init__(self, service: Service, recorder: Recorder) -> None:
        self.service = service
        self.recorder = recorder
        self._server: FrontServer | None = None

    async def start(self) -> None:
        server = FrontServer(self._handle)
        listen = self.service.spec.listen
        try:
            self.service.bound = await server.start(listen.host, listen.port)
        except OSError as exc:
            raise bind_failure(self.service.name, str(listen), exc) from None
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(SHUTDOWN_GRACE)
            self._server = None
            self.service.bound = None

    @staticmethod
    async def _before_upstream(
        plan: Plan, request: FrontRequest, exchange: Exchange
    ) -> StreamResponse | None:
        """Faults that act before the upstream; a response here is the answer."""
        if plan.refuses:
            reset(request.transport)
            exchange.error = "fault down: connection refused"
            return Response(status=499)  # never sent: the connection is gone
        for fault in plan.fired:
            response = await fault.before_upstream(request, exchange)
            if response is not None:
                return response
        exchange.shaping = plan.shaping()
        return None

    async def _handle(self, request: FrontRequest) -> StreamResponse:
        service = self.service
        replayed = replay_of(request.headers.get(REPLAY), self.recorder.replay_token)
        allowed = service.spec.target_header or replayed is not None
        name = request.headers.get(TARGET_OVERRIDE) if allowed else None
        if name is not None and name not in service.targets:
            known = ", ".join(service.targets)
            return error_response(
                400, "unknown-target", f"no target {name!r}; known: {known}", service.name, name,
                service.redaction.text,
            )
        target = service.target(name)
        if not request.raw_path.startswith("/"):  # asterisk-form (OPTIONS *) or absolute-form
            reason = f"request target {request.raw_path[:200]!r} is not a path"
            return error_response(
                400, "bad-request-target", reason, service.name, target.name,
                service.redaction.text,
            )
        exchange = self.recorder.begin(service, target.name, request.remote)
        exchange.method = request.method
        exchange.path = request.raw_path
        exchange.replay_of = replayed
        faults = service.faults
        plan = (
            faults.roll_http(request.method, request.path, request.headers)
            if faults.chain.armed or faults.header_faults
            else None
        )
        response: StreamResponse | None = None
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
        except CutConnection as exc:  # a fault cut the request body short
            exchange.error = exc.reason
            cut(request.transport, with_reset=exc.reset)
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
            exchange.finish()
            self.recorder.finish(service, exchange)
        return response
