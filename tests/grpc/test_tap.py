"""The tap's record of a call's messages: the same whether a DATA carries one whole message
(taken without a splitter), several, or pieces of one."""

from __future__ import annotations

from typing import Any

from devamb.grpc.framing import DEFAULT_LIMIT, frame
from devamb.grpc.tap import GrpcTap

ONE = frame(b"\x08\x96\x01\x12\x03abc")
TWO = frame(b"\x0a\x02hi")
BIG = frame(b"x" * (DEFAULT_LIMIT + 1))


def record(*datas: bytes) -> dict[str, Any]:
    notes: dict[str, Any] = {}
    tap = GrpcTap(notes, "/pkg.Svc/Call", None)
    tap.use(None)
    for data in datas:
        tap.request_data(data)
        tap.response_data(data)
    tap.close()
    note = notes["grpc"]  # (one direction after the other: their interleaving follows the DATA)
    note["messages"].sort(key=lambda item: item["dir"])
    return note


def test_whole_messages_as_when_split() -> None:
    stream = ONE + TWO + ONE + BIG + TWO
    byte_by_byte = record(*(stream[i:i + 1] for i in range(len(stream))))
    assert record(ONE, TWO, ONE, BIG, TWO) == byte_by_byte
    assert record(ONE, TWO + ONE, BIG[:7], BIG[7:] + TWO) == byte_by_byte
    assert record(stream) == byte_by_byte
    assert byte_by_byte["requests"] == byte_by_byte["responses"] == 5
    assert byte_by_byte["messages"][0] == {
        "dir": "request", "size": len(ONE) - 5, "compressed": False, "type": None,
        "json": None, "raw": [{"field": 1, "type": "varint", "value": 150},
                              {"field": 2, "type": "string", "value": "abc"}],
        "error": None}
    assert byte_by_byte["messages"][3]["error"] == f"{DEFAULT_LIMIT + 1} bytes; too large to keep"


def test_a_piece_first_then_whole() -> None:
    assert record(ONE[:3], ONE[3:], TWO) == record(ONE, TWO)
    assert record(b"", ONE) == record(ONE)
