"""One shared, pipelined connection to a shard: every client's commands for it, replies in order.

Commands are queued and written once per event-loop iteration (one write for what all clients
sent meanwhile); replies are matched to the commands in the order they were sent, as Redis
answers a connection in order. A shard that cannot be reached answers every command waiting for
it with an error naming the shard; the next command tries to connect again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Protocol

from devamb.proxy.dial import Dial, dial_with
from devamb.targets.shards import encoder
from devamb.targets.shards.parser import ProtocolError, Raw, ReplyReader, is_error
from devamb.targets.shards.run import RunPart


class Owed(Protocol):
    """A reply someone waits for (a client's slot, or a part of a fan-out)."""

    def done(self, reply: bytes) -> None: ...


class LinkWatcher(Protocol):
    """Told about the link's health and when replies are ready to be written to clients."""

    def link_failed(self, link: ShardLink, reason: str) -> None: ...

    def link_ok(self, link: ShardLink) -> None: ...

    def flush(self) -> None: ...


class _AuthCheck:
    """The reply to the AUTH devamb sends when it connects; an error is worth a notice."""

    def __init__(self, link: ShardLink) -> None:
        self.link = link

    def done(self, reply: bytes) -> None:
        if is_error(reply):
            self.link.auth_error = bytes(reply[1:-2]).decode("utf-8", "replace")


class _HelloCheck:
    """The reply to the `HELLO 3` a RESP3 link sends when it connects; an error (a wrong
    password, or a server older than Redis 6) is worth a notice."""

    def __init__(self, link: ShardLink) -> None:
        self.link = link

    def done(self, reply: bytes) -> None:
        if is_error(reply):
            self.link.auth_error = bytes(reply[1:-2]).decode("utf-8", "replace")


class _Ignored:
    """A reply nobody waits for (MULTI's +OK and the +QUEUED of a transaction sent whole)."""

    def done(self, reply: bytes) -> None:
        pass


IGNORED = _Ignored()


class ShardLink(asyncio.Protocol):
    """The connection to one shard, shared by every client of the target."""

    def __init__(
        self,
        name: str,
        url: str,
        host: str,
        port: int,
        watcher: LinkWatcher,
        *,
        timeout: float,
        auth: str | None = None,
        protocol: int = 2,
    ) -> None:
        self.name = name
        self.url = url  # as written in the profile: safe to show
        self.host = host
        self.port = port
        self.watcher = watcher
        self.timeout = timeout  # seconds to connect, and to wait for the next reply
        self.auth = auth
        self.auth_error: str | None = None
        self.protocol = protocol  # 3: the link says HELLO 3 and its replies are RESP3
        self.commands = 0  # sent to this shard
        self.errors = 0  # answered by devamb with an error because the shard failed
        self.connected = False
        self._suspect = False  # a failure was reported; the next reply clears it
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop  # set in connection_made
        self._waiting: deque[Owed] = deque()  # sent, reply not yet read
        self._out: list[Raw] = []  # to write at the end of this loop iteration
        self._pieces = False  # some command in _out is a list of pieces (a large argument)
        self._pending: list[tuple[Raw, Owed]] = []  # queued while connecting
        self._connecting: asyncio.Task[None] | None = None
        self._replies = ReplyReader()
        self._progress = 0.0  # loop time of the last reply (or of the first command waiting)
        self._watchdog: asyncio.TimerHandle | None = None
        self._lost_reason = ""
        self._closed = False
        self.dial: Dial | None = None  # through a bastion (the shard's `via:`)

    # -- sending ---------------------------------------------------------------------------

    def send(self, command: Raw, owed: Owed) -> None:
        """Queue `command`; `owed.done(reply)` is called with its reply (or with an error)."""
        self.commands += 1
        if self._transport is not None and self._connecting is None:
            if not self._waiting:
                self._progress = self._loop.time()
            self._waiting.append(owed)
            out = self._out
            out.append(command)
            if type(command) is list:
                self._pieces = True
            if len(out) == 1:
                self._loop.call_soon(self._flush)
            return
        self._pending.append((command, owed))
        if self._connecting is None and not self._closed:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())

    def send_many(self, commands: bytes, part: RunPart) -> None:
        """Queue a run's `part.left` commands for this shard, in one piece of bytes;
        `part.fill` takes their replies at once."""
        if self.send_now(part, (commands,)):
            return
        self.commands += part.left
        self._pending.append((commands, part))
        if self._connecting is None and not self._closed:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())

    def send_now(self, part: RunPart, pieces: tuple[bytes, ...]) -> bool:
        """`send_many` for a connected link, the run's commands in `pieces` (each command cut
        as `CommandReader.split_whole` cuts them, put back together in the iteration's one
        write, not joined into bytes of their own first); False, nothing done, while the link
        is not connected (then `send_many` takes them joined)."""
        if self._transport is None or self._connecting is not None:
            return False
        self.commands += part.left
        if not self._waiting:
            self._progress = self._loop.time()
        self._waiting.append(part)
        out = self._out
        if not out:
            self._loop.call_soon(self._flush)
        out += pieces
        return True

    def _flush(self) -> None:
        out = self._out
        if not out:
            return
        if self._transport is not None:
            if self._pieces:  # a large argument: written as it is, never joined into a copy
                write = self._transport.write  # (writelines joins, on Python 3.11's asyncio)
                for command in out:
                    for piece in command if isinstance(command, list) else (command,):
                        write(piece)
            else:
                self._transport.write(out[0] if len(out) == 1 else b"".join(out))  # type: ignore[arg-type]
        self._pieces = False
        out.clear()

    @staticmethod
    def _loop_time() -> float:
        return asyncio.get_running_loop().time()

    # -- connecting ------------------------------------------------------------------------

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                await dial_with(self.dial)(lambda: self, self.host, self.port)
        except (OSError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                reason = f"no connection within {self.timeout:g}s"
            else:
                reason = exc.strerror or str(exc) or type(exc).__name__
            self._connecting = None
            self._fail_all(self._take_pending(), f"unreachable: {reason}")
            self._failed(reason)
            self.watcher.flush()
            return
        # A connect proves nothing (a stopped or wedged server still accepts, from its
        # backlog): only a reply clears the shard's failures, as in twemproxy's server_ok.
        self._connecting = None
        pending = self._take_pending()
        if self.protocol == 3:
            args = [b"HELLO", b"3"]
            if self.auth is not None:
                args += [b"AUTH", b"default", self.auth.encode()]
            pending.insert(0, (encoder.command(args), _HelloCheck(self)))
        elif self.auth is not None:
            args = [b"AUTH", self.auth.encode()]
            pending.insert(0, (encoder.command(args), _AuthCheck(self)))
        for command, owed in pending:
            self._waiting.append(owed)
            self._out.append(command)
            if type(command) is list:
                self._pieces = True
        self._progress = loop.time()
        self._flush()

    def _take_pending(self) -> list[tuple[Raw, Owed]]:
        pending, self._pending = self._pending, []
        return pending

    def _fail_all(self, owed: list[tuple[Raw, Owed]] | deque[Owed], why: str) -> None:
        if not owed:
            return
        reply = encoder.error(f"ERR devamb: shard {self.name} ({self.url}) {why}")
        for item in owed:
            one = item[1] if isinstance(item, tuple) else item
            self.errors += one.left if type(one) is RunPart else 1
            one.done(reply)

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._loop = asyncio.get_running_loop()  # (for the connected link's sends and replies)
        self._transport = transport  # type: ignore[assignment]
        self.connected = True
        self._replies = ReplyReader()
        self._lost_reason = ""
        self._arm_watchdog()

    def data_received(self, data: bytes) -> None:
        try:
            replies = self._replies.feed(data)
        except ProtocolError as exc:
            self._abort(f"sent an invalid reply: {exc}")
            return
        if self.protocol == 3 and replies:  # no pushes are asked for; drop any all the same
            replies = [reply for reply in replies if reply[:1] != b">"]
        waiting = self._waiting
        i, n = 0, len(replies)
        while i < n:
            if not waiting:
                self._abort("sent a reply nobody asked for")
                self.watcher.flush()  # (the replies before it were owed)
                return
            owed = waiting[0]
            if type(owed) is RunPart:  # a run's replies from this shard, taken at once
                i = owed.fill(replies, i)
                if owed.left:
                    break
            else:
                owed.done(replies[i])
                i += 1
            waiting.popleft()
        if self._suspect and replies:
            self._suspect = False
            self.watcher.link_ok(self)
        self._progress = self._loop.time()
        self.watcher.flush()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self.connected = False
        self._out.clear()
        self._pieces = False
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        lost = f"connection lost: {exc}" if exc else "closed the connection"
        reason = self._lost_reason or lost
        waiting, self._waiting = self._waiting, deque()
        if waiting:
            self._fail_all(waiting, f"unreachable: {reason}")
            self._failed(reason)
            self.watcher.flush()
        if self._pending and not self._closed and self._connecting is None:
            self._connecting = asyncio.get_running_loop().create_task(self._connect())

    def _failed(self, reason: str) -> None:
        """One failure in a row: a connect that failed, or commands lost or unanswered."""
        self._suspect = True
        self.watcher.link_failed(self, reason)

    def _abort(self, reason: str) -> None:
        self._lost_reason = reason
        if self._transport is not None:
            self._transport.abort()

    # -- a shard that stops answering ------------------------------------------------------

    def _arm_watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_later(max(self.timeout / 4, 0.05), self._check_progress)

    def _check_progress(self) -> None:
        self._watchdog = None
        if self._transport is None:
            return
        if self._waiting and self._loop_time() - self._progress > self.timeout:
            self._abort(f"no reply within {self.timeout:g}s")
            return
        self._arm_watchdog()

    def close(self) -> None:
        self._closed = True
        if self._connecting is not None:
            self._connecting.cancel()
        if self._transport is not None:
            with contextlib.suppress(RuntimeError):
                self._transport.close()
