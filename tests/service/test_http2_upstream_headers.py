"""The upstream's request headers (service/http2.py `_upstream_headers`): remembered by the
client list's Fields (one per client connection, proxy/h2frames.py) and by its pairs, so that
the connections sending the same list share one upstream list (whose HPACK block the
upstream's encoder keeps), and a list added to is not mistaken for the one it was."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from devamb.proxy import h2frames
from devamb.service import http2
from devamb.targets.base import H2Destination

REQUEST = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/pkg.Svc/Call"),
           (b":authority", b"devamb:1"), (b"content-type", b"application/grpc"),
           (b"x-devamb-target", b"b")]


def _listener(keep_host: bool = False) -> Any:
    listener = http2.Http2Listener.__new__(http2.Http2Listener)
    listener.service = SimpleNamespace(spec=SimpleNamespace(keep_host=keep_host))
    listener._sent, listener._sent_by_fields = {}, {}
    return listener


def test_connections_sending_the_same_list_share_one_upstream_list() -> None:
    listener = _listener()
    there = H2Destination("up", 50051, "up:50051", headers={"Authorization": "t"})
    one, other = h2frames.kept(REQUEST), h2frames.kept(REQUEST)  # (two connections' Fields)
    sent, injected = listener._upstream_headers(h2frames.copied(one._fields), there)
    assert list(sent) == [(b":method", b"POST"), (b":scheme", b"http"),
                          (b":path", b"/pkg.Svc/Call"), (b":authority", b"up:50051"),
                          (b"content-type", b"application/grpc"), (b"authorization", b"t")]
    assert injected == [(b"authorization", b"t")]
    assert h2frames.fields_of(sent) is not None  # (its own: its block kept by the encoder)
    for headers in (h2frames.copied(one._fields), h2frames.copied(other._fields), REQUEST,
                    h2frames.BytesPairs(REQUEST)):
        assert listener._upstream_headers(headers, there)[0] is sent
    grown = h2frames.copied(one._fields)
    grown.append((b"x-more", b"1"))
    assert list(listener._upstream_headers(grown, there)[0]) == [*sent[:5], (b"x-more", b"1"),
                                                                 (b"authorization", b"t")]
    elsewhere = H2Destination("up2", 50051, "up2:50051")
    assert (b":authority", b"up2:50051") in listener._upstream_headers(
        h2frames.copied(one._fields), elsewhere)[0]
    kept_host = _listener(keep_host=True)._upstream_headers(h2frames.copied(one._fields), there)
    assert (b":authority", b"devamb:1") in kept_host[0]
