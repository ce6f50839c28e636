"""RESP framing: commands from clients and replies from servers (RESP2, and RESP3's types for
shard connections that said `HELLO 3`), read on a buffer with an index.

Both readers are resumable: an incomplete frame keeps only its unread tail (plus, for commands,
the arguments already read), so a large value or a long array arriving in many pieces costs
linear time. No per-byte Python loops: lines are found with `bytes.find`.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain
from itertools import repeat as _repeat

from devamb.resp.inline import UnbalancedQuotes, split_inline
from devamb.targets.shards.encoder import command as encode_command

try:  # the C parser redis-py uses: a chunk of whole commands read ~4x faster
    import hiredis
except ImportError:  # pragma: no cover (a dependency; the pure-Python reader does it all)
    hiredis = None  # type: ignore[assignment]

MAX_ARGS = 1024 * 1024  # arguments of one command (Redis' limit)
MAX_BULK = 512 * 1024 * 1024  # bytes of one argument (Redis' proto-max-bulk-len default)
MAX_INLINE = 64 * 1024  # bytes of an inline command line
MAX_HEADER = 32  # bytes of a "*N" or "$N" line before its CRLF

LARGE_BULK = 1024 * 1024  # bytes: a larger argument is read into a buffer of its own

# The bytes to forward: the client's own, or pieces to write in turn when a command carries a
# large argument (the argument is referenced, never joined into a second copy).
Raw = bytes | list[bytes]
Command = tuple[list[bytes], Raw]  # (arguments, the RESP bytes to forward)

# The fast path reads common commands from `buf.split(CRLF)`, checking each "$SIZE" against the
# length of the value after it with these tables (all in C: map, len, list ==). A value with a
# CRLF inside, a larger value, an inline command or an incomplete one ends it; the general parser
# takes over from there.
FAST_ARGS = {b"*%d" % i: i for i in range(1, 256)}
FAST_SIZES = {b"$%d" % i: i for i in range(4096)}
FAST_HEADS = {i: b"$%d" % i for i in range(4096)}
ARRAY_HEADS = [b"*%d\r\n" % i for i in range(256)]  # the array a chunk of commands is read as
FAST_BUFFER = 1024 * 1024  # bytes; larger buffers hold large values: general parser only
ONE_MAX = 256  # bytes of a read `CommandReader.one` looks at (a larger one: `whole`)
# Bytes looked for with `in` as their values: `b"+" in data` costs a TypeError raised and
# cleared inside CPython (a bytes object is first tried as an int) before the search.
PLUS, EQUALS, PAREN, BRACE = b"+=({"


_chain = chain.from_iterable


class ProtocolError(Exception):
    """The peer's bytes are not RESP2; the connection cannot continue.

    `parsed` holds the commands that came before the invalid bytes (they are still served).
    """

    def __init__(self, message: str, parsed: list[Command] | None = None) -> None:
        super().__init__(message)
        self.parsed = parsed or []


def _size(buf: bytes | bytearray, start: int, end: int, what: str) -> int:
    try:
        return int(buf[start:end])
    except ValueError:
        raise ProtocolError(f"invalid {what} {bytes(buf[start:end])[:20]!r}") from None


class CommandReader:
    """Splits a client's byte stream into commands: RESP arrays of bulk strings, or inline.

    An argument of LARGE_BULK bytes or more (after the command name) is copied once, as it
    arrives, into a buffer of its exact size, which becomes the argument: a 300 MB SET costs
    about 300 MB, not a tail, a joined copy, a slice and a re-encoded command.
    """

    __slots__ = ("_args", "_big", "_filled", "_hiredis", "_left", "_need", "_tail")

    def __init__(self) -> None:
        self._tail = bytearray()  # unread bytes of an incomplete command
        self._need = 0  # length the tail must reach before parsing is worth trying again
        self._args: list[bytes] = []  # arguments read so far of an incomplete command
        self._left = 0  # arguments still to read of it; 0 between commands
        self._big: bytearray | None = None  # a large argument being read, with its CRLF
        self._filled = 0  # bytes of it read so far
        self._hiredis = None if hiredis is None else hiredis.Reader()

    def one(self, data: bytes) -> list[bytes] | None:
        """The arguments when `data` is one whole command of short bulk strings and nothing
        else (the read of a client waiting for each reply), read from `data.split(CRLF)` in
        C as `_parse_fast` reads it; None (nothing read) for any other read."""
        if self._tail or self._left or self._big is not None or len(data) > ONE_MAX:
            return None  # (a second command is found out by the count of its tokens)
        tokens = data.split(b"\r\n")
        values = tokens[2::2]
        if (FAST_ARGS.get(tokens[0]) != len(values) or len(tokens) != 2 * len(values) + 2
                or tokens[-1] or tokens[1:-1:2] != list(map(FAST_HEADS.get, map(len, values)))):
            return None
        return values

    def whole(self, data: bytes) -> tuple[list[list[bytes]], list[bytes]] | None:
        """`split_whole`, with every argument checked to be bytes."""
        found = self.split_whole(data)
        return found if found is not None and only_bytes(found[0]) else None

    def split_whole(self, data: bytes) -> tuple[list[list[bytes]], list[bytes]] | None:
        """A chunk of whole commands, read in C: each command's arguments, and its bytes less
        the leading '*' and the final CRLF (`data[1:-2]` split at each "\r\n*", which is how
        commands follow one another; none for a chunk of one command, which is all of it).
        None (nothing read) for any other chunk, or while a command is incomplete: `feed` reads
        it (and says what is wrong, if anything is).

        hiredis reads more than commands: the chunk is taken only if it holds non-empty arrays
        (not nested ones) and no element of a type that hiredis reads as bytes (a status, a
        RESP3 verbatim string or big number: each follows a CRLF, as every element does). Its
        other types (numbers, nulls, errors, maps) are not bytes: arguments are not checked
        here (the caller checks those it uses: `only_bytes`, or where using one that is not
        bytes raises TypeError)."""
        reader = self._hiredis
        if (reader is None or self._tail or self._left or self._big is not None
                or len(data) > FAST_BUFFER or data[:1] != b"*"):
            return None
        # Read as one array of the commands (one call into hiredis, not one per command):
        # their count is the pieces', if each follows a CRLF as it does (a count too large
        # leaves the array incomplete: nothing read).
        pieces = data[1:-2].split(b"\r\n*")
        count = len(pieces)
        reader.feed(ARRAY_HEADS[count] if count < 256 else b"*%d\r\n" % count)
        reader.feed(data)
        try:
            commands = reader.gets()
            if (commands is False or reader.has_data() or len(commands) != len(pieces)
                    or [] in commands):  # ("*0": an empty command)
                raise ValueError
        except (hiredis.ProtocolError, ValueError):
            self._hiredis = hiredis.Reader()  # (it holds what it could not read: dropped)
            return None
        if ((PLUS in data and b"\r\n+" in data) or (EQUALS in data and b"\r\n=" in data)
                or (PAREN in data and b"\r\n(" in data)):  # (a byte's value is found by memchr)
            return None
        return commands, pieces if len(commands) > 1 else []

    def feed(self, data: bytes) -> list[Command]:
        """Every command `data` completes, in order; raises ProtocolError on invalid input."""
        out: list[Command] = []
        try:
            while True:
                if self._big is not None:
                    data = self._fill(data, out)
                    if self._big is not None or not data:
                        return out
                tail = self._tail
                if tail:
                    tail += data
                    if len(tail) < self._need:
                        return out
                    data = bytes(tail)
                    tail.clear()
                pos = self._parse(data, out)
                if self._big is None:
                    if pos < len(data):
                        tail += data[pos:]
                    return out
                data = data[pos:]  # a large argument starts here: what this read holds of it
        except ProtocolError as exc:
            exc.parsed = out
            raise

    def _fill(self, data: bytes, out: list[Command]) -> bytes:
        """Copy `data` into the large argument; return the bytes after it (and its CRLF)."""
        big = self._big
        assert big is not None
        filled = self._filled
        take = min(len(big) - filled, len(data))
        big[filled : filled + take] = memoryview(data)[:take]
        self._filled = filled = filled + take
        if filled < len(big):
            return b""
        if not big.endswith(b"\r\n"):
            raise ProtocolError("a bulk string is not followed by CRLF")
        del big[-2:]  # shrinks in place: no copy
        self._big = None
        self._args.append(big)  # type: ignore[arg-type]  # bytes-like, as the others are
        self._left -= 1
        if not self._left:
            args, self._args = self._args, []
            out.append((args, _reencode(args)))
        return data[take:]

    def _parse(self, buf: bytes, out: list[Command]) -> int:
        """Parse from 0; return where the unread (incomplete) part of `buf` starts."""
        pos = 0 if self._left or len(buf) > FAST_BUFFER else _parse_fast(buf, out)
        if pos == len(buf):
            return pos
        try:
            return self._parse_general(buf, pos, out)
        except ValueError:
            raise ProtocolError("invalid multibulk or bulk length") from None

    def _parse_general(self, buf: bytes, pos: int, out: list[Command]) -> int:
        n = len(buf)
        find = buf.find
        startswith = buf.startswith
        append = out.append
        args, left = self._args, self._left
        start = -1 if left else pos  # -1: the command began in an earlier feed (re-encode)
        while True:
            if not left:
                if pos >= n:
                    break
                start = pos
                if buf[pos] != 42:  # not '*': an inline command such as "PING\r\n"
                    eol = find(b"\n", pos)
                    if eol < 0:
                        if n - pos > MAX_INLINE:
                            raise ProtocolError("too big inline request")
                        self._need = n - pos + 1
                        break
                    end = eol - 1 if eol > pos and buf[eol - 1] == 13 else eol  # less its CR
                    words = _inline(buf[pos:end])
                    pos = eol + 1
                    if words:
                        append((words, encode_command(words)))
                    continue
                eol = find(b"\r\n", pos)
                if eol < 0:
                    if n - pos > MAX_HEADER:
                        raise ProtocolError("invalid multibulk length")
                    self._need = n - pos + 1
                    break
                left = int(buf[pos + 1 : eol])
                if left > MAX_ARGS:
                    raise ProtocolError("invalid multibulk length")
                pos = eol + 2
                if left <= 0:  # "*0" and "*-1" ask for nothing
                    left = 0
                    continue
                args = []
            while left:  # the arguments: "$SIZE\r\nVALUE\r\n" each
                eol = find(b"\r\n", pos)
                if eol < 0 or buf[pos] != 36:
                    break
                size = int(buf[pos + 1 : eol])
                end = eol + 2 + size
                if end + 2 > n or size < 0 or not startswith(b"\r\n", end):
                    break
                args.append(buf[eol + 2 : end])
                pos = end + 2
                left -= 1
            if left:  # an incomplete or invalid argument at pos
                self._args, self._left = args, left
                big = self._start_big(buf, pos)
                if big is not None:
                    return big
                self._need = self._argument_need(buf, pos)
                return pos
            append((args, buf[start:pos] if start >= 0 else _reencode(args)))
        self._args, self._left = [], 0
        return start if start >= 0 and pos < n else pos

    def _start_big(self, buf: bytes, pos: int) -> int | None:
        """At an argument at `pos` large enough for a buffer of its own: start reading it
        there and return where the unread part of `buf` starts; None otherwise."""
        if not self._args:  # the command name stays bytes (the command table hashes it)
            return None
        eol = buf.find(b"\r\n", pos)
        if eol < 0 or buf[pos] != 36:
            return None
        size = int(buf[pos + 1 : eol])
        if not LARGE_BULK <= size <= MAX_BULK:
            return None
        self._big = bytearray(size + 2)
        self._filled = 0
        return eol + 2

    @staticmethod
    def _argument_need(buf: bytes, pos: int) -> int:
        """Bytes from `pos` one argument needs; raises ProtocolError if it is invalid."""
        n = len(buf)
        if pos >= n:
            return 1
        if buf[pos] != 36:
            raise ProtocolError(f"expected '$', got {chr(buf[pos])!r}")
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if n - pos > MAX_HEADER:
                raise ProtocolError("invalid bulk length")
            return n - pos + 1
        size = int(buf[pos + 1 : eol])
        if not 0 <= size <= MAX_BULK:
            raise ProtocolError("invalid bulk length")
        end = eol + 2 + size
        if end + 2 <= n:  # complete, so the CRLF after it is missing
            raise ProtocolError("a bulk string is not followed by CRLF")
        return end + 2 - pos


def only_bytes(commands: Iterable[list[bytes]]) -> bool:
    """Whether every argument is bytes (hiredis reads some elements as other types)."""
    try:
        b"".join(_chain(commands))
    except TypeError:
        return False
    return True


def _reencode(args: list[bytes]) -> Raw:
    """The RESP bytes of a command that arrived over several reads: pieces when an argument is
    large, so that it is written as it is rather than copied into one joined command."""
    for arg in args:
        if len(arg) >= LARGE_BULK:
            pieces = [b"*%d\r\n" % len(args)]
            for item in args:
                pieces += (b"$%d\r\n" % len(item), item, b"\r\n")
            return pieces
    return encode_command(args)


def _inline(line: bytes) -> list[bytes]:
    try:
        return split_inline(line)
    except UnbalancedQuotes as exc:
        raise ProtocolError(str(exc)) from None


def _parse_fast(buf: bytes, out: list[Command]) -> int:
    """Read the common commands at the start of `buf`; return the position after them."""
    tokens = buf.split(b"\r\n")
    last = len(tokens) - 1  # the bytes after the final CRLF: never a whole token
    arg_count = FAST_ARGS.get
    head_of = FAST_HEADS.get
    join = b"\r\n".join
    append = out.append
    i = pos = 0
    while i < last:
        count = arg_count(tokens[i])
        if count is None:
            break
        end = i + 1 + 2 * count
        if end > last:
            break
        values = tokens[i + 2 : end : 2]
        if tokens[i + 1 : end : 2] != [head_of(len(v)) for v in values]:
            break
        raw = join(tokens[i:end]) + b"\r\n"
        append((values, raw))
        pos += len(raw)
        i = end
    return pos


class ReplyReader:
    """Splits a server's byte stream into whole replies (raw bytes), nested arrays included."""

    __slots__ = ("_pos", "_stack", "_tail")

    def __init__(self) -> None:
        self._tail = bytearray()  # bytes of the incomplete reply
        self._pos = 0  # where scanning resumes in the tail
        self._stack: list[int] = []  # elements still to read of each open array

    def feed(self, data: bytes) -> list[bytes]:
        """Every reply `data` completes, in order; raises ProtocolError on invalid input."""
        tail = self._tail
        out: list[bytes] = []
        if tail:
            tail += data
            buf: bytes | bytearray = tail
            first = 0
        else:  # nothing pending (an incomplete reply is always in the tail)
            buf = data
            first = self._pos = _scan_fast(data, out) if len(data) <= FAST_BUFFER else 0
            if first == len(data):  # all read (the common case): nothing left to scan
                self._pos = 0
                return out
        start = self._scan(buf, first, out)
        if tail:
            if tail is self._tail:  # (else _scan handed the whole tail over as one reply)
                del tail[:start]
        elif start < len(data):
            tail += data[start:]
        self._pos -= start
        return out

    def _scan(self, buf: bytes | bytearray, start: int, out: list[bytes]) -> int:
        """Scan from the saved position; return where the first incomplete reply starts."""
        n = len(buf)
        find = buf.find
        stack = self._stack
        pos = self._pos
        while pos < n:
            eol = find(b"\r\n", pos)
            if eol < 0:
                if n - pos > MAX_INLINE:
                    raise ProtocolError("a reply line is too long")
                break
            kind = buf[pos]
            if kind in BULKS:  # '$' bulk string; RESP3: '=' verbatim, '!' blob error
                size = _size(buf, pos + 1, eol, "bulk length")
                end = eol + 4 + size if size >= 0 else eol + 2
                if end > n:
                    break
                pos = end
            elif kind in AGGREGATES:  # '*' array; RESP3: '~' set, '>' push, '%' map, '|' attribute
                count = _size(buf, pos + 1, eol, "multibulk length")
                pos = eol + 2
                if kind == 37:  # a map: a key and a value per entry
                    count *= 2
                elif kind == 124:  # an attribute: its pairs, then the reply it annotates
                    count = 2 * max(count, 0) + 1
                if count > 0:
                    stack.append(count)
                    continue
            elif kind in LINES:  # '+' '-' ':'; RESP3: '_' null, ',' double, '#' bool, '(' big
                pos = eol + 2
            else:
                raise ProtocolError(f"unexpected reply type {chr(kind)!r}")
            while stack:  # an element is complete: close the arrays it completes
                stack[-1] -= 1
                if stack[-1]:
                    break
                stack.pop()
            else:
                if start == 0 and pos == n and buf is self._tail:
                    # a large reply, all the tail holds, handed over without a second copy: a
                    # bytearray, which every consumer of a reply only reads as bytes
                    out.append(buf)  # type: ignore[arg-type]
                    self._tail = bytearray()
                else:
                    out.append(buf[start:pos])  # type: ignore[arg-type]  # (the same)
                start = pos
        self._pos = pos
        return start


def _scan_fast(buf: bytes, out: list[bytes]) -> int:
    """Read the simple replies and short bulk strings at the start of `buf`; return the position
    after them (arrays, long values and incomplete replies are left to the general scanner)."""
    if buf.startswith(OK_REPLY) and buf.count(OK_REPLY) * len(OK_REPLY) == len(buf):
        out += [OK_REPLY] * (len(buf) // len(OK_REPLY))  # a run of SETs' answers, in C
        return len(buf)
    tokens = buf.split(b"\r\n")
    last = len(tokens) - 1
    values = tokens[1::2]  # a run of bulk strings (GETs' answers), each head checked, in C:
    if last & 1 == 0 and not tokens[last]:
        heads = tokens[:last:2]
        if heads == list(map(FAST_HEADS.get, map(len, values))):
            out += map(CRLF.join, zip(heads, values, _repeat(b"")))  # head, value, CRLF
            return len(buf)
    size_of = FAST_SIZES.get
    simple = SIMPLE_REPLIES.get
    append = out.append
    i = pos = 0
    while i < last:
        token = tokens[i]
        size = size_of(token)
        if size is not None:  # "$SIZE", then a value of that size: cut from `buf` as it is
            if i + 1 >= last or len(tokens[i + 1]) != size:
                break
            end = pos + len(token) + size + 4
            append(buf[pos:end])
            pos = end
            i += 2
            continue
        reply = simple(token)
        if reply is None:
            kind = token[:1]
            if kind == b"+" or kind == b":" or kind == b"-":
                reply = token + b"\r\n"
            else:
                break
        append(reply)
        pos += len(reply)
        i += 1
    return pos


CRLF = b"\r\n"
NIL_REPLY = b"$-1\r\n"
OK_REPLY = b"+OK\r\n"
# Replies made once (each of these lines is the whole reply), for `_scan_fast`.
SIMPLE_REPLIES = {line[:-2]: line for line in (
    OK_REPLY, NIL_REPLY, b"+QUEUED\r\n", b"+PONG\r\n", b":0\r\n", b":1\r\n", b"*-1\r\n",
    b"*0\r\n")}
BULKS = frozenset(b"$=!")
AGGREGATES = frozenset(b"*~>%|")
LINES = frozenset(b"+-:_,#(")


def reply_items(reply: bytes) -> list[bytes]:
    """The elements of an array reply, each as raw RESP; [] for an empty or nil array."""
    eol = reply.find(b"\r\n")
    if reply[:1] not in (b"*", b"~", b"%") or eol < 0:
        raise ProtocolError("not an array reply")
    if _size(reply, 1, eol, "multibulk length") <= 0:
        return []  # (a map's items are its keys and values in turn)
    return ReplyReader().feed(reply[eol + 2 :])


def reply_integer(reply: bytes) -> int:
    if not reply.startswith(b":"):
        raise ProtocolError("not an integer reply")
    return _size(reply, 1, len(reply) - 2, "integer")


def is_error(reply: bytes) -> bool:
    return reply[:1] == b"-" or reply[:1] == b"!"
