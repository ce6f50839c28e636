"""HPACK with memory (proxy/h2hpack.py): the same bytes as hpack, decoded back the same."""

from __future__ import annotations

import hpack

from devamb.proxy import h2frames, h2hpack
from devamb.proxy.h2conn import as_text, header

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


def test_a_block_decodes_to_one_fields_while_the_table_stays() -> None:
    encoder, reader, plain = h2hpack.Encoder(), h2hpack.Decoder(), hpack.Decoder()
    first = encoder.encode(REQUEST)  # (adds to the table: not kept)
    assert reader.fields(first).pairs == plain.decode(first, raw=True) == REQUEST
    again = encoder.encode(REQUEST)  # (indexed fields: kept by the block)
    kept = reader.fields(again)
    assert kept.pairs == plain.decode(again, raw=True) == REQUEST
    assert reader.fields(again) is kept and reader.fields(bytearray(again)) is kept
    other = encoder.encode([*REQUEST, (b"x-n", b"1")])  # the table changes: all forgotten
    assert reader.fields(other).pairs == plain.decode(other, raw=True)
    assert reader.fields(again) is not kept
    assert reader.fields(again).pairs == plain.decode(again, raw=True)  # (indices moved)


def test_a_list_carrying_fields_is_encoded_as_hpack_encodes_its_pairs() -> None:
    ours, theirs, reader = h2hpack.Encoder(), hpack.Encoder(), hpack.Decoder()
    kept = h2frames.kept(REQUEST)
    for headers in (kept, h2frames.copied(kept._fields), REQUEST, kept,  # type: ignore[arg-type]
                    [*REQUEST, (b"x-n", b"1")], kept):
        block = ours.encode(headers)
        assert block == theirs.encode(headers)
        assert reader.decode(block, raw=True) == list(headers)
    grown = h2frames.copied(kept._fields)  # type: ignore[arg-type]
    grown.append((b"x-m", b"2"))  # (added to: its pairs are no longer the Fields')
    assert h2frames.fields_of(grown) is None
    assert reader.decode(ours.encode(grown), raw=True) == [*REQUEST, (b"x-m", b"2")]


def test_text_and_look_ups_of_a_list_carrying_fields_follow_what_was_added() -> None:
    kept = h2frames.kept(REQUEST)
    assert as_text(kept) == as_text(REQUEST) == [(k.decode(), v.decode()) for k, v in REQUEST]
    grown = h2frames.copied(kept._fields)  # type: ignore[arg-type]
    assert header(grown, b":path") == "/1k" and header(grown, b"x-n") is None
    grown.append((b"x-n", b"1"))
    grown.append((b":path", b"/2"))  # (the first of a name wins)
    assert header(grown, b"x-n") == "1" and header(grown, b":path") == "/1k"
    assert as_text(grown)[-2:] == [("x-n", "1"), (":path", "/2")]
    assert as_text(kept) == as_text(REQUEST)


def test_the_first_field_of_a_name_is_the_one_looked_up_in_a_kept_list() -> None:
    pairs = [*REQUEST, (b"x-n", b"1"), (b"x-n", b"2"), (b"latin", b"\xe9")]
    kept = h2frames.kept(pairs)
    for headers in (kept, h2frames.copied(kept._fields), pairs):  # type: ignore[arg-type]
        assert header(headers, b"x-n") == "1" and header(headers, b"latin") == "\xe9"
        assert header(headers, b"x-none") is None


def test_a_same_length_change_to_a_list_carrying_fields_is_read_as_changed() -> None:
    """Checks by length see appends only: every other change forgets the Fields and index."""
    kept = h2frames.kept(REQUEST)
    edits = (lambda h: h.__setitem__(3, (b":path", b"/2")),
             lambda h: (h.pop(3), h.insert(3, (b":path", b"/2"))),
             lambda h: (h.remove(h[3]), h.append((b":path", b"/2"))),
             lambda h: (h.__delitem__(3), h.append((b":path", b"/2"))),
             lambda h: (h.clear(), h.extend([*REQUEST[:3], (b":path", b"/2"), REQUEST[4]])),
             lambda h: (h.reverse(), h.sort(), h.__setitem__(
                 [p for p, _ in h].index(b":path"), (b":path", b"/2"))))
    for edit in edits:
        headers = h2frames.copied(kept._fields)  # type: ignore[arg-type]
        assert header(headers, b":path") == "/1k"
        edit(headers)
        assert h2frames.fields_of(headers) is None
        assert header(headers, b":path") == "/2"
        assert (b":path", b"/2") in hpack.Decoder().decode(
            h2hpack.Encoder().encode(headers), raw=True)


def test_lookup_answers_as_header_does() -> None:
    """`lookup` (several names of one list) gives what `header` gives, for a list that
    carries its Fields, one appended to since (its Fields no longer its pairs) and a plain
    list of pairs."""
    from devamb.proxy.h2conn import header, lookup
    from devamb.proxy.h2frames import kept

    pairs = [(b":status", b"200"), (b"grpc-status", b"0"), (b"x", b"1"), (b"x", b"2")]
    names = (b":status", b"grpc-status", b"x", b"missing")
    carrying = kept(list(pairs))
    grown = kept(list(pairs))
    grown.append((b"late", b"yes"))
    for headers in (carrying, grown, list(pairs)):
        get = lookup(headers)
        assert [get(name) for name in (*names, b"late")] == [
            header(headers, name) for name in (*names, b"late")]
    assert lookup(carrying)(b"x") == "1" and lookup(grown)(b"late") == "yes"
