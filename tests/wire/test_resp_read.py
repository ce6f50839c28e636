"""The bounded RESP reader: whole messages from any chunking, bodies counted not held."""

from __future__ import annotations

import pytest

from devamb.wire.resp_read import ARGS_AVERAGE, MAX_LINE, Malformed, Reader, message_of

REPLIES = [
    b"+OK\r\n", b"-ERR no\r\n", b":42\r\n", b"$5\r\nhello\r\n", b"$-1\r\n", b"*-1\r\n",
    b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
    b"%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n~2\r\n,1.5\r\n#t\r\n",
    b"_\r\n", b"=8\r\ntxt:hi\r\n\r\n", b"!5\r\nERR x\r\n", b"(12345678901234567890\r\n",
    b"|1\r\n+key\r\n+val\r\n*2\r\n#f\r\n_\r\n", b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n",
]


def kinds(reader: Reader, data: bytes, step: int) -> list[tuple[str, int, int]]:
    out = []
    for i in range(0, len(data), step):
        out += [(m.kind, m.count, m.size) for m in reader.feed(data[i : i + step])]
    return out


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_replies_in_any_chunking(step: int) -> None:
    data = b"".join(REPLIES)
    got = kinds(Reader(commands=False), data, step)
    assert [k for k, _, _ in got] == [r[:1].decode() for r in REPLIES]
    assert [size for _, _, size in got] == [len(r) for r in REPLIES]


def test_message_fields_and_end_offsets() -> None:
    reader = Reader(commands=False, keep=4)
    data = b"+OK\r\n*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n:7\r\n$6\r\nabcdef\r\n"
    first, array, bulk = reader.feed(data)
    assert (first.text, first.end) == (b"OK", 5)
    assert array.items == [b"mess", b"ch", b"7"] and array.sizes == [7, 2] and array.count == 3
    assert (bulk.count, bulk.items, bulk.end) == (6, [b"abcd"], len(data))


def test_commands_resp_and_inline() -> None:
    reader = Reader(commands=True)
    data = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv v\r\nGET \"a b\"\r\n\r\n*0\r\n"
    set_, get, empty = reader.feed(data)
    assert set_.items == [b"SET", b"k", b"v v"] and set_.sizes == [3, 1, 3]
    assert get.inline and get.items == [b"GET", b"a b"]
    assert empty.count == 0 and reader.between


def test_a_huge_bulk_is_counted_not_held() -> None:
    reader = Reader(commands=True)
    assert reader.feed(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2147483647\r\n") == []
    chunk = b"x" * (1 << 20)
    for _ in range(16):  # 16 MiB of it pass; the reader keeps its first bytes only
        assert reader.feed(chunk) == []
        assert len(reader._kept) <= 256 and not reader._line
    assert not reader.between


@pytest.mark.parametrize("data, why", [
    (b"*1\r\n$x\r\n", "invalid length"),
    (b"*1\r\n:1\r\n", "got ':'"),
    (b"*1\r\n$1\r\nab\r\n", "not followed by CRLF"),
    (b"*1\r\n$-3\r\n", "invalid bulk length"),
    (b"*1\n", "without CR"),
    (b"GET \"a\r\n", "unbalanced quotes"),
])
def test_bad_client_input(data: bytes, why: str) -> None:
    with pytest.raises(Malformed, match=why):
        Reader(commands=True).feed(data)


def test_bad_server_input_and_long_lines() -> None:
    with pytest.raises(Malformed, match="unexpected type byte"):
        Reader(commands=False).feed(b"@1\r\n")
    reader = Reader(commands=True)
    reader.feed(b"x" * MAX_LINE)
    with pytest.raises(Malformed, match="longer than 64 KiB"):
        reader.feed(b"x")


@pytest.mark.parametrize("step", [1, 5, 64, 100_000])
def test_commands_fast_and_general_paths_agree(step: int) -> None:
    """Short commands take the fast path (whole chunks), others the general reader; both give
    the same messages, ends and sizes however the bytes arrive."""
    commands = [[b"SET", b"k%d" % i, b"v" * (i * 37 % 300)] for i in range(40)]
    commands += [[b"SET", b"big", b"x" * 5000], [b"GET", b"a\r\nb"], [b"PING"]]
    data = b"".join(b"*%d\r\n" % len(c) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in c)
                    for c in commands)
    reader = Reader(commands=True)
    got = []
    offset = 0
    for i in range(0, len(data), step):
        got += [(m.items, m.sizes, m.size, offset + m.end) for m in reader.feed(data[i:i + step])]
        offset += len(data[i : i + step])
    assert [g[0] for g in got] == [[a[:256] for a in c] for c in commands]
    assert [g[1] for g in got] == [[len(a) for a in c] for c in commands]
    ends = [g[3] for g in got]
    assert [b - a for a, b in zip([0, *ends], ends, strict=False)] == [g[2] for g in got]
    assert ends[-1] == len(data)


def _commands(reader: Reader, chunks: list[bytes]) -> list[object]:
    """What a reader makes of the chunks: each command's fields, or the error it stopped on."""
    out: list[object] = []
    for chunk in chunks:
        try:
            out += [(m.kind, m.count, m.items, m.sizes, m.inline) for m in reader.feed(chunk)]
        except Malformed as exc:
            out += [(m.kind, m.count, m.items, m.sizes, m.inline) for m in exc.parsed]
            return [*out, f"malformed: {exc}"]
    return out


def _pure(keep: int = 256) -> Reader:
    reader = Reader(commands=True, keep=keep)
    reader._hiredis = None  # the pure-Python reader only
    return reader


CHUNKS = [
    [b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv v\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n" * 16],
    [b"*2\r\n$4\r\nINCR\r\n$2\r\n-1\r\n*1\r\n$4\r\nPING\r\n"],  # a value after CRLF: "-1"
    [b"*2\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n", b"*1\r\n$4\r\nPI", b"NG\r\n"],  # cut in a command
    [b"*2\r\n$3\r\nSET\r\n$300\r\n" + b"k" * 300 + b"\r\n*0\r\n"],  # kept cut; an empty array
    [b"PING\r\n*1\r\n$4\r\nPING\r\n"],  # inline
    [b"*1\r\n$4\r\nPING\r\n*1\r\n+OK\r\n"],  # a status inside a command
    [b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$-1\r\n"],  # a null inside a command
    [b"*1\r\n$4\r\nPING\r\n*1\r\n*1\r\n$1\r\na\r\n"],  # a nested array
    [b"*1\r\n$4\r\nPING\r\n%1\r\n$1\r\na\r\n$1\r\nb\r\n"],  # a RESP3 map
    [b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPINGxx\r\n"],  # a wrong length
    [b"*1\r\n$4\r\nPING\r\n$3\r\nGET\r\n"],  # a bulk string at the top
]


@pytest.mark.parametrize("chunks", CHUNKS)
def test_commands_read_by_hiredis_as_by_the_pure_reader(chunks: list[bytes]) -> None:
    """A client's whole commands go through hiredis when nothing is split (`ends` off); any
    chunk it cannot read exactly as the pure-Python reader does goes to that reader."""
    fast = Reader(commands=True)
    fast.ends = False
    assert fast._hiredis is not None  # (hiredis is a dependency)
    pure = _pure()
    pure.ends = False
    assert _commands(fast, chunks) == _commands(pure, chunks)
    small = Reader(commands=True, keep=4)
    small.ends = False
    assert _commands(small, chunks) == _commands(_pure(keep=4), chunks)


@pytest.mark.parametrize("chunks", [*CHUNKS, [b"*2\r\n$3\r\nGET\r\n$9\r\nprice $10\r\n"],
                                    [b"*1\r\n$70\r\n" + b"a" * 70 + b"\r\n"],
                                    [b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$300\r\n" + b"v" * 300
                                     + b"\r\n" + b"*1\r\n$4\r\nPING\r\n" * 60]])
def test_args_reads_what_the_pure_reader_reads(chunks: list[bytes]) -> None:
    """`Reader.args` (whole chunks, arguments cut only when a record is built) gives the
    commands the pure-Python reader gives, or None: the follower then feeds the chunk."""
    for keep in (256, 4):
        chunk = chunks[0]
        commands = Reader(commands=True, keep=keep).args(chunk)
        one = Reader(commands=True, keep=keep).one(chunk)
        pure = _pure(keep)
        pure.ends = False
        if one is not None:
            assert [one] == commands
        if commands is None:
            continue
        got = [(m.kind, m.count, m.items, m.sizes, m.inline)
               for m in (message_of(c, keep) for c in commands)]
        assert got == _commands(pure, [chunk])


def test_args_bounds_a_chunk_of_long_arguments() -> None:
    """A chunk whose commands average over ARGS_AVERAGE bytes is taken only when no argument
    is over `keep` bytes (a batch keeps the chunk: what it holds stays bounded)."""
    long = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000\r\n" + b"v" * 2000 + b"\r\n"
    assert Reader(commands=True).args(long * 2) is None
    mixed = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$300\r\n" + b"v" * 300 + b"\r\n"
    mixed += b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n" * 7
    assert len(mixed) < 8 * ARGS_AVERAGE and Reader(commands=True).args(mixed) is not None


@pytest.mark.parametrize("data", [
    b"+OK\r\n" * 16, b"$3\r\nxxx\r\n" * 16, b":1\r\n-ERR x\r\n+OK\r\n", b"+OK\r\n$3\r\n+ab\r\n",
    b"$5\r\nab\r\nc\r\n$1\r\nx\r\n", b"$-1\r\n$1\r\na\r\n", b"$3\r\nab\r\n", b"$0\r\n\r\n",
    b"$3\r\nabc\r\n$2\r\nab\r\n*1\r\n:1\r\n", b"+OK\r\n+O", b"$3\r\nabc\r\n$3\r\nab", b"-\r\n",
    b"$1\r\n\r\n\r\n", b":1\r\n$1\r\n:\r\n",
    b"$3\r\nab\r\n$3\r\nxyzw\r\n", b"$3\r\nxxx\r\n$2\r\nab\r\n", b"$-1\r\n$-1\r\n",
    b"$3\r\nxxx\r\n$3\r\nxx\r\n",
])
def test_heads_of_runs_as_of_any_replies(data: bytes) -> None:
    """Runs of one kind of reply are read with counts in C: the same heads as reply by reply."""
    reader = Reader(commands=False)
    assert reader.heads(data) == reader._fast_replies(data)
