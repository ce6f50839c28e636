"""The HTTP/2 listener (h2c with prior knowledge, or TLS with ALPN h2): each stream is one
exchange, relayed to the active target's upstream over h2c or h2 over TLS. The target is
picked when the stream opens, so that a switch applies to new streams and streams in flight
finish where they started."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable

from devamb.control.events import Notice
from devamb.grpc.answers import grpc_of_http, trailers_only
from devamb.grpc.catalog import Catalog
from devamb.grpc.status import CODES
from devamb.grpc.tap import GrpcTap
from devamb.inspect.exchange import Exchange
from devamb.inspect.replay import replay_of
from devamb.proxy.h2conn import (
    CANCEL,
    INTERNAL_ERROR,
    NO_ERROR,
    H2Headers,
    H2Stream,
    Inbound,
    StreamGone,
    as_text,
    header,
    lookup,
)
from devamb.proxy.h2frames import fields_of, kept
from devamb.proxy.h2front import H2FrontServer
from devamb.proxy.h2limits import Bucket
from devamb.proxy.h2upstream import H2Upstream, UpstreamDown
from devamb.proxy.listen import bind
from devamb.service.core import Service
from devamb.service.h2_breaker import guarded
from devamb.service.h2_faults import H2Call, request_view
from devamb.service.h2_retry import RETRY, H2Tries
from devamb.service.listener_tls import alpn_for
from devamb.service.recorder import Recorder
from devamb.targets.base import H2Destination, Target, TargetUnavailable

DEVAMB_GRPC = {  # what devamb's own answers mean to a gRPC client
    502: CODES["UNAVAILABLE"], 503: CODES["UNAVAILABLE"], 504: CODES["DEADLINE_EXCEEDED"],
}
TARGET_OVERRIDE = b"x-devamb-target"  # X-Devamb-Target: this call goes to the named target
REPLAY = b"x-devamb-replay"  # the engine's replay marker (inspect/replay.py): never sent on

# what the response relay sends on at once, without waiting, when no fault shapes the call:
# a frame sent before one of these is written with it (H2Stream.send_headers' `more`)
_SENT_AT_ONCE = frozenset(("data", "trailers"))

SHUTDOWN_GRACE = 3.0
SENT_KEPT = 64  # request header lists remembered as sent upstream (all forgotten when full)
log = logging.getLogger("devamb.http2")




def _client_reset(item: Inbound, back: H2Stream, exchange: Exchange) -> None:
    """The client's stream was reset while its call is relayed: the upstream's is reset too."""
    if item.local:  # we reset the client's stream: the upstream's is done too
        return
    exchange.error = exchange.error or (
        "the client connection was lost" if item.lost
        else f"the client reset the stream (code {item.code})"
    )
    back.reset(CANCEL if item.lost else item.code)


class _Pending:
    """The response's parts relayed but not yet recorded (Http2Listener._responses)."""

    __slots__ = ("_data", "_headers", "_trailers", "eager", "exchange", "tap")

    def __init__(self, exchange: Exchange, tap: GrpcTap | None) -> None:
        self.exchange = exchange
        self.tap = tap
        self.eager = False  # recorded at once (a shaped response)
        self._headers: H2Headers | None = None
        self._data: list[bytes] = []
        self._trailers: H2Headers | None = None

    def headers(self, headers: H2Headers) -> None:
        self._headers = headers

    def data(self, data: bytes) -> None:
        self._data.append(data)
        if self.eager:
            self.write()

    def trailers(self, headers: H2Headers) -> None:
        self._trailers = headers
        if self.eager:
            self.write()

    def write(self) -> None:
        exchange, tap = self.exchange, self.tap
        if self._headers is not None:
            exchange.response_headers = as_text(self._headers)
            if tap is not None:
                tap.response_headers(self._headers)  # grpc-status: a trailers-only response
            self._headers = None
        if self._data:
            for data in self._data:
                exchange.response_body.add(data)
                if tap is not None:
                    tap.response_data(data)
            self._data.clear()
        if self._trailers is not None:
            exchange.own_notes().setdefault("http2", {})["trailers"] = as_text(self._trailers)
            if tap is not None:
                tap.trailers(self._trailers)
            self._trailers = None


class Http2Listener:
    def __init__(self, service: Service, recorder: Recorder) -> None:
        self.service = service
        self.recorder = recorder
        self._server: H2FrontServer | None = None
        # by destination
        self._upstreams: dict[tuple[str, int, int, str | None, str | None], H2Upstream] = {}
        self._catalog = Catalog(service.spec.schema, service.name)  # how gRPC calls decode
        self._notices = Bucket(5, 0.2, time.monotonic())  # bad clients shown in the TUI
        # the upstream's request headers by the client's (_upstream_headers)
        self._sent: dict[tuple[object, ...], tuple[H2Headers, H2Headers]] = {}
        self._sent_by_fields: dict[tuple[object, ...], tuple[H2Headers, H2Headers]] = {}

    async def start(self) -> None:
        spec = self.service.spec
        tls = spec.tls.context(alpn_for(spec.protocol)) if spec.tls is not None else None
        server = H2FrontServer(self._stream, self._protocol_error, tls)
        self.service.bound = await bind(server, self.service.name, spec.listen)
        self._server = server

    def embedded(self) -> H2FrontServer:
        """The HTTP/2 front end of an `http` service, which hands it the connections that turn
        out to be HTTP/2 (proxy/sniff.py); `stop` ends them and their upstreams."""
        self._server = H2FrontServer(self._stream, self._protocol_error)
        return self._server

    def _begin(self, target: str, remote: str | None) -> Exchange:
        exchange = self.recorder.begin(self.service, target, remote)
        exchange.protocol = "http2" if self.service.spec.protocol == "http" else exchange.protocol
        return exchange

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> int:
        cut = 0
        if self._server is not None:
            cut = await self._server.stop(grace)
            self._server = None
            self.service.bound = None
        for upstream in self._upstreams.values():  # shared by the targets: closed here
            upstream.close()
        self._upstreams.clear()
        self._catalog.forget()
        return cut

    def hurry(self) -> None:
        """A drain in progress (`stop`) ends now, cutting the calls still in flight."""
        if self._server is not None:
            self._server.hurry()

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
            upstream = H2Upstream(
                destination.host, destination.port, timeout,
                destination.tls, destination.server_hostname, destination.dial,
            )
            self._upstreams[destination.key] = upstream
        return upstream

    async def _stream(self, front: H2Stream, remote: str | None) -> None:
        service = self.service
        first = await front.next()  # the request headers, queued with the stream
        headers = first.headers
        get = lookup(headers)  # (the request's headers by name: ~6 look-ups)
        replayed = replay_of(get(REPLAY), self.recorder.replay_token)
        allowed = service.spec.target_header or replayed is not None  # as service/http.py
        name = get(TARGET_OVERRIDE) if allowed else None
        if name is not None and name not in service.targets:
            exchange = self._begin(name, remote)
            exchange.method = get(b":method")
            exchange.path = get(b":path")
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
        exchange = self._begin(target.name, remote)
        tap: GrpcTap | None = None  # the gRPC record of the call (answering kinds keep theirs)
        exchange.method = get(b":method")
        exchange.path = get(b":path")
        exchange.replay_of = replayed
        try:
            taker = target.h2_target(headers)  # a split's member, picked per call
            call = self._call(front, headers, exchange, get)
            # (a gRPC call: its content-type, as H2Call read it)
            tap = GrpcTap(exchange.own_notes(), exchange.path, get(b"grpc-encoding")
                          ) if call.grpc else None
            if call.plan is not None and await call.before():  # a fault answered or ended it
                return
            if taker.answers_h2:
                if tap is not None:  # a kind that answers records the call itself
                    exchange.own_notes().pop("grpc", None)
                    tap = None
                await taker.serve_h2(front, headers, exchange)
            elif target.name not in service.policy.breakers:  # (no breaker: no layer)
                await self._relay(front, headers, taker, exchange, call, tap)
            else:
                await guarded(service, target.name, call,  # the breaker (h2_breaker.py)
                              lambda: self._relay(front, headers, taker, exchange, call, tap))
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
            if tap is not None:
                if tap.note["status"] is None and exchange.response_headers:  # devamb answered
                    tap.response_headers([(k.encode("latin-1"), v.encode("latin-1"))
                                          for k, v in exchange.response_headers])
                if not Catalog.settle_now(tap):  # (the reflection under way: waited for)
                    await self._catalog.settle(tap)
            exchange.finish()
            self.recorder.finish(service, exchange)

    def _call(self, front: H2Stream, headers: H2Headers, exchange: Exchange,
              get: Callable[[bytes], str | None]) -> H2Call:
        """The call's faults (rolled as HTTP/1's are) and deadline (service/h2_faults.py);
        `get`: the headers' look-up (h2conn.lookup)."""
        faults = self.service.faults
        plan = None
        if faults.chain.armed or faults.header_faults:
            plan = faults.roll_http(*request_view(headers))
            if plan is not None:
                exchange.faults = plan.names
        return H2Call(self.service, front, headers, exchange, plan, get)

    async def _relay(
        self, front: H2Stream, headers: H2Headers, target: Target, exchange: Exchange,
        call: H2Call,
        tap: GrpcTap | None,
    ) -> None:
        service = self.service
        destination = await target.h2_destination(headers)
        upstream = self._upstream(destination)
        sent, injected = self._upstream_headers(headers, destination)
        scheme = "https" if destination.tls is not None else "http"
        exchange.url = f"{scheme}://{destination.authority}{exchange.path or ''}"
        tries = H2Tries(service, front, headers, exchange, call)  # retries (h2_retry.py)
        try:
            while True:
                try:
                    back = await tries.open(upstream, sent, more=True)  # (_try flushes)
                except UpstreamDown as exc:
                    if await tries.again(tries.wants("connect-failed"), str(exc)):
                        continue
                    await self._answer(front, exchange, 502, str(exc))
                    return
                decide = None  # how the call's messages decode, settled once the request left
                if tap is not None and not self._catalog.known(tap):
                    decide = functools.partial(self._catalog.reflect, tap, destination.key,
                                               upstream, destination.authority, scheme, injected)
                if await self._try(front, back, exchange, call, tries, tap, sent, decide):
                    return
        finally:
            if not exchange.request_headers:  # (no try passed the request on)
                exchange.request_headers = as_text(sent)

    def _upstream_headers(self, headers: H2Headers, destination: H2Destination
                          ) -> tuple[H2Headers, H2Headers]:
        """The request headers the upstream gets (the client's, with the destination's
        :authority unless the service keeps the client's, the target's own headers replacing
        the client's, devamb's markers taken out), and the target's own. A client repeats
        its header list call after call: what it became is remembered (read-only lists), by
        the list's Fields (h2frames: one per client connection and list, found without
        hashing the pairs), else by its pairs (shared by all the connections that send them:
        one upstream list, whose HPACK block the upstream's encoder keeps)."""
        keep_host = self.service.spec.keep_host
        site = (keep_host, destination.authority, tuple(destination.headers.items()))
        fields = fields_of(headers)
        if fields is not None:
            known = self._sent_by_fields.get((*site, fields))
            if known is not None:
                return known
        key = (*site, *headers)
        known = self._sent.get(key)
        if known is None:
            known = self._upstream_list(headers, destination, keep_host)
            if len(self._sent) >= SENT_KEPT:
                self._sent.clear()
            self._sent[key] = known
        if fields is not None:
            if len(self._sent_by_fields) >= SENT_KEPT:
                self._sent_by_fields.clear()
            self._sent_by_fields[(*site, fields)] = known
        return known

    @staticmethod
    def _upstream_list(headers: H2Headers, destination: H2Destination, keep_host: bool
                       ) -> tuple[H2Headers, H2Headers]:
        injected = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in destination.headers.items()]  # they replace the client's
        replaced = {k for k, _ in injected} | {TARGET_OVERRIDE, REPLAY}
        authority = (None if keep_host
                     else (b":authority", destination.authority.encode("latin-1")))
        sent: H2Headers = kept([  # (all bytes: h2 need not check them again; its own Fields)
            *(authority if authority is not None and pair[0] == b":authority" else pair
              for pair in headers if pair[0] not in replaced), *injected])
        return sent, injected

    async def _try(self, front: H2Stream, back: H2Stream, exchange: Exchange, call: H2Call,
                   tries: H2Tries, tap: GrpcTap | None, sent: H2Headers,
                   decide: Callable[[], None] | None = None) -> bool:
        """One try on `back` (its request headers `sent`); False when another try follows.
        `decide` (the catalog's reflection for the tap) runs once what came is upstream."""
        pump: asyncio.Task[None] | None = None
        if (tries.request_ended and front.gone is None) or (
                self._pass_queued(front, back, exchange, call, tap)):
            # the whole request is upstream: no task reads the client's stream, its reset
            # (if one comes) is passed on by the hook
            front.on_reset = lambda item: _client_reset(item, back, exchange)
        else:
            pump = asyncio.get_running_loop().create_task(
                self._requests(front, back, exchange, tries.request_ended, call, tap)
            )
        back.endpoint.flush()  # the headers (opened with `more`) if nothing wrote them yet
        if decide is not None:
            decide()
        if not exchange.request_headers:  # recorded once what came is on its way
            exchange.request_headers = as_text(sent)
        back.reader_settles = True  # (forgotten below once the answer passed on)
        try:
            verdict, item = await tries.first(back)
            if verdict == RETRY:
                return False
            if item is not None:
                await self._responses(front, back, exchange, call, item, tap)
            return True
        finally:
            front.on_reset = None
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError, StreamGone):
                    await pump
            # the response is over: a request still open on either side ends here, so that
            # neither connection keeps the stream (and its slot) open
            if not back.sent_end:
                back.reset(CANCEL)
            elif not back.got_end:  # (its end, should it come, settles it as any stream's)
                back.reader_settles = False
            elif back.gone is None:
                back.endpoint.settle(back)

    @staticmethod
    def _pass_queued(front: H2Stream, back: H2Stream, exchange: Exchange, call: H2Call,
                     tap: GrpcTap | None) -> bool:
        """Pass on at once what the client already sent (a unary call's message and its end
        arrive with the headers), so that it leaves with them; True when the request is over
        (then no pump task is needed), False when the pump goes on from what is left."""
        while (item := front.peek()) is not None:
            if item.kind == "data":
                after = front.peek_after()
                end = after is not None and after.kind == "end"
                if not call.send_up_now(back, item.data, end):
                    return False
                front.take()
                exchange.request_body.add(item.data)
                if tap is not None:
                    tap.request_data(item.data)
                front.ack(item.flow)
                if end:
                    front.take()
                    return True
            elif item.kind == "end":
                if not call.send_up_now(back, b"", True):
                    return False
                front.take()
                return True
            else:  # trailers, a reset: the pump's
                return False
        return False

    async def _requests(
        self, front: H2Stream, back: H2Stream, exchange: Exchange, ended: bool, call: H2Call,
        tap: GrpcTap | None,
    ) -> None:
        """Client -> upstream; a client's data is acknowledged once the upstream took it."""
        with contextlib.suppress(StreamGone):
            await self._pass_requests(front, back, exchange, ended, call, tap)

    @staticmethod
    async def _pass_requests(
        front: H2Stream, back: H2Stream, exchange: Exchange, ended: bool, call: H2Call,
        tap: GrpcTap | None,
    ) -> None:
        while True:
            item = await front.next()
            if item.kind == "reset":
                _client_reset(item, back, exchange)
                return
            if ended:
                continue
            if item.kind == "data":
                exchange.request_body.add(item.data)
                if tap is not None:
                    tap.request_data(item.data)
                await call.send_up(back, item.data)
                front.ack(item.flow)
            elif item.kind == "trailers":
                trailers = as_text(item.headers)
                exchange.own_notes().setdefault("http2", {})["request_trailers"] = trailers
                await call.end_up(back, item.headers)
                ended = True
            elif item.kind == "end":
                await call.end_up(back)
                ended = True

    async def _responses(self, front: H2Stream, back: H2Stream, exchange: Exchange,
                         call: H2Call, item: Inbound, tap: GrpcTap | None) -> None:
        """Upstream -> client from the response headers (`item`, or how the try ended); the
        upstream's data is acknowledged once the client took it.

        What arrived together (a unary answer: headers, message and trailers in one read) is
        recorded once it is sent on, so that the record is off the call's path: `record` is
        written out whenever the relay waits for more, and at the end."""
        if item.kind == "reset":
            if item.local:  # the client reset its stream, and we the upstream's
                return
            if item.lost:
                why = str(back.gone) if back.gone else "the upstream connection was lost"
                await self._answer(front, exchange, 502, why)
            else:
                exchange.error = f"the upstream reset the stream (code {item.code})"
                front.reset(item.code)
            return
        exchange.mark_first_byte()
        status = header(item.headers, b":status")
        exchange.status = int(status) if status and status.isdigit() else None
        record = _Pending(exchange, tap)
        record.headers(item.headers)
        try:
            await self._pass_responses(front, back, exchange, call, tap, item, record)
        finally:
            record.write()

    @staticmethod
    async def _pass_responses(front: H2Stream, back: H2Stream, exchange: Exchange,
                              call: H2Call, tap: GrpcTap | None, item: Inbound,
                              record: _Pending) -> None:
        queued = back.peek()
        ended = queued is not None and queued.kind == "end"
        follow = back.take() if queued is not None else None
        if call.shaping is not None:  # a shaped response may take long: recorded as it goes
            record.write()
            record.eager = True
        if call.shaping is not None:
            await call.first_byte()
        # at once: a stream may wait long for data; written with what is queued after it (a
        # unary answer's DATA and trailers, sent below before the relay waits)
        front.send_headers(item.headers, ended, call.shaping is None and follow is not None
                           and follow.kind in _SENT_AT_ONCE)
        if ended:
            return
        owed = 0  # the last DATA's length, passed on but not yet acknowledged: acknowledged
        # with the next DATA, before a wait, or at the end (after a unary answer's last write)
        try:
            while True:
                if follow is None:
                    if back.peek() is None:
                        record.write()  # what passed so far, before waiting for more
                        if owed:
                            back.ack(owed)
                            owed = 0
                    follow = await back.next()
                if follow.kind == "end":
                    if not front.sent_end:
                        await call.send_down(b"", end=True)
                    return
                if follow.kind == "data":
                    if owed:
                        back.ack(owed)
                        owed = 0
                    record.data(follow.data)
                    queued = back.peek()
                    last = queued is not None and queued.kind == "end"
                    try:  # (END_STREAM on the last; written with what is queued after it)
                        more = queued is not None and queued.kind in _SENT_AT_ONCE
                        if not call.send_down_now(follow.data, last, more):
                            await call.send_down(follow.data, last, more)
                    except StreamGone:
                        back.reset(CANCEL)
                        raise
                    owed = follow.flow
                    if last:
                        return
                elif follow.kind == "trailers":
                    record.trailers(follow.headers)
                    if call.shaping is not None:
                        await call.before_end()
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
        finally:
            if owed:
                back.ack(owed)

    async def _answer(self, front: H2Stream, exchange: Exchange, status: int, reason: str) -> None:
        """devamb answers the stream itself (the upstream could not): a gRPC call with the
        status a client reads best (trailers-only, the reason as grpc-message), other calls
        with the HTTP status and the reason as text."""
        exchange.status = status
        exchange.error = reason
        text = f"devamb: {self.service.name}: {exchange.target}: {reason}"
        if "grpc" in exchange.notes:  # a gRPC call (its tap is open)
            code = DEVAMB_GRPC.get(status) or grpc_of_http(status)
            headers = trailers_only(code, text)
            exchange.status = 200
            exchange.response_headers = as_text(headers)
            front.send_headers(headers, end=True)
            return
        body = f"{text}\n".encode()
        headers = [
            (b":status", str(status).encode()), (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        exchange.response_headers = as_text(headers)
        exchange.response_body.add(body)
        front.send_headers(headers)
        await front.send_data(body, end=True)
