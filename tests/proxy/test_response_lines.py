"""upstream_response_lines gives the last call's lines again for the same fields (proxy/headers.py):
any other fields are made anew, hop-by-hop ones and the ones a Connection header names dropped."""

from __future__ import annotations

from devamb.proxy import headers
from devamb.proxy.headers import upstream_response_lines

NGINX = [(b"Server", b"nginx"), (b"Date", b"Thu, 26 Nov 2026 19:00:00 GMT"),
         (b"Content-Length", b"1024"), (b"Connection", b"keep-alive")]


def test_the_same_fields_give_the_same_lines_and_others_are_made_anew() -> None:
    first = upstream_response_lines(list(NGINX))
    assert first == (b"Server: nginx\r\nDate: Thu, 26 Nov 2026 19:00:00 GMT\r\n"
                     b"Content-Length: 1024", True)
    assert upstream_response_lines(list(NGINX)) == first
    others = [
        [*NGINX[:1], (b"Date", b"Thu, 26 Nov 2026 19:00:01 GMT"), *NGINX[2:]],
        [(b"server", b"nginx"), *NGINX[1:]],
        NGINX[:2],  # no Content-Length
        [*NGINX[:3], (b"Connection", b"X-Secret"), (b"X-Secret", b"s"), (b"Keep-Alive", b"5")],
        [],
    ]
    for raw in others:
        assert upstream_response_lines(list(raw)) == headers._response_lines(raw), raw
        assert upstream_response_lines(list(NGINX)) == first  # and back
    lines, length = upstream_response_lines(others[3])
    assert lines == b"Server: nginx\r\nDate: Thu, 26 Nov 2026 19:00:00 GMT\r\nContent-Length: 1024"
    assert length
