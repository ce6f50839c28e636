"""The response head's deadline is the connection's timer (proxy/upstream.py `time_head`): one
timer per connection, armed for the earliest deadline and armed again when it finds the head
due later. Each exchange on a kept-alive connection must still get its own deadline: a later
exchange's shorter one is met in time, a longer one is not cut short by an earlier exchange's
timer, and a head that arrived is never failed."""

from __future__ import annotations

import asyncio

import pytest

from devamb.proxy.upstream import UpstreamConnection

GET = b"GET / HTTP/1.1\r\nHost: up\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Silent(asyncio.Transport):
    """A transport that takes the writes and answers nothing by itself."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def connection() -> UpstreamConnection:
    conn = UpstreamConnection()
    conn.connection_made(Silent())
    return conn


async def answered(conn: UpstreamConnection, timeout: float, after: float) -> None:
    """One exchange: the request sent with `timeout`, the response `after` seconds later."""
    conn.send_head(GET, timeout)
    loop = asyncio.get_running_loop()
    loop.call_later(after, conn.data_received, OK)
    await conn.head_arrived()
    assert conn.whole_body() == [b"ok"]


async def test_a_head_not_there_in_time_fails_with_timeout() -> None:
    conn = connection()
    loop = asyncio.get_running_loop()
    started = loop.time()
    conn.send_head(GET, 0.1)
    with pytest.raises(TimeoutError):
        await conn.head_arrived()
    assert 0.09 <= loop.time() - started < 1.0


async def test_a_later_shorter_deadline_is_met() -> None:
    conn = connection()
    await answered(conn, 30.0, 0.01)  # its timer runs in 30 s
    loop = asyncio.get_running_loop()
    started = loop.time()
    conn.send_head(GET, 0.1)
    with pytest.raises(TimeoutError):
        await conn.head_arrived()
    assert loop.time() - started < 1.0


async def test_a_later_longer_deadline_is_not_cut_by_the_earlier_timer() -> None:
    conn = connection()
    await answered(conn, 0.1, 0.01)  # its timer runs at 0.1 s and finds nothing due
    await answered(conn, 0.3, 0.2)  # past the first timer's time: armed again, not fired


async def test_an_untimed_head_is_not_failed() -> None:
    conn = connection()
    await answered(conn, 0.05, 0.01)  # a timer at 0.05 s
    conn.send_head(GET)  # not timed (a request body streams under its own deadline)
    await asyncio.sleep(0.1)
    assert not conn.head_arrived().done()
    conn.time_head(asyncio.get_running_loop().time() + 0.05)
    with pytest.raises(TimeoutError):
        await conn.head_arrived()
