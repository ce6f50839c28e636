"""HPACK with memory (proxy/h2hpack.py): the same bytes as hpack, decoded back the same."""

from __future__ import annotations

import hpack

from devamb.proxy import h2hpack

REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a:1"),
           (b":path", b"/1k"), (b"user-agent", b"t")]


def test_blocks_match_hpack_and_decode_back_as_the_table_changes() -> None:
    ours, theirs = h2hpack.Encoder(), hpack.Encoder()
    reader, plain = h2hpack.Decoder(), hpack.Decoder()
    lists = [REQUEST, REQUEST, REQUEST, [*REQUEST, (b"x-n", b"1")], REQUEST,
             [*REQUEST[:3], (b":path", b"/2")], REQUEST, REQUEST]
    for headers in lists:
        block = ours.encode(headers)
        assert block == theirs.encode(headers)
        assert reader.decode(block, raw=True) == plain.decode(block, raw=True) == headers
    assert ours._kept and reader._kept  # repeats were remembered


def test_a_table_size_change_is_sent_not_a_remembered_block() -> None:
    ours, reader = h2hpack.Encoder(), hpack.Decoder()
    for _ in range(3):
        assert reader.decode(ours.encode(REQUEST), raw=True) == REQUEST
    ours.header_table_size = 0
    block = ours.encode(REQUEST)
    assert block[0] & 0xE0 == 0x20  # a dynamic table size update first
    assert reader.decode(block, raw=True) == REQUEST
    assert reader.header_table_size == 0


def test_normalizes_as_h2_would() -> None:
    block = h2hpack.Encoder().encode([(b":status", b"200"), (b"X-Up", b" v "),
                                      (b"connection", b"close"), (b"authorization", b"s")])
    decoded = hpack.Decoder().decode(block, raw=True)
    assert decoded == [(b":status", b"200"), (b"x-up", b"v"), (b"authorization", b"s")]
    assert isinstance(decoded[2], hpack.NeverIndexedHeaderTuple)
