"""One client of the sharding proxy: commands routed to shards, replies written in its order."""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
from collections import deque
from itertools import compress as _compress
from itertools import repeat as _repeat
from operator import eq as _eq
from typing import TYPE_CHECKING, Protocol

from devamb.resp.commands import (
    BY_NAME,
    CONTAINER,
    EVERY,
    KEY,
    KEYED,
    LOCAL,
    REFUSED,
    SPLIT,
    ArityError,
    Command,
    lookup,
)
from devamb.targets.base import HandingReader
from devamb.targets.shards import encoder, hello, transaction
from devamb.targets.shards.fanout import Fanout, group_keys, sub_command
from devamb.targets.shards.link import IGNORED
from devamb.targets.shards.parser import (
    BRACE,
    ONE_MAX,
    CommandReader,
    ProtocolError,
    Raw,
    only_bytes,
)
from devamb.targets.shards.run import Run, RunPart
from devamb.targets.shards.transaction import Transaction

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from devamb.targets.base import ClientReader, ClientStream
    from devamb.targets.shards.link import ShardLink
    from devamb.targets.shards.ring import ShardRing

READ_SIZE = 256 * 1024
MAX_OWED = 10_000  # replies a client may be owed before devamb stops reading its commands
RESUME_OWED = 5_000

log = logging.getLogger("devamb.resp")
_SINGLE_KEY = frozenset(name for name, command in BY_NAME.items() if command.route == KEY)
_FLIP = bytes([1, 0]) + bytes(254)  # a run's part selector over two shards, for part 0
_client_ids = itertools.count(1)  # the `id` HELLO answers


class Refused(Exception):
    """A command answered with an error instead of being sent; `reply` is that error."""

    def __init__(self, reply: bytes) -> None:
        super().__init__(reply)
        self.reply = reply


class NoShard(Exception):
    """No shard can take a key now (every one is ejected)."""


class Router(Protocol):
    """The sharded target as a session sees it."""

    auth: str | None  # the password devamb sends to the shards (clients' AUTH is checked)

    @property
    def ring(self) -> ShardRing[ShardLink]: ...

    def link_for(self, key: bytes) -> ShardLink: ...

    def links(self) -> list[ShardLink]: ...

    def resp3(self, link: ShardLink) -> ShardLink: ...


class Outbox:
    """Sessions with replies ready: written together once a burst of shard replies is read."""

    __slots__ = ("dirty",)

    def __init__(self) -> None:
        self.dirty: list[Session] = []

    def flush(self) -> None:
        dirty = self.dirty
        if dirty:
            for session in dirty:
                session.flush()
            dirty.clear()


class Slot:
    """One reply a client is owed; filled by a shard (or at once by devamb)."""

    __slots__ = ("reply", "session")

    def __init__(self, session: Session, reply: bytes | None = None) -> None:
        self.session = session
        self.reply = reply

    def done(self, reply: bytes) -> None:
        self.reply = reply
        self.session.ready()


class Session:
    """Reads a client's commands, sends each to its shard(s), answers in the order asked."""

    def __init__(self, router: Router, client: ClientStream, outbox: Outbox) -> None:
        self._router = router
        self._ring = router.ring
        self._client = client
        self._outbox = outbox
        self._queue: deque[Slot | Fanout | Run] = deque()  # owed replies, oldest first
        self._in_runs = 0  # replies owed beyond one per queue entry (a Run stands for many)
        self._out: list[bytes] = []  # replies ready to write, in order
        self._marked = False  # in the outbox's dirty list
        self._wake_below = 0  # wake `_room` once fewer replies than this are owed
        self._room: asyncio.Future[None] | None = None
        self._quit = False
        self._closed = False
        self.id = next(_client_ids)
        self._resp3 = False  # the client said HELLO 3: its commands go to RESP3 links
        self._tx: Transaction | None = None  # between MULTI and EXEC/DISCARD
        self._commands = CommandReader()  # the client's byte stream, read into commands
        self._reader_end: Callable[[], None] = _nothing  # the reader's `end`, when it hands over

    # -- the client's side -----------------------------------------------------------------

    async def serve(self, reader: ClientReader) -> None:
        """Serve the client's commands until it closes (or sends QUIT, or bytes that are not
        RESP). A reader that hands reads over (`HandingReader`: no faults shape what the client
        sends) has each read served in the socket's callback while this task waits in `read`,
        for as long as nothing needs waiting for (`_take_now`); this loop serves the others."""
        commands = self._commands
        handing = reader if isinstance(reader, HandingReader) else None
        if handing is not None:
            handing.take = self._take_now
            self._reader_end = handing.end
        try:
            while not self._quit:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                if len(self._queue) + self._in_runs > MAX_OWED:
                    await self._owed_below(RESUME_OWED)
                await self._client.drain()
                self._take(commands, data)
                if self._out:
                    self.flush()
            await self._owed_below(1)
            self.flush()
        finally:
            self._closed = True
            if handing is not None:
                handing.take = None

    def _take_now(self, data: bytes) -> bool:
        """A read served in the socket's callback, as `serve` would (no task switch); False,
        nothing done, when `serve` must wait first (for fewer replies owed, or for the client
        to read what it was sent)."""
        if (self._quit or len(self._queue) + self._in_runs > MAX_OWED
                or not self._client.writable()):
            return False
        self._take(self._commands, data)
        if self._out:
            self.flush()
        if self._quit:
            self._reader_end()
        return True

    def _take(self, commands: CommandReader, data: bytes) -> None:
        """Serve the commands `data` completes; when the client's bytes are not RESP, what came
        before them is served, then the error, and the connection ends (`_quit`). A function
        of its own so that no local keeps the commands (a large argument) alive while the
        session waits for more."""
        if len(data) <= ONE_MAX:  # (`one` reads no more: a pipelining client's read skips it)
            args = commands.one(data)
            if args is not None:
                self.dispatch(args, data)
                return
        whole = commands.split_whole(data)
        if whole is not None:
            found, pieces = whole
            if self._run_whole(data, found, pieces):
                return
            if only_bytes(found):  # (what `_run_whole` did not take is checked here)
                if not pieces:
                    self.dispatch(found[0], data)
                else:
                    self._dispatch_all([(args, b"*%b\r\n" % piece)
                                        for args, piece in zip(found, pieces, strict=True)])
                return
        try:
            self._dispatch_all(commands.feed(data))
        except ProtocolError as exc:
            self._dispatch_all(exc.parsed)
            self.answer(encoder.error(f"ERR Protocol error: {exc}"))
            self._quit = True

    def _run_whole(self, data: bytes, commands: list[list[bytes]], pieces: list[bytes]) -> bool:
        """A chunk of only single-key commands, as one `Run` routed in C (`ShardRing.pick_all`:
        no loop here); False, nothing done, for any other chunk (and a chunk of one command).
        `pieces`: each command's bytes less its leading '*' and final CRLF."""
        count = len(commands)
        ring = self._ring
        if count < 2 or self._tx is not None or ring.ejected:
            return False
        # The arguments are not checked yet (`CommandReader.split_whole`): the names are found
        # in a set of bytes, each key is hashed (TypeError unless bytes), the others checked.
        columns = zip(*commands, strict=False)  # names, then keys (none: a command lacks one)
        try:
            if not _SINGLE_KEY.issuperset(next(columns)):
                return False
            keys = next(columns, None)
            if keys is None or (BRACE in data and BRACE in b"".join(keys)):
                return False  # (a hash tag, maybe: `_dispatch_all`)
            picked = ring.pick_all(keys)  # each command's shard, as an index in ring.listed
        except TypeError:  # (an unhashable name, or a key that is not bytes)
            return False
        arguments = sum(map(len, commands))
        if arguments != 2 * count and not self._values_are_bytes(commands, columns, arguments):
            return False  # (only names and keys, as a run of GETs has: nothing to check)
        links = ring.listed
        run = Run(self)
        run.count = count
        parts = run.parts
        self._in_runs += count - 1
        self._queue.append(run)
        first = picked[0]
        if picked.count(first) == count:  # all to one shard: the client's bytes as they came
            link = links[first]
            if self._resp3:
                link = self._router.resp3(link)
            part = parts[link] = RunPart(run, 0, count)
            run.left = 1
            link.send_many(data, part)
            return True
        order: Sequence[int]
        if len(links) == 2:  # the part index (0 or 1) is the selector, flipped for part 0
            order = selector = bytes(picked)
            selectors: list[Iterable[int]] = [selector.translate(_FLIP), selector]
        else:  # the parts numbered in order of appearance, from 0
            seen = list(dict.fromkeys(picked))
            index_of = {member: i for i, member in enumerate(seen)}
            order = list(map(index_of.__getitem__, picked))
            links = [links[member] for member in seen]
            selectors = [map(_eq, order, _repeat(index)) for index in range(len(links))]
        run.order = order
        run.left = len(links)
        resp3 = self._resp3
        for index, link in enumerate(links):
            if resp3:
                link = self._router.resp3(link)
            mine = list(_compress(pieces, selectors[index]))
            part = parts[link] = RunPart(run, index, len(mine))
            joined = (b"*", b"\r\n*".join(mine), b"\r\n")  # (each piece less '*' and CRLF)
            if not link.send_now(part, joined):
                link.send_many(b"".join(joined), part)
        return True

    @staticmethod
    def _values_are_bytes(commands: list[list[bytes]], columns: Iterator[tuple[bytes, ...]],
                          arguments: int) -> bool:
        """Whether the arguments after each command's key are bytes; `columns`: `commands`'
        columns after their keys (a third, when each command has one); `arguments`: how many
        the commands have in all."""
        count = len(commands)
        if arguments == 2 * count:  # (only names and keys, as a run of GETs has)
            return True
        if arguments == 3 * count:  # (a value each: a run of SETs)
            values = next(columns, None)
            if values is not None:
                try:
                    b"".join(values)  # (a tuple: joined as it is, no list made of it first)
                except TypeError:
                    return False
                return True
        return only_bytes(commands)

    def _dispatch_all(self, batch: list[tuple[list[bytes], Raw]]) -> None:
        """Dispatch in order. Single-key commands in a row go to their shards as one `Run`
        (one queue entry, one write per shard, the replies taken at once); any other command
        ends the run and is dispatched alone, as is a run of one."""
        if len(batch) == 1:
            self.dispatch(*batch[0])
            return
        by_name = BY_NAME
        router = self._router
        run: Run | None = None
        plain, resp3 = self._tx is None, self._resp3
        for args, raw in batch:
            command = by_name.get(args[0])
            if (plain and command is not None and command.route == KEY and len(args) > 1
                    and type(raw) is bytes):  # (not pieces: a large argument)
                try:
                    link = router.link_for(args[1])
                except NoShard:
                    self._end_run(run)
                    run = None
                    self.dispatch(args, raw)
                    continue
                if resp3:
                    link = router.resp3(link)
                if run is None:
                    run = Run(self)
                parts = run.parts
                part = parts.get(link)
                if part is None:
                    part = parts[link] = RunPart(run, len(parts))
                run.order.append(part.index)  # type: ignore[union-attr]  # (a list here)
                part.raws.append(raw)
                continue
            self._end_run(run)
            run = None
            self.dispatch(args, raw)
            if self._quit:
                break
            plain, resp3 = self._tx is None, self._resp3
        self._end_run(run)

    def _end_run(self, run: Run | None) -> None:
        if run is not None:
            for part in run.parts.values():
                part.left = len(part.raws)
            count = run.count = len(run.order)
            self._in_runs += count - 1
            self._queue.append(run)
            run.send()

    async def _owed_below(self, count: int) -> None:
        if len(self._queue) + self._in_runs < count:
            return
        self._wake_below = count
        self._room = asyncio.get_running_loop().create_future()
        try:
            await self._room
        finally:
            self._wake_below = 0
            self._room = None

    def ready(self) -> None:
        """Some owed reply arrived: move the ones now in order to the output."""
        queue = self._queue
        out = self._out
        while queue and queue[0].reply is not None:
            entry = queue.popleft()
            out.append(entry.reply)  # type: ignore[arg-type]
            if type(entry) is Run:
                self._in_runs -= entry.count - 1
        if out and not self._marked:
            self._marked = True
            self._outbox.dirty.append(self)
        if self._wake_below and len(queue) + self._in_runs < self._wake_below:
            room = self._room
            if room is not None and not room.done():
                room.set_result(None)

    def flush(self) -> None:
        self._marked = False
        out = self._out
        if out:
            if not self._closed:
                self._client.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def answer(self, reply: bytes) -> None:
        """A reply devamb makes itself, kept in order behind those still owed."""
        if self._queue:
            self._queue.append(Slot(self, reply))
        else:
            self._out.append(reply)

    # -- routing ---------------------------------------------------------------------------

    def dispatch(self, args: list[bytes], raw: Raw) -> None:
        command = BY_NAME.get(args[0])  # (`lookup`, whose work most commands need no more of)
        if command is None or command.route == CONTAINER:
            command = lookup(args)
        if command is None:
            name = bytes(args[0]).upper().decode("utf-8", "replace")
            self.answer(encoder.error(
                f"ERR devamb: unknown command '{name}' (not in the sharded target's command "
                "table, so its keys cannot be found)"
            ))
            if self._tx is not None:
                self._tx.failed = True
            return
        route = command.route
        if self._tx is not None and command.name not in TX_CONTROL:
            self._queue_tx(command, args, raw)
            return
        try:
            if route == KEY:
                if len(args) < 2:
                    raise ArityError(command.name)
                key = args[1]
                link = (self._ring.pick(key) if BRACE not in key and not self._resp3
                        else self._link_for(key))
                slot = Slot(self)
                self._queue.append(slot)
                link.send(raw, slot)
            elif route == SPLIT:
                self._split(command, args, raw)
            elif route == KEYED:
                self._keyed(command, args, raw)
            elif route == EVERY:
                self._every(command, raw)
            elif route == LOCAL:
                self._local(command, args)
            else:
                assert route == REFUSED
                self.refuse(command.name, command.reason)
        except ArityError as exc:
            self.answer(encoder.error(f"ERR {exc}"))
        except NoShard as exc:
            self.answer(encoder.error(f"ERR devamb: {exc}"))
        except Refused as exc:
            self.answer(exc.reply)
        except Exception:  # a bug must not take the client's other replies with it
            log.exception("sharded target: command %r failed", command.name)
            self.answer(encoder.error(f"ERR devamb: internal error on '{command.name}'"))

    def refuse(self, name: str, reason: str) -> None:
        self.answer(_refusal(name, reason))

    def _link_for(self, key: bytes) -> ShardLink:
        """The link to the shard of `key` in the client's protocol."""
        link = self._router.link_for(key)
        return self._router.resp3(link) if self._resp3 else link

    def _keyed(self, command: Command, args: list[bytes], raw: Raw) -> None:
        link = self._keyed_link(command, args)
        if self._resp3:
            link = self._router.resp3(link)
        slot = Slot(self)
        self._queue.append(slot)
        link.send(raw, slot)

    def _keyed_link(self, command: Command, args: list[bytes]) -> ShardLink:
        """The (RESP2) link of the one shard all the command's keys hash to."""
        keys = command.keys(args)
        if command.streams and b"BLOCK" in {bytes(a).upper() for a in args}:
            raise Refused(_refusal(f"{command.name} BLOCK", "a blocking command would hold a "
                                   "shard connection all clients share"))
        if not keys:
            raise Refused(_refusal(f"{command.name} without keys", "the keys pick the shard"))
        link_for = self._router.link_for
        link = link_for(keys[0])
        if any(link_for(key) is not link for key in keys[1:]):
            raise Refused(encoder.error(
                f"ERR devamb: '{command.name}' keys live on different shards; keep keys used "
                "together on one shard with a hash tag, e.g. {user1}:a and {user1}:b"
            ))
        return link

    def _split(self, command: Command, args: list[bytes], raw: Raw) -> None:
        step = command.step
        count = len(args)
        if count < 2 or (count - 1) % step:
            raise ArityError(command.name)
        positions = range(1, count, step)
        groups = group_keys(positions, args, self._link_for)
        if len(groups) == 1:  # all on one shard: the command as it came, and its reply as is
            slot = Slot(self)
            self._queue.append(slot)
            next(iter(groups)).send(raw, slot)  # type: ignore[attr-defined]
            return
        assert command.merge is not None
        fanout = Fanout(self, command.merge, len(groups), keys=len(positions))
        self._queue.append(fanout)
        for link, picked in groups.items():
            indexes = [(p - 1) // step for p in picked]
            link.send(sub_command(args, picked, step), fanout.part(indexes))  # type: ignore[attr-defined]

    def _every(self, command: Command, raw: Raw) -> None:
        links = self._router.links()
        if not links:
            raise NoShard("every shard is ejected")
        if self._resp3:
            links = [self._router.resp3(link) for link in links]
        assert command.merge is not None
        fanout = Fanout(self, command.merge, len(links))
        self._queue.append(fanout)
        for link in links:
            link.send(raw, fanout.part())

    def _local(self, command: Command, args: list[bytes]) -> None:
        name, argc = command.name, len(args)
        if name == "PING" and argc <= 2:
            self.answer(encoder.PONG if argc == 1 else encoder.bulk(args[1]))
        elif name == "ECHO" and argc == 2:
            self.answer(encoder.bulk(args[1]))
        elif name == "SELECT" and argc == 2:
            if args[1] == b"0":
                self.answer(encoder.OK)
            else:
                self.answer(encoder.error(
                    "ERR devamb: only database 0 is available through a sharded target"
                ))
        elif name == "QUIT":
            self.answer(encoder.OK)
            self._quit = True
        elif name == "AUTH" and argc in (2, 3):
            self.answer(self._auth(args))
        elif name == "HELLO":
            self._hello(args)
        elif name == "MULTI" and argc == 1:
            self.answer(transaction.NESTED if self._tx is not None else encoder.OK)
            if self._tx is None:
                self._tx = Transaction()
        elif name == "EXEC" and argc == 1:
            self._exec()
        elif name == "DISCARD" and argc == 1:
            self.answer(encoder.OK if self._tx is not None else transaction.DISCARD_WITHOUT)
            self._tx = None
        elif name == "COMMAND":
            count = argc == 2 and bytes(args[1]).upper() == b"COUNT"
            self.answer(encoder.integer(0) if count else encoder.EMPTY_ARRAY)
        elif name.startswith("CLIENT|"):
            self.answer(encoder.OK)
        else:
            raise ArityError(name)

    def _auth(self, args: list[bytes]) -> bytes:
        """Checked against the target's `auth:` (which devamb itself sends to each shard)."""
        password = self._router.auth
        if password is None:
            return encoder.error(
                "ERR AUTH <password> called without any password configured for the default "
                "user. Are you sure your configuration is correct?"
            )
        user_ok = len(args) == 2 or args[1] == b"default"
        if user_ok and hmac.compare_digest(bytes(args[-1]), password.encode()):
            return encoder.OK
        return encoder.error("WRONGPASS invalid username-password pair or user is disabled.")

    def _hello(self, args: list[bytes]) -> None:
        """Answered by devamb (the shards' connections are shared: a RESP3 client's commands go
        to RESP3 connections of their own, whose replies pass as they are), with what a shard
        says of itself to a plain HELLO on a connection of the client's protocol."""
        try:
            asked = hello.parse(args)
        except hello.HelloError as exc:
            self.answer(exc.reply)
            return
        if asked.auth is not None:
            checked = self._auth([b"AUTH", *asked.auth])
            if checked != encoder.OK:
                self.answer(checked)
                return
        if asked.protocol is not None:
            self._resp3 = asked.protocol == 3
        protocol = 3 if self._resp3 else 2
        links = self._router.links()
        if not links:
            self.answer(hello.reply(protocol, self.id))
            return
        link = self._router.resp3(links[0]) if self._resp3 else links[0]
        slot = _HelloSlot(self, protocol)
        self._queue.append(slot)
        link.send(hello.PLAIN, slot)

    # -- transactions ----------------------------------------------------------------------

    def _queue_tx(self, command: Command, args: list[bytes], raw: Raw) -> None:
        tx = self._tx
        assert tx is not None
        try:
            shard = self._tx_shard(command, args)
        except Refused as exc:
            reply = exc.reply
        except ArityError as exc:
            reply = encoder.error(f"ERR {exc}")
        except NoShard as exc:
            reply = encoder.error(f"ERR devamb: {exc}")
        else:
            if shard is None or tx.shard is None or shard is tx.shard:
                tx.shard = tx.shard or shard
                tx.commands.append(raw)
                self.answer(transaction.QUEUED)
                return
            reply = tx.cross_shard(command.name, shard)
        tx.failed = True
        self.answer(reply)

    def _tx_shard(self, command: Command, args: list[bytes]) -> ShardLink | None:
        """The (RESP2) link of the shard a queued command's keys hash to; None: it has none."""
        route = command.route
        if route == KEY:
            if len(args) < 2:
                raise ArityError(command.name)
            return self._router.link_for(args[1])
        if route == KEYED:
            return self._keyed_link(command, args)
        if route == SPLIT:
            step = command.step
            if len(args) < 2 or (len(args) - 1) % step:
                raise ArityError(command.name)
            groups = group_keys(range(1, len(args), step), args, self._router.link_for)
            if len(groups) == 1:
                return next(iter(groups))  # type: ignore[return-value]
            raise Refused(encoder.error(
                f"ERR devamb: '{command.name}' keys live on different shards, and a transaction "
                "runs on one; keep keys used together on one shard with a hash tag, e.g. "
                "{user1}:a and {user1}:b"
            ))
        if route == LOCAL and command.name in ("PING", "ECHO"):
            return None
        if route == REFUSED:
            raise Refused(_refusal(command.name, command.reason))
        raise Refused(_refusal(f"{command.name} inside MULTI", "a transaction runs on one "
                               "shard; this command is answered by devamb or goes to every shard"))

    def _exec(self) -> None:
        tx, self._tx = self._tx, None
        if tx is None:
            self.answer(transaction.EXEC_WITHOUT)
            return
        if tx.failed:
            self.answer(transaction.EXECABORT)
            return
        if not tx.commands:
            self.answer(encoder.EMPTY_ARRAY)
            return
        link = tx.shard
        if link is None:  # PING and ECHO only: any shard
            links = self._router.links()
            if not links:
                raise NoShard("every shard is ejected")
            link = links[0]
        if self._resp3:
            link = self._router.resp3(link)
        # One synchronous run of sends: nothing can come between them on the shared connection.
        link.send(transaction.MULTI, IGNORED)
        for raw in tx.commands:
            link.send(raw, IGNORED)
        slot = Slot(self)
        self._queue.append(slot)
        link.send(transaction.EXEC, slot)


class _HelloSlot(Slot):
    """The reply to a client's HELLO, made from a shard's answer to a plain HELLO."""

    __slots__ = ("protocol",)

    def __init__(self, session: Session, protocol: int) -> None:
        super().__init__(session)
        self.protocol = protocol

    def done(self, reply: bytes) -> None:
        super().done(hello.from_shard(reply, self.protocol, self.session.id))


def _nothing() -> None:
    pass


TX_CONTROL = frozenset({"MULTI", "EXEC", "DISCARD", "QUIT"})


def _refusal(name: str, reason: str) -> bytes:
    return encoder.error(
        f"ERR devamb: '{name}' is not supported through a sharded target ({reason})"
    )
