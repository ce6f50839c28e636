"""Bad input on a postgres service: garbage, lengths below 4 and a 2 GiB length prefix. The
follower keeps a bounded part of each message, goes opaque when it loses sync, and the
connection ends as it would without devamb (same bytes to the client)."""

from __future__ import annotations

import asyncio

from devamb.wire.pg_split import Malformed, Splitter
from tests.wire.pg import USER
from tests.wire.test_postgres import port_of, records, start

STARTUP_BODY = (196608).to_bytes(4) + f"user\0{USER}\0database\0postgres\0\0".encode()
STARTUP = (len(STARTUP_BODY) + 4).to_bytes(4) + STARTUP_BODY


async def conversation(port: int, *sends: bytes, stream: int = 0) -> bytes:
    """What the server answers to `sends` (then `stream` bytes of filler) until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for data in sends:
            writer.write(data)
        sent = 0
        block = b"\x01" * 65536
        while sent < stream and not reader.at_eof():
            writer.write(block)
            sent += len(block)
            try:
                await writer.drain()
            except ConnectionError:
                break
        answer = b""
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 20)
            except ConnectionError:
                break
            if not chunk:
                break
            answer += chunk
        return answer
    finally:
        writer.close()


def fields(answer: bytes) -> list[bytes]:
    """The message types of a server's answer, with an ErrorResponse's SQLSTATE."""
    out, at = [], 0
    while at + 5 <= len(answer):
        kind, length = answer[at:at + 1], int.from_bytes(answer[at + 1:at + 5])
        body = answer[at + 5:at + 1 + length]
        code = [p[1:] for p in body.split(b"\0") if p[:1] == b"C"] if kind == b"E" else []
        out.append(kind + (b":" + code[0] if code else b""))
        at += 1 + length
    return out


def test_splitter_skips_a_huge_body_in_bounded_memory() -> None:
    seen: list[tuple[int, int, int]] = []
    splitter = Splitter(True, lambda kind: 1024, lambda k, b, n: seen.append((k, len(b), n)))
    splitter.feed(b"Q" + (2**31 - 1).to_bytes(4))
    block = b"x" * (1 << 20)
    for _ in range(64):
        splitter.feed(block)
        assert len(splitter.body) <= 1024  # only the kept part is held
    assert not seen and splitter.left == 2**31 - 5 - 64 * (1 << 20)
    try:
        Splitter(True, lambda kind: 0, lambda k, b, n: None).feed(b"Q\0\0\0\x02")
    except Malformed as exc:
        assert "below 4" in str(exc)
    else:
        raise AssertionError("a length below 4 is malformed")


async def test_garbage_after_startup_ends_as_without_devamb(make_engine, pg_clusters) -> None:
    engine = await start(make_engine, pg_clusters)
    garbage = b"\xde\xad\xbe\xef" * 8
    direct = await conversation(pg_clusters[0].port, STARTUP, garbage)
    relayed = await conversation(port_of(engine), STARTUP, garbage)
    assert fields(relayed) == fields(direct) and fields(direct)  # the server's own refusal
    found = await records(engine, lambda f: any("postgres" in e.notes for e in f))
    conn = next(e for e in found if "postgres" in e.notes)
    assert "opaque" in conn.notes["postgres"] or conn.error


async def test_huge_length_prefix_is_relayed(make_engine, pg_clusters) -> None:
    engine = await start(make_engine, pg_clusters, """\
    faults:
      armed: {kind: error, sqlstate: '40001', match: {sql: "never matches this"}}""")
    # a SASL response 2 GiB long: the server refuses it on its length (more bytes after it
    # would race the server's close: unread data turns its FIN into a reset)
    huge = b"p" + (2**31 - 1).to_bytes(4)
    direct = await conversation(pg_clusters[0].port, STARTUP, huge)
    relayed = await conversation(port_of(engine), STARTUP, huge)
    assert fields(relayed) == fields(direct)
    tiny = b"Q\0\0\0\x01"  # below the smallest length: the follower loses sync
    direct = await conversation(pg_clusters[0].port, STARTUP, tiny)
    relayed = await conversation(port_of(engine), STARTUP, tiny)
    assert fields(relayed) == fields(direct)
