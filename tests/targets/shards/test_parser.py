"""RESP2 framing: commands and replies, whole, split at every byte, and invalid."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devamb.targets.shards import encoder, parser
from devamb.targets.shards.parser import (
    CommandReader,
    ProtocolError,
    ReplyReader,
    reply_integer,
    reply_items,
)

SET = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"

COMMANDS = [
    ("simple", SET, [[b"SET", b"key", b"value"]]),
    ("crlf inside a value", b"*2\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n", [[b"SET", b"a\r\nb"]]),
    ("empty value", b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n", [[b"GET", b""]]),
    ("binary value", b"*2\r\n$3\r\nGET\r\n$3\r\n\x00\xff*\r\n", [[b"GET", b"\x00\xff*"]]),
    ("inline", b"PING\r\n", [[b"PING"]]),
    ("inline with spaces", b"SET  k   v\n", [[b"SET", b"k", b"v"]]),
    ("empty inline line", b"\r\nPING\r\n", [[b"PING"]]),
    ("inline double quotes", b'SET "a key" "v\\x41\\n\\"q"\r\n', [[b"SET", b"a key", b'vA\n"q']]),
    ("inline single quotes", b"SET k 'it\\'s \\n'\n", [[b"SET", b"k", b"it's \\n"]]),
    ("inline empty quoted", b'SET k ""\r\n', [[b"SET", b"k", b""]]),
    ("empty array is skipped", b"*0\r\n*-1\r\n" + SET, [[b"SET", b"key", b"value"]]),
    ("pipeline", SET * 3, [[b"SET", b"key", b"value"]] * 3),
    (
        "large value after small ones",
        SET + encoder.command([b"SET", b"big", b"x" * 10_000]) + SET,
        [[b"SET", b"key", b"value"], [b"SET", b"big", b"x" * 10_000], [b"SET", b"key", b"value"]],
    ),
    (
        "inline between arrays",
        SET + b"PING hello\r\n" + SET,
        [[b"SET", b"key", b"value"], [b"PING", b"hello"], [b"SET", b"key", b"value"]],
    ),
    ("many arguments", encoder.command([b"MGET", *[b"k%d" % i for i in range(300)]]),
     [[b"MGET", *[b"k%d" % i for i in range(300)]]]),
]


def _feed_all(pieces: list[bytes]) -> list[tuple[list[bytes], bytes]]:
    reader = CommandReader()
    out = []
    for piece in pieces:
        out.extend(reader.feed(piece))
    return out


@pytest.mark.parametrize(
    ("data", "expected"), [c[1:] for c in COMMANDS], ids=[c[0] for c in COMMANDS]
)
def test_commands_whole_and_split_at_every_byte(data: bytes, expected: list[list[bytes]]) -> None:
    cuts = range(len(data) + 1) if len(data) < 2000 else range(0, len(data) + 1, 97)
    for cut in cuts:
        got = _feed_all([data[:cut], data[cut:]])
        assert [list(args) for args, _ in got] == expected, f"split at {cut}"
        for args, raw in got:
            # What is forwarded is a valid command with the same arguments.
            assert [list(a) for a, _ in CommandReader().feed(bytes(raw))] == [list(args)]


@pytest.mark.parametrize(
    ("data", "expected"), [c[1:] for c in COMMANDS], ids=[c[0] for c in COMMANDS]
)
def test_one_command_reads_what_feed_reads_or_declines(
    data: bytes, expected: list[list[bytes]]
) -> None:
    """`one` takes a read that is exactly one command of short values (as `feed` reads it),
    and declines the rest, reading nothing: `feed` then gets all of it."""
    reader = CommandReader()
    got = reader.one(data)
    if got is not None:
        assert [got] == expected
    for cut in range(1, len(data)):  # a part: declined, unless it is one whole command
        part = CommandReader().one(data[:cut])
        if part is not None:
            fed = CommandReader()
            assert [(list(args), raw) for args, raw in fed.feed(data[:cut])] == [
                (part, data[:cut])], f"cut at {cut}"
    assert [list(args) for args, _ in reader.feed(data)] == expected


def test_one_command_declines_a_command_after_a_partial_one() -> None:
    reader = CommandReader()
    assert reader.feed(SET[:7]) == []
    assert reader.one(SET[7:]) is None  # (the rest of one begun earlier: `feed` finishes it)
    assert [list(args) for args, _ in reader.feed(SET[7:])] == [[b"SET", b"key", b"value"]]
    assert reader.one(SET) == [b"SET", b"key", b"value"]


def test_commands_fed_one_byte_at_a_time() -> None:
    data = b"".join(c[1] for c in COMMANDS)
    expected = [args for c in COMMANDS for args in c[2]]
    got = _feed_all([data[i : i + 1] for i in range(len(data))])
    assert [list(args) for args, _ in got] == expected


def test_forwarded_bytes_are_the_clients_bytes() -> None:
    [(args, raw)] = CommandReader().feed(SET)
    assert raw == SET and args == [b"SET", b"key", b"value"]


def test_commands_before_invalid_bytes_are_kept() -> None:
    with pytest.raises(ProtocolError) as caught:
        CommandReader().feed(SET + b"PING\r\n*1\r\n$x\r\n")
    assert [args for args, _ in caught.value.parsed] == [[b"SET", b"key", b"value"], [b"PING"]]


def test_large_value_in_many_pieces_is_linear() -> None:
    value = b"v\r\n" * 400_000  # 1.2 MB with CRLFs inside
    data = encoder.command([b"SET", b"k", value])
    reader = CommandReader()
    got = []
    for i in range(0, len(data), 4096):
        got.extend(reader.feed(data[i : i + 4096]))
    assert len(got) == 1 and got[0][0][2] == value


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"*x\r\n", "invalid"),
        (b"*2\r\n$3\r\nGET\r\n:1\r\n", "expected '$'"),
        (b"*1\r\n$3\r\nGETX\r\n", "not followed by CRLF"),
        (b"*1\r\n$-3\r\n", "invalid bulk length"),
        (b"*1\r\n$abc\r\n", "invalid"),
        (b"*1\r\n$" + b"9" * 40, "invalid bulk length"),
        (b"*" + b"1" * 40, "invalid multibulk length"),
        (b"*9999999\r\n", "invalid multibulk length"),
        (b"*1\r\n$999999999999\r\n", "invalid bulk length"),
        (b"x" * 70_000, "too big inline request"),
        (b'SET k "v\r\n', "unbalanced quotes in request"),
        (b"SET k 'v\r\n", "unbalanced quotes in request"),
        (b'SET k "v"w\r\n', "unbalanced quotes in request"),
    ],
)
def test_invalid_commands(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(message)):
        CommandReader().feed(data)


REPLIES = [
    ("status", b"+OK\r\n"),
    ("error", b"-ERR wrong type\r\n"),
    ("integer", b":42\r\n"),
    ("bulk", b"$5\r\nhello\r\n"),
    ("bulk with crlf", b"$4\r\na\r\nb\r\n"),
    ("nil bulk", b"$-1\r\n"),
    ("empty bulk", b"$0\r\n\r\n"),
    ("empty array", b"*0\r\n"),
    ("nil array", b"*-1\r\n"),
    ("array", b"*3\r\n$1\r\na\r\n$-1\r\n:7\r\n"),
    ("nested arrays", b"*2\r\n*2\r\n:1\r\n*1\r\n+x\r\n*0\r\n"),
    ("array ending in an empty array", b"*2\r\n:1\r\n*0\r\n"),
]


@pytest.mark.parametrize("reply", [r[1] for r in REPLIES], ids=[r[0] for r in REPLIES])
def test_replies_whole_and_split_at_every_byte(reply: bytes) -> None:
    stream = reply + b"+after\r\n"
    for cut in range(len(stream) + 1):
        reader = ReplyReader()
        got = [bytes(r) for r in reader.feed(stream[:cut]) + reader.feed(stream[cut:])]
        assert got == [reply, b"+after\r\n"], f"split at {cut}"


def test_all_replies_one_byte_at_a_time() -> None:
    stream = b"".join(r[1] for r in REPLIES)
    reader = ReplyReader()
    got = []
    for i in range(len(stream)):
        got.extend(bytes(r) for r in reader.feed(stream[i : i + 1]))
    assert got == [r[1] for r in REPLIES]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([r[1] for r in REPLIES] + [b"+OK\r\n", b"+QUEUED\r\n"]),
                min_size=1, max_size=30),
       st.lists(st.integers(min_value=0, max_value=400), max_size=3))
def test_any_replies_in_any_pieces(replies: list[bytes], cuts: list[int]) -> None:
    """The fast scan (runs of +OK, short bulks, replies made once) and the general one agree."""
    stream = b"".join(replies)
    reader = ReplyReader()
    got: list[bytes] = []
    start = 0
    for cut in [*sorted(c for c in cuts if c < len(stream)), len(stream)]:
        got += reader.feed(stream[start:cut])
        start = cut
    assert [bytes(r) for r in got] == replies


def test_long_array_in_many_pieces() -> None:
    reply = encoder.array([encoder.bulk(b"%d" % i) for i in range(100_000)])
    reader = ReplyReader()
    got = []
    for i in range(0, len(reply), 1000):
        got.extend(reader.feed(reply[i : i + 1000]))
    assert [bytes(g) for g in got] == [reply]


def test_invalid_reply() -> None:
    with pytest.raises(ProtocolError, match="unexpected reply type"):
        ReplyReader().feed(b"@1\r\n")


def test_resp3_replies_are_whole_values() -> None:
    """A RESP3 link's replies: maps, sets, nulls, doubles, booleans, verbatim strings, blob
    errors, big numbers, and an attribute before the reply it annotates."""
    replies = [
        b"%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n~2\r\n,1.5\r\n#t\r\n",
        b"_\r\n",
        b"=8\r\ntxt:hi\r\n\r\n",
        b"!5\r\nERR x\r\n",
        b"(12345678901234567890\r\n",
        b"|1\r\n+key\r\n+val\r\n*2\r\n#f\r\n_\r\n",
        b">2\r\n+invalidate\r\n*0\r\n",
    ]
    data = b"".join(replies)
    assert ReplyReader().feed(data) == replies
    reader = ReplyReader()
    assert [r for i in range(len(data)) for r in reader.feed(data[i : i + 1])] == replies
    assert reply_items(replies[0]) == [b"$1\r\na\r\n", b":1\r\n", b"$1\r\nb\r\n",
                                       b"~2\r\n,1.5\r\n#t\r\n"]


def test_reply_helpers() -> None:
    assert reply_items(b"*2\r\n$1\r\na\r\n$-1\r\n") == [b"$1\r\na\r\n", b"$-1\r\n"]
    assert reply_items(b"*-1\r\n") == []
    assert reply_integer(b":-3\r\n") == -3
    with pytest.raises(ProtocolError):
        reply_integer(b"+OK\r\n")


BIG = bytes(range(256)) * 8192  # 2 MiB: above LARGE_BULK, read into a buffer of its own


def _raw_bytes(raw: object) -> bytes:
    return b"".join(raw) if isinstance(raw, list) else bytes(raw)  # type: ignore[arg-type]


@pytest.mark.parametrize("chunk", [1 << 18, 65536 + 7, 1_000_003])
def test_large_arguments_in_pieces_are_read_once_and_forwarded_intact(chunk: int) -> None:
    commands = [
        [b"SET", b"k", BIG],
        [b"SET", b"k", BIG, b"EX", b"10"],  # arguments after the large one
        [b"MSET", b"a", BIG, b"b", BIG[::-1]],  # two large ones
        [b"GET", b"k"],
    ]
    data = b"".join(encoder.command(c) for c in commands) + b"PING\r\n"
    got = _feed_all([data[i : i + chunk] for i in range(0, len(data), chunk)])
    assert [[bytes(a) for a in args] for args, _ in got] == [*commands, [b"PING"]]
    for (args, raw), expected in zip(got, commands, strict=False):
        assert _raw_bytes(raw) == encoder.command(expected)
        if len(args) > 2 and len(args[2]) == len(BIG) and chunk < len(BIG):
            assert isinstance(raw, list)  # pieces: the argument is not copied into a join


def test_large_argument_split_inside_its_crlf() -> None:
    data = encoder.command([b"SET", b"k", BIG])
    for cut in (len(data) - 1, len(data) - 2, len(data) - 3):
        got = _feed_all([data[:4096], data[4096:cut], data[cut:]])
        assert [bytes(a) for a in got[0][0]] == [b"SET", b"k", BIG]


def test_large_argument_without_its_crlf() -> None:
    data = b"*2\r\n$3\r\nGET\r\n$%d\r\n" % len(BIG) + BIG + b"xx*1\r\n$4\r\nPING\r\n"
    reader = CommandReader()
    reader.feed(data[:1000])
    with pytest.raises(ProtocolError, match="not followed by CRLF"):
        reader.feed(data[1000:])


def test_large_reply_in_pieces_is_handed_over_whole() -> None:
    reply = encoder.bulk(BIG)
    stream = reply + b"+OK\r\n" + reply
    reader = ReplyReader()
    got = []
    for i in range(0, len(stream), 65536):
        got.extend(reader.feed(stream[i : i + 65536]))
    assert [bytes(g) for g in got] == [reply, b"+OK\r\n", reply]


@settings(max_examples=300, deadline=None)
@given(
    commands=st.lists(
        st.lists(st.binary(max_size=40), min_size=1, max_size=6).map(lambda a: [b"C", *a]),
        min_size=1, max_size=6,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_any_commands_in_any_pieces_with_a_tiny_large_threshold(
    commands: list[list[bytes]], cuts: list[int]
) -> None:
    """With LARGE_BULK at 4 bytes the large-argument path runs on nearly every argument."""
    data = b"".join(encoder.command(c) for c in commands)
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parser, "LARGE_BULK", 4)
        got = _feed_all(pieces)
    assert [[bytes(a) for a in args] for args, _ in got] == commands
    assert [_raw_bytes(raw) for _, raw in got] == [encoder.command(c) for c in commands]


# Elements of other types than a bulk string, as a client could send them inside a command.
ODD_ELEMENTS = [b":5\r\n", b"$-1\r\n", b"+ok\r\n", b"-ERR x\r\n", b"_\r\n", b",1.5\r\n",
                b"#t\r\n", b"(12\r\n", b"=5\r\ntxt:k\r\n", b"%1\r\n$1\r\na\r\n$1\r\nb\r\n",
                b"~1\r\n$1\r\na\r\n", b"*1\r\n$1\r\na\r\n"]
_value = st.binary(max_size=12) | st.sampled_from(
    [b"a\r\nb", b"\r\n*2", b"\r\n$3", b"$", b"*", b":5", b"-1", b"+x", b"{t}", b"\r\n"])


@st.composite
def _command_bytes(draw: st.DrawFn) -> bytes:
    """One command's bytes: an array of bulk strings (values with CRLFs, '$', '*' inside),
    one with an element of another type somewhere, or an inline command."""
    kind = draw(st.sampled_from(["bulk", "bulk", "bulk", "odd", "inline", "empty"]))
    if kind == "inline":
        return draw(st.sampled_from([b"PING\r\n", b"GET k\r\n", b"SET k v\n"]))
    if kind == "empty":
        return b"*0\r\n"
    args = [draw(st.sampled_from([b"GET", b"SET", b"MGET", b"PING"])),
            *draw(st.lists(_value, max_size=4))]
    if kind == "bulk":
        return encoder.command(args)
    at = draw(st.integers(min_value=0, max_value=len(args)))
    elements = [b"$%d\r\n%s\r\n" % (len(a), a) for a in args]
    elements.insert(at, draw(st.sampled_from(ODD_ELEMENTS)))
    return b"*%d\r\n" % len(elements) + b"".join(elements)


@settings(max_examples=400, deadline=None)
@given(commands=st.lists(_command_bytes(), min_size=1, max_size=8),
       cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=4))
def test_split_whole_reads_what_feed_reads_or_declines(commands: list[bytes],
                                                       cuts: list[int]) -> None:
    """Each read (the stream cut anywhere): what `split_whole` reads, once its arguments are
    checked (`only_bytes`), is what the pure-Python reader makes of the same read, command by
    command and byte for byte; `whole` is the two together. Declined reads go to `feed`."""
    data = b"".join(commands)
    points = sorted({c % (len(data) + 1) for c in cuts})
    reads = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    fast, reference = CommandReader(), CommandReader()
    for read in reads:
        if not read:
            continue
        try:
            expected: list[tuple[list[bytes], bytes]] | None = reference.feed(read)
        except ProtocolError:
            expected = None
        found = fast.split_whole(read)
        checked = found if found is not None and parser.only_bytes(found[0]) else None
        assert fast.whole(read) == checked
        if checked is not None:
            args, pieces = checked
            raws = [b"*%b\r\n" % piece for piece in pieces] if pieces else [read]
            assert expected == list(zip(args, raws, strict=True))
            continue
        try:  # declined: the session feeds it (the reader was left as it was)
            assert fast.feed(read) == expected
        except ProtocolError:
            assert expected is None
        if expected is None:
            return  # (the connection ends at a protocol error)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from([b"v", b"", 5, None, 1.5]), max_size=3),
                min_size=2, max_size=6))
def test_a_runs_values_are_checked_as_only_bytes_checks_them(values: list[list[object]]
                                                             ) -> None:
    """`Session._values_are_bytes` (a run's arguments after the keys, by column when it can)
    says what `only_bytes` says of the whole commands (whose names and keys are bytes)."""
    from devamb.targets.shards.session import Session

    commands: list[list[bytes]] = [[b"SET", b"k", *v] for v in values]  # type: ignore[list-item]
    columns = zip(*commands, strict=False)
    next(columns), next(columns)  # (the run has taken the names and the keys)
    arguments = sum(map(len, commands))
    assert (Session._values_are_bytes(commands, columns, arguments)
            == parser.only_bytes(commands))
