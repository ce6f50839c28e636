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


def test_the_last_fields_are_remembered_as_they_were_given() -> None:
    """The same fields again take the last result without a pass over them; a list changed
    after the call (the caller's own) is not the one remembered, and fields that differ in a
    dropped header or in one that Connection names are worked out again."""
    raw = [(b"Server", b"nginx"), (b"Content-Length", b"3"), (b"Connection", b"keep-alive")]
    first, length = upstream_response_lines(raw)
    assert first == b"Server: nginx\r\nContent-Length: 3" and length
    raw.append((b"X-Late", b"1"))  # (changed in place after the call)
    assert upstream_response_lines(raw) == (b"Server: nginx\r\nContent-Length: 3\r\nX-Late: 1",
                                            True)
    assert upstream_response_lines(raw[:3]) == (first, True)
    named = [(b"Server", b"nginx"), (b"Content-Length", b"3"), (b"Connection", b"server")]
    assert upstream_response_lines(named) == (b"Content-Length: 3", True)
    chunked = [(b"Server", b"nginx"), (b"Transfer-Encoding", b"chunked")]
    assert upstream_response_lines(chunked) == (b"Server: nginx", False)
    assert upstream_response_lines(chunked) == (b"Server: nginx", False)
    assert upstream_response_lines(raw[:3]) == (first, True)
