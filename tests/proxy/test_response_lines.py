"""The response head's lines a record keeps: the same head again is the same bytes object."""

from __future__ import annotations

from devamb.proxy.headers import upstream_response_lines


def test_the_same_head_again_gives_the_same_bytes() -> None:
    raw = [(b"Server", b"nginx"), (b"Date", b"Mon, 07 Dec 2026 20:00:00 GMT"),
           (b"Content-Length", b"3"), (b"Connection", b"keep-alive")]
    first, length = upstream_response_lines(raw)
    assert first == (b"Server: nginx\r\nDate: Mon, 07 Dec 2026 20:00:00 GMT\r\n"
                     b"Content-Length: 3") and length
    again, _ = upstream_response_lines([(name, bytes(value)) for name, value in raw])
    assert again is first  # (records of the same answer share one block)
    later = [(b"Server", b"nginx"), (b"Date", b"Mon, 07 Dec 2026 20:00:01 GMT"),
             (b"Content-Type", b"text/plain")]
    other, length = upstream_response_lines(later)
    assert other is not first and not length
    assert other == (b"Server: nginx\r\nDate: Mon, 07 Dec 2026 20:00:01 GMT\r\n"
                     b"Content-Type: text/plain")
    assert upstream_response_lines(raw) == (first, True)  # (a change, then the first again)
    assert upstream_response_lines([]) == (b"", False)
