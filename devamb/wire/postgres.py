"""PostgreSQL (protocol 3.0) followed beside the relay: each statement one exchange.

Exchanges: a simple `Query` (one record, however many statements its text holds: with
command faults armed its statements are decided on one by one, see `_Split`), each
`Execute` of the extended protocol (the statement its portal was bound from), a unit of
`Parse`s without `Execute` up to `Sync` ("PREPARE"), `NOTIFY`s pushed to the client, a
`CancelRequest`. The connection's own record carries the startup (user, database,
application_name), the authentication method (never a password: `p` messages are skipped
unread), the server's version and backend pid, TLS and "opaque" when following stopped.

`notes["sql"]` of a statement's exchange (docs/protocols.md documents it):
    {"statement": str, "truncated": bool, "kind": "simple"|"extended"|"prepare"|"notify"|
     "cancel"|"function", "name": prepared statement name, "params": [{"type", "value"}],
     "tag": "SELECT 3", "tags": [...], "rows": int, "columns": int,
     "error": {"sqlstate", "severity", "message", "detail", "hint", ..., "injected",
               "statement": N of a multi-statement Query}, "faulted": [{"statement", "faults"}],
     "transaction": "idle"|"in transaction"|"failed", "copy": {"direction", "bytes"},
     "connection": the connection record's id}
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from time import perf_counter, time
from typing import TYPE_CHECKING, Any

from devamb.inspect.lazy import LazyExchange, Origin
from devamb.wire import pg_codec as pg
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
from devamb.wire.pg_lex import Span, statements
from devamb.wire.pg_split import Malformed, Splitter

if TYPE_CHECKING:
    from devamb.inspect.exchange import Exchange

SQL_KEPT = 64 * 1024  # bytes of a statement's text kept (a longer one is cut, marked truncated)
SERVER_KEPT = 4096  # bytes kept of the server messages devamb reads fields from
GATE_CAP = 1024 * 1024  # with command faults armed, a message up to this size is held whole
MAX_STATEMENTS = 2000  # prepared statements remembered per connection
PATH_CHARS = 200  # of the statement, on one line, in the exchange's path
BIND_KEPT = 1024  # a Bind's body up to this size is kept as it came, its values read when shown
CLIENT_TYPES = frozenset(b"QPBESCDHXdcfFp")
SERVER_TYPES = frozenset(b"RSKZCDTIENAGHWdc123ntsv")
# ReadyForQuery's status: its transaction state (an unknown byte as itself)
STATES = {chr(code): pg.TRANSACTION.get(code, chr(code)) for code in range(256)}
STATUS = {code: chr(code) for code in range(256)}  # ReadyForQuery's status byte as text
STATE_OF = [STATES[chr(code)] for code in range(256)]  # the transaction state, by that byte
_LENGTH = struct.Struct("!I").unpack_from
_HEAD = struct.Struct("!BI").unpack_from  # a typed message's type and length
_HEAD_COLUMNS = struct.Struct("!BIH").unpack_from  # ...and a RowDescription's column count
_TAG_LENGTH = SERVER_KEPT + 4  # a CommandComplete's length up to which its tag is kept whole
_READY = b"\0\0\0\5"  # ReadyForQuery's length
# (slices kept: CPython 3.11 builds a slice object for `data[-5:-1]` each time, one more
# object counted towards the collector's next young collection)
_READY_AT = slice(-5, -1)  # a chunk's last ReadyForQuery's length
_QUERY_TEXT = slice(5, SQL_KEPT + 5)  # a Query's text kept (its message past the header)
_EMPTY = b"\0\0\0\4"  # the length of a message without a body
_SYNC = b"S" + _EMPTY
_UNIT_EMPTY = frozenset(b"12n")  # ParseComplete, BindComplete, NoData
VERB = re.compile(rb"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*([A-Za-z]+)", re.S)


def _keep_client(kind: int) -> int:
    if kind in (0x51, 0x50):  # Query, Parse
        return SQL_KEPT
    if kind == 0x70 or kind == 0x64:  # a password or SASL message; CopyData
        return 0
    return SERVER_KEPT


def _keep_server(kind: int) -> int:
    return 0 if kind in (0x44, 0x64) else SERVER_KEPT  # DataRow, CopyData: counted


class _Record(LazyExchange):
    """A statement's record as the follower fills it in; the Exchange (method, path, the
    statement as the request body, `notes["sql"]`) is built when it is read. The fields every
    statement has are kept as attributes (`rows`, `tags`, `columns`, `transaction`), the rest
    of its note in `more` (made on first use: most statements have none); fields most
    statements never set are class defaults (an instance's `__dict__` is made only when one
    is set).
    While it waits for the server's answer it is also the follower's entry in `waiting`
    (`sync`, `kind`, `done`...: one object per statement)."""

    __slots__ = ("__dict__", "columns", "done", "error", "kind", "note", "rows", "sql",
                 "sql_kind", "started", "sync", "t1", "tags", "transaction", "wall")
    # (made by `_record`, not by calling the class)
    columns: int | None
    done: bool
    error: str | None
    kind: str
    note: dict[str, Any] | None
    rows: int
    sql: str | bytes
    sql_kind: str
    started: float
    sync: int
    t1: float | None
    tags: bytes | tuple[bytes, ...]
    transaction: str | None
    wall: float
    method: str | None = None  # (else the statement's first word)
    faults: list[str] | None = None
    injected: str | None = None  # the error of a fault the server raises in its place

    def more(self) -> dict[str, Any]:
        """The note's less common fields (error, copy, notices...), to fill in."""
        note = self.note
        if note is None:
            note = self.note = {}
        return note

    @property
    def statement(self) -> str:
        sql = self.sql
        return sql if isinstance(sql, str) else pg.text(sql.rstrip(b"\0"))

    @property
    def notes(self) -> dict[str, Any]:
        """`notes` as the Exchange has them (built anew: fill in through `more`)."""
        sql = self.statement
        # (4 bytes a character at most: only a long text can have reached the cut)
        truncated = len(sql) * 4 >= SQL_KEPT and len(sql.encode("utf-8", "replace")) >= SQL_KEPT
        note = {"statement": sql, "truncated": truncated, "kind": self.sql_kind,
                "connection": self.origin.connection}
        if self.note:
            note.update(self.note)
            params = note.get("params")
            if type(params) is tuple:  # an Execute's, read now (see `_bound`)
                note["params"] = _bound(*params)
        if self.columns is not None:
            note["columns"] = self.columns
        if self.done:
            kept = self.tags
            each: tuple[bytes, ...] = (kept,) if isinstance(kept, bytes) else kept
            tags = [pg.text(tag.rstrip(b"\0")) for tag in each]
            if tags:
                note["tag"] = tags[-1]
                if len(tags) > 1:
                    note["tags"] = tags
            note["rows"] = self.rows
        if self.transaction is not None:
            note["transaction"] = self.transaction
        return {"sql": note}

    def finish(self, error: str | None = None) -> None:
        if error is not None and self.error is None:
            self.error = error
        self.t1 = perf_counter()

    @property
    def duration_ms(self) -> float:
        return ((self.t1 or self.started) - self.started) * 1000

    @property
    def failed(self) -> bool:
        return self.error is not None

    def build(self) -> Exchange:
        exchange = self.origin.exchange(self.id, self.wall, self.started)
        sql = self.statement
        raw = sql.encode("utf-8", "replace")
        method = self.method
        if method is None:
            verb = VERB.match(raw)
            method = verb.group(1).decode().upper() if verb else self.sql_kind.upper()
        exchange.method = method
        exchange.path = _one_line(sql)
        exchange.request_body.add(raw)
        exchange.notes = self.notes
        if self.faults:
            exchange.faults = list(self.faults)
        exchange.error = self.error
        exchange.duration_ms = self.duration_ms
        return exchange


_NEW = object.__new__


def _record(exchange_id: int, origin: Origin, sql: str | bytes, sql_kind: str,
            note: dict[str, Any] | None, started: float, wall: float, sync: int = 0,
            kind: str = "") -> _Record:
    """A new `_Record` (no `__init__`: a class called in CPython 3.11 runs its `__init__` in
    a frame of its own, through C, ~60 ns; a function's frame is the interpreter's own)."""
    record: _Record = _NEW(_Record)
    record.id = exchange_id
    record.origin = origin
    record.built = None
    record.count = 1  # (LazyExchange's fields: no call to set them)
    record.error = None  # (a slot: read for every record, see LazyExchange)
    record.sql = sql  # (bytes: a Query's text as it came, NUL-terminated: decoded when read)
    record.sql_kind = sql_kind  # notes["sql"]["kind"]
    record.note = note  # the rest of notes["sql"] (None: nothing yet)
    record.columns = None
    record.transaction = None
    record.started = started  # (perf_counter)
    record.wall = wall  # (the wall clock's time then)
    record.t1 = None
    # waiting for the server's answer (see `PostgresFollower._pending`):
    record.sync = sync  # the sync point (Query or Sync) whose ReadyForQuery ends it
    record.kind = kind  # "simple", "execute", "prepare", "injected"
    record.rows = 0
    # CommandComplete's tags as they came: one as its bytes, several as a tuple assigned anew
    # (no object the collector walks: a list it would walk for as long as the store keeps the
    # record)
    record.tags = ()
    record.done = False  # answered (its tag and rows are shown)
    return record


@dataclass(eq=False)
class _Split:
    """A simple Query of several statements, decided on one statement at a time (`spans`:
    each statement's place in the Query's text, `message[5:]`)."""

    message: bytes
    spans: list[Span]
    at: int = 0  # the statement being decided on
    names: list[str] = field(default_factory=list)  # the faults that fired on its statements
    faulted: list[dict[str, Any]] = field(default_factory=list)  # notes["sql"]["faulted"]

    def command(self) -> Command:
        start, end = self.spans[self.at]
        sql = pg.text(self.message[5 + start:5 + end])
        return Command({"sql": sql}, _one_line(sql))

    def fired(self, names: list[str]) -> None:
        if names:
            self.names += [n for n in names if n not in self.names]
            self.faulted.append({"statement": self.at + 1, "faults": list(names)})


@dataclass(eq=False)
class _Drop:
    """The server's ParseComplete and BindComplete to a raise_extended in unit `sync`, after
    `before` of the unit's own (Parses, Binds)."""

    sync: int
    before: tuple[int, int]
    left: list[bool] = field(default_factory=lambda: [True, True])


class PostgresFollower(Follower):
    # (slots: an object with this many attributes in its `__dict__` has each read through
    # the dict's hash table; a slot is read at its offset)
    __slots__ = ("_origin", "awaiting", "backslash_quotes", "client", "conn", "copying", "cuts",
                 "describing", "done", "drops", "fault_names", "faulted", "gating", "gbuf",
                 "held_since", "in_unit", "just_parsed", "keep_sync", "lean", "new_id", "opaque",
                 "options", "out", "pass_left", "pass_swallow", "plain", "portals", "queue",
                 "record_many", "record_one", "released", "released_items", "rfq_seen", "server",
                 "server_held", "server_lean", "server_pb", "sink", "split", "splits", "started",
                 "statements", "status", "swallowing", "sync_answered", "syncs_sent",
                 "unit_parses", "unit_pb", "waiting")
    NOTE = "postgres"

    def __init__(self, sink: Exchanges, options: FollowerOptions) -> None:
        super().__init__(sink, options)
        self.client = Splitter(False, _keep_client, self._from_client)
        self.server = Splitter(True, _keep_server, self._from_server)
        self.server.counted, self.server.on_count = 0x44, self._rows  # DataRow
        self.conn: dict[str, Any] = {}
        self.statements: dict[str, tuple[str, list[int]]] = {}
        # a portal's statement and values: the Bind's body and where its values start (read
        # when a record is: `_bound`), its values read (a long body), or None (redact_params)
        self.portals: dict[str, tuple[str, bytes | list[str | bytes | None] | None, int]] = {}
        self.waiting: list[_Record] = []
        self.unit_parses: list[tuple[str, list[int]]] = []  # Parse without Execute so far
        self.in_unit = False  # an extended-protocol unit is open (up to its Sync)
        self.status = "I"
        self.started = False  # the StartupMessage passed
        self.syncs_sent = 0
        self.rfq_seen = 0
        self.copying: _Record | None = None
        self.describing: list[str] = []  # statements described, awaiting their parameter types
        # gating (command-level faults)
        self.gbuf = bytearray()
        self.plain = True  # (False once the gate was used: what it holds must be looked at)
        self.pass_left = 0  # bytes of an oversized message streamed through the gate
        self.pass_swallow = False
        self.swallowing = False  # an answered unit's messages are dropped up to its Sync
        self.sync_answered = False  # the server already answered that unit (and its Sync)
        self.keep_sync = False  # ...but its Sync goes on (the server raised the error in it)
        self.just_parsed: str | None = None  # the statement the last Parse named (until Bind)
        # ParseComplete/BindComplete answering raise_extended are not the client's: per unit
        # (its sync point), how many of the unit's own come before them. Counted per unit:
        self.unit_pb = [0, 0]  # Parses, Binds the client sent in the open unit
        self.server_pb = [0, 0]  # ParseCompletes, BindCompletes since the last ReadyForQuery
        self.drops: list[_Drop] = []
        self.server_held = b""  # a server message's start, held while a drop may come
        self.awaiting: bytes | None = None  # the message a Decide is about
        self.split: _Split | None = None  # a Query decided on statement by statement
        self.backslash_quotes = False  # standard_conforming_strings is off
        self.released: bytes | None = None  # decided: forward it next
        self.fault_names: list[str] = []
        self.faulted: list[dict[str, Any]] = []  # a split Query's: its record's note
        self.queue: list[tuple[int, bytes]] = []  # injected answers: (after RFQ n, bytes)
        self.splits: list[tuple[int, bytes | int]] = []  # (offset, bytes to insert there)
        self.cuts: list[tuple[int, int]] = []  # server bytes [start, end) of a chunk dropped
        self.released_items: list[Item] = []  # answers `resolve` made that can go at once
        self.held_since: float | None = None
        self.out: list[Item] = []  # what the gate lets go, in order
        self.done: list[_Record] = []  # records completed by the server's chunk being read
        self._origin: Origin | None = None
        # the fast paths may be tried (`client_data`, `server_data`: neither changes what
        # these depend on), recomputed after each chunk read otherwise (`_relean`), off once
        # following stops (`lose_sync`)
        self.lean = self.server_lean = False
        self.new_id = sink.new_id
        self.record_many = sink.record_many
        self.record_one = sink.record_one

    # -- the relay's calls ----------------------------------------------------------------

    def passes_unchanged(self, inbound: bool) -> bool:
        if inbound:  # nothing held, no command to stop at
            if not self.gating and self.plain:  # (the gate never held anything)
                return True
            return self.opaque is not None or not (
                self.gbuf or self.awaiting is not None or self.released is not None
                or self.split is not None or self.pass_left or self.swallowing
                or self.released_items
                or (self.gating and self.started and self.client.between))
        # no answer of devamb's to insert, no server message to drop or hold
        return not (self.server_held or (self.opaque is None and (self.queue or self.drops)))

    def client_data(self, data: bytes) -> list[Item] | None:
        if self.lean and not self.gating:
            n = len(data)
            if n > 5 and data[0] == 0x51 and _LENGTH(data, 1)[0] + 1 == n:
                # one whole Query (its text as the splitter would hand it out, decoded when
                # read) waits for its answer: `_query` and `_begin`, inline
                sync = self.syncs_sent = self.syncs_sent + 1  # its own sync point
                new_id = self.new_id  # (read, then called: a slot called as a method is not
                self.waiting.append(_record(  # looked up the interpreter's fast way)
                    new_id(), self._origin, data[_QUERY_TEXT],  # type: ignore[arg-type]
                    "simple", None, perf_counter(), time(), sync, "simple"))
                return None
        if self.opaque is not None:
            return None
        if (not self.gating and self.plain) or self.passes_unchanged(True):
            try:  # (only observing: the relay forwards `data` itself)
                if self.lean and data.endswith(_SYNC):  # whole units of the extended protocol
                    self._units(data)
                else:
                    self.client.feed(data)
            except Malformed as exc:
                self.lose_sync(f"client: {exc}")
            except Exception as exc:  # a bug here must not break the app's connection
                self.lose_sync(f"devamb could not follow the client: {exc!r}")
            self._relean()
            return None
        self.out = []
        try:
            self._gate(data)
        except Exception as exc:
            self.lose_sync(f"devamb could not follow the client: {exc!r}")
        out, self.out = self.out, []
        self._relean()
        if self.opaque is not None:  # relay whatever it still held, as it came
            awaiting = self.awaiting if self.split is None else self.split.message
            for held_bytes in (awaiting, self.released, bytes(self.gbuf)):
                if held_bytes:
                    out.append(held_bytes)
            self.awaiting = self.released = self.split = None
            self.gbuf.clear()
        return out

    def server_data(self, data: bytes) -> list[bytes] | None:
        waiting = self.waiting
        n = len(data)
        if self.server_lean and waiting and n > 5 and data[-6] == 0x5A:
            # the common chunk, read at once: the whole answer to the first waiting simple
            # Query of one statement (a RowDescription, DataRows, CommandComplete, and
            # ReadyForQuery ending the chunk), read in that order; any other shape (several
            # statements' answers, an error, a notice...) goes to the splitter, nothing read
            head = waiting[0]
            seen = self.rfq_seen + 1
            if (head.sync == seen and not head.done
                    and (len(waiting) == 1 or waiting[1].sync != seen)):
                # (an Execute's answer, a unit of one Execute: its ParseComplete, BindComplete
                # and the Describe's NoData come first; counted by the splitter's way only
                # for a drop, which `server_lean` excludes, and reset by the ReadyForQuery)
                i = 0
                if head.kind != "simple":  # (a Query's first: one comparison for it)
                    if head.kind == "execute":
                        while data.startswith(_EMPTY, i + 1) and data[i] in _UNIT_EMPTY:
                            i += 5
                    else:
                        i = n  # (a PREPARE or FUNCTION's: the splitter's way)
                rows = 0
                try:  # (a message past the chunk: the header read there fails)
                    kind, length, columns = _HEAD_COLUMNS(data, i)
                    if kind == 0x54 and length >= 6:  # RowDescription
                        i += 1 + length
                        kind, length = _HEAD(data, i)
                    else:
                        columns = -1
                    while kind == 0x44 and length >= 4:  # DataRow
                        rows += 1
                        i += 1 + length
                        kind, length = _HEAD(data, i)
                    end = i + 1 + length
                    # CommandComplete, then ReadyForQuery ending the chunk (data[end]: its Z)
                    whole = (kind == 0x43 and length >= 4 and end + 6 == n
                             and data[_READY_AT] == _READY)  # (its length; no startswith: its
                    # arguments are parsed the slow way)
                except (IndexError, struct.error):
                    whole = False
                if whole:
                    if columns >= 0:
                        head.columns = columns  # (as the splitter would set them)
                    if rows:
                        head.rows += rows
                    tag = (data[i + 5:end] if length <= _TAG_LENGTH else
                           data[i + 5:i + 5 + SERVER_KEPT])
                    head.tags = _tagged(head.tags, tag) if head.tags else tag
                    # `_ready` and `_record_done` for this one statement (nothing else waits
                    # on it; no COPY, Describe, drop, answer of devamb's or ParseComplete or
                    # BindComplete counted since the last ReadyForQuery: `server_lean`)
                    status = data[-1]
                    self.status = STATUS[status]
                    self.rfq_seen = seen
                    head.transaction = STATE_OF[status]
                    head.done = True
                    head.t1 = now = perf_counter()
                    del waiting[0]
                    record_one = self.record_one  # (read, then called: see `client_data`; 1000.0:
                    # float times float, the multiplication the interpreter specialises)
                    record_one(head, (now - head.started) * 1000.0, head.error is not None)
                    return None
        if self.opaque is not None:
            if self.server_held:
                held, self.server_held = self.server_held, b""
                return [held, data]
            return None
        try:
            return self._server_data(data)
        finally:
            self._relean()

    def _server_data(self, data: bytes) -> list[bytes] | None:
        self.splits.clear()
        self.server.end = 0
        try:
            self.server.feed(data)
        except Malformed as exc:
            self._record_done()
            self.lose_sync(f"server: {exc}")
        except Exception as exc:
            self._record_done()
            self.lose_sync(f"devamb could not follow the server: {exc!r}")
        self._record_done()
        if not self.splits and not self.cuts and not self.server_held and not self.drops:
            return None
        held = self.server_held
        if held or self.cuts:
            data = held + data
            self.splits = [(end + len(held), extra) for end, extra in self.splits]
            self.splits += [(start + len(held), -(end + len(held))) for start, end in self.cuts]
            self.splits.sort(key=lambda split: split[0])
            self.cuts.clear()
        # while a drop may come, a server message's start waits for its end (to be cut whole)
        keep = len(data) if self.server.between or not self.drops else (
            self.server.end + len(held))
        self.server_held = data[keep:]
        pieces: list[bytes] = []
        at = 0
        for end, extra in self.splits:
            if isinstance(extra, int):  # a cut: [end, -extra) is dropped
                pieces.append(data[at:end])
                at = -extra
                continue
            pieces += [data[at:end], extra]
            at = end
        pieces.append(data[at:keep])
        self.splits.clear()
        return [p for p in pieces if p]

    def resolve(self, action: Action, faults: list[str] | None = None) -> None:
        try:
            self._resolve(action, faults)
        finally:
            self._relean()

    def _relean(self) -> None:
        client, server = self.client, self.server
        following = self.opaque is None
        # a Query read at once: the gate never used, the client's side between typed
        # messages, no extended-protocol unit open, a record made before (`_origin`)
        self.lean = (following and self.plain and client.typed and client.left < 0
                     and not client.head and not self.in_unit and self._origin is not None)
        # an answer read at once: the server's side between typed messages, no COPY or
        # Describe going on, no server message to drop or hold, no answer of devamb's to put
        # after the server's, no ParseComplete or BindComplete counted since the last
        # ReadyForQuery (`_ready` would reset the counts)
        counts = self.server_pb
        self.server_lean = (following and server.left < 0 and not server.head
                            and not server.single and self.copying is None
                            and not self.describing and not self.drops and not self.queue
                            and not self.server_held and not counts[0] and not counts[1])

    def lose_sync(self, why: str) -> None:
        self.lean = self.server_lean = False
        super().lose_sync(why)

    def _resolve(self, action: Action, faults: list[str] | None = None) -> None:
        message, self.awaiting = self.awaiting, None
        if message is None:
            return
        split = self.split
        if split is not None:
            split.fired(list(faults or []))
            self.fault_names, self.faulted = list(split.names), split.faulted
            if isinstance(action, Answer) and split.at > 0:
                self.split = None
                self._answer_at(message, action, split)
                return
            if isinstance(action, Answer | Close) or split.at + 1 == len(split.spans):
                self.split = None
            else:  # the next statement is decided on at the next `client_data`
                split.at += 1
                return
        else:
            self.fault_names = list(faults or [])
        if isinstance(action, Answer):
            self._answer(message, action)
        elif isinstance(action, Close):
            self._closed_on(message, action)
        else:
            self.released = message

    def safe_point(self) -> bool:
        return (self.opaque is None and self.started and self.status == "I"
                and self.syncs_sent == self.rfq_seen and not self.in_unit
                and self.client.between and self.server.between and not self.gbuf
                and self.awaiting is None and self.released is None and self.split is None
                and not self.queue
                and self.copying is None and not self.swallowing and not self.drops
                and not self.server_held)

    def safe_close(self) -> bytes:
        return pg.terminate()

    def abandon(self, why: str) -> None:
        for pending in self.waiting:
            if not pending.done:
                self._finish(pending, error=f"no answer: {why}")
        self.waiting.clear()
        self._record_done()

    # -- gating ---------------------------------------------------------------------------

    def _gate(self, data: bytes) -> None:
        """Hold the client's bytes at command boundaries; what may go is put in `self.out`."""
        self.plain = False
        buf = self.gbuf
        buf += data
        out = self.out
        out += self.released_items
        self.released_items = []
        if self.released is not None:
            message, self.released = self.released, None
            self._forward(message, out)
        if self.split is not None and self.awaiting is None:  # its next statement
            self.awaiting = self.split.message
            out.append(Decide(self.split.command()))
            return
        while self.awaiting is None and self.opaque is None:
            if self.pass_left:
                take = min(self.pass_left, len(buf))
                if not take:
                    break
                chunk = bytes(buf[:take])
                del buf[:take]
                self.pass_left -= take
                if not self.pass_swallow:
                    self._forward(chunk, out)
                continue
            typed = self.client.typed
            size = 5 if typed else 4
            if len(buf) < size:
                break
            length = int.from_bytes(buf[1:5] if typed else buf[0:4])
            if length < 4:
                self.lose_sync(f"client: message length {length} (below 4)")
                break  # client_data relays what is held
            kind = buf[0] if typed else 0
            total = length + (1 if typed else 0)
            if total > GATE_CAP:  # too large to hold: streamed, never decided on
                self.pass_left, self.pass_swallow = total, self.swallowing
                continue
            if len(buf) < total:
                break
            message = bytes(buf[:total])
            del buf[:total]
            if self.swallowing:
                if kind == 0x53:  # the answered unit's Sync: its ReadyForQuery
                    self.swallowing = False
                    if self.keep_sync:  # the server raised the error: its Sync ends the unit
                        self.keep_sync = False
                        self._forward(message, out)
                    elif self.sync_answered:  # its ReadyForQuery came from the server
                        self.sync_answered = False
                    else:
                        out += self._inject(pg.ready_for_query(self._answered_status()))
                continue
            command = self._decision(kind, message)
            if command is not None:
                self.awaiting = message
                self.held_since = perf_counter()  # a delay counts in its duration
                out.append(Decide(command))
                break
            self._forward(message, out)

    def _forward(self, data: bytes, out: list[Item]) -> None:
        try:
            self.client.feed(data)
        except Malformed as exc:
            self.lose_sync(f"client: {exc}")
        out.append(data)

    def _decision(self, kind: int, message: bytes) -> Command | None:
        if not self.gating or not self.started:
            return None
        if kind == 0x51:  # Query
            text = message[5:-1]
            # (no `;` but trailing ones: one statement, not lexed)
            spans = statements(text, self.backslash_quotes) if b";" in text.rstrip(
                b" \t\r\n\f;") else []
            if len(spans) > 1:  # each statement is decided on (the first one now)
                self.split = _Split(message, spans)
                return self.split.command()
            sql = pg.text(message[5:].rstrip(b"\0"))
        elif kind == 0x50:  # Parse (each statement of a pipelined unit is decided on)
            sql = pg.cstrings(message[5:], 2)[0][-1]
        elif kind == 0x42:  # Bind, unless of the statement its unit's last Parse named
            names, _ = pg.cstrings(message[5:], 2)
            if len(names) == 2 and names[1] == self.just_parsed:
                return None
            sql = self.statements.get(names[-1], ("", []))[0] if len(names) == 2 else ""
        else:
            return None
        return Command({"sql": sql}, _one_line(sql))

    def _inject(self, data: bytes) -> list[Item]:
        """An answer of devamb's, after the server's replies to what went before it."""
        if not self.queue and self.syncs_sent == self.rfq_seen:
            return [ToClient(data)]
        self.queue.append((self.syncs_sent, data))
        return []

    def _answered_status(self) -> str:
        return "I" if self.status == "I" else "E"

    def _answer(self, message: bytes, action: Answer) -> None:
        kind = message[0]
        sqlstate = getattr(action.params, "sqlstate", "XX000")
        text = getattr(action.params, "message", "") or f"injected by devamb fault {action.fault}"
        sql = self._decision_sql(kind, message)
        exchange = self._begin(sql, "simple" if kind == 0x51 else "extended")
        exchange.more()["error"] = error = {"sqlstate": sqlstate, "severity": "ERROR",
                                            "message": text, "injected": True}
        faulted = exchange.more().get("faulted")
        if faulted:  # the first statement of several (the others never run)
            error["statement"] = faulted[-1]["statement"]
        injected = "" if text.startswith("injected by devamb") else f" (fault {action.fault})"
        # the server's state when it would reach the statement is not known yet while it has
        # earlier messages to answer (BEGIN pipelined before it) or the statement is inside an
        # extended unit (a pipeline batch): the server raises the error there itself
        outstanding = self.syncs_sent != self.rfq_seen
        if kind != 0x51 and (self.in_unit or outstanding):
            pending = self._pending(exchange, "injected")
            pending.injected = f"{sqlstate} {text}{injected}"
            self.drops.append(_Drop(pending.sync, (self.unit_pb[0], self.unit_pb[1])))
            self.in_unit = True
            self.released_items = [pg.raise_extended(sqlstate, text)]
            self.swallowing = self.keep_sync = True
            return
        if self.status == "T" or outstanding:
            # in a transaction: the server raises the error itself, so its transaction fails
            # as the client is told (a COMMIT then rolls back, as after a real error)
            pending = self._pending(exchange, "injected")
            pending.injected = f"{sqlstate} {text}{injected}"
            # sent at once (a client may wait for the error before its Sync: asyncpg's Flush);
            # an extended unit's messages up to its Sync are dropped: the server's
            # ReadyForQuery to this Query stands for the unit's
            self.syncs_sent += 1
            self.released_items = [pg.raise_query(sqlstate, text)]
            if kind != 0x51:
                self.swallowing = self.sync_answered = True
            return
        exchange.transaction = pg.TRANSACTION[ord(self._answered_status())]
        exchange.finish(error=f"{sqlstate} {text}{injected}")
        self.sink.record(exchange)
        items = self._inject(pg.error_response(sqlstate, text))
        if kind == 0x51:
            items += self._inject(pg.ready_for_query(self._answered_status()))
        else:
            self.swallowing = True  # up to the unit's Sync, whose ReadyForQuery goes then
        self.released_items = items

    def _answer_at(self, message: bytes, action: Answer, split: _Split) -> None:
        """An error on a later statement of a Query: the server runs the Query with that
        statement replaced by one raising the error, the others as they came, so what ran
        before it, the transaction's state and ReadyForQuery are the server's own."""
        sqlstate = getattr(action.params, "sqlstate", "XX000")
        text = getattr(action.params, "message", "") or f"injected by devamb fault {action.fault}"
        start, end = split.spans[split.at]
        body = message[5:]
        exchange = self._begin(body, "simple")
        exchange.more()["error"] = {"sqlstate": sqlstate, "severity": "ERROR", "message": text,
                                    "injected": True, "statement": split.at + 1}
        injected = "" if text.startswith("injected by devamb") else f" (fault {action.fault})"
        pending = self._pending(exchange, "simple")
        pending.injected = f"{sqlstate} {text}{injected}"
        self.syncs_sent += 1
        self.unit_pb = [0, 0]
        self.released_items = [pg.message(
            b"Q", body[:start] + pg.raise_sql(sqlstate, text) + body[end:])]

    def _closed_on(self, message: bytes, action: Close) -> None:
        sql = self._decision_sql(message[0], message)
        exchange = self._begin(sql, "simple" if message[0] == 0x51 else "extended")
        exchange.finish(error=action.reason or "connection closed by a fault")
        self.sink.record(exchange)

    def _decision_sql(self, kind: int, message: bytes) -> str:
        if kind == 0x51:
            return pg.text(message[5:].rstrip(b"\0"))
        if kind == 0x50:
            return pg.cstrings(message[5:], 2)[0][-1]
        names, _ = pg.cstrings(message[5:], 2)
        return self.statements.get(names[-1], ("", []))[0] if len(names) == 2 else ""

    # -- records --------------------------------------------------------------------------

    def _begin(self, sql: str | bytes, kind: str, **extra: Any) -> _Record:
        origin = self._origin
        if origin is None:
            origin = self._origin = self.sink.origin()
        started = perf_counter()
        exchange = _record(self.new_id(), origin, sql, kind, extra or None, started, time())
        if self.fault_names:
            exchange.faults = self.fault_names
            self.fault_names = []
            if self.faulted:  # which statements of the Query the faults fired on
                exchange.more()["faulted"] = self.faulted
                self.faulted = []
        if self.held_since is not None:
            exchange.started, self.held_since = self.held_since, None
        return exchange

    def _finish(self, pending: _Record, error: str | None = None) -> None:
        if pending.done:
            return
        pending.done = True  # (its tags and rows go in its note)
        if error is not None and pending.error is None:
            pending.error = error
        pending.t1 = perf_counter()
        self.done.append(pending)

    def _record_done(self) -> None:
        done = self.done
        if done:
            self.done = []
            if len(done) == 1:  # (the common case: its run counted here, not regrouped)
                one = done[0]
                self.record_one(one, (one.t1 - one.started) * 1000,  # type: ignore[operator]
                                one.error is not None)
            else:
                self.record_many(done)

    def _pending(self, exchange: _Record, kind: str) -> _Record:
        # the sync point it belongs to: the next Query or Sync forwarded
        exchange.sync = self.syncs_sent + 1
        exchange.kind = kind
        self.waiting.append(exchange)
        return exchange

    def _head(self) -> _Record | None:
        for pending in self.waiting:
            if not pending.done and pending.sync > self.rfq_seen:
                return pending
        return None

    # -- client messages ------------------------------------------------------------------

    def _units(self, data: bytes) -> None:
        """A chunk of extended-protocol units ending with a Sync, the client's side between
        messages (`lean`): its whole messages read in one loop, as the splitter's `_whole`
        hands them to `_from_client`, a portal's Describe and the Sync read in the loop (their
        `_from_client` steps); what is not whole goes to the splitter."""
        i, n = 0, len(data)
        limits = self.client.limits
        from_client = self._from_client
        while n - i >= 5:
            kind = data[i]
            length = _LENGTH(data, i + 1)[0]
            end = i + 1 + length
            if end > n or length < 4:
                break
            start = i + 5
            i = end
            if kind == 0x53:  # Sync
                self._sync()
            elif kind == 0x44 and length > 4 and data[start] == 0x50:  # Describe (a portal)
                if not self.in_unit:
                    self.in_unit = True
                    self.unit_parses = []
            else:
                limit = limits[kind]
                from_client(kind, (data[start:end] if length <= limit else
                                   data[start:start + limit - 4]) if limit else b"", length - 4)
        if i < n:
            self.client.feed(data[i:])

    def _sync(self) -> None:
        """A Sync: the extended-protocol unit it ends is closed (its Parses not executed are
        PREPAREs), and the answers up to its ReadyForQuery are owed."""
        if self.unit_parses:
            self._prepares()
        self.in_unit = False
        self.syncs_sent += 1
        counts = self.unit_pb
        if counts[0] or counts[1]:
            self.unit_pb = [0, 0]
        self.just_parsed = None

    def _from_client(self, kind: int, body: bytes, length: int) -> None:
        # (the extended protocol's messages first: a unit of them comes message by message)
        if kind == 0x42:  # Bind
            portal, stmt, at = _two(body)
            # its values: read when a record is (the body kept; a long one read now, cut)
            self.portals[portal] = ((stmt, None, 0) if self.options.redact_params else
                                    (stmt, body, at) if len(body) <= BIND_KEPT else
                                    (stmt, pg.bind_values(body, at), 0))
            if not self.in_unit:
                self.in_unit = True
                self.unit_parses = []
            self.unit_pb[1] += 1
            self.just_parsed = None
        elif kind == 0x45:  # Execute
            end = body.find(b"\0")
            portal = (body[:end] if end >= 0 else body).decode("utf-8", "replace")
            stmt, bound, at = self.portals.get(portal, _NO_PORTAL)
            sql, types = self.statements.get(stmt, _NO_STATEMENT)
            # (its params: a tuple, made into their list when the record is read: `_bound`)
            exchange = self._begin(sql, "extended", name=stmt, params=(types, bound, at))
            exchange.sync = self.syncs_sent + 1  # (`_pending`, inline)
            exchange.kind = "execute"
            self.waiting.append(exchange)
            if not self.in_unit:
                self.in_unit = True
                self.unit_parses = []
            else:
                parses = self.unit_parses  # (the Parses it executes are no PREPARE)
                if len(parses) == 1:
                    if parses[0][0] == stmt:
                        self.unit_parses = []
                elif parses:
                    self.unit_parses = [p for p in parses if p[0] != stmt]
        elif kind == 0x53:  # Sync
            self._sync()
        elif kind == 0x44 or kind == 0x48:  # Describe, Flush
            if kind == 0x44 and body[:1] == b"S":  # its ParameterDescription gives the types
                self.describing.append(pg.cstrings(body[1:], 1)[0][0] if len(body) > 1 else "")
            if not self.in_unit:
                self.in_unit = True
                self.unit_parses = []
        elif kind == 0x50:  # Parse
            name, sql, at = _two(body)
            # (no parameter types given, as most drivers send it: the count's two bytes only)
            types = pg.parse_types(body, at) if len(body) > at + 2 else []
            statements = self.statements
            if len(statements) >= MAX_STATEMENTS:
                statements.pop(next(iter(statements)))
            statements[name] = (sql, types)
            if not self.in_unit:  # (`_open_unit`, inline here and below)
                self.in_unit = True
                self.unit_parses = [(name, types)]
            else:
                self.unit_parses.append((name, types))
            self.unit_pb[0] += 1
            self.just_parsed = name
        elif kind == 0x51:  # Query
            self._query(body)
        elif kind == 0:  # the startup, SSLRequest, CancelRequest
            self._untyped(body)
        elif kind not in CLIENT_TYPES:
            self.lose_sync(f"client sent an unknown message type {chr(kind)!r}")
        elif kind == 0x43:  # Close statement/portal
            what, name = body[:1], pg.cstrings(body[1:], 1)[0][0] if len(body) > 1 else ""
            (self.statements if what == b"S" else self.portals).pop(name, None)
            self._open_unit()
        elif kind == 0x64 and self.copying is not None:  # CopyData
            copy = self.copying.more().setdefault("copy", {})
            copy["bytes"] = copy.get("bytes", 0) + length
        elif kind == 0x46:  # FunctionCall
            oid = int.from_bytes(body[:4]) if len(body) >= 4 else 0
            exchange = self._begin(f"function {oid}", "function")
            exchange.method = "FUNCTION"
            self._pending(exchange, "simple")
            self.syncs_sent += 1

    def _query(self, body: bytes) -> None:
        """A simple Query (its text as it came, decoded when read) waits for its answer."""
        record = self._begin(body, "simple")
        # (`_pending`, inline) the Query is its own sync point
        record.sync = self.syncs_sent = self.syncs_sent + 1
        record.kind = "simple"
        self.waiting.append(record)
        counts = self.unit_pb
        if counts[0] or counts[1]:
            self.unit_pb = [0, 0]

    def _prepares(self) -> None:
        """The unit's Parses no Execute used: each a PREPARE exchange."""
        for name, types in self.unit_parses:
            sql = self.statements.get(name, ("", []))[0]
            exchange = self._begin(sql, "prepare", name=name,
                                   params=[{"type": pg.type_name(t)} for t in types])
            exchange.method = "PREPARE"
            self._pending(exchange, "prepare")
        self.unit_parses = []

    def _open_unit(self) -> None:
        if not self.in_unit:
            self.in_unit = True
            self.unit_parses = []

    def _untyped(self, body: bytes) -> None:
        if len(body) < 4:
            self.lose_sync("client: a startup message too short")
            return
        code = int.from_bytes(body[:4])
        conn = self.sink.connection()
        note = conn.own_notes().setdefault("postgres", {})
        if code in (pg.SSL_REQUEST, pg.GSSENC_REQUEST):
            note["encryption_requested"] = "ssl" if code == pg.SSL_REQUEST else "gss"
            self.server.single = True
        elif code == pg.CANCEL_REQUEST:
            pid = int.from_bytes(body[4:8]) if len(body) >= 8 else 0
            exchange = self._begin(f"cancel backend {pid}", "cancel")
            exchange.method = "CANCEL"
            exchange.finish()
            self.sink.record(exchange)
        elif code == pg.PROTOCOL_3:
            params = pg.startup_params(body)
            for key in ("user", "database", "application_name"):
                if key in params:
                    note[key] = params[key]
            note.setdefault("database", params.get("user", ""))
            conn.method = "CONNECT"
            conn.path = f"{note.get('user', '?')}@{note.get('database', '?')}" + (
                f" ({note['application_name']})" if note.get("application_name") else "")
            self.client.typed = True
            self.started = True
            self.syncs_sent += 1  # the server answers the startup with ReadyForQuery
        else:
            self.lose_sync(f"client: protocol {code >> 16}.{code & 0xFFFF} is not followed")

    # -- server messages ------------------------------------------------------------------

    def _rows(self, count: int) -> None:
        """`count` DataRows passed (the splitter counts them: see pg_split)."""
        head = self._head()
        if head is not None:
            head.rows += count

    def _from_server(self, kind: int, body: bytes, length: int) -> None:
        # (the messages of every statement first; then the rest, SERVER_TYPES checked)
        if kind == 0x5A:  # ReadyForQuery
            self._ready(chr(body[0]) if body else "I")
            return
        if kind == 0x43 or kind == 0x49 or kind == 0x73:  # CommandComplete, Empty, Suspended
            head = self._head()
            if head is not None:
                head.tags = _tagged(head.tags, body if kind == 0x43 else (  # (decoded when read)
                    b"" if kind == 0x49 else b"suspended"))
                if self.copying is head:
                    self.copying = None
                if head.kind == "execute":
                    self._finish(head)
            return
        if kind == 0x54:  # RowDescription
            head = self._head()
            if head is not None and len(body) >= 2:
                head.columns = int.from_bytes(body[:2])
            return
        if length < 0:  # the answer to SSLRequest / GSSENCRequest
            note = self.sink.connection().own_notes().setdefault("postgres", {})
            if kind in (ord("S"), ord("G")):
                note["encryption"] = "tls" if kind == ord("S") else "gss"
                self.lose_sync("TLS negotiated: the connection is encrypted"
                               if kind == ord("S") else "GSSAPI encryption negotiated")
            else:
                note["encryption"] = "refused"
            return
        if kind not in SERVER_TYPES:
            self.lose_sync(f"server sent an unknown message type {chr(kind)!r}")
            return
        head = self._head()
        if kind == 0x31 or kind == 0x32:  # ParseComplete, BindComplete
            which = kind - 0x31
            if self.drops:
                unit = self.rfq_seen + 1
                for drop in self.drops:
                    if (drop.sync == unit and drop.left[which]
                            and self.server_pb[which] == drop.before[which]):
                        drop.left[which] = False
                        self.cuts.append((self.server.end - length - 5, self.server.end))
                        return
            self.server_pb[which] += 1
        elif kind == 0x45:  # ErrorResponse
            fields = pg.error_fields(body)
            error = f"{fields.get('sqlstate', '')} {fields.get('message', '')}".strip()
            if head is None and self.unit_parses:  # Parse then Flush: failed before its Sync
                self._prepares()
                head = self._head()
            if head is None:
                self.sink.connection().own_notes().setdefault("postgres", {})["error"] = fields
                if self.sink.connection().error is None:
                    self.sink.connection().error = error
                return
            if head.injected is not None and head.injected.startswith(error):
                head.error = head.injected  # the fault's error, raised by the server
                return
            head.more()["error"] = fields
            head.error = error
            if head.kind != "simple":
                self._finish(head, error=error)
                for other in self.waiting:  # the rest of the unit is skipped up to Sync
                    if other.sync == head.sync and not other.done:
                        other.more()["skipped"] = True
        elif kind == 0x74:  # ParameterDescription
            if self.describing:
                name = self.describing.pop(0)
                if name in self.statements:
                    self.statements[name] = (self.statements[name][0],
                                             pg.parse_types(body, 0))
        elif kind in (0x47, 0x48, 0x57):  # CopyIn/Out/BothResponse
            if head is not None:
                direction = {0x47: "in", 0x48: "out", 0x57: "both"}[kind]
                head.more()["copy"] = {"direction": direction, "bytes": 0}
                self.copying = head
        elif kind == 0x64 and self.copying is not None:
            copy = self.copying.more().setdefault("copy", {})
            copy["bytes"] = copy.get("bytes", 0) + length
        elif kind == 0x41:  # NotificationResponse
            pid = int.from_bytes(body[:4]) if len(body) >= 4 else 0
            (channel, payload), _ = pg.cstrings(body[4:], 2) if body.count(b"\0") >= 2 else (
                ["", ""], 0)
            exchange = self._begin(f"NOTIFY {channel}", "notify", channel=channel,
                                   payload=payload, pid=pid)
            exchange.method = "NOTIFY"
            exchange.finish()
            self.done.append(exchange)
        elif kind == 0x4E:  # NoticeResponse
            if head is not None:
                more = head.more()
                more["notices"] = more.get("notices", 0) + 1
        elif kind == 0x52:  # Authentication
            code = int.from_bytes(body[:4]) if len(body) >= 4 else -1
            note = self.sink.connection().own_notes().setdefault("postgres", {})
            if code in (3, 5, 10):
                note["auth"] = pg.AUTH[code]
                if code == 10:
                    note["sasl"] = [m for m in pg.text(body[4:]).split("\0") if m]
            elif code == 0:
                note.setdefault("auth", "trust")
        elif kind == 0x53:  # ParameterStatus
            (name, value), _ = pg.cstrings(body, 2) if body.count(b"\0") >= 2 else (["", ""], 0)
            if name in ("server_version", "server_encoding", "application_name"):
                self.sink.connection().own_notes().setdefault("postgres", {})[name] = value
            elif name == "standard_conforming_strings":
                self.backslash_quotes = value == "off"
        elif kind == 0x4B and len(body) >= 4:  # BackendKeyData
            self.sink.connection().own_notes().setdefault("postgres", {})["pid"] = int.from_bytes(
                body[:4])

    def _ready(self, status: str) -> None:
        self.status = status
        seen = self.rfq_seen = self.rfq_seen + 1
        counts = self.server_pb
        if counts[0] or counts[1]:
            counts[0] = counts[1] = 0
        if self.drops:
            self.drops = [d for d in self.drops if d.sync > seen]
        if self.describing:
            self.describing.clear()
        waiting = self.waiting
        if waiting:
            state = STATES[status]
            ended = 0  # (`waiting` is in sync order: the statements this ends come first)
            for pending in waiting:
                if pending.sync > seen:
                    break
                ended += 1
                pending.transaction = state
                if not pending.done:
                    if pending.note is not None and pending.note.get("skipped"):
                        self._finish(pending, error="not executed: an earlier message of its "
                                     "batch failed")
                    else:  # (`_finish`, inline: most statements end here)
                        pending.done = True
                        pending.t1 = perf_counter()
                        self.done.append(pending)
            del waiting[:ended]
        if self.copying is not None and self.copying.done:
            self.copying = None
        while self.queue and self.queue[0][0] <= seen:
            self.splits.append((self.server.end, self.queue.pop(0)[1]))


def _tagged(tags: bytes | tuple[bytes, ...], tag: bytes) -> bytes | tuple[bytes, ...]:
    """A record's tags with one more (`_Record.tags`)."""
    if type(tags) is bytes:
        return tags, tag
    return (*tags, tag) if tags else tag


def _one_line(sql: str) -> str:
    line = " ".join(sql[:PATH_CHARS * 4].split())
    return line if len(line) <= PATH_CHARS else line[:PATH_CHARS - 1] + "…"


_NO_PORTAL: tuple[str, list[str | bytes | None], int] = ("", [], 0)
_NO_STATEMENT: tuple[str, list[int]] = ("", [])


def _two(body: bytes) -> tuple[str, str, int]:
    """A body's first two NUL-terminated strings ("" for one missing) and the offset after
    them: `pg.cstrings(body, 2)`, without its lists."""
    end = body.find(b"\0")
    if end >= 0:
        stop = body.find(b"\0", end + 1)
        if stop >= 0:
            return (body[:end].decode("utf-8", "replace"),  # (`pg.text`, inline)
                    body[end + 1:stop].decode("utf-8", "replace"), stop + 1)
    names, at = pg.cstrings(body, 2)
    first, second = [*names, "", ""][:2]
    return first, second, at


def _bound(types: list[int], bound: bytes | list[str | bytes | None] | None,
           at: int) -> list[dict[str, Any]]:
    """An Execute's params from its portal's Bind (see `PostgresFollower.portals`)."""
    if bound is None:  # redact_params
        return _params(types, [], True, len(types))
    values = pg.bind_values(bound, at) if isinstance(bound, bytes) else bound
    return _params(types, values, False, len(values) if values else len(types))


def _params(types: list[int], values: list[str | bytes | None], redact: bool,
            count: int) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for i in range(count):
        param: dict[str, Any] = {"type": pg.type_name(types[i]) if i < len(types) else
                                 "unspecified"}
        value = values[i] if i < len(values) else None
        if redact:
            param["value"] = "<redacted>"
        elif isinstance(value, bytes):
            param["value"] = pg.binary_value(param["type"], value)
        else:
            param["value"] = value
        params.append(param)
    return params
