"""The HTTP/2 listener (h2c, prior knowledge): each stream is one exchange, relayed to the
active target's upstream over h2c. The target is picked when the stream opens, so that a
switch applies to new streams and streams in flight finish where they started."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from devamb.control.events import Notice
from devamb.inspect.exchange import Exchange
from devamb.proxy.h2conn import (
    CANCEL,
    INTERNAL_ERROR,
    NO_ERROR,
    H2Headers,
    H2Stream,
    StreamGone,
)
from devamb.proxy.h2front import H2FrontServer
from devamb.proxy.h2limits import Bucket
from devamb.proxy.h2upstream import H2Upstream, UpstreamDown
from devamb.proxy.listen import bind
from devamb.service.core import Service
from devamb.service.recorder import Recorder
from devamb.targets.base import H2Destination, Target, TargetUnavailable

TARGET_OVERRIDE = b"x-devamb-target"  # X-Devamb-Target: this call goes to the named target

SHUTDOWN_GRACE = 3.0
log = logging.getLogger("devamb.http2")


def _text(headers: H2Headers) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]


def _header(headers: H2Headers, name: bytes) -> str | None:
    """A request header's value (HTTP/2 names are lower case)."""
    return _pseudo(headers, name)


def _pseudo(headers: H2Headers, name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


class Http2Listener:
    def __init__(self, service: Service, recorder: Recorder) -> None:
        self.service = service
        self.recorder = recorder
        self._server: H2FrontServer | None = None
        self._upstreams: dict[tuple[str, int, bool, str | None], H2Upstream] = {}  # by destination
        self._notices = Bucket(5, 0.2, time.monotonic())  # bad clients shown in the TUI

    async def start(self) -> None:
        server = H2FrontServer(self._stream, self._protocol_error)
        self.service.bound = await bind(server, self.service.name, self.service.spec.listen)
        self._server = server

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> int:
        cut = 0
        if self._server is not None:
            cut = await self._server.stop(grace)
            self._server = None
            self.service.bound = None
        for upstream in self._upstreams.values():  # shared by the targets: closed here
            upstream.close()
        self._upstreams.clear()
        return cut

    def _protocol_error(self, remote: str | None, reason: str) -> None:
        """A client broke HTTP/2 or a limit (docs/proxy.md): `reason` says what it got."""
        message = f"{self.service.name}: HTTP/2 client {remote or '?'}: {reason}"
        log.warning("%s", message)
        if self._notices.take(time.monotonic()):  # a flood of bad clients is logged, not shown
            self.recorder.bus.publish(Notice(level="warning", message=message))

    def _upstream(self, destination: H2Destination) -> H2Upstream:
        """The shared connection to `destination` (one per host, port and TLS)."""
        upstream = self._upstreams.get(destination.key)
        if upstream is None:
            timeout = self.service.spec.connect_timeout or self.service.spec.timeout
            upstream = H2Upstream(destination.host, destination.port, timeout)
            self._upstreams[destination.key] = upstream
        return upstream

    async def _stream(self, front: H2Stream, remote: str | None) -> None:
        service = self.service
        first = await front.next()  # the request headers, queued with the stream
        headers = first.headers
        name = _header(headers, TARGET_OVERRIDE) if service.spec.target_header else None
        if name is not None and name not in service.targets:
            exchange = self.recorder.begin(service, name, remote)
            exchange.method = _pseudo(headers, b":method")
            exchange.path = _pseudo(headers, b":path")
            known = ", ".join(service.targets)
            try:
                await self._answer(front, exchange, 400, f"no target {name!r}; known: {known}")
            except StreamGone as exc:
                exchange.error = exchange.error or str(exc)
            finally:
                exchange.finish()
                self.recorder.finish(service, exchange)
            return
        target = service.target(name)
        exchange = self.recorder.begin(service, target.name, remote)
        exchange.method = _pseudo(headers, b":method")
        exchange.path = _pseudo(headers, b":path")
        try:
            if target.answers_h2:
                await target.serve_h2(front, headers, exchange)
            else:
                await self._relay(front, headers, target, exchange)
        except asyncio.CancelledError:
            exchange.error = exchange.error or "cut at shutdown"
            front.reset(CANCEL)
            raise
        except StreamGone as exc:
            exchange.error = exchange.error or str(exc)
        except TargetUnavailable as exc:
            with contextlib.suppress(StreamGone):
                await self._answer(front, exchange, exc.status, exc.reason)
        except Exception as exc:  # a bug must not end the listener: the stream is reset
            exchange.error = f"devamb failed: {exc!r}"
            front.reset(INTERNAL_ERROR)
        finally:
            if front.sent_end and not front.got_end:  # answered before the request ended
                front.reset(NO_ERROR)  # RFC 9113 8.1: stop sending the request, no error
            exchange.finish()
            self.recorder.finish(service, exchange)

    async def _relay(
        self, front: H2Stream, headers: H2Headers, target: Target, exchange: Exchange
    ) -> None:
        service = self.service
        destination = await target.h2_destination(headers)
        upstream = self._upstream(destination)
        injected = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in destination.headers.items()]  # they replace the client's
        replaced = {k for k, _ in injected} | {TARGET_OVERRIDE}
        sent: H2Headers = []
        for key, value in headers:
            if key == b":authority" and not service.spec.keep_host:
                value = destination.authority.encode("latin-1")
            if key not in replaced:
                sent.append((key, value))
        sent += injected
        exchange.request_headers = _text(sent)
        scheme = "https" if destination.tls is not None else "http"
        exchange.url = f"{scheme}://{destination.authority}{exchange.path or ''}"
        ended = front.ended_at_headers
        try:
            back = await upstream.open(sent, end=ended)
        except UpstreamDown as exc:
            await self._answer(front, exchange, 502, str(exc))
            return
        pump = asyncio.get_running_loop().create_task(
            self._requests(front, back, exchange, ended)
        )
        try:
            await self._responses(front, back, exchange)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, StreamGone):
                await pump
            # the response is over: a request still open on either side ends here, so that
            # neither connection keeps the stream (and its slot) open
            if not back.sent_end:
                back.reset(CANCEL)

    async def _requests(
        self, front: H2Stream, back: H2Stream, exchange: Exchange, ended: bool
    ) -> None:
        """Client -> upstream; a client's data is acknowledged once the upstream took it."""
        with contextlib.suppress(StreamGone):
            await self._pass_requests(front, back, exchange, ended)

    @staticmethod
    async def _pass_requests(
        front: H2Stream, back: H2Stream, exchange: Exchange, ended: bool
    ) -> None:
        while True:
            item = await front.next()
            if item.kind == "reset":
                if item.local:  # we reset the client's stream: the upstream's is done too
                    return
                exchange.error = exchange.error or (
                    "the client connection was lost" if item.lost
                    else f"the client reset the stream (code {item.code})"
                )
                back.reset(CANCEL if item.lost else item.code)
                return
            if ended:
                continue
            if item.kind == "data":
                exchange.request_body.add(item.data)
                await back.send_data(item.data)
                front.ack(item.flow)
            elif item.kind == "trailers":
                exchange.notes.setdefault("http2", {})["request_trailers"] = _text(item.headers)
                back.send_trailers(item.headers)
                ended = True
            elif item.kind == "end":
                await back.send_data(b"", end=True)
                ended = True

    async def _responses(self, front: H2Stream, back: H2Stream, exchange: Exchange) -> None:
        """Upstream -> client; the upstream's data is acknowledged once the client took it."""
        timeout = self.service.spec.timeout
        try:
            item = await asyncio.wait_for(back.next(), timeout)
        except TimeoutError:
            back.reset(CANCEL)
            await self._answer(front, exchange, 504, f"no response headers in {timeout:g}s")
            return
        if item.kind == "reset":
            if item.local:  # the client reset its stream, and we the upstream's
                return
            if item.lost:
                await self._answer(front, exchange, 502, "the upstream connection was lost")
            else:
                exchange.error = f"the upstream reset the stream (code {item.code})"
                front.reset(item.code)
            return
        exchange.mark_first_byte()
        status = _pseudo(item.headers, b":status")
        exchange.status = int(status) if status and status.isdigit() else None
        exchange.response_headers = _text(item.headers)
        queued = back.peek()
        ended = queued is not None and queued.kind == "end"
        follow = await back.next() if queued is not None else None
        front.send_headers(item.headers, end=ended)  # at once: a stream may wait long for data
        if ended:
            return
        while True:
            if follow is None:
                follow = await back.next()
            if follow.kind == "end":
                if not front.sent_end:
                    await front.send_data(b"", end=True)
                return
            if follow.kind == "data":
                exchange.response_body.add(follow.data)
                queued = back.peek()
                last = queued is not None and queued.kind == "end"
                try:
                    await front.send_data(follow.data, end=last)  # END_STREAM on the last DATA
                except StreamGone:
                    back.reset(CANCEL)
                    raise
                back.ack(follow.flow)
                if last:
                    return
            elif follow.kind == "trailers":
                exchange.notes.setdefault("http2", {})["trailers"] = _text(follow.headers)
                front.send_trailers(follow.headers)
                return
            elif follow.kind == "reset":
                if follow.local:
                    return
                exchange.error = (
                    "the upstream connection was lost" if follow.lost
                    else f"the upstream reset the stream (code {follow.code})"
                )
                front.reset(INTERNAL_ERROR if follow.lost else follow.code)
                return
            follow = None

    async def _answer(self, front: H2Stream, exchange: Exchange, status: int, reason: str) -> None:
        """devamb answers the stream itself (the upstream could not)."""
        exchange.status = status
        exchange.error = reason
        body = f"devamb: {self.service.name}: {exchange.target}: {reason}\n".encode()
        headers: H2Headers = [
            (b":status", str(status).encode()), (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        exchange.response_headers = _text(headers)
        exchange.response_body.add(body)
        front.send_headers(headers)
        await front.send_data(body, end=True)

