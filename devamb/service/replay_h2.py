"""Replaying a recorded HTTP/2 stream (an http2 or grpc unary call) through its service's own
listener, over h2c as any client would: the recorded request headers (pseudo-headers included),
the recorded body and request trailers, plus the replay marker (the engine's token and the
original's id) and `x-devamb-target`. The listener records the copy with `replay_of` set."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from devamb.control.protocol import ControlError
from devamb.inspect.exchange import Exchange
from devamb.inspect.replay import NOT_REPLAYED, REPLAY_HEADER, TARGET_HEADER, check_replayable
from devamb.proxy.h2conn import H2Headers, StreamGone
from devamb.proxy.h2upstream import H2Upstream, UpstreamDown

REPLAY_TIMEOUT = 60.0  # s for the whole call; the listener's own timeouts come first


def replay_headers(
    original: Exchange, target: str, token: str, leave_out: Collection[str] = ()
) -> H2Headers:
    """The request headers of the copy: as recorded (sent upstream), without what devamb or the
    original target added (`leave_out`, lower case: the target adds its own again)."""
    dropped = NOT_REPLAYED | {name.lower() for name in leave_out}
    headers: H2Headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in original.request_headers or ()
        if name.lower() not in dropped
    ]
    headers.append((REPLAY_HEADER.lower().encode(), f"{token}:{original.id}".encode()))
    headers.append((TARGET_HEADER.lower().encode(), target.encode("latin-1")))
    return headers


async def send_h2_replay(
    original: Exchange,
    address: tuple[str, int],
    target: str,
    token: str,
    *,
    leave_out: Collection[str] = (),
    timeout: float = REPLAY_TIMEOUT,
) -> int | None:
    """Send the recorded call again to the listener at `address`; the :status it answered
    (None if the stream was reset before its headers)."""
    check_replayable(original)
    headers = replay_headers(original, target, token, leave_out)
    body = bytes(original.request_body.data)
    trailers = [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in (original.notes.get("http2") or {}).get("request_trailers") or ()
    ]
    client = H2Upstream(address[0], address[1], timeout)
    try:
        return await asyncio.wait_for(_exchange(client, headers, body, trailers), timeout)
    except TimeoutError:
        raise ControlError(f"the replay of {original.id} got no answer in {timeout:g}s") from None
    except UpstreamDown as exc:
        raise ControlError(f"cannot reach the service's listener: {exc}") from None
    finally:
        client.close()


async def _exchange(
    client: H2Upstream, headers: H2Headers, body: bytes, trailers: H2Headers
) -> int | None:
    stream = await client.open(headers, end=not body and not trailers)
    status: int | None = None
    try:
        if body:
            await stream.send_data(body, end=not trailers)
        if trailers:
            stream.send_trailers(trailers)
        while True:
            item = await stream.next()
            if item.kind == "headers" and status is None:
                value = dict(item.headers).get(b":status", b"")
                status = int(value) if value.isdigit() else None
            elif item.kind == "data":
                stream.ack(item.flow)
            elif item.kind in ("trailers", "end", "reset"):
                return status
    except StreamGone:  # answered (and reset) before the request was all sent
        return status
