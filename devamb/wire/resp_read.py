"""One direction of a Redis connection cut into whole RESP2/RESP3 messages, in bounded memory.

`feed(chunk)` returns the top-level messages whose last byte is in the chunk, each with `end`,
the offset in the chunk just past it (the relay can split the chunk there). Only what records
show is kept: a line's text (cut at `LINE_KEPT`), the first `keep` bytes of each top-level
element, the sizes of the first `SIZES_KEPT` elements. Bulk bodies are counted as they pass,
never held: a `$2147483647` prefix costs a counter. Anything that is not RESP raises
`Malformed`; the follower then stops following (the relay goes on relaying).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import chain

from devamb.resp.inline import UnbalancedQuotes, split_inline

try:  # the C parser redis-py uses: a client's pipelined commands read ~7x faster
    import hiredis
except ImportError:  # pragma: no cover (a dependency; the pure-Python reader does it all)
    hiredis = None  # type: ignore[assignment]

MAX_LINE = 64 * 1024  # bytes of a header, simple reply or inline command (Redis' inline limit)
LINE_KEPT = 512  # bytes of a simple/error reply's text kept
SIZES_KEPT = 1024  # elements whose size is kept; later ones are only counted
ITEMS_KEPT = 64  # top-level elements whose first bytes are kept
MAX_DEPTH = 64  # nested aggregates (deeper is not what a server sends)
BULKS = frozenset(b"$=!")  # bulk string; RESP3 verbatim string, blob error
AGGREGATES = frozenset(b"*~>%|")  # array; RESP3 set, push, map, attribute
LINES = frozenset(b"+-:_,#(")  # status, error, integer; RESP3 null, double, boolean, big number
# The fast path reads common messages from `chunk.split(CRLF)` (all in C), checking each "$SIZE"
# against the length of the value after it; anything else (a value with a CRLF inside, a larger
# one, an array reply, an incomplete message) ends it and the general reader takes over.
FAST_ARGS = {b"*%d" % i: i for i in range(1, 256)}
FAST_HEADS = {i: b"$%d" % i for i in range(4096)}
FAST_SIZES = {b"$%d" % i: i for i in range(4096)}
# A fast-path simple reply's items and sizes: one shared empty list each (never added to: the
# reader adds only to the message it is building; a message it returned is not changed again).
NO_ITEMS: list[bytes] = []
NO_SIZES: list[int] = []
SIMPLE_KINDS = {b"+": "+", b":": ":", b"-": "-"}
# A type other than array and bulk string (hiredis reads a status, a RESP3 verbatim string or
# big number as bytes, a RESP3 set as a list): not what a client sends. Seen after any CRLF (in
# a value too, then needlessly), the chunk is read by the pure-Python reader instead.
NOT_BULK = re.compile(rb"\r\n[-+:_,#!=(%~>|]")
FAST_CHUNK = 1024 * 1024  # bytes; a larger chunk is read by the general reader only
ARGS_AVERAGE = 1024  # bytes per command `args` takes without looking at each argument
ONE_COMMAND = 512  # bytes of a chunk `one` reads as one command, without hiredis


class Malformed(ValueError):
    """The bytes are not RESP (or not what this side may send); `parsed` holds the messages
    that came whole before them."""

    parsed: list[Message] = []  # (set on each instance that is raised)


@dataclass(slots=True)
class Message:
    """One top-level RESP message: a client's command or a server's reply (or push)."""

    kind: str  # its first byte: '*' (a command, or an array reply), '$', '+', '-', ':', '>', ...
    count: int = 0  # elements of an aggregate (-1: null), bytes of a bulk (-1: null)
    text: bytes = b""  # a line's text (status, error, integer, double...), cut at LINE_KEPT
    items: list[bytes] = field(default_factory=list)  # first bytes of top-level elements
    sizes: list[int] = field(default_factory=list)  # sizes of top-level bulk elements
    inline: bool = False  # a client's inline command (`items` then holds its words)
    size: int = 0  # bytes on the wire
    end: int = 0  # offset just past it in the chunk that completed it


class Reader:
    """Splits one direction into `Message`s; `commands`: the client's side (arrays of bulk
    strings, or inline lines) rather than a server's (any reply)."""

    __slots__ = (
        "_body_left",
        "_crlf_left",
        "_hiredis",
        "_keep",
        "_kept",
        "_line",
        "_msg",
        "_stack",
        "_take",
        "commands",
        "ends",
    )

    def __init__(self, commands: bool, keep: int = 256) -> None:
        self.commands = commands
        self.ends = True  # a client's command knows its `end` and `size` (else 0: faster)
        self._hiredis = None if hiredis is None or not commands else hiredis.Reader()
        self._keep = keep  # bytes kept of each top-level element
        self._line = bytearray()  # a line arriving over several chunks (bounded: MAX_LINE)
        self._body_left = 0  # bytes of a bulk body still to come
        self._crlf_left = 0  # bytes of the CRLF after a bulk body still to come
        self._kept = bytearray()  # the kept prefix of the current top-level bulk element
        self._take = False  # the current bulk's first bytes are kept
        self._stack: list[int] = []  # elements still to come of each open aggregate
        self._msg: Message | None = None  # the top-level message being read

    @property
    def partial(self) -> Message | None:
        """The message being read (its fields so far), if any."""
        return self._msg

    @property
    def between(self) -> bool:
        """No message is partly read."""
        return self._msg is None and not self._line

    def feed(self, data: bytes | bytearray, start: int = 0) -> list[Message]:
        """The messages that end in `data[start:]` (`end`: offsets in `data`)."""
        out: list[Message] = []
        try:
            self._feed(data, out, start)
        except Malformed as exc:
            exc.parsed = out
            raise
        return out

    def one(self, data: bytes) -> list[bytes] | None:
        """A chunk of one short command (a client waiting for each reply): its arguments, read
        from the chunk's CRLF-split tokens (fewer calls than hiredis); None for any other."""
        if (self._msg is not None or self._line or len(data) > ONE_COMMAND
                or data[:1] != b"*"):
            return None  # (not `_fresh`: a call less)
        tokens = data.split(b"\r\n")
        count = FAST_ARGS.get(tokens[0])
        if count is not None and len(tokens) == 2 * count + 2 and not tokens[-1]:
            values = tokens[2:-1:2]
            if tokens[1:-1:2] == list(map(FAST_HEADS.get, map(len, values))):
                return values
        return None

    def args(self, data: bytes) -> list[list[bytes]] | None:
        """A client's chunk of whole commands, read by hiredis in C: each command as the list
        of its arguments, nothing cut (a record cuts them when built: `message_of`). None
        (nothing read) for any other chunk, or one whose commands average over
        `ARGS_AVERAGE` bytes and have an argument over `keep` bytes or over ITEMS_KEPT of
        them (what a batch keeps stays bounded): `feed` reads it."""
        reader = self._hiredis
        if (reader is None or self._msg is not None or self._line or self._body_left
                or self._crlf_left or len(data) > FAST_CHUNK or data[:1] != b"*"):
            return None  # (not `_fresh`: a call less)
        reader.feed(data)
        try:
            commands = list(iter(reader.gets, False))
            if reader.has_data() or not commands:
                raise ValueError
            # every argument a bulk string: hiredis reads a status, a number... as one too
            # (or as bytes), and each bulk string has its "$" header after a CRLF
            args = sum(map(len, commands))
            if data.count(b"$") != args and data.count(b"\r\n$") != args:
                raise ValueError  # (the first count is quicker, the second exact)
            b"".join(map(b"".join, commands))  # TypeError unless lists of bulk strings
        except (hiredis.ProtocolError, TypeError, ValueError):
            self._hiredis = hiredis.Reader()  # (it holds what it could not read: dropped)
            return None
        if len(data) > ARGS_AVERAGE * len(commands) and (
                max(map(len, commands)) > ITEMS_KEPT
                or max(map(len, chain.from_iterable(commands)), default=0) > self._keep):
            return None  # (hiredis read the chunk whole: it holds nothing)
        return commands

    def heads(self, data: bytes) -> tuple[list[bytes], int]:
        """A server's simple replies and short bulk strings at the start of the chunk, each as
        its first line (b"+OK", b"$3", b"-ERR no", b":1"; `reply_message` makes it a
        `Message`), and the offset after them: `feed(data, offset)` reads the rest."""
        if (self.commands or self._msg is not None or self._line or self._body_left
                or self._crlf_left or len(data) > FAST_CHUNK or type(data) is not bytes):
            return [], 0  # (not `_fresh`: a call less)
        if data[-2:] == b"\r\n":  # runs of one kind, checked in C: each line's first byte
            lines = data.count(b"\r\n")  # counted after a CRLF
            first = data[:1]
            if first in SIMPLE_KINDS and (data.count(b"\r\n+") + data.count(b"\r\n-")
                                          + data.count(b"\r\n:") == lines - 1):
                heads = data.split(b"\r\n")  # status, error, integer replies only
                heads.pop()
                return heads, len(data)
            if first == b"$" and not lines % 2:  # bulk strings without a CRLF inside only
                tokens = data.split(b"\r\n")
                heads = tokens[0:-1:2]
                head = heads[0]
                if heads.count(head) == len(heads):  # values of one size: compared, not hashed
                    size = FAST_SIZES.get(head)
                    if (size is not None
                            and list(map(len, tokens[1:-1:2])).count(size) == len(heads)):
                        return heads, len(data)
                elif list(map(FAST_SIZES.get, heads)) == list(map(len, tokens[1:-1:2])):
                    return heads, len(data)
        return self._fast_replies(data)

    def _fresh(self, data: bytes | bytearray) -> bool:
        """Between messages, with a chunk the fast paths read."""
        return (self._msg is None and not self._line and not self._body_left
                and not self._crlf_left and len(data) <= FAST_CHUNK and type(data) is bytes)

    def _feed(self, data: bytes | bytearray, out: list[Message], i: int = 0) -> None:
        n = len(data)
        if not i and self._fresh(data):
            if not self.commands:
                heads, i = self._fast_replies(data)  # type: ignore[arg-type]
                at = 0
                for head in heads:
                    msg = reply_message(head)
                    at = msg.end = at + msg.size
                    out.append(msg)
            elif (self._hiredis is not None and not self.ends
                  and self._whole_commands(data, out)):  # type: ignore[arg-type]
                return
            else:
                i = self._fast_commands(data, out)  # type: ignore[arg-type]
        while i < n:
            if self._body_left or self._crlf_left:
                i = self._body(data, i, n, out)
                continue
            eol = data.find(b"\n", i)
            if eol < 0:
                if len(self._line) + n - i > MAX_LINE:
                    raise Malformed("a line longer than 64 KiB")
                self._line += data[i:]
                return
            line = bytes(self._line + data[i:eol]) if self._line else bytes(data[i:eol])
            consumed = len(self._line) + eol + 1 - i
            self._line.clear()
            i = eol + 1
            self._on_line(line, consumed, i, out)

    def _fast_commands(self, data: bytes, out: list[Message]) -> int:
        """Commands of short arguments at the start of `data`; the position after them. Each
        command's `size` and `end` only when `ends` (a gating follower splits there)."""
        tokens = data.split(b"\r\n")
        last = len(tokens) - 1  # the bytes after the final CRLF: never a whole token
        keep = self._keep
        append = out.append
        head_of = FAST_HEADS.get
        ends = self.ends
        i = pos = 0
        while i < last:
            count = FAST_ARGS.get(tokens[i])
            if count is None:
                break
            end = i + 1 + 2 * count
            if end > last:
                break
            values = tokens[i + 2 : end : 2]
            sizes = list(map(len, values))
            if tokens[i + 1 : end : 2] != list(map(head_of, sizes)):
                break
            items = values if count <= ITEMS_KEPT else values[:ITEMS_KEPT]
            if max(sizes) > keep:
                items = [v[:keep] for v in items]
            if ends:
                size = sum(map(len, tokens[i:end])) + 2 * (end - i)
                pos += size
                append(Message("*", count, b"", items, sizes, False, size, pos))
            else:
                append(Message("*", count, b"", items, sizes))
            i = end
        return pos if ends else sum(map(len, tokens[:i])) + 2 * i

    def _whole_commands(self, data: bytes, out: list[Message]) -> bool:
        """A chunk of whole commands (arrays of bulk strings) read by hiredis, in C; False
        (nothing read) for anything else: a command cut at the chunk's end, inline commands,
        other types, a protocol error: the pure-Python reader then reads the chunk (and says
        what is wrong). hiredis never holds more than this chunk."""
        if data[:1] != b"*" or NOT_BULK.search(data) is not None:
            return False
        reader = self._hiredis
        assert reader is not None
        reader.feed(data)
        commands = []
        try:
            while (command := reader.gets()) is not False:
                commands.append(command)
        except hiredis.ProtocolError:
            commands = []
        if reader.has_data() or not commands:
            self._hiredis = hiredis.Reader()  # (it holds what it could not read: dropped)
            return False
        keep = self._keep
        found: list[Message] = []
        try:
            for command in commands:
                if type(command) is not list:
                    return False
                b"".join(command)  # TypeError: not a list of bulk strings (a null, a number...)
                count = len(command)
                if not count:
                    found.append(Message("*", 0, b"", [], []))
                    continue
                sizes = list(map(len, command))
                items = command if count <= ITEMS_KEPT else command[:ITEMS_KEPT]
                if max(sizes) > keep:
                    items = [v[:keep] for v in items]
                found.append(Message("*", count, b"", items,
                                     sizes if count <= SIZES_KEPT else sizes[:SIZES_KEPT]))
        except TypeError:
            return False
        out += found
        return True

    def _fast_replies(self, data: bytes) -> tuple[list[bytes], int]:
        tokens = data.split(b"\r\n")
        last = len(tokens) - 1
        heads: list[bytes] = []
        append = heads.append
        sizes = FAST_SIZES.get
        i = pos = 0
        while i < last:
            token = tokens[i]
            head = token[:1]
            if head == b"$":
                size = sizes(token)
                if size is None:
                    if token != b"$-1":
                        break
                    pos += 5
                    append(token)
                    i += 1
                    continue
                if i + 1 >= last or len(tokens[i + 1]) != size:
                    break
                pos += len(token) + size + 4
                append(token)
                i += 2
            elif head in SIMPLE_KINDS:
                pos += len(token) + 2
                append(token)
                i += 1
            else:
                break
        return heads, pos

    # -- bulk bodies ----------------------------------------------------------------------

    def _body(self, data: bytes | bytearray, i: int, n: int, out: list[Message]) -> int:
        msg = self._msg
        assert msg is not None
        if self._body_left:
            take = min(self._body_left, n - i)
            if self._take:
                room = self._keep - len(self._kept)
                if room > 0:
                    self._kept += data[i : i + min(take, room)]
            self._body_left -= take
            msg.size += take
            return i + take
        # the CRLF after the body, byte by byte (two at most)
        expected = b"\r\n"[2 - self._crlf_left]
        if data[i] != expected:
            raise Malformed("a bulk string is not followed by CRLF")
        self._crlf_left -= 1
        msg.size += 1
        i += 1
        if not self._crlf_left:
            if self._take:
                self._keep_item(bytes(self._kept))
                self._kept.clear()
            self._element_done(i, out)
        return i

    # -- lines ----------------------------------------------------------------------------

    def _on_line(self, line: bytes, consumed: int, end: int, out: list[Message]) -> None:
        cr = line.endswith(b"\r")
        if cr:
            line = line[:-1]
        msg = self._msg
        if msg is None:
            if self.commands and line[:1] != b"*":
                self._inline(line, consumed, end, out)
                return
            if not cr:
                raise Malformed("a line without CR before its LF")
            if not line:
                raise Malformed("an empty line")
            kind = chr(line[0])
            msg = self._msg = Message(kind)
        elif not cr or not line:
            raise Malformed("a line without CR before its LF" if not cr else "an empty line")
        msg.size += consumed
        top = not self._stack
        head = line[0]
        if self.commands and not top and head != 36:
            raise Malformed(f"expected '$', got {chr(head)!r}")
        if head in BULKS:
            size = _number(line)
            if top:
                msg.count = size
            if size < 0:
                if self.commands:
                    raise Malformed("invalid bulk length")
                self._element_done(end, out)
                return
            if len(self._stack) == 1 and len(msg.sizes) < SIZES_KEPT:
                msg.sizes.append(size)
            self._take = len(self._stack) <= 1 and len(msg.items) < ITEMS_KEPT
            self._body_left, self._crlf_left = size, 2
            return
        if head in AGGREGATES:
            count = _number(line)
            if top:
                msg.count = count
            if head == 37:  # a map: a key and a value per entry
                count *= 2
            elif head == 124:  # an attribute: its pairs, then the reply it annotates
                count = 2 * max(count, 0) + 1
            if self.commands and count > 1024 * 1024:
                raise Malformed("invalid multibulk length")
            if count <= 0:
                self._element_done(end, out)
                return
            if len(self._stack) >= MAX_DEPTH:
                raise Malformed("aggregates nested too deep")
            self._stack.append(count)
            return
        if head in LINES:
            if top:
                msg.text = line[1 : 1 + LINE_KEPT]
            elif len(self._stack) == 1 and len(msg.items) < ITEMS_KEPT:
                self._keep_item(line[1 : 1 + self._keep])
            self._element_done(end, out)
            return
        raise Malformed(f"unexpected type byte {chr(head)!r}")

    def _inline(self, line: bytes, consumed: int, end: int, out: list[Message]) -> None:
        try:
            words = split_inline(line)
        except UnbalancedQuotes as exc:
            raise Malformed(str(exc)) from None
        if not words:
            return  # an empty line: nothing (as redis-server reads it)
        out.append(Message("*", len(words), items=[w[: self._keep] for w in words[:ITEMS_KEPT]],
                           sizes=[len(w) for w in words[:SIZES_KEPT]], inline=True,
                           size=consumed, end=end))

    # -- completing -----------------------------------------------------------------------

    def _keep_item(self, item: bytes) -> None:
        assert self._msg is not None
        if len(self._stack) <= 1:
            self._msg.items.append(item)

    def _element_done(self, end: int, out: list[Message]) -> None:
        stack = self._stack
        while stack:
            stack[-1] -= 1
            if stack[-1]:
                return
            stack.pop()
        msg = self._msg
        assert msg is not None
        msg.end = end
        out.append(msg)
        self._msg = None


def message_of(args: list[bytes], keep: int) -> Message:
    """A command `Reader.args` read as a `Message`: at most ITEMS_KEPT arguments kept, each
    cut at `keep` bytes, the sizes of the first SIZES_KEPT."""
    sizes = list(map(len, args))
    items = args if len(args) <= ITEMS_KEPT else args[:ITEMS_KEPT]
    if sizes and max(sizes) > keep:
        items = [a[:keep] for a in items]
    return Message("*", len(args), b"", items, sizes if len(sizes) <= SIZES_KEPT
                   else sizes[:SIZES_KEPT])


def commands_of(chunk: bytes) -> list[list[bytes]]:
    """A chunk `Reader.args` read, read again (each command's arguments, nothing cut)."""
    reader = hiredis.Reader()
    reader.feed(chunk)
    return list(iter(reader.gets, False))


def reply_message(head: bytes) -> Message:
    """The `Message` of a reply `heads` read: a simple one, or a bulk string (its `end` is the
    reply's size: offset it by where the reply starts)."""
    kind = SIMPLE_KINDS.get(head[:1])
    size = len(head) + 2
    if kind is not None:
        return Message(kind, 0, head[1 : 1 + LINE_KEPT], NO_ITEMS, NO_SIZES, False, size, size)
    count = int(head[1:])
    size += count + 2 if count >= 0 else 0
    return Message("$", count, b"", NO_ITEMS, NO_SIZES, False, size, size)


def _number(line: bytes) -> int:
    try:
        return int(line[1:])
    except ValueError:
        raise Malformed(f"invalid length {line[:20]!r}") from None
