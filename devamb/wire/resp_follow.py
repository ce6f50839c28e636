"""Redis (RESP2 and RESP3) followed beside the relay: each command one exchange.

Commands are matched to replies in order (pipelining), as Redis answers a connection. The
follower knows the connection's state from what passed: the protocol (`HELLO 3`), the database
(`SELECT`), MULTI/EXEC and WATCH, pub/sub (a subscribed connection's messages are recorded as
pushes, `SUBSCRIBE a b` waits for one confirmation per channel), MONITOR, blocking commands.
Bulk bodies are counted, never held (wire/resp_read.py).

`notes["redis"]` of a command's exchange:
    {"command": "GET", "args": ["GET", "user:42"] (cut, passwords redacted), "argc": 2,
     "sizes": [3, 7], "keys": ["user:42"], "db": 0, "protocol": 2|3, "connection": id,
     "reply": {"type": "status"|"error"|"integer"|"bulk"|"array"|"null"|..., "text",
               "message", "value", "size", "length", "bytes"},
     "queued": True (inside MULTI), "blocking": True, "injected": True (answered by devamb),
     "confirmations": n (SUBSCRIBE...)}
A push's exchange (method `PUSH`): {"push": "message", "channel": ..., "length", "bytes"}.

With command-level faults armed (`gating`), the client's stream is cut at command boundaries:
each command up to `DECIDE_EARLY` bytes is held until the relay decides on it; a larger one is
decided on its first 64 KiB (name, keys), and the rest passes or is dropped as it comes. A
command answered by devamb (`Answer`) never reaches the server; its reply is written after the
server's replies to the commands forwarded before it, so the client reads every reply in the
order it asked.
"""

from __future__ import annotations

import contextlib
from collections import deque
from itertools import chain, groupby, repeat
from operator import attrgetter, itemgetter
from time import perf_counter, time
from typing import TYPE_CHECKING, Any

from devamb.inspect.lazy import LazyBatch, LazyExchange, Origin
from devamb.wire import resp_cmd
from devamb.wire.follower import (
    Action,
    Answer,
    Close,
    Command,
    Decide,
    Exchanges,
    Follower,
    FollowerOptions,
    Item,
    ToClient,
)
from devamb.wire.resp_read import (
    FAST_SIZES,
    SIMPLE_KINDS,
    Malformed,
    Message,
    Reader,
    commands_of,
    message_of,
    reply_message,
)
from devamb.wire.resp_run import Run, whole_replies

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange

DECIDE_EARLY = 64 * 1024  # with command faults armed, a command up to this size is held whole
CLIENT_KEPT = 256  # bytes kept of each argument (a key longer than this is shown cut)
SERVER_KEPT = 64  # bytes kept of each element of a reply (a push's kind and channel)
FAMILY = {b"subscribe": "c", b"unsubscribe": "c", b"psubscribe": "p", b"punsubscribe": "p",
          b"ssubscribe": "s", b"sunsubscribe": "s"}


# Commands whose reply changes what the follower knows of the connection (their name is read
# when they pass; any other command's only when its record is read).
STATEFUL = frozenset(n.encode() for n in (
    "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SELECT", "HELLO", "MONITOR", "RESET",
    *resp_cmd.SUBSCRIBE, *resp_cmd.UNSUBSCRIBE))


RUN = Run(STATEFUL)  # (a run of plain commands: none of them STATEFUL)

_T0 = attrgetter("t0")
_COUNT = attrgetter("count")
_FIRST = itemgetter(0)
NAMES: dict[bytes, str] = {}  # a command's first word as sent -> its STATEFUL name, or ""


def _stateful(first: bytes) -> str:
    """The STATEFUL name of a command's first word, or "" (remembered in NAMES)."""
    upper = first.upper()
    name = upper.decode("latin-1") if upper in STATEFUL else ""
    if len(NAMES) < 4096:
        NAMES[first] = name
    return name


def _single(data: bytes) -> bytes | None:
    """The first line of `data` when `data` is one simple reply or short bulk string."""
    end = data.find(b"\r\n")
    n = len(data)
    if end == n - 2:
        return data[:end] if data[:1] in SIMPLE_KINDS or data == b"$-1\r\n" else None
    head = data[:end]
    size = FAST_SIZES.get(head)  # (a "$SIZE" line's)
    if size is not None and n == end + size + 4 and data.endswith(b"\r\n"):
        return head
    return None


class _Pending(LazyExchange):
    """A command forwarded and waiting for its reply, then its record (the Exchange is built
    when read: `build`); or devamb's own answer waiting its turn (`answer`, no record).

    Kept as read on the hot path: the command as its arguments (`Reader.args`) or a `Message`,
    the reply as its first line (`Reader.heads`) or a `Message`; `msg` and `reply_msg` make
    them messages when needed. Fields most commands never set are class defaults (an
    instance's `__dict__` is made only when one is set)."""

    __slots__ = ("__dict__", "name", "raw", "reply", "state", "t0", "t1", "wall")
    answer: bytes | None = None  # devamb's reply, written when the replies before it are
    error: str | None = None  # set when it ended without a reply
    expect = 1  # replies it takes (SUBSCRIBE a b: 2); -1: until no subscription
    faults: list[str] | None = None
    extra: dict[str, Any] | None = None  # "confirmations", "injected" (a reply note)

    def __init__(self, exchange_id: int, origin: Origin, raw: Message | list[bytes] | None,
                 wall: float, t0: float, state: tuple[int, int, bool], name: str = "") -> None:
        self.id = exchange_id
        self.origin = origin
        self.built = None
        self.count = 1  # (LazyExchange's fields: no call to set them)
        self.raw = raw
        self.wall = wall
        self.t0 = t0
        self.t1: float | None = None
        self.name = name  # upper case, for a STATEFUL command only
        self.state = state  # (database, protocol, sent inside MULTI) when it was sent
        self.reply: Message | bytes | None = None

    @property
    def msg(self) -> Message | None:
        raw = self.raw
        if type(raw) is list:
            raw = self.raw = message_of(raw, CLIENT_KEPT)
        return raw  # type: ignore[return-value]

    @property
    def reply_msg(self) -> Message | None:
        reply = self.reply
        return reply_message(reply) if type(reply) is bytes else reply  # type: ignore[return-value]

    @property
    def duration_ms(self) -> float:
        return ((self.t1 or self.t0) - self.t0) * 1000

    @property
    def failed(self) -> bool:
        reply = self.reply
        if reply is None or self.error is not None:
            return self.error is not None
        if type(reply) is bytes:
            return reply[:1] == b"-"  # (a first line `heads` read: never a RESP3 "!")
        return reply.kind in "-!"  # type: ignore[union-attr]

    def build(self) -> Exchange:
        exchange = self.origin.exchange(self.id, self.wall, self.t0)
        msg = self.msg
        if msg is None:
            return exchange
        name = resp_cmd.name_of(msg)
        shown, line = resp_cmd.display(msg)
        exchange.method = name.partition(" ")[0] or "?"
        exchange.path = line
        exchange.request_body.add(line.encode("utf-8", "replace"))
        note: dict[str, Any] = {
            "command": name, "args": shown, "argc": msg.count, "sizes": msg.sizes,
            "keys": [k.decode("utf-8", "replace") for k in resp_cmd.keys_of(msg)],
            "db": self.state[0], "protocol": self.state[1],
            "connection": self.origin.connection,
        }
        if msg.inline:
            note["inline"] = True
        if self.state[2] and name not in ("EXEC", "DISCARD", "MULTI"):
            note["queued"] = True
        if name in resp_cmd.BLOCKING or (name[:1] == "X" and name in ("XREAD", "XREADGROUP")
                                         and any(a.upper() == b"BLOCK" for a in msg.items)):
            note["blocking"] = True
        exchange.own_notes()["redis"] = note
        if self.faults:
            exchange.faults = list(self.faults)
        extra = self.extra or {}
        if "confirmations" in extra:
            note["confirmations"] = extra["confirmations"]
        error = self.error
        reply_msg = self.reply_msg
        if reply_msg is not None:
            reply = note["reply"] = resp_cmd.reply_of(reply_msg)
            error = resp_cmd.error_text(reply)
        if "injected" in extra:
            note["reply"] = extra["injected"]
            note["injected"] = True
        exchange.error = error
        exchange.duration_ms = self.duration_ms
        return exchange


class _Batch(LazyBatch):
    """Plain commands that came in one chunk, forwarded and waiting for their replies, then
    their records: one entry for them all (ids `id`.. `id + count - 1`), each command's record
    (a `_Pending`) built when read. The commands are kept as the client's chunk (`chunk`,
    from its `start`-th command), read again when needed: no object per argument stays.
    Answered whole by one chunk from the server (`split` keeps the answered part when a chunk
    ends inside it)."""

    __slots__ = ("_parsed", "chunk", "error", "heads", "start", "state", "t0", "t1", "wall")
    answer: bytes | None = None  # (never devamb's answer)
    name = ""  # (no STATEFUL command)
    raw = True  # (commands: abandoned, their records end with the reason)

    def __init__(self, first_id: int, origin: Origin, chunk: bytes, start: int, count: int,
                 wall: float, t0: float, state: tuple[int, int, bool]) -> None:
        self.id = first_id  # (LazyBatch's and LazyExchange's fields: no calls to set them)
        self.origin = origin
        self.built = None
        self.count = count
        self._records = None
        self.chunk = chunk
        self.start = start
        self._parsed: list[list[bytes]] | None = None  # the chunk's commands, once read again
        self.wall = wall
        self.t0 = t0
        self.t1: float | None = None
        self.state = state
        # the replies' first lines (`Reader.heads`), in order; or the chunk that answered
        # the batch whole (`whole_replies`), read into them when a record is built
        self.heads: list[bytes] | bytes = []
        self.error: str | None = None  # set when it ended without its replies

    @property
    def commands(self) -> list[list[bytes]]:
        parsed = self._parsed
        if parsed is None:
            parsed = self._parsed = commands_of(self.chunk)
        return parsed[self.start : self.start + self.count]

    def split(self, count: int) -> _Batch:
        """The first `count` commands as a batch of their own; this one keeps the rest."""
        head = _Batch(self.id, self.origin, self.chunk, self.start, count, self.wall, self.t0,
                      self.state)
        head._parsed = self._parsed
        self.id += count
        self.start += count
        self.count -= count
        return head

    def first(self) -> _Pending:
        """The first command as a record of its own (its reply is read the general way)."""
        record = _Pending(self.id, self.origin, self.commands[0], self.wall, self.t0,
                          self.state)
        self.id += 1
        self.start += 1
        self.count -= 1
        return record

    @property
    def duration_ms(self) -> float:
        return ((self.t1 or self.t0) - self.t0) * 1000

    @property
    def failed(self) -> bool:
        return self.error is not None or any(h[:1] == b"-" for h in self._heads())

    def _heads(self) -> list[bytes]:
        heads = self.heads
        if type(heads) is bytes:
            heads = self.heads = Reader(commands=False).heads(heads)[0]
        return heads  # type: ignore[return-value]

    def build_records(self) -> list[_Pending]:
        records = []
        heads = self._heads()
        for i, args in enumerate(self.commands):  # (the chunk read again, once)
            record = _Pending(self.id + i, self.origin, args, self.wall, self.t0, self.state)
            record.t1 = self.t1
            if i < len(heads):
                record.reply = heads[i]
            else:
                record.error = self.error
            records.append(record)
        self._parsed = None
        return records


class RedisFollower(Follower):
    NOTE = "redis"

    def __init__(self, sink: Exchanges, options: FollowerOptions) -> None:
        super().__init__(sink, options)
        self.client = Reader(commands=True, keep=CLIENT_KEPT)
        self.server = Reader(commands=False, keep=SERVER_KEPT)
        self.pending: deque[_Pending | _Batch] = deque()
        self.protocol = 2
        self.db = 0
        self.multi = False
        self.state = (0, 2, False)  # (db, protocol, multi): each record's, kept (`_restate`)
        self.watching = False
        self.subscribed = 0  # channels, patterns and shard channels subscribed to
        self.subs = {"c": 0, "p": 0, "s": 0}  # each kind's count
        self.monitoring = False
        self.pushes = 0
        # gating (command-level faults)
        # the client's stream has been cut at command boundaries (`_gate`): something may be
        # held (what follows); False: nothing is (the fast path checks this flag alone)
        self.stopping = False
        self.client.ends = False  # (nothing is split: the commands' offsets are not needed)
        self.gbuf = bytearray()  # the start of a command not yet complete
        # complete commands not yet passed on, with how their tail goes when decided early
        self.held: deque[tuple[bytes, Message, str | None]] = deque()
        self.awaiting: tuple[bytes, Message, bool] | None = None  # what a Decide is about
        self.released: list[Item] = []  # what `resolve` let go, returned by the next call
        # the command being read was decided on early: its rest is "forward"ed or "swallow"ed
        # as it comes ("pending": the relay is deciding)
        self.deciding: str | None = None
        self.splits: list[tuple[int, bytes]] = []  # answers to insert in the server's chunk
        self.fault_names: list[str] = []
        self.answers = 0  # devamb's answers waiting in `pending` for the replies before them
        self.done: list[_Pending | _Batch] = []  # completed by the server chunk being read
        self.runs: list[tuple[float, bool, int]] | None = None  # `done`'s, when `_replies` knows
        self._origin: Origin | None = None  # what this connection's records share
        self._wall = self._t0 = 0.0  # when the client's chunk being read arrived
        # the wall clock's time at perf_counter's zero: a chunk's wall time without a call
        self._offset = time() - perf_counter()

    # -- the relay's calls ----------------------------------------------------------------

    def client_data(self, data: bytes) -> list[Item] | None:
        self._t0 = t0 = perf_counter()
        self._wall = wall = t0 + self._offset
        if self.opaque is not None:
            if self.stopping and (self.released or self.gbuf or self.held or self.awaiting):
                return self._flush_opaque(data)
            return None
        if not (self.stopping and self._holding()) and not (self.gating and self.client.between):
            commands = None
            if type(data) is bytes:
                one = self.client.one(data)  # (a client waiting for each reply)
                if one is not None:
                    commands = [one]
                elif not (self.subscribed or self.monitoring) and self.client.between:
                    count = RUN.count(data)  # plain pipelined commands, counted in one pass
                    if count:
                        origin = self._origin
                        if origin is None:
                            origin = self._origin = self.sink.origin()
                        self.pending.append(_Batch(self.sink.new_ids(count), origin, data, 0,
                                                   count, wall, t0, self.state))
                        return None
                if commands is None:
                    commands = self.client.args(data)
            if commands is None:
                pass
            elif len(commands) == 1 and commands[0] and not (self.subscribed or self.monitoring):
                args = commands[0]  # one command (P1): a plain one is kept as it came
                name = NAMES.get(args[0])
                if name is None:
                    name = _stateful(args[0])
                if name:
                    self._forwarded(args)
                    return None
                origin = self._origin
                if origin is None:
                    origin = self._origin = self.sink.origin()
                self.pending.append(_Pending(self.sink.new_id(), origin, args, wall, t0,
                                             self.state))
                return None
            else:
                self._forward_all(commands, data)
                return None
            try:
                for msg in self.client.feed(data):
                    self._forwarded(msg)
            except Malformed as exc:
                for msg in exc.parsed:
                    self._forwarded(msg)
                self.lose_sync(f"client: {exc}")
            return None
        return self._gate(data)

    def passes_unchanged(self, inbound: bool) -> bool:
        if inbound:  # nothing held or released, no command to stop at
            return not (self.gating or (self.stopping and self._holding()))
        return not self.answers  # (no answer of devamb's to put between the replies)

    def _holding(self) -> bool:
        """Something of the client's is held, released or being decided (`stopping`: it may
        be); once nothing is, the fast path is back."""
        if (self.gbuf or self.held or self.awaiting is not None or self.released
                or self.deciding is not None):
            return True
        self.stopping = self.client.ends = False
        return False

    def server_data(self, data: bytes) -> list[bytes] | None:
        if self.opaque is not None:
            return None
        now = perf_counter()
        pending = self.pending
        server = self.server
        if (len(pending) == 1 and not self.subscribed and not self.answers
                and server._msg is None):
            record = pending[0]
            if type(record) is _Pending:  # one plain command waiting (P1): its reply alone?
                if not record.name and not server._line:
                    head = _single(data)
                    if head is not None:
                        pending.clear()
                        record.reply, record.t1 = head, now
                        self.sink.record_one(record, (now - record.t0) * 1000, data[0] == 45)
                        return None  # (45: "-", an error)
            else:  # one batch waiting: answered by this chunk alone?
                if not server._line and whole_replies(data, record.count):  # (no error)
                    pending.clear()
                    record.heads, record.t1 = data, now  # type: ignore[union-attr]
                    self.sink.record_one(record, (now - record.t0) * 1000, False)
                    return None
                heads, at = self.server.heads(data)
                if at == len(data) and len(heads) == record.count and data[:1] != b"-" and (
                        b"\r\n-" not in data):  # (no error: one run)
                    pending.clear()
                    record.heads, record.t1 = heads, now  # type: ignore[union-attr]
                    self.sink.record_one(record, (now - record.t0) * 1000, False)
                    return None
        self.splits = []
        try:
            at = self._replies(data, now) if not self.answers else 0
            if at < len(data):  # the rest read the general way (the runs are then counted)
                self.runs = None
                for msg in self.server.feed(data, at):
                    self._reply(msg, now)
        except Malformed as exc:
            self.runs = None
            for msg in exc.parsed:
                self._reply(msg, now)
            self._record_done()
            self.lose_sync(f"server: {exc}")
        self._record_done()
        if self.opaque is not None:  # answers still waiting can no longer be put in order
            tail = [p.answer for p in self.pending if p.answer is not None]
            self.splits += [(len(data), answer) for answer in tail]
            self.pending.clear()
            self.answers = 0
        if not self.splits:
            return None
        pieces: list[bytes] = []
        at = 0
        for end, extra in self.splits:
            pieces += [data[at:end], extra]
            at = end
        pieces.append(data[at:])
        self.splits = []
        return [p for p in pieces if p]

    def resolve(self, action: Action, faults: list[str] | None = None) -> None:
        awaiting, self.awaiting = self.awaiting, None
        if awaiting is None:
            return
        raw, msg, early = awaiting
        self.fault_names = list(faults or [])
        self._t0 = perf_counter()
        self._wall = self._t0 + self._offset
        if isinstance(action, Answer):
            self._answer(msg, action)
            self._tail("swallow" if early else None)
        elif isinstance(action, Close):
            record = self._begin(msg)
            record.error = action.reason or "connection closed by a fault"
            record.t1 = perf_counter()
            self.sink.record(record)
            self._tail("swallow" if early else None)
        else:  # forwarded now (Forward), or after the delay the relay waited (Delay)
            self.released.append(raw)
            self._forwarded(msg)
            self._tail("forward" if early else None)

    def safe_point(self) -> bool:
        if (self.opaque is not None or self.awaiting is not None or self.held or self.gbuf
                or self.deciding is not None):
            return False
        if self.subscribed:  # a subscriber is closed at once: clients resubscribe
            return True
        return (not self.pending and not self.multi and not self.watching
                and not self.monitoring and self.client.between and self.server.between)

    def abandon(self, why: str) -> None:
        now = perf_counter()
        for pending in self.pending:
            if pending.raw is not None:
                pending.error, pending.t1 = f"no reply: {why}", now
                self.sink.record(pending)  # (a batch: each of its records)
        self.pending.clear()
        self.answers = 0

    # -- gating ---------------------------------------------------------------------------

    def _gate(self, data: bytes) -> list[Item]:
        out, self.released = self.released, []
        self.stopping = self.client.ends = True
        try:
            messages = self.client.feed(data)
        except Malformed as exc:  # what came whole before passes undecided, as the rest
            held = [msg for _, msg, tail in self.held if tail is None]
            for msg in [*([self.awaiting[1]] if self.awaiting else []), *held, *exc.parsed]:
                self._forwarded(msg)
            self.lose_sync(f"client: {exc}")
            return [*out, *self._flush_opaque(data)]
        at = 0
        for msg in messages:
            raw = bytes(self.gbuf) + data[at : msg.end]
            self.gbuf.clear()
            at = msg.end
            if self.deciding is not None:  # the end of a command decided on early
                tail = self.deciding
                self.deciding = None
                self.held.append((raw if tail != "swallow" else b"", msg, tail))
            else:
                self.held.append((raw, msg, None))
        rest = data[at:]
        self._drain(out)
        if rest:
            if self.deciding == "forward":
                out.append(rest)
            elif self.deciding != "swallow":  # (None, or "pending": kept until decided)
                self.gbuf += rest
        if (self.deciding is None and self.awaiting is None and not self.held
                and len(self.gbuf) > DECIDE_EARLY):
            self._decide_early(out)
        return out

    def _decide_early(self, out: list[Item]) -> None:
        """A command too large to hold whole: decided on what came of it so far (its name and
        first arguments); the rest then passes, or is dropped, as it comes."""
        msg = self.client.partial
        if msg is None or not msg.items:
            return
        head = bytes(self.gbuf)
        self.gbuf.clear()
        command = self._decision(msg)
        if command is None:
            out.append(head)
            self._forwarded(msg)
            self.deciding = "forward"
            return
        self.awaiting = (head, msg, True)
        self.deciding = "pending"
        out.append(Decide(command))

    def _tail(self, tail: str | None) -> None:
        """The rest of a command decided on early: forwarded or dropped."""
        if tail is None:
            return
        if self.held and self.held[0][2] == "pending":  # it ended while the relay decided
            raw, msg, _ = self.held.popleft()
            self.held.appendleft((raw if tail == "forward" else b"", msg, tail))
            self.deciding = None
        else:
            self.deciding = tail
        if self.gbuf:  # what came of it meanwhile
            if tail == "forward":
                self.released.append(bytes(self.gbuf))
            self.gbuf.clear()

    def _drain(self, out: list[Item]) -> None:
        while self.held and self.awaiting is None:
            raw, msg, tail = self.held[0]
            if tail == "pending":
                return
            self.held.popleft()
            if tail is not None:  # the end of a command decided on early: recorded then
                if raw:
                    out.append(raw)
                continue
            command = self._decision(msg)
            if command is None:
                out.append(raw)
                self._forwarded(msg)
                continue
            self.awaiting = (raw, msg, False)
            out.append(Decide(command))

    def _flush_opaque(self, data: bytes) -> list[Item]:
        """Following stopped while commands were held: let everything through as it came."""
        out, self.released = self.released, []
        if self.awaiting is not None:
            out.append(self.awaiting[0])
            self.awaiting = None
        out += [raw for raw, _, _ in self.held if raw]
        self.held.clear()
        self.deciding = None
        if self.gbuf:
            out.append(bytes(self.gbuf))
            self.gbuf.clear()
        if data:
            out.append(data)
        return out

    def _decision(self, msg: Message) -> Command | None:
        if not self.gating or msg.count <= 0:
            return None
        name = resp_cmd.name_of(msg)
        fields = {"command": name.split(" ")[0]}
        keys = resp_cmd.keys_of(msg)
        if keys:
            fields["key"] = keys[0].decode("utf-8", "replace")
        return Command(fields, resp_cmd.line_of(resp_cmd.redacted(msg), msg.count))

    def _answer(self, msg: Message, action: Answer) -> None:
        text = getattr(action.params, "reply", "") or f"-ERR injected by fault {action.fault}"
        text = " ".join(str(text).split())
        reply = text.encode("utf-8", "replace") + b"\r\n"
        record = self._begin(msg)
        record.extra = {"injected": {"type": "error", "message": text[1:], "bytes": len(reply)}}
        record.error, record.t1 = f"{text[1:]} (injected)", perf_counter()
        self.sink.record(record)
        if self.pending:
            waiting = _Pending(0, record.origin, None, 0.0, 0.0, record.state)
            waiting.answer = reply
            self.pending.append(waiting)
            self.answers += 1
        else:
            self.released.append(ToClient(reply))

    # -- commands -------------------------------------------------------------------------

    def _begin(self, msg: Message | list[bytes]) -> _Pending:
        """The command's record, opened as it passes (built into an Exchange when read)."""
        origin = self._origin
        if origin is None:
            origin = self._origin = self.sink.origin()
        items = msg if isinstance(msg, list) else msg.items
        first = items[0] if items else b""
        name = NAMES.get(first)
        if name is None:
            name = _stateful(first)
        record = _Pending(self.sink.new_id(), origin, msg, self._wall, self._t0,
                          self.state, name)
        if self.fault_names:
            record.faults, self.fault_names = self.fault_names, []
        return record

    def _forward_all(self, commands: list[list[bytes]], chunk: bytes) -> None:
        """Whole commands forwarded as they came (`Reader.args`), kept as read: each run of
        plain ones one `_Batch` (a single one a `_Pending`), a STATEFUL one the general way
        (`_forwarded`). On a subscribed connection each command is its own record."""
        origin = self._origin
        if origin is None:
            origin = self._origin = self.sink.origin()
        names = NAMES
        try:  # (in C) every command's first word is one known not to be STATEFUL
            plain = not any(map(names.get, map(_FIRST, commands), repeat("?")))
        except IndexError:  # an empty command
            plain = False
        if plain:
            self._plain(origin, commands, chunk, 0)
            return
        start = 0
        for i, args in enumerate(commands):
            if not args:  # "*0": nothing is asked, nothing answered
                name = "*0"
            else:
                name = names.get(args[0])  # type: ignore[assignment]
                if name is None:
                    name = _stateful(args[0])
            if name:
                self._plain(origin, commands[start:i], chunk, start)
                if name != "*0":
                    self._forwarded(args)
                start = i + 1
        self._plain(origin, commands[start:] if start else commands, chunk, start)

    def _plain(self, origin: Origin, commands: list[list[bytes]], chunk: bytes,
               start: int) -> None:
        """Plain commands (no STATEFUL one, none empty) sent together, from the `start`-th of
        `chunk`'s: their records."""
        if not commands:
            return
        state = self.state
        if len(commands) == 1 or self.subscribed or self.monitoring:
            new_id, append = self.sink.new_id, self.pending.append
            for args in commands:
                append(_Pending(new_id(), origin, args, self._wall, self._t0, state))
            return
        count = len(commands)
        self.pending.append(_Batch(self.sink.new_ids(count), origin, chunk, start, count,
                                   self._wall, self._t0, state))

    def _forwarded(self, msg: Message | list[bytes]) -> None:
        """A command went to the server: open its record and note what it changes."""
        count = len(msg) if isinstance(msg, list) else msg.count
        if count <= 0:  # "*0": nothing is asked, nothing answered
            return
        record = self._begin(msg)
        name = record.name
        if name:
            if name in resp_cmd.SUBSCRIBE:
                record.expect = max(count - 1, 1)
            elif name in resp_cmd.UNSUBSCRIBE:
                record.expect = count - 1 if count > 1 else -1
            elif name == "MULTI":
                self.multi = True
            elif name in ("EXEC", "DISCARD"):
                self.multi = self.watching = False
            elif name == "WATCH":
                self.watching = True
            elif name == "UNWATCH":
                self.watching = False
            self._restate()
        self.pending.append(record)

    # -- replies --------------------------------------------------------------------------

    def _replies(self, data: bytes, now: float) -> int:
        """The simple replies and short bulk strings at the start of `data` (`Reader.heads`):
        each matched to its command as read; anything else (a STATEFUL command's reply, pub/sub)
        through `_reply`. Returns where the replies it read end."""
        heads, at = self.server.heads(data)
        pending, done = self.pending, self.done
        matched = 0
        count = len(heads)
        while matched < count and pending and not self.subscribed:  # the common case
            record = pending[0]
            if isinstance(record, _Batch):  # plain commands sent together: answered together
                if record.count > count - matched:
                    record = record.split(count - matched)
                else:
                    pending.popleft()
                record.heads = heads[matched : matched + record.count]
                record.t1 = now
                matched += record.count
                done.append(record)
                continue
            if record.name:
                break
            pending.popleft()
            record.reply, record.t1 = heads[matched], now
            matched += 1
            done.append(record)
        if matched == 1 and len(done) == 1:  # the counters' runs, without a call per record
            self.runs = [((now - done[0].t0) * 1000, heads[0][:1] == b"-", 1)]
        elif matched and b"\r\n-" not in data and data[:1] != b"-":  # no error: one run each
            self.runs = [((now - entry.t0) * 1000, False, entry.count) for entry in done]
        elif matched and sum(map(_COUNT, done)) == matched:
            self.runs = [((now - t0) * 1000, failed, len(list(run))) for (t0, failed), run
                         in groupby(zip(chain.from_iterable(map(repeat, map(_T0, done),
                                                                map(_COUNT, done))),
                                        map(bytes.startswith, heads, repeat(b"-")),
                                        strict=False))]
        if matched < len(heads):
            self.runs = None
            end = 0
            for i, head in enumerate(heads):
                msg = reply_message(head)
                end = msg.end = end + msg.size
                if i >= matched:
                    self._reply(msg, now)
        return at

    def _reply(self, msg: Message, now: float) -> None:
        pending = self.pending
        entry = pending[0] if pending else None
        if isinstance(entry, _Batch):  # a reply read the general way: its command's own record
            head: _Pending | None = entry.first()
            if entry.count:
                pending.appendleft(head)  # type: ignore[arg-type]
            else:
                pending[0] = head  # type: ignore[assignment]
        else:
            head = entry
        kind = msg.kind
        if (head is not None and not head.name and kind != ">" and not self.subscribed):
            head.reply, head.t1 = msg, now  # the common case: a plain command's reply
            pending.popleft()
            self.done.append(head)
            while pending and pending[0].answer is not None:
                self.splits.append((msg.end, pending.popleft().answer))  # type: ignore[arg-type]
                self.answers -= 1
            return
        first = msg.items[0].lower() if msg.items and kind in "*>" else b""
        confirm = first in resp_cmd.CONFIRMS and head is not None and (
            head.name in resp_cmd.SUBSCRIBE or head.name in resp_cmd.UNSUBSCRIBE)
        if not confirm and (kind == ">" or (self.subscribed and first in resp_cmd.MESSAGES)
                            or (self.monitoring and head is None and kind == "+")):
            self._push(msg, first)
            return
        if head is None:
            if msg.kind == "-":  # before any command (max clients) or on bad input: the
                text = msg.text.decode("utf-8", "replace")  # server's error for the connection
                self.sink.connection().own_notes().setdefault(self.NOTE, {})["error"] = text
                return
            self.lose_sync("server: a reply no command asked for")
            return
        if confirm:
            family = FAMILY[first]
            if head.expect < 0:  # UNSUBSCRIBE without names: one reply per subscription
                head.expect = max(self.subs[family], 1)
            if len(msg.items) >= 3:
                with contextlib.suppress(ValueError):
                    self._subscriptions(family, int(msg.items[2]))
            extra = head.extra = head.extra or {}
            extra["confirmations"] = extra.get("confirmations", 0) + 1
            head.expect -= 1
            if head.expect > 0:
                return
        head.reply, head.t1 = msg, now
        if head.name:
            self._effects(head, kind in "-!")
        self.pending.popleft()
        self.done.append(head)
        while self.pending and self.pending[0].answer is not None:
            self.splits.append((msg.end, self.pending.popleft().answer))  # type: ignore[arg-type]
            self.answers -= 1

    def _record_done(self) -> None:
        if self.done:
            self.sink.record_many(self.done, self.runs)
            self.done = []
        self.runs = None

    def _subscriptions(self, family: str, count: int) -> None:
        """A confirmation's count: shard channels' own, or channels' and patterns' together."""
        subs = self.subs
        if family == "s":
            subs["s"] = count
        else:
            subs[family] = max(subs[family] + count - subs["c"] - subs["p"], 0)
        self.subscribed = sum(subs.values())

    def _effects(self, head: _Pending, error: bool) -> None:
        """What a command's reply changes on the connection."""
        name = head.name
        msg = head.msg
        args = msg.items[:3] if msg is not None else []
        if error:
            if name == "MULTI":
                self.multi = False
                self._restate()
            return
        if name == "SELECT" and len(args) > 1:
            with contextlib.suppress(ValueError):
                self.db = int(args[1])
        elif name == "HELLO" and len(args) > 1:
            self.protocol = 3 if args[1] == b"3" else 2
        elif name == "MONITOR":
            self.monitoring = True
        elif name == "RESET":
            self.protocol, self.db, self.subscribed = 2, 0, 0
            self.subs = {"c": 0, "p": 0, "s": 0}
            self.multi = self.watching = self.monitoring = False
        self._restate()

    def _restate(self) -> None:
        """The state each record opened from now on is sent in (db, protocol, multi)."""
        self.state = (self.db, self.protocol, self.multi)

    def _push(self, msg: Message, kind: bytes) -> None:
        """A message the server sent unasked: pub/sub, a RESP3 push, a MONITOR line."""
        self.pushes += 1
        exchange = self.sink.begin()
        exchange.method = "PUSH"
        what = (kind or b"monitor" if msg.kind == "+" else kind or b"push").decode("latin-1")
        channel = msg.items[1].decode("utf-8", "replace") if len(msg.items) > 1 else ""
        exchange.path = f"{what} {channel}".strip()
        note: dict[str, Any] = {"push": what, "bytes": msg.size, "length": msg.count,
                                "connection": self.sink.connection().id}  # (rare: not cached)
        if channel:
            note["channel"] = channel
        if msg.kind == "+":
            note["text"] = msg.text.decode("utf-8", "replace")
        exchange.own_notes()["redis"] = note
        exchange.finish()
        self.sink.finish(exchange)
