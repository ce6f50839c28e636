"""The tries of one HTTP/2 call: the service's `retries` and `per_try_timeout` (policies/retry.py)
applied per call, as policies/request.py applies them per HTTP/1.1 exchange.

A try is retried only while nothing of its answer reached the client: on a connect failure, a
reset before the response headers, no headers within the try's time, an HTTP status the retry
policy lists, or a gRPC status it lists in a trailers-only answer (how servers answer a call
they fail at once). The request is kept as it goes upstream (`RequestTape`, up to
BUFFER_FOR_RETRY bytes) and sent again on the next try; a bigger request is sent once.
gRPC calls are POSTs: they are retried only when their :path matches `methods` (or `unsafe`);
other HTTP/2 calls when their method is idempotent, as over HTTP/1.1.
"""

from __future__ import annotations

from devamb.grpc.status import name_of
from devamb.inspect.exchange import Exchange
from devamb.policies.request import BUFFER_FOR_RETRY
from devamb.policies.retry import backoff_delay
from devamb.proxy.alarms import alarm
from devamb.proxy.h2conn import CANCEL, H2Headers, H2Stream, Inbound, header
from devamb.proxy.h2upstream import H2Upstream
from devamb.proxy.request import IDEMPOTENT
from devamb.service.core import Service
from devamb.service.h2_faults import H2Call, RequestTape, request_view

RELAY, RETRY, DONE = "relay", "retry", "done"  # what follows a try's first answer


class H2Tries:
    __slots__ = ("attempt", "attempts", "call", "exchange", "front", "policy")

    def __init__(self, service: Service, front: H2Stream, headers: H2Headers,
                 exchange: Exchange, call: H2Call) -> None:
        self.policy = service.policy
        self.front = front
        self.exchange = exchange
        self.call = call
        retry = self.policy.retry
        self.attempts = 1
        if retry is not None:
            method, path, _ = request_view(headers)
            if retry.unsafe or retry.idempotent_path(path) or (
                    not call.grpc and method in IDEMPOTENT):
                self.attempts = retry.attempts
            if self.policy.budget is not None:
                self.policy.budget.request()
        if self.attempts > 1:
            call.tape = RequestTape(BUFFER_FOR_RETRY, front.ended_at_headers)
        self.attempt = 1
        exchange.attempts = 1

    @property
    def request_ended(self) -> bool:
        tape = self.call.tape
        return tape.ended if tape is not None else self.front.ended_at_headers

    async def open(self, upstream: H2Upstream, headers: H2Headers, more: bool = False
                   ) -> H2Stream:
        """This try's upstream stream, with what the client sent so far sent again on it.
        `more`: the caller sends on it, or flushes its connection, before it yields to the
        loop (H2Stream.send_headers); a later try's stream is written as it is sent again."""
        tape = self.call.tape
        if tape is None or self.attempt == 1:
            return await upstream.open(headers, self.front.ended_at_headers, more)
        bare = tape.ended and not tape.chunks and tape.trailers is None
        back = await upstream.open(headers, end=bare)
        for chunk in tape.chunks:
            await back.send_data(chunk)
        if tape.ended and not bare:
            if tape.trailers is not None:
                back.send_trailers(tape.trailers)
            else:
                await back.send_data(b"", end=True)
        return back

    def wants(self, failure: str) -> bool:
        """Whether the retry policy retries an UpstreamFailed-style failure code
        (connect-failed, upstream-closed, timeout)."""
        retry = self.policy.retry
        return retry is not None and retry.retries_failure(failure)

    async def again(self, wanted: bool, why: str) -> bool:
        """Whether another try follows a failure the policy `wanted` retried (and it has
        tries, budget and the whole request left); it waits its backoff first."""
        if not self.can(wanted):
            return False
        await self.next_try(why)
        return True

    def can(self, wanted: bool) -> bool:
        retry, budget, tape = self.policy.retry, self.policy.budget, self.call.tape
        return (wanted and retry is not None and budget is not None and tape is not None
                and self.attempt < self.attempts and tape.whole and self.front.gone is None
                and budget.has_room())  # (asked last: a denial is counted)

    async def next_try(self, why: str) -> None:
        retry, budget = self.policy.retry, self.policy.budget
        assert retry is not None and budget is not None
        budget.spend()
        self.exchange.retried = [*self.exchange.retried, why]  # (assigned: see Exchange)
        await self.policy.ctx.sleep(backoff_delay(retry, self.attempt, self.policy.ctx))
        self.attempt += 1
        self.exchange.attempts = self.attempt

    def _timeout(self) -> float:
        left = self.call.left()
        per_try = self.policy.spec.per_try_timeout
        return min(per_try, left) if per_try else left

    async def first(self, back: H2Stream) -> tuple[str, Inbound | None]:
        """Wait for the try's response headers: RELAY them, or RETRY (the try is over), or
        DONE (the call was answered here: its deadline passed)."""
        if back.peek() is not None:
            item = back.take()
        else:  # (an alarm that wakes the wait: no task, unlike wait_for, nor a Timeout;
            # nor a loop timer of its own: proxy/alarms.py)
            loop = self.call.loop
            timer = alarm(loop, loop.time() + self._timeout(), back.expire)
            try:
                item = await back.next()
            finally:
                timer.cancel()
        if item.kind == "expired":
            back.reset(CANCEL)
            if await self.again(self.wants("timeout"),
                                "no response headers within the try's time"):
                return RETRY, None
            await self.call.answer_deadline()  # DEADLINE_EXCEEDED (gRPC) or 504
            return DONE, None
        if item.kind == "reset" and not item.local:
            why = ("the upstream connection was lost" if item.lost
                   else f"the upstream reset the stream (code {item.code})")
            if await self.again(self.wants("upstream-closed"), why):
                return RETRY, None
            return RELAY, item
        retry = self.policy.retry
        if item.kind != "headers" or retry is None or self.attempt >= self.attempts:
            return RELAY, item
        status = header(item.headers, b":status")
        queued = back.peek()
        grpc = header(item.headers, b"grpc-status") if self.call.grpc else None
        if grpc is not None and grpc.isdigit() and queued is not None and queued.kind == "end":
            code = int(grpc)  # a trailers-only answer: the call failed before any message
            wanted = code != 0 and retry.retries_grpc(code)
            why = f"upstream answered {name_of(code)}"
        elif status is not None and status.isdigit() and status != "200":
            wanted = retry.retries_status(int(status))
            why = f"upstream answered {status}"
        else:
            return RELAY, item
        if self.can(wanted):
            back.reset(CANCEL)  # an answer the client will not see
            await self.next_try(why)
            return RETRY, None
        return RELAY, item
