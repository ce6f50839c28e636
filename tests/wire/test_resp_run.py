"""A run of common-form commands counted in one pass (`Run.count`): exactly what the pure
reader reads, or 0 (the follower then reads the chunk the general way)."""

from __future__ import annotations

import pytest

from devamb.wire.resp_follow import RUN, STATEFUL
from devamb.wire.resp_read import Malformed, Reader
from devamb.wire.resp_run import MAX_ARGS, MAX_SIZE, whole_replies


def command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


GET = command(b"GET", b"key:__rand_int__")
SET = command(b"SET", b"key:__rand_int__", b"xxx")
TAKEN = [
    GET * 16, SET * 16, (GET + SET) * 5, command(b"get", b"k") + command(b"PING"),
    command(b"SET", b"k", b"v" * MAX_SIZE) * 2, command(b"MSET", *[b"k"] * (MAX_ARGS - 1)) * 2,
    command(b"SET", b"k", b"") + command(b"SET", b"k", b"a\r\nb$3\r\n"),  # CRLF in a value
    command(b"GET", b"exec") * 2,  # (only the first argument is the command)
    command(b"EXECX") + command(b"MULTIPLY", b"k"),
]
LEFT = [
    GET, b"", GET + GET[:-1], GET + b"PING\r\n", GET + b"*0\r\n",
    GET + command(b"SET", b"k", b"v" * (MAX_SIZE + 1)),  # longer than MAX_SIZE
    GET + command(b"MSET", *[b"k"] * MAX_ARGS),  # more than MAX_ARGS
    GET + command(b"SET", b"k", b"a*b"),  # a "*" inside
    GET + b"*2\r\n$3\r\nGET\r\n$03\r\nabc\r\n", GET + b"*02\r\n$3\r\nGET\r\n$1\r\na\r\n",
    GET + b"*2\r\n$3\r\nGET\r\n$2\r\nabc\r\n", GET + b"*2\r\n$3\r\nGET\r\n$4\r\nabc\r\n",
    GET + b"*2\r\n$3\r\nGET\r\n$-1\r\n", GET + b"*2\r\n$3\r\nGET\r\n+OK\r\n",
    GET + b"*1\r\n*1\r\n$1\r\na\r\n", GET + b"*1\r\n$4\r\nPING\n", GET + b"$3\r\nGET\r\n",
    *[GET + command(name.lower() if i % 2 else name.title())
      for i, name in enumerate(sorted(STATEFUL))],
    GET + command(b"MuLtI"), command(b"SELECT", b"1") + GET,
]


def pure(data: bytes) -> list[tuple[int, list[bytes]]] | None:
    """The commands the pure reader reads in `data` (None: not all of it, or not RESP)."""
    reader = Reader(commands=True, keep=1 << 20)
    reader._hiredis = None
    try:
        messages = reader.feed(data)
    except Malformed:
        return None
    if not reader.between:
        return None
    return [(m.count, m.items) for m in messages]


@pytest.mark.parametrize("data", TAKEN)
def test_a_run_of_plain_commands_is_counted_as_the_pure_reader_reads_it(data: bytes) -> None:
    commands = pure(data)
    assert commands is not None and RUN.count(data) == len(commands) >= 2
    assert not any(items[0].upper() in STATEFUL for _, items in commands)


@pytest.mark.parametrize("data", LEFT)
def test_anything_else_is_left_to_the_general_reader(data: bytes) -> None:
    assert RUN.count(data) == 0


WHOLE = [
    (b"+OK\r\n" * 16, 16), (b"$3\r\nxxx\r\n" * 16, 16), (b":1\r\n+OK\r\n:-2\r\n", 3),
    (b"$0\r\n\r\n$2\r\n\n$\r\n", 2), (b"$%d\r\n%s\r\n" % (MAX_SIZE, b"v" * MAX_SIZE), 1),
    (b"+\r\n", 1),
]
NOT_WHOLE = [
    (b"+OK\r\n" * 16, 15), (b"+OK\r\n" * 16, 17), (b"$3\r\nxxx\r\n" * 16, 15),
    (b"+OK\r\n-ERR x\r\n", 2), (b"$3\r\nxxx\r\n$-1\r\n", 2), (b"$3\r\nxx\r\n$1\r\nx\r\n", 2),
    (b"$3\r\nxxxx\r\n$1\r\nx\r\n", 2), (b"$4\r\na\r\nb\r\n", 1), (b"$3\r\nxxx\r\n+OK\r\n", 2),
    (b"$%d\r\n%s\r\n" % (MAX_SIZE + 1, b"v" * (MAX_SIZE + 1)), 1), (b"+OK\r\n+O", 2),
    (b"*1\r\n:1\r\n", 1), (b"+OK\n\r\n", 1), (b"$03\r\nabc\r\n", 1), (b"_\r\n", 1),
]


@pytest.mark.parametrize(("data", "count"), WHOLE)
def test_whole_replies_are_what_the_pure_reader_reads(data: bytes, count: int) -> None:
    reader = Reader(commands=False)
    replies = reader.feed(data)
    assert whole_replies(data, count) and reader.between and len(replies) == count
    assert all(r.kind in "+:$" and r.count >= 0 for r in replies)


@pytest.mark.parametrize(("data", "count"), NOT_WHOLE)
def test_other_replies_are_read_the_general_way(data: bytes, count: int) -> None:
    assert not whole_replies(data, count)
